"""The labelled-boxes layer: styles per key, tags that settle apart, picking the box under a click."""

import numpy as np
import pytest
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter

from app.layers.labelled_boxes import INSIDE_BOTTOM, BoxStyle, LabelledBoxesLayer, settle_tags


def test_tags_at_one_anchor_settle_on_separate_rows():
    x = np.array([10.0, 10.0, 10.0, 300.0])
    top = np.array([50.0, 50.0, 50.0, 50.0])
    new, clash = settle_tags(x, top, np.full(4, 80.0), 14.0, np.ones(4))
    assert not clash.any()
    assert new[3] == 50.0 and new[2] == 50.0  # the last (top-most) keeps its place; a far one too
    assert sorted(new[:3].tolist()) == [35.0, 50.0, 65.0]  # the others one row below / above
    # Six tags at one place: four places to try, so two find none and are reported (drawn faded).
    new, clash = settle_tags(np.full(6, 10.0), np.full(6, 50.0), np.full(6, 80.0), 14.0, np.ones(6))
    assert clash.sum() == 2 and new[clash].tolist() == [50.0, 50.0]


def test_layer_groups_styles_paints_tags_and_picks_the_smallest_box(qtbot):
    layer = LabelledBoxesLayer("t")
    layer.set_image_size(200, 100)
    boxes = np.array([[0, 0, 100, 100], [10, 10, 30, 30], [150, 10, 190, 90]], np.float32)
    styles = {1: BoxStyle(QColor(255, 0, 0)), 2: BoxStyle(QColor(0, 0, 255), 1.0, Qt.PenStyle.DashLine)}
    layer.set_boxes(boxes, np.array([1, 2, 1]), styles, ["a", "", "c"], order=[2, 1], label_places=INSIDE_BOTTOM)
    assert layer.indices(1).tolist() == [0, 2] and layer.labels == ["a", "", "c"]
    img = QImage(200, 100, QImage.Format.Format_ARGB32_Premultiplied)
    img.fill(0)
    p = QPainter(img)
    layer.paint_layer(p, QRectF(0, 0, 200, 100), 1.0)
    p.end()
    assert layer.last_painted == 3 and layer.last_labels == 2
    assert QColor(img.pixel(150, 50)).red() == 255  # the red outline of box 2 was drawn
    assert layer.box_at(20, 20) == 1 and layer.box_at(50, 50) == 0 and layer.box_at(120, 5) == -1
    with pytest.raises(ValueError, match="no style"):
        layer.set_boxes(boxes, np.array([1, 2, 3]), styles)
