"""A classification + localisation model's second look (``cls_loc_head.test_glimpse``) in the trace and in the
window: the trace keeps the first look's own answer beside the window it placed, and the Detections stage
draws both on its layer (the window dashed, the first box dotted, tagged) under the final answer, only for such a model,
behind a check box that says what they are."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.stages.detections import DetectionsStage
from app.stages.detections.controller import FIRST_LOOK_KEY, WINDOW_KEY
from models.detection.cls_loc_targets import decode_boxes
from models.detection.detectors import build_detector
from tests.test_cls_loc_window import checkpoint, load, stage_of, window  # noqa: F401 - window is a fixture
from tests.test_main_window import settings, write_image  # noqa: F401 - settings is a fixture

SMALL = {"cls_loc_head.hidden": 16}


def test_the_trace_keeps_the_first_looks_answer_which_placed_the_window() -> None:
    torch.manual_seed(0)
    image = (np.random.default_rng(1).random((120, 160, 3)) * 255).astype(np.uint8)
    model = build_detector("cls-loc", ["a", "b"], small_width=8,
                           **SMALL, **{"cls_loc_head.test_glimpse": 0.5}).eval()
    t, _ = model.prepare(image)
    with torch.no_grad():
        probs, box = model._look([t])  # the first look, at the whole image
    trace = model.trace(image)
    first = trace.first_look
    assert first is not None and len(first.boxes) == 1
    assert np.allclose(first.boxes, decode_boxes(box, 160, 120).numpy(), atol=1e-3)
    assert first.scores[0] == pytest.approx(float(probs.max()), abs=1e-5)
    assert int(first.labels[0]) == int(probs.argmax()) + 1
    model.test_glimpse = 0.0
    assert model.trace(image).first_look is None


def second_look(stage: DetectionsStage) -> tuple[int, int]:
    """Indices of the window and of the first look's box on the Detections layer (-1: not drawn)."""
    w, f = stage.layer.indices(WINDOW_KEY), stage.layer.indices(FIRST_LOOK_KEY)
    return (int(w[0]) if w.size else -1, int(f[0]) if f.size else -1)


def test_the_detections_stage_draws_the_second_looks_window_and_first_box(qtbot, window, tmp_path):  # noqa: F811
    img = tmp_path / "a.png"
    write_image(img, seed=2, size=(240, 160))
    window.open_path(img)
    dets = stage_of(window, DetectionsStage)
    panel = dets.panel

    load(qtbot, window, checkpoint(tmp_path, "cls-loc", **SMALL, **{"cls_loc_head.test_glimpse": 0.5}))
    qtbot.waitUntil(lambda: min(second_look(dets)) >= 0, timeout=10_000)
    trace = dets._session.trace
    layer = dets.layer
    win, first = second_look(dets)
    scale = 1.0 / dets._session.decoded.scale
    assert np.allclose(layer.boxes[win], trace.glimpse_window * scale, atol=1e-3)
    assert np.allclose(layer.boxes[first], trace.first_look.boxes[0] * scale, atol=1e-3)
    assert layer.labels[win] == "second look's window" and layer.labels[first].startswith("first look: ")
    assert len(dets.shown) == 1 and layer.boxes.shape[0] == 3  # the answer, the window, the first box
    assert not panel.second_look_box.isHidden() and "first look" in panel.second_look_box.toolTip()
    assert not panel.second_look_legend.isHidden()
    dets_dock = dets.docks()[0]
    dets_dock.show()
    dets_dock.raise_()
    window.grab().save("/tmp/h17b_glimpse.png")
    panel.grab().save("/tmp/h17b_glimpse_panel.png")

    panel.second_look_box.setChecked(False)  # the check box takes them off, the answer stays
    assert second_look(dets) == (-1, -1) and layer.boxes.shape[0] == 1
    panel.second_look_box.setChecked(True)
    assert min(second_look(dets)) >= 0

    # One look: nothing to draw, and nothing offered.
    load(qtbot, window, checkpoint(tmp_path, "cls-loc", **SMALL))
    qtbot.waitUntil(lambda: second_look(dets) == (-1, -1), timeout=10_000)
    assert dets._session.trace.glimpse_window is None
    assert panel.second_look_box.isHidden() and panel.second_look_legend.isHidden()
    assert dets.layer.boxes.shape[0] == 1
