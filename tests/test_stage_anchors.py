"""The Anchors stage on a real canvas: a clicked cell lists its anchors with their labels, the counts are those
of ``models.detection.anchors.label_anchors`` on the same anchors, and a loaded model sets the parameters and the scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPoint, Qt

from app.canvas import Canvas
from app.layers.anchors import MODE_BOXES, MODE_CELL, MODE_DOTS
from app.stages.anchors.controller import AnchorsStage
from app.stages.anchors.panel import CELL_COLUMNS, SHOW_BOXES, SHOW_CLICKED, SHOW_HOVER
from models.data.annotations import Annotation, BoxObject
from models.data.io import DecodedImage
from models.detection.anchor_labels import CROSS_BOUNDARY, KIND_NAMES, feature_size_for
from models.detection.anchors import IGNORED, NEGATIVE, POSITIVE, AnchorGenerator, inside_image, label_anchors

W, H = 320, 240
GT = [BoxObject("circle", (40.0, 30.0, 150.0, 140.0)), BoxObject("square", (200.0, 150.0, 230.0, 190.0))]


def _image(w: int = W, h: int = H) -> DecodedImage:
    rng = np.random.default_rng(0)
    return DecodedImage(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), w, h, 1, w, h, 1.0)


@pytest.fixture
def setup(detector_canvas):
    canvas, session = detector_canvas
    model = canvas.model
    stage = AnchorsStage(canvas, session)
    canvas.set_image(_image())
    model.set_annotation(Annotation("x.png", W, H, 3, list(GT)), W, H)
    yield canvas, session, stage
    stage.shutdown()


def _show(qtbot, stage: AnchorsStage) -> None:
    with qtbot.waitSignal(stage.labelsReady, timeout=10_000):
        stage.panel.show_box.setChecked(True)


def _click(qtbot, canvas: Canvas, x: float, y: float) -> None:
    pos = canvas.mapFromScene(x, y)
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(pos.x(), pos.y()))


def test_clicked_cell_lists_its_anchors_with_label_anchors_labels(qtbot, setup) -> None:
    canvas, session, stage = setup
    panel = stage.panel
    panel.sizes_edit.setText("32, 64, 128")
    with qtbot.waitSignal(stage.labelsReady, timeout=10_000):
        panel.sizes_edit.editingFinished.emit()
        panel.show_box.setChecked(True)
    assert stage.layer.isVisible()
    # The same anchors and labels, computed here with models.detection.anchors directly.
    ref = AnchorGenerator((32, 64, 128), (0.5, 1.0, 2.0), 16)(feature_size_for((H, W), 16))
    gt = torch.tensor([o.box for o in GT])
    labels, _, max_iou = label_anchors(ref, gt, image_size=(H, W))
    crossing = ~inside_image(ref, H, W)
    expected = {POSITIVE: int((labels == 1).sum()), NEGATIVE: int((labels == 0).sum()),
                IGNORED: int(((labels == -1) & ~crossing).sum()), CROSS_BOUNDARY: int(crossing.sum())}
    assert stage.labelling.counts() == expected
    text = panel.counts_label.text()
    for k, n in expected.items():
        assert f"{KIND_NAMES[k]} <b>{n}</b>" in text

    # Click in the middle of the circle: cell (5, 5) of the stride-16 map holds its best anchors.
    with qtbot.waitSignal(stage.cellChanged, timeout=5000) as sig:
        _click(qtbot, canvas, 88.0, 88.0)
    assert sig.args == [(5, 5)]
    table = panel.cell_table
    assert table.rowCount() == 9
    idx = (5 * stage.labelling.feature_size[1] + 5) * 9 + np.arange(9)
    col = {name: i for i, name in enumerate(CELL_COLUMNS)}
    for row, i in enumerate(idx):
        shown = table.item(row, col["label"]).text().split(" (")[0]
        kind = int(labels[i]) if not crossing[i] else CROSS_BOUNDARY
        assert shown == KIND_NAMES[kind]
        assert table.item(row, col["IoU"]).text() == f"{max_iou[i]:.2f}"
    assert np.array_equal(stage.layer.cell, idx)
    # Each GT's best anchor is marked and positive.
    best = stage.labelling.best_anchor
    assert best.shape == (2,) and all(labels[b] == 1 for b in best)
    assert np.array_equal(stage.layer.best, best)
    assert "GT 2 square" in panel.best_label.text()


def test_display_modes_and_hover(qtbot, setup) -> None:
    canvas, session, stage = setup
    _show(qtbot, stage)
    assert stage.layer.mode == MODE_DOTS
    panel = stage.panel
    panel.show_combo.setCurrentIndex(panel.show_combo.findData(SHOW_BOXES))
    assert stage.layer.mode == MODE_BOXES
    panel.show_combo.setCurrentIndex(panel.show_combo.findData(SHOW_CLICKED))
    assert stage.layer.mode == MODE_CELL
    panel.show_combo.setCurrentIndex(panel.show_combo.findData(SHOW_HOVER))
    with qtbot.waitSignal(stage.cellChanged, timeout=5000) as sig:
        canvas.cursorMoved.emit(20.0, 40.0, None)
    assert sig.args == [(2, 1)]
    panel.kind_boxes[NEGATIVE].setChecked(False)
    assert NEGATIVE not in stage.layer.shown_kinds
    canvas.viewport().grab()  # paints without error in every state


def test_ground_truth_edits_and_bad_parameters(qtbot, setup) -> None:
    canvas, session, stage = setup
    _show(qtbot, stage)
    before = stage.labelling.counts()[POSITIVE]
    with qtbot.waitSignal(stage.labelsReady, timeout=10_000):
        canvas.model.remove_object(0)
    assert stage.labelling.best_anchor.shape == (1,)
    assert stage.labelling.counts()[POSITIVE] < before
    stage.panel.ratios_edit.setText("1, wide")
    stage.panel.ratios_edit.editingFinished.emit()
    stage.refresh()
    assert "aspect ratio" in stage.panel.status.text()
    assert stage.labelling is not None  # the last good labelling stays on screen


def test_objects_of_classes_the_model_did_not_learn_are_left_out_and_the_status_says_which(qtbot, setup) -> None:
    canvas, session, stage = setup
    _show(qtbot, stage)
    assert stage.labelling.best_anchor.shape == (2,) and "left out" not in stage.panel.status.text()
    with qtbot.waitSignal(stage.labelsReady, timeout=10_000):
        session.set_model_classes(["circle"])  # a circle-only model (``train --classes circle``)
    assert stage.labelling.best_anchor.shape == (1,)
    assert stage.panel.status.text().endswith(
        "against 1 ground-truth box. 1 ground-truth box of square (1) left out: the model did not learn these "
        "classes.")
    # an edit of a left-out box alone labels nothing anew, but the status follows it
    canvas.model.insert_object(2, BoxObject("square", (250.0, 20.0, 300.0, 60.0)))
    stage.refresh()
    assert "2 ground-truth boxes of square (2) left out" in stage.panel.status.text()


def test_model_parameters_and_input_scale(qtbot, setup) -> None:
    from models.detection.detectors import build_detector

    canvas, session, stage = setup
    torch.manual_seed(0)
    model = build_detector("faster-rcnn", ["circle", "square"], backbone="small", small_width=8,
                           anchor_sizes=(24, 48), anchor_ratios=(1.0, 2.0), representation_size=32, min_size=480,
                           max_size=800, rpn_positive_iou=0.6)
    _show(qtbot, stage)
    with qtbot.waitSignal(stage.labelsReady, timeout=10_000):
        session.set_model(model)
    panel = stage.panel
    assert panel.sizes_edit.text() == "24, 48" and panel.ratios_edit.text() == "1, 2"
    assert panel.pos_spin.value() == pytest.approx(0.6)
    lab = stage.labelling
    assert lab.image_size == (480, 640)  # the network input: shorter side 480
    assert stage.scale.sx == pytest.approx(2.0)
    assert "640×480" in panel.scale_label.text()
    # Drawn in scene pixels: the input anchors halved.
    assert np.allclose(stage.layer.boxes, lab.boxes / 2.0)
    # A trace of the model on the image labels the same anchors the same way.
    trace = model.trace(session.pixels, gt_boxes=session.gt_boxes())
    with qtbot.waitSignal(stage.labelsReady, timeout=10_000):
        session.set_trace(trace)
    assert stage.labelling.feature_size == trace.feature_size
    assert np.array_equal(stage.labelling.anchors.labels.numpy(), trace.anchors.labels.numpy())


def test_png_and_svg_export_carry_the_anchor_boxes(qtbot, setup, tmp_path) -> None:
    from PySide6.QtGui import QImage

    from app.canvas_export import export_png, export_svg
    from app.layers.anchors import KIND_COLORS

    canvas, session, stage = setup
    _show(qtbot, stage)
    stage.panel.show_combo.setCurrentIndex(stage.panel.show_combo.findData(SHOW_BOXES))
    stage.layer.setOpacity(1.0)
    png = QImage(str(export_png(canvas, tmp_path / "a.png")))
    neg = KIND_COLORS[NEGATIVE]
    hits = sum(1 for x in range(0, W, 2) for y in range(0, H, 2)
               if png.pixelColor(x, y).rgb() == neg.rgb())
    assert hits > 50  # negative anchors' outlines, painted through the raster cache
    svg = export_svg(canvas, tmp_path / "a.svg").read_text(encoding="utf-8")
    assert svg.count("<polyline") + svg.count("<path") + svg.count("<line") > 0  # vectors, not one bitmap
    assert neg.name() in svg.lower()
