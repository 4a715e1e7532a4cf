"""A small widget drawing a 2-D array as a heat map, with rectangles, markers and per-cell numbers on top.

Used beside the canvas for what does not live in image pixels: a feature-map channel under a RoI with its
pooling bins, or the pooled H×W output. Data coordinates: cell (x, y) of the array covers [x, x+1) × [y, y+1)
shifted by ``origin`` (so feature-map coordinates can be used as they are). The array is converted to an
image once per ``set_map``; painting scales that image (no smoothing: one cell is one flat square) and draws
the overlays, so a repaint costs well under a millisecond for a few hundred cells.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

#: Control points of a perceptually ordered dark-blue → teal → yellow map (viridis-like), 0..1.
_STOPS = np.array([[0.0, 68, 1, 84], [0.25, 59, 82, 139], [0.5, 33, 145, 140], [0.75, 94, 201, 98],
                   [1.0, 253, 231, 37]])
_LUT = np.stack([np.interp(np.linspace(0, 1, 256), _STOPS[:, 0], _STOPS[:, k]) for k in (1, 2, 3)],
                -1).astype(np.uint8)


def colorize(values: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """[h, w] floats → [h, w, 3] uint8 through the colour map, ``lo``..``hi`` (default: the data's range)."""
    v = np.asarray(values, np.float64)
    finite = v[np.isfinite(v)]
    lo = float(finite.min()) if lo is None and finite.size else (0.0 if lo is None else lo)
    hi = float(finite.max()) if hi is None and finite.size else (1.0 if hi is None else hi)
    t = np.zeros_like(v) if hi <= lo else (np.nan_to_num(v, nan=lo) - lo) / (hi - lo)
    return _LUT[np.clip((t * 255).round(), 0, 255).astype(np.int64)]


class HeatMapWidget(QWidget):
    """Heat map of one array plus overlays; a title line above, the value range below."""

    def __init__(self, title: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._title = title
        self._values = np.zeros((0, 0))
        self._origin = (0.0, 0.0)
        self._image: QImage | None = None
        self._rects: list[tuple[np.ndarray, QColor, float]] = []
        self._markers: list[tuple[np.ndarray, QColor, float, str]] = []
        self._numbers: np.ndarray | None = None
        self._cell_values = False
        self._range = (0.0, 0.0)
        self.setMinimumSize(160, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    # --- content -------------------------------------------------------------------------------------------
    def set_title(self, title: str) -> None:
        self._title = title
        self.update()

    def set_map(self, values: np.ndarray, origin: tuple[float, float] = (0.0, 0.0), show_values: bool = False) -> None:
        """Show ``values`` [h, w]; ``origin`` = data coordinates of cell [0, 0]'s top-left corner.
        ``show_values`` writes each cell's value in it (for small grids such as a 7×7 pooled output)."""
        v = np.asarray(values, np.float64)
        if v.ndim != 2:
            raise ValueError(f"a heat map needs a 2-D array, got shape {v.shape}")
        self._values = v
        self._origin = (float(origin[0]), float(origin[1]))
        self._cell_values = bool(show_values)
        if v.size:
            rgb = np.ascontiguousarray(colorize(v))
            self._image = QImage(rgb.data, v.shape[1], v.shape[0], 3 * v.shape[1], QImage.Format.Format_RGB888).copy()
            finite = v[np.isfinite(v)]
            self._range = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        else:
            self._image = None
        self._rects, self._markers, self._numbers = [], [], None
        self.update()

    def clear(self) -> None:
        self.set_map(np.zeros((0, 0)))

    def add_rects(self, rects: np.ndarray, color: QColor, width: float = 1.0) -> None:
        """Outline rectangles [N, 4] (x1, y1, x2, y2, data coordinates)."""
        self._rects.append((np.asarray(rects, np.float64).reshape(-1, 4), QColor(color), float(width)))
        self.update()

    def add_markers(self, points: np.ndarray, color: QColor, size: float = 5.0, kind: str = "dot") -> None:
        """Markers at data points [N, 2] (x, y): ``dot`` (filled circle) or ``cell`` (outlined square the size
        of one cell around the point, for arg-max cells: pass cell centres)."""
        self._markers.append((np.asarray(points, np.float64).reshape(-1, 2), QColor(color), float(size), kind))
        self.update()

    def set_cell_numbers(self, numbers: np.ndarray | None) -> None:
        """Integers [h, w] written in the cells where they exceed 1 (e.g. how many bins read each cell)."""
        self._numbers = None if numbers is None else np.asarray(numbers)
        self.update()

    # --- geometry ------------------------------------------------------------------------------------------
    @property
    def values(self) -> np.ndarray:
        return self._values

    @property
    def rects(self) -> list[tuple[np.ndarray, QColor, float]]:
        return self._rects

    @property
    def markers(self) -> list[tuple[np.ndarray, QColor, float, str]]:
        return self._markers

    def _plot_rect(self) -> QRectF:
        fm_h = self.fontMetrics().height()
        area = QRectF(4, fm_h + 6, self.width() - 8, self.height() - 2 * fm_h - 12)
        h, w = self._values.shape if self._values.size else (1, 1)
        cell = max(min(area.width() / w, area.height() / h), 1e-3)
        pw, ph = cell * w, cell * h
        return QRectF(area.left() + (area.width() - pw) / 2, area.top() + (area.height() - ph) / 2, pw, ph)

    def cell_size(self) -> float:
        """Widget pixels per data cell."""
        if not self._values.size:
            return 0.0
        return self._plot_rect().width() / self._values.shape[1]

    def data_to_widget(self, x: float, y: float) -> QPointF:
        r = self._plot_rect()
        c = self.cell_size()
        return QPointF(r.left() + (x - self._origin[0]) * c, r.top() + (y - self._origin[1]) * c)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(260, 260)

    # --- painting ------------------------------------------------------------------------------------------
    def paintEvent(self, event) -> None:  # noqa: ANN001, N802 - Qt's name
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().window())
        fm = self.fontMetrics()
        p.setPen(self.palette().windowText().color())
        p.drawText(QRectF(4, 2, self.width() - 8, fm.height() + 2), Qt.AlignmentFlag.AlignLeft, self._title)
        if self._image is None:
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "—")
            p.end()
            return
        plot = self._plot_rect()
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        p.drawImage(plot, self._image)
        c = self.cell_size()
        h, w = self._values.shape
        small = QFont(self.font())
        small.setPointSizeF(max(6.0, min(9.0, c * 0.28)))
        if self._cell_values and c >= 22:
            p.setFont(small)
            for i in range(h):
                for j in range(w):
                    v = self._values[i, j]
                    r = QRectF(plot.left() + j * c, plot.top() + i * c, c, c)
                    p.setPen(QColor(0, 0, 0) if (v - self._range[0]) > 0.6 * (self._range[1] - self._range[0])
                             else QColor(255, 255, 255))
                    p.drawText(r, Qt.AlignmentFlag.AlignCenter, f"{v:.2g}")
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.setClipRect(plot.adjusted(-2, -2, 2, 2))
        for rects, color, width in self._rects:
            p.setPen(QPen(color, width))
            p.setBrush(Qt.BrushStyle.NoBrush)
            for x1, y1, x2, y2 in rects:
                a, b = self.data_to_widget(x1, y1), self.data_to_widget(x2, y2)
                p.drawRect(QRectF(a, b))
        for pts, color, size, kind in self._markers:
            if kind == "cell":
                p.setPen(QPen(color, max(1.5, c * 0.12)))
                p.setBrush(Qt.BrushStyle.NoBrush)
                for x, y in pts:
                    q = self.data_to_widget(x, y)
                    p.drawRect(QRectF(q.x() - c * 0.35, q.y() - c * 0.35, c * 0.7, c * 0.7))
            else:
                p.setPen(QPen(QColor(0, 0, 0), 1))
                p.setBrush(color)
                for x, y in pts:
                    p.drawEllipse(self.data_to_widget(x, y), size / 2, size / 2)
        if self._numbers is not None and c >= 18:
            p.setFont(small)
            nh, nw = self._numbers.shape
            for i in range(min(h, nh)):
                for j in range(min(w, nw)):
                    n = int(self._numbers[i, j])
                    if n > 1:
                        r = QRectF(plot.left() + j * c, plot.top() + i * c, c, c)
                        p.setPen(Qt.PenStyle.NoPen)
                        p.setBrush(QColor(0, 0, 0, 150))
                        tag = QRectF(r.right() - c * 0.5, r.top(), c * 0.5, c * 0.4)
                        p.drawRect(tag)
                        p.setPen(QColor(255, 170, 0))
                        p.drawText(tag, Qt.AlignmentFlag.AlignCenter, str(n))
        p.setClipping(False)
        p.setFont(self.font())
        p.setPen(self.palette().windowText().color())
        lo, hi = self._range
        p.drawText(QRectF(4, self.height() - fm.height() - 4, self.width() - 8, fm.height() + 2),
                   Qt.AlignmentFlag.AlignLeft, f"{w}×{h} cells · min {lo:.3g} · max {hi:.3g}")
        p.end()


__all__ = ["HeatMapWidget", "colorize"]
