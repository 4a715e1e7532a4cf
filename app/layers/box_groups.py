"""A layer of a few groups of boxes, each in one colour, width and pen style, painted cached and opaque.

For sets that change seldom but hold thousands of boxes (the RPN's proposals before NMS, the survivors on
top): :class:`app.layers.cached.CachedOverlayLayer` paints them once per view, so a frame is one blit.
Groups are painted in list order: the last ends on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QGraphicsItem

from app.layers.base import paint_boxes
from app.layers.cached import CachedOverlayLayer


@dataclass
class BoxGroup:
    """N×4 boxes (scene pixels) drawn alike. Colours should be opaque: the layer's opacity blends them."""

    boxes: np.ndarray
    color: QColor
    width: float = 1.0
    style: Qt.PenStyle = Qt.PenStyle.SolidLine
    name: str = ""
    visible: bool = field(default=True)


class BoxGroupsLayer(CachedOverlayLayer):
    """``set_groups([BoxGroup, ...])`` and done."""

    def __init__(self, name: str, parent: QGraphicsItem | None = None) -> None:
        super().__init__(name, parent)
        self._groups: list[BoxGroup] = []
        self.last_painted = 0
        self.setZValue(22)
        self.setVisible(False)

    @property
    def groups(self) -> list[BoxGroup]:
        return list(self._groups)

    def set_groups(self, groups: list[BoxGroup]) -> None:
        self._groups = [BoxGroup(np.asarray(g.boxes, np.float32).reshape(-1, 4), g.color, g.width, g.style,
                                 g.name, g.visible) for g in groups]
        self.invalidate()

    def has_cached_content(self) -> bool:
        return any(g.visible and g.boxes.shape[0] for g in self._groups)

    def paint_cached(self, painter: QPainter, exposed: QRectF, scale: float) -> None:
        drawn = 0
        for g in self._groups:
            if g.visible:
                drawn += paint_boxes(painter, g.boxes, g.color, exposed, g.width, style=g.style)
        self.last_painted = drawn


__all__ = ["BoxGroup", "BoxGroupsLayer"]
