"""The layers panel follows the canvas's layers and drives their visibility and opacity."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from app.layers.base import BoxArrayLayer
from app.panels.layers_panel import LayersPanel
from models.data.annotations import BoxObject
from tests.test_canvas import make_canvas, to_view


def test_lists_layers_top_first_and_follows_additions(qtbot):
    canvas = make_canvas(qtbot)
    panel = LayersPanel(canvas)
    qtbot.addWidget(panel)
    assert [layer.name for layer in panel.layers()] == ["Ground truth", "Image"]
    proposals = BoxArrayLayer("Proposals")
    canvas.add_layer(proposals)
    assert [layer.name for layer in panel.layers()] == ["Ground truth", "Proposals", "Image"]
    canvas.remove_layer(proposals)
    assert proposals not in panel.layers()


def test_checkbox_toggles_visibility_and_slider_sets_opacity(qtbot):
    canvas = make_canvas(qtbot, objects=[BoxObject("cat", (100, 100, 200, 200))])
    panel = LayersPanel(canvas)
    qtbot.addWidget(panel)
    panel.show()
    gt = canvas.ground_truth_layer
    check, slider = panel.row_widgets(gt)
    assert check.isChecked() and slider.value() == 100
    edge = to_view(canvas, 100, 150).toPoint()
    shown = canvas.viewport().grab().toImage().pixelColor(edge)
    qtbot.mouseClick(check, Qt.MouseButton.LeftButton)
    assert not gt.isVisible()
    hidden = canvas.viewport().grab().toImage().pixelColor(edge)
    assert shown != hidden  # the box edge really disappears from the screen
    assert not slider.isEnabled()
    qtbot.mouseClick(check, Qt.MouseButton.LeftButton)
    assert gt.isVisible()
    slider.setValue(30)
    assert gt.opacity() == pytest.approx(0.3)


def test_rows_follow_changes_made_elsewhere(qtbot):
    canvas = make_canvas(qtbot)
    panel = LayersPanel(canvas)
    qtbot.addWidget(panel)
    image = canvas.image_layer
    image.setOpacity(0.5)
    image.setVisible(False)
    check, slider = panel.row_widgets(image)
    assert slider.value() == 50 and not check.isChecked()


def test_hidden_ground_truth_cannot_be_grabbed_and_drawing_shows_it(qtbot):
    from tests.test_canvas import drag_image

    canvas = make_canvas(qtbot, objects=[BoxObject("cat", (100, 100, 200, 200))])
    panel = LayersPanel(canvas)
    qtbot.addWidget(panel)
    check, _ = panel.row_widgets(canvas.ground_truth_layer)
    check.setChecked(False)
    drag_image(canvas, 150, 150, 180, 180)
    assert canvas.model.objects[0].box == (100, 100, 200, 200) and canvas.model.selected_indices == []
    canvas.set_create_mode()
    drag_image(canvas, 10, 10, 60, 60)
    assert len(canvas.model.objects) == 2
    assert canvas.ground_truth_layer.isVisible() and check.isChecked()
