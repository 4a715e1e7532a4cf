"""Test-time augmentation in the window: the NMS stage shows the merge of the passes (every pass's detections,
the merging NMS at the model's IoU), and the Detections stage what predict returns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.stages.nms import NmsStage
from app.stages.scene_boxes import FROM_MODEL, scene_detections
from models.detection.detectors import build_detector
from tests.test_main_window import make_window, settings, write_image  # noqa: F401  (fixture)
from tests.test_nms_stage import CLASSES, TINY, stage_of


@pytest.fixture
def window_with_image(qtbot, settings, tmp_path):  # noqa: F811
    folder = tmp_path / "photos"
    write_image(folder / "a.png", seed=1, size=(200, 150))
    w = make_window(qtbot, settings, thumbnails=False)
    assert w.open_path(folder)
    qtbot.waitUntil(lambda: w.detector_session.decoded is not None, timeout=5000)
    yield w
    w.close()


def test_the_nms_stage_walks_the_merge_of_the_test_passes(qtbot, window_with_image):
    w = window_with_image
    torch.manual_seed(0)
    model = build_detector("faster-rcnn", CLASSES, backbone="small", **TINY).eval()
    model.set_test_augmentation(test_sizes=[128, 160], test_flip=True)
    session = w.detector_session
    trace = model.trace(session.pixels, session.gt_boxes(), score_threshold=0.0)
    session.set_model(model, "tta.pt")
    session.set_trace(trace)
    stage = stage_of(w, NmsStage)
    cand = stage.candidates
    assert cand.origin == FROM_MODEL and "4 test passes" in cand.description and "mirrored" in cand.description
    assert len(cand) == sum(len(p.detections) for p in trace.merge.passes) > 0
    # In scene pixels the candidates are the passes' own boxes, mapped back to the image.
    scale = w.detector_session.decoded.scale if w.detector_session.decoded.scale > 0 else 1.0
    assert np.allclose(cand.boxes, trace.merge.candidates.boxes / scale, atol=1e-2)
    # At the model's IoU the slider keeps what the merge kept, and the detections are predict's.
    assert stage.panel.iou_threshold() == pytest.approx(model.merge_nms)
    assert stage.nms.kept.tolist()[:100] == np.asarray(trace.merge.nms.kept).tolist()[:100]
    det = scene_detections(session)
    (expected,) = model.predict([session.pixels], 0.0)
    assert np.allclose(det.boxes * scale, expected.boxes, atol=1e-3)
    stage.panel.show_box.setChecked(True)
    w.grab().save("/tmp/h14tta/tta_nms_window.png")


def test_the_nms_stage_draws_the_averaged_merge_as_the_model_returns_it(qtbot, window_with_image):
    """With test_merge average the kept boxes are the merge's result (moved by the vote, mean scores, under the
    threshold dropped), not plain NMS's: at the model's IoU they equal predict's detections, and the counts
    say what the merge did. At another IoU the stage shows plain NMS and says where the merge's result is."""
    from app.stages.nms.controller import KEPT
    from tests.test_nms_stage import kinds

    w = window_with_image
    torch.manual_seed(0)
    model = build_detector("faster-rcnn", CLASSES, backbone="small", **TINY).eval()
    model.set_test_augmentation(test_sizes=[128, 160], test_flip=True, test_merge="average")
    session = w.detector_session
    thr = model.roi_heads.score_threshold
    trace = model.trace(session.pixels, session.gt_boxes(), score_threshold=thr)
    session.set_model(model, "tta.pt")
    session.set_trace(trace)
    stage = stage_of(w, NmsStage)
    stage.panel.show_box.setChecked(True)
    stage.panel.labels_box.setChecked(True)
    assert stage.panel.iou_threshold() == pytest.approx(model.merge_nms) and stage.merged() is not None
    scale = session.decoded.scale if session.decoded.scale > 0 else 1.0
    (expected,) = model.predict([session.pixels], thr)
    assert len(expected) > 0
    drawn = stage.layer.boxes[kinds(stage) == KEPT] * scale
    assert len(drawn) == len(expected)
    assert sorted(map(tuple, np.round(drawn, 2).tolist())) == sorted(map(tuple, np.round(expected.boxes, 2).tolist()))
    texts = [t for t, k in zip(stage.layer.labels, kinds(stage), strict=True) if k == KEPT]
    assert sorted(texts) == sorted(f"{CLASSES[int(c) - 1]} {s:.2f}" for c, s in zip(expected.labels, expected.scores,
                                                                                      strict=True))
    assert "scores averaged over the 4 passes" in stage.panel.counts_label.text()
    w.grab().save("/tmp/h14fix_tta_average_nms.png")
    stage.panel.resize(420, stage.panel.heightForWidth(420) if stage.panel.hasHeightForWidth() else 700)
    stage.panel.grab().save("/tmp/h14fix_tta_average_nms_panel.png")
    stage.panel.set_iou_threshold(0.7)
    stage.recompute()
    assert stage.merged() is None and "set the slider there" in stage.panel.counts_label.text()
    plain = stage.layer.boxes[kinds(stage) == KEPT]
    assert np.allclose(np.sort(plain, 0), np.sort(stage.kept_boxes(), 0))
