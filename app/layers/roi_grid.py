"""The RoI pooling grid over the image: one RoI, the region its bins divide, the H×W bins, and what each bin
reads — the arg-max cell (RoI max pooling) or the bilinear sampling points (RoIAlign).

Everything arrives in scene pixels, computed by :mod:`models.detection.roi_explain` and mapped by the stage; the layer
only draws. Cells read by more than one bin (a RoI smaller than H×W feature cells) are tinted orange, so the
repetition RoI pooling makes of a small RoI is visible on the image itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QGraphicsItem

from app.layers.base import OverlayLayer, cosmetic_pen, paint_boxes, paint_labels

ROI_COLOR = QColor(255, 255, 255)
REGION_COLOR = QColor(255, 220, 0)
BIN_COLOR = QColor(0, 220, 255, 220)
ARGMAX_COLOR = QColor(255, 40, 40)
SAMPLE_COLOR = QColor(255, 60, 60)
SHARED_COLOR = QColor(255, 140, 0)
OTHER_ROI_COLOR = QColor(200, 200, 200, 110)


@dataclass
class GridDrawing:
    """What the layer draws, in scene pixels (see the module docstring)."""

    roi: np.ndarray  # [4]
    region: np.ndarray  # [4] the rounded RoI (pool) or the continuous one (align)
    bins: np.ndarray  # [H*W, 4]
    method: str = "pool"
    argmax_cells: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # [N, 4] cell boxes
    sample_points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))  # [N, 2]
    shared_cells: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # [M, 4] cell boxes
    label: str = ""


class RoiGridLayer(OverlayLayer):
    """Draws one :class:`GridDrawing`, optionally over faint outlines of every other RoI (to click one)."""

    def __init__(self, parent: QGraphicsItem | None = None) -> None:
        super().__init__("RoI pooling grid", parent)
        self._drawing: GridDrawing | None = None
        self._others = np.zeros((0, 4), np.float32)
        self.setZValue(30)
        self.setVisible(False)

    @property
    def drawing(self) -> GridDrawing | None:
        return self._drawing

    @property
    def other_rois(self) -> np.ndarray:
        return self._others

    def set_drawing(self, drawing: GridDrawing | None) -> None:
        """Show ``drawing``; only the area of the old and new grid is repainted (a click must redraw fast)."""
        old, self._drawing = self._extent(self._drawing), drawing
        new = self._extent(drawing)
        if self._others.shape[0] or old is None and new is None:
            self.mark_changed()
            return
        self.update(old.united(new) if old is not None and new is not None else (old or new))
        self.changed.emit()

    def _extent(self, d: GridDrawing | None) -> QRectF | None:
        """Scene rect covering everything :meth:`paint_layer` draws for ``d`` (label and pens included)."""
        if d is None:
            return None
        boxes = np.concatenate([d.roi[None], d.region[None], d.bins.reshape(-1, 4)])
        x1, y1 = float(boxes[:, 0].min()), float(boxes[:, 1].min())
        x2, y2 = float(boxes[:, 2].max()), float(boxes[:, 3].max())
        views = self.scene().views() if self.scene() is not None else []
        zoom = views[0].transform().m11() if views else 1.0
        m = 240.0 / max(zoom, 1e-6)  # the label (screen pixels) above the RoI, pens and dots around it
        return QRectF(x1 - m, y1 - m, x2 - x1 + 2 * m, y2 - y1 + 2 * m)

    def set_other_rois(self, boxes: np.ndarray | None) -> None:
        self._others = np.zeros((0, 4), np.float32) if boxes is None else np.asarray(boxes, np.float32).reshape(-1, 4)
        self.mark_changed()

    def clear(self) -> None:
        self._drawing = None
        self._others = np.zeros((0, 4), np.float32)
        self.mark_changed()

    def paint_layer(self, painter: QPainter, exposed: QRectF, scale: float) -> None:
        if self._others.shape[0]:
            paint_boxes(painter, self._others, OTHER_ROI_COLOR, exposed, 1.0)
        d = self._drawing
        if d is None:
            return
        if d.shared_cells.shape[0]:
            fill = QColor(SHARED_COLOR)
            fill.setAlpha(70)
            painter.save()
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(fill)
            painter.drawRects([QRectF(float(x1), float(y1), float(x2 - x1), float(y2 - y1))
                               for x1, y1, x2, y2 in d.shared_cells])
            painter.restore()
        paint_boxes(painter, d.bins, BIN_COLOR, exposed, 1.0)
        if d.argmax_cells.shape[0]:
            paint_boxes(painter, d.argmax_cells, ARGMAX_COLOR, exposed, 2.0)
        paint_boxes(painter, d.region[None], REGION_COLOR, exposed, 1.5, style=Qt.PenStyle.DashLine)
        paint_boxes(painter, d.roi[None], QColor(0, 0, 0, 200), exposed, 4.0)
        paint_boxes(painter, d.roi[None], ROI_COLOR, exposed, 2.0)
        if d.sample_points.shape[0]:
            self._paint_points(painter, d, scale)
        if d.label:
            paint_labels(painter, [(float(d.roi[0]), float(d.roi[1]))], [d.label], [ROI_COLOR])

    @staticmethod
    def _paint_points(painter: QPainter, d: GridDrawing, scale: float) -> None:
        """Sampling points as dots of a fixed screen size, shrunk when they crowd (zoom in to separate them)."""
        b = d.bins
        step = min(float(np.min(b[:, 2] - b[:, 0])), float(np.min(b[:, 3] - b[:, 1])))
        per_side = max(int(round(np.sqrt(d.sample_points.shape[0] / max(b.shape[0], 1)))), 1)
        gap = step / per_side * scale  # screen pixels between neighbouring points
        if gap < 2.0:
            return
        radius = float(np.clip(gap * 0.3, 0.8, 2.5))
        t = painter.worldTransform()
        painter.save()
        painter.resetTransform()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(cosmetic_pen(QColor(0, 0, 0), 1.0, painter=painter) if radius >= 2.0 else Qt.PenStyle.NoPen)
        painter.setBrush(SAMPLE_COLOR)
        for x, y in d.sample_points:
            painter.drawEllipse(t.map(QPointF(float(x), float(y))), radius, radius)
        painter.restore()


__all__ = ["GridDrawing", "RoiGridLayer"]
