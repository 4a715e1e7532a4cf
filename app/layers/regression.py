"""Box regression drawn: a reference box (anchor or RoI), the box(es) its predicted deltas give, an arrow.

The reference is dashed, each regressed box solid in its own colour with a label (class and score for the
head's per-class boxes), and an arrow joins the reference's centre to the centre of the emphasised regressed
box, so the shift (dx, dy) and the change of size (dw, dh) read at a glance. A handful of boxes: painted
live, no cache needed.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QLineF, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPolygonF
from PySide6.QtWidgets import QGraphicsItem

from app.layers.base import OverlayLayer, cosmetic_pen, paint_boxes, paint_labels

REFERENCE_COLOR = QColor(0, 230, 255)
RESULT_COLOR = QColor(255, 140, 0)




class RegressionLayer(OverlayLayer):
    """``set_view(reference, boxes, colors, labels, emphasis)``; ``clear()`` to show nothing."""

    def __init__(self, parent: QGraphicsItem | None = None) -> None:
        super().__init__("Box regression", parent)
        self._reference: np.ndarray | None = None
        self._reference_label = ""
        self._boxes = np.zeros((0, 4), np.float32)
        self._colors: list[QColor] = []
        self._labels: list[str] = []
        self._emphasis = -1
        self.setZValue(40)
        self.setVisible(False)

    @property
    def reference(self) -> np.ndarray | None:
        """The box before regression (scene pixels), or None."""
        return self._reference

    @property
    def boxes(self) -> np.ndarray:
        """The regressed boxes (scene pixels)."""
        return self._boxes

    @property
    def emphasis(self) -> int:
        return self._emphasis

    @property
    def labels(self) -> list[str]:
        return list(self._labels)

    def set_view(self, reference: np.ndarray | None, boxes: np.ndarray, colors: list[QColor] | None = None,
                 labels: list[str] | None = None, emphasis: int = 0, reference_label: str = "") -> None:
        self._reference = None if reference is None else np.asarray(reference, np.float32).reshape(4)
        self._boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        n = self._boxes.shape[0]
        self._colors = list(colors) if colors is not None else [RESULT_COLOR] * n
        self._labels = list(labels) if labels is not None else [""] * n
        self._emphasis = int(emphasis) if 0 <= int(emphasis) < n else -1
        self._reference_label = reference_label
        self.mark_changed()

    def clear(self) -> None:
        self.set_view(None, np.zeros((0, 4), np.float32))

    def paint_layer(self, painter: QPainter, exposed: QRectF, scale: float) -> None:
        n = self._boxes.shape[0]
        order = [i for i in range(n) if i != self._emphasis] + ([self._emphasis] if self._emphasis >= 0 else [])
        for i in order:
            width = 3.0 if i == self._emphasis else 1.5
            paint_boxes(painter, self._boxes[[i]], QColor(0, 0, 0), exposed, width + 2.0)
            paint_boxes(painter, self._boxes[[i]], self._colors[i], exposed, width)
        if self._reference is not None:
            ref = self._reference[None]
            paint_boxes(painter, ref, QColor(0, 0, 0), exposed, 4.0)
            paint_boxes(painter, ref, REFERENCE_COLOR, exposed, 2.0, style=Qt.PenStyle.DashLine)
            c = QPointF(float(ref[0, 0] + ref[0, 2]) / 2, float(ref[0, 1] + ref[0, 3]) / 2)
            painter.save()
            painter.setPen(cosmetic_pen(REFERENCE_COLOR, 2.0, painter=painter))
            painter.setBrush(REFERENCE_COLOR)
            r = 3.0 / max(scale, 1e-6)
            painter.drawEllipse(c, r, r)
            painter.restore()
            if self._emphasis >= 0:
                b = self._boxes[self._emphasis]
                self._arrow(painter, c, QPointF(float(b[0] + b[2]) / 2, float(b[1] + b[3]) / 2),
                            self._colors[self._emphasis], scale)
        texts = [(i, t) for i, t in enumerate(self._labels) if t]
        if texts:
            # Per-class boxes of an RoI often nearly coincide: a label landing on an earlier one moves up a row.
            step = 18.0 / max(scale, 1e-6)
            placed: list[tuple[float, float]] = []
            anchors = []
            for i, _ in texts:
                x, y = float(self._boxes[i, 0]), float(self._boxes[i, 1])
                while any(abs(x - px) < 6 * step and abs(y - py) < step for px, py in placed):
                    y -= step
                placed.append((x, y))
                anchors.append((x, y))
            paint_labels(painter, anchors, [t for _, t in texts], [self._colors[i] for i, _ in texts])
        if self._reference is not None and self._reference_label:
            ref = self._reference
            paint_labels(painter, [(float(ref[0]), float(ref[3]) + 18.0 / max(scale, 1e-6))],
                         [self._reference_label], [REFERENCE_COLOR])

    @staticmethod
    def _arrow(painter: QPainter, a: QPointF, b: QPointF, color: QColor, scale: float) -> None:
        """A line a → b with a head at b, head size in screen pixels."""
        line = QLineF(a, b)
        painter.save()
        painter.setPen(cosmetic_pen(QColor(0, 0, 0), 4.0, painter=painter))
        painter.drawLine(line)
        painter.setPen(cosmetic_pen(color, 2.0, painter=painter))
        painter.drawLine(line)
        if line.length() * scale > 4:
            head = 10.0 / max(scale, 1e-6)
            u = line.unitVector()
            d = QPointF(u.dx(), u.dy())
            n = QPointF(-d.y(), d.x())
            poly = QPolygonF([b, b - d * head + n * head * 0.45, b - d * head - n * head * 0.45])
            painter.setBrush(color)
            painter.drawPolygon(poly)
        painter.restore()


__all__ = ["REFERENCE_COLOR", "RESULT_COLOR", "RegressionLayer"]
