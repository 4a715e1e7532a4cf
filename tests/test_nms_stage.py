"""The NMS stage in the real window: the live IoU slider against torchvision, the step walk against the
trace, and external detections with no model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt
from torchvision.ops import batched_nms, nms

from app.main_window import MainWindow
from app.stages.nms import NmsStage
from app.stages.nms.controller import CURRENT, KEPT, KIND, SUPPRESSED, SUPPRESSOR, VICTIM
from app.stages.scene_boxes import FROM_FILE, FROM_MODEL
from models.detection.detectors import build_detector
from models.detection.detectors.base import Detections
from models.detection.nms import nms_trace
from tests.test_main_window import make_window, settings, write_image  # noqa: F401  (fixture)

CLASSES = ["circle", "square", "triangle"]
TINY = dict(small_width=8, anchor_sizes=(16, 32, 64), representation_size=64, min_size=128, max_size=160,
            rpn_pre_nms_test=600, rpn_post_nms_test=100)


def stage_of(w: MainWindow, kind: type):
    return next(s for s in w.stages if isinstance(s, kind))


@pytest.fixture
def window_with_image(qtbot, settings, tmp_path):  # noqa: F811
    folder = tmp_path / "photos"
    write_image(folder / "a.png", seed=1, size=(200, 150))
    write_image(folder / "b.png", seed=2, size=(200, 150))
    w = make_window(qtbot, settings, thumbnails=False)
    assert w.open_path(folder)
    qtbot.waitUntil(lambda: w.detector_session.decoded is not None, timeout=5000)
    yield w
    w.close()


def traced(w: MainWindow):
    """A tiny untrained Faster R-CNN run on the window's image with no score threshold: hundreds of candidates."""
    torch.manual_seed(0)
    model = build_detector("faster-rcnn", CLASSES, backbone="small", **TINY).eval()
    session = w.detector_session
    trace = model.trace(session.pixels, session.gt_boxes(), score_threshold=0.0)
    session.set_model(model, "tiny.pt")
    session.set_trace(trace)
    return model, trace


def kinds(stage: NmsStage) -> np.ndarray:
    return stage.layer.keys // KIND


def test_slider_keeps_what_torchvision_keeps(qtbot, window_with_image):
    w = window_with_image
    stage = stage_of(w, NmsStage)
    model, trace = traced(w)
    panel = stage.panel
    assert "NMS" in [d.windowTitle() for d in stage.docks()]
    cand = stage.candidates
    assert cand.origin == FROM_MODEL and len(cand) == len(trace.candidates) > 50
    # The slider starts at the model's own box NMS threshold; candidates map back to the image (sx, sy).
    assert panel.iou_threshold() == pytest.approx(model.roi_heads.nms_threshold)
    sy, sx = trace.factors
    assert np.allclose(cand.boxes[:, 0::2], trace.candidates.boxes[:, 0::2] / sx, atol=1e-3)
    assert np.allclose(cand.boxes[:, 1::2], trace.candidates.boxes[:, 1::2] / sy, atol=1e-3)
    panel.show_box.setChecked(True)
    assert stage.layer.isVisible()
    b, s, g = (torch.from_numpy(cand.boxes), torch.from_numpy(cand.scores), torch.from_numpy(cand.labels))
    for value in (20, 45, 70):
        panel.iou_slider.setValue(value)
        ref = batched_nms(b, s, g, value / 100).numpy()
        assert stage.nms.kept.tolist() == ref.tolist()
        drawn = stage.layer.boxes[kinds(stage) == KEPT]
        assert sorted(map(tuple, drawn.tolist())) == sorted(map(tuple, cand.boxes[ref].tolist()))
        assert (kinds(stage) == SUPPRESSED).sum() == len(cand) - ref.size  # suppressed drawn dashed
    # The keyboard moves the slider too: one step right is +0.01.
    panel.iou_slider.setFocus()
    qtbot.keyClick(panel.iou_slider, Qt.Key.Key_Right)
    assert panel.iou_threshold() == pytest.approx(0.71)
    assert stage.nms.kept.tolist() == batched_nms(b, s, g, 0.71).numpy().tolist()
    # Class-agnostic: any box suppresses any other.
    qtbot.mouseClick(panel.per_class_box, Qt.MouseButton.LeftButton)
    assert not panel.per_class()
    assert stage.nms.kept.tolist() == nms(b, s, 0.71).numpy().tolist()
    assert "class-agnostic" in panel.counts_label.text()


def test_step_mode_shows_who_suppressed_whom(qtbot, window_with_image):
    w = window_with_image
    stage = stage_of(w, NmsStage)
    traced(w)
    panel = stage.panel
    panel.show_box.setChecked(True)
    panel.iou_slider.setValue(40)
    cand = stage.candidates
    ref = nms_trace(cand.boxes, cand.scores, 0.4, groups=cand.labels)
    order = np.argsort(-cand.scores, kind="stable")
    panel.step_box.setChecked(True)
    assert panel.step_slider.maximum() == len(cand) - 1
    # A step whose box is kept and removes others, and a later step whose box had been removed.
    kept_step = next(k for k, i in enumerate(order) if ref.suppressed_by[i] < 0 and ref.suppressed(int(i)))
    removed_step = next(k for k, i in enumerate(order) if ref.suppressed_by[i] >= 0)
    panel.step_slider.setValue(kept_step)
    st = stage.step_state()
    assert st.current == order[kept_step] and st.kept
    assert st.victims == ref.suppressed(st.current)
    assert np.allclose(st.victim_iou, ref.iou_with_suppressor[st.victims])
    k = kinds(stage)
    assert stage.layer.boxes[k == CURRENT].tolist() == [cand.boxes[st.current].tolist()]
    assert sorted(map(tuple, stage.layer.boxes[k == VICTIM].tolist())) == sorted(
        map(tuple, cand.boxes[st.victims].tolist()))
    assert "is kept and removes" in panel.step_label.text()
    # Walk with the buttons to the removed box.
    panel.step_slider.setValue(removed_step - 1 if removed_step > 0 else 0)
    if removed_step > 0:
        qtbot.mouseClick(panel.next_button, Qt.MouseButton.LeftButton)
    st = stage.step_state()
    assert st.step == removed_step and not st.kept
    assert st.suppressor == ref.suppressed_by[st.current]
    assert st.suppressor_iou == pytest.approx(ref.iou_with_suppressor[st.current])
    assert stage.layer.boxes[kinds(stage) == SUPPRESSOR].tolist() == [cand.boxes[st.suppressor].tolist()]
    assert "had already been removed" in panel.step_label.text()


def test_nms_on_loaded_detections_without_a_model(qtbot, window_with_image):
    w = window_with_image
    session = w.detector_session
    stage = stage_of(w, NmsStage)
    path = str(session.decoded.path.resolve())
    # Two cats overlapping at IoU 0.6, a dog on the first: already "after NMS" at 0.7 per class.
    boxes = np.array([[10, 10, 60, 60], [10, 10, 60, 93], [12, 12, 60, 60]], np.float32)
    dets = Detections(boxes, np.array([0.9, 0.8, 0.7], np.float32), np.array([1, 1, 2]), ["cat", "dog"])
    session.set_stored_detections({path: dets}, "results.json")
    assert session.model is None
    cand = stage.candidates
    assert cand.origin == FROM_FILE and len(cand) == 3
    stage.panel.set_iou_threshold(0.7)
    assert stage.nms.kept.tolist() == [0, 1, 2]
    stage.panel.set_iou_threshold(0.5)
    assert stage.nms.kept.tolist() == [0, 2]  # the second cat goes, the dog stays (per class)
    assert stage.nms.suppressed_by[1] == 0
    stage.panel.per_class_box.setChecked(False)
    assert stage.nms.kept.tolist() == [0]
    # Another image without detections: nothing to show, no error.
    w.document.go_to(1)
    qtbot.waitUntil(lambda: session.decoded is not None and session.decoded.path.name == "b.png", timeout=5000)
    assert stage.candidates is None and stage.layer.boxes.shape[0] == 0
