"""The RPN and Box regression stages on a real canvas with a tiny untrained Faster R-CNN's trace.

The heat map must be each cell's best anchor objectness; moving N and the NMS threshold must give exactly
``torchvision.ops.nms`` on the trace's pre-NMS boxes; a click must show decode(anchor, deltas) of the best
anchor of the clicked cell, or the clicked RoI's per-class boxes. Everything drawn is in displayed pixels,
the trace in network-input pixels (here half the displayed size).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPoint, Qt
from torchvision.ops import nms as tv_nms

from app.canvas import Canvas
from app.stages.regression.controller import RegressionStage
from app.stages.regression.panel import SOURCE_ROI
from app.stages.rpn.controller import NO_TRACE, RpnStage
from models.boxes import RPN_STDS, decode
from models.data.annotations import Annotation, BoxObject
from models.data.io import DecodedImage
from models.detection.detectors import build_detector

W, H = 320, 240
CLASSES = ["circle", "square", "triangle"]
TINY = dict(small_width=8, anchor_sizes=(16, 32, 64), representation_size=64, min_size=128, max_size=160,
            rpn_pre_nms_test=600, rpn_post_nms_test=100, box_score_threshold=0.0)


@pytest.fixture
def setup(detector_canvas):
    canvas, session = detector_canvas
    model = canvas.model
    rpn = RpnStage(canvas, session)
    reg = RegressionStage(canvas, session)
    rng = np.random.default_rng(0)
    canvas.set_image(DecodedImage(rng.integers(0, 255, (H, W, 3), dtype=np.uint8), W, H, 1, W, H, 1.0))
    model.set_annotation(Annotation("x.png", W, H, 3, [BoxObject("circle", (40.0, 30.0, 150.0, 140.0))]), W, H)
    torch.manual_seed(0)
    det = build_detector("faster-rcnn", CLASSES, backbone="small", **TINY)
    session.set_model(det)
    trace = det.trace(session.pixels, gt_boxes=session.gt_boxes())
    assert trace.input_size == (120, 160)
    yield canvas, session, rpn, reg, trace
    rpn.shutdown()
    reg.shutdown()


def _click(qtbot, canvas: Canvas, x: float, y: float) -> None:
    pos = canvas.mapFromScene(x, y)
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(pos.x(), pos.y()))


def _after_nms_boxes(stage: RpnStage) -> np.ndarray:
    (group,) = [g for g in stage.proposals_layer.groups if g.name == "after NMS"]
    return group.boxes


def test_rpn_heat_map_and_live_nms(qtbot, setup) -> None:
    canvas, session, stage, _, trace = setup
    assert NO_TRACE in stage.panel.status.text()  # before the model ran
    with qtbot.waitSignal(stage.selectionReady, timeout=10_000):
        session.set_trace(trace)
    # Heat map: per cell the max over its anchors, stretched over the feature map's extent in the image.
    fh, fw = trace.feature_size
    a = trace.anchors.per_cell
    grid = stage.objectness
    assert grid.shape == (fh, fw) and np.array_equal(stage.heat_layer.values, grid)
    for r, c in ((0, 0), (fh // 2, fw // 3), (fh - 1, fw - 1)):
        cell = trace.objectness[(r * fw + c) * a:(r * fw + c + 1) * a]
        assert grid[r, c] == pytest.approx(float(cell.max()))
    assert stage.heat_layer.target_rect.width() == pytest.approx(fw * 16 * 2.0)  # input px → displayed px
    stage.panel.stretch_box.setChecked(True)  # lowest cell → 0, highest → 1
    assert np.allclose(stage.heat_layer.values, (grid - grid.min()) / (grid.max() - grid.min()))
    stage.panel.heat_box.setChecked(True)
    canvas.cursorMoved.emit(100.0, 60.0, None)  # input (50, 30): cell (1, 3)
    assert stage.panel.hover_label.text() == f"objectness of cell (1, 3): {grid[1, 3]:.3f}"
    # The model's own numbers first: N = its post-NMS top-N, the threshold its NMS threshold.
    panel = stage.panel
    assert panel.top_n() == min(100, trace.proposals_pre_nms.shape[0])
    assert panel.threshold() == pytest.approx(0.7)
    boxes, scores = torch.tensor(trace.proposals_pre_nms), torch.tensor(trace.proposal_scores_pre_nms)
    ref = tv_nms(boxes, scores, 0.7).numpy()
    assert np.array_equal(stage.selection.kept, ref[:100])
    assert np.allclose(trace.proposals, trace.proposals_pre_nms[stage.selection.kept])  # the trace's own proposals
    # Threshold slider by keyboard (page down = -0.10) and N by its spin box.
    panel.thr_slider.setFocus()
    with qtbot.waitSignal(stage.selectionReady, timeout=10_000):
        qtbot.keyClick(panel.thr_slider, Qt.Key.Key_PageDown)
    assert panel.threshold() == pytest.approx(0.6)
    ref = tv_nms(boxes, scores, 0.6).numpy()
    assert np.array_equal(stage.selection.kept, ref[:100])
    with qtbot.waitSignal(stage.selectionReady, timeout=10_000):
        panel.n_spin.setValue(7)
    assert np.array_equal(stage.selection.kept, ref[:7])
    assert stage.selection.survivors == ref.size
    # What is drawn: those boxes, in displayed pixels.
    assert np.allclose(_after_nms_boxes(stage), trace.proposals_pre_nms[ref[:7]] * 2.0)
    assert f"keeps <b>{ref.size}</b>" in panel.readout.text()
    panel.heat_box.setChecked(True)
    panel.proposals_box.setChecked(True)
    canvas.viewport().grab()
    # A new image clears the trace and says so.
    session.set_trace(None)
    assert stage.selection is None and stage.heat_layer.values is None


def test_box_regression_of_a_clicked_anchor_and_roi(qtbot, setup) -> None:
    canvas, session, _, stage, trace = setup
    with qtbot.waitSignal(stage.shown, timeout=5000):
        session.set_trace(trace)
    stage.panel.show_box.setChecked(True)
    # Click at displayed (100, 60) = input (50, 30): stride-16 cell (1, 3).
    with qtbot.waitSignal(stage.shown, timeout=5000):
        _click(qtbot, canvas, 100.0, 60.0)
    fw = trace.feature_size[1]
    a = trace.anchors.per_cell
    first = (1 * fw + 3) * a
    expect_index = first + int(np.argmax(trace.objectness[first:first + a]))
    r = stage.current
    assert r.index == expect_index and r.cell == (1, 3)
    anchor = trace.anchors.boxes[expect_index:expect_index + 1]
    decoded = decode(anchor, torch.tensor(trace.rpn_deltas[expect_index:expect_index + 1]), RPN_STDS)[0].numpy()
    assert np.allclose(r.box, decoded)
    assert np.allclose(stage.layer.reference, anchor[0].numpy() * 2.0)
    assert np.allclose(stage.layer.boxes[0], decoded * 2.0, atol=1e-3)
    table = stage.panel.table
    shown = {table.item(i, 0).text(): table.item(i, 1).text() for i in range(table.rowCount())}
    for name, value in zip(("dx", "dy", "dw", "dh"), trace.rpn_deltas[expect_index], strict=True):
        assert shown[name] == f"{float(value):+.3f}"

    # The head: the best RoI containing the click, with its per-class boxes.
    stage.panel.source_combo.setCurrentIndex(stage.panel.source_combo.findData(SOURCE_ROI))
    x_in, y_in = 60.0, 50.0
    inside = np.flatnonzero((trace.proposals[:, 0] <= x_in) & (trace.proposals[:, 2] >= x_in)
                            & (trace.proposals[:, 1] <= y_in) & (trace.proposals[:, 3] >= y_in))
    assert inside.size
    with qtbot.waitSignal(stage.shown, timeout=5000):
        _click(qtbot, canvas, x_in * 2.0, y_in * 2.0)
    roi = stage.current
    assert roi.index == int(inside[np.argmax(trace.proposal_scores[inside])])
    assert np.allclose(roi.class_boxes, trace.class_boxes[roi.index])
    best = 1 + int(np.argmax(trace.class_scores[roi.index, 1:]))
    assert roi.best_class == best
    assert np.allclose(stage.layer.boxes[0], trace.class_boxes[roi.index, best] * 2.0, atol=1e-3)
    assert stage.layer.labels[0] == f"{CLASSES[best - 1]} {trace.class_scores[roi.index, best]:.2f}"
    assert stage.panel.table.item(0, 0).text() == CLASSES[best - 1]
    canvas.viewport().grab()


def test_class_boxes_hidden_outside_the_models_domain(qtbot, setup) -> None:
    canvas, session, _, stage, trace = setup
    session.set_trace(trace)
    stage.panel.show_box.setChecked(True)
    stage.panel.pick(SOURCE_ROI, 0)
    assert stage.layer.boxes.shape[0] > 0
    session.set_domain_note("This model knows only the synthetic shapes.")
    assert stage.layer.boxes.shape[0] == 0 and stage.layer.reference is not None  # the RoI alone
    assert "synthetic shapes" in stage.panel.status.text()
    session.set_show_out_of_domain(True)
    assert stage.layer.boxes.shape[0] > 0
