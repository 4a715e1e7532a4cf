"""A heat-map layer: a small grid of values in 0..1 drawn as a colour image stretched over a scene rectangle.

Used for the RPN's objectness (one value per feature-map cell, upsampled bilinearly onto the image). The grid
becomes one RGBA image when it changes, so a frame is one scaled blit whatever the grid size. The colour map
is a fixed perceptual ramp (dark violet → yellow); low values are also more transparent, so the image stays
visible where the network sees nothing. A bilinear upsampling blit costs ~30 ms in software rendering, so it is
cached per view (:class:`app.layers.cached.CachedOverlayLayer`).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QGraphicsItem

from app.layers.cached import CachedOverlayLayer

#: Anchor colours of the ramp (value 0 → 1), interpolated to 256 steps: a magma-like ramp.
_RAMP = np.array([[0, 0, 4], [80, 18, 123], [182, 54, 121], [251, 136, 97], [252, 253, 191]], np.float64)


def colormap(values: np.ndarray, min_alpha: int = 40, max_alpha: int = 230) -> np.ndarray:
    """[h, w] values in 0..1 → [h, w, 4] uint8 RGBA (premultiplied-safe: alpha ≥ every channel scaled)."""
    v = np.clip(np.nan_to_num(np.asarray(values, np.float64)), 0.0, 1.0)
    pos = v * (len(_RAMP) - 1)
    lo = np.minimum(pos.astype(np.int64), len(_RAMP) - 2)
    t = (pos - lo)[..., None]
    rgb = _RAMP[lo] * (1 - t) + _RAMP[lo + 1] * t
    alpha = min_alpha + (max_alpha - min_alpha) * v
    out = np.empty(v.shape + (4,), np.uint8)
    out[..., :3] = np.round(rgb).astype(np.uint8)
    out[..., 3] = np.round(alpha).astype(np.uint8)
    return out


def ramp_color(value: float) -> QColor:
    r, g, b, _ = colormap(np.array([[value]]))[0, 0]
    return QColor(int(r), int(g), int(b))


class HeatmapLayer(CachedOverlayLayer):
    """``set_map(values, rect)``: values [h, w] in 0..1 shown over the scene rectangle (x1, y1, x2, y2)."""

    def __init__(self, name: str = "Heat map", parent: QGraphicsItem | None = None) -> None:
        super().__init__(name, parent)
        self._values: np.ndarray | None = None
        self._image: QImage | None = None
        self._rect = QRectF()
        self.setZValue(15)
        self.setVisible(False)
        self.setOpacity(0.6)

    @property
    def values(self) -> np.ndarray | None:
        return self._values

    @property
    def target_rect(self) -> QRectF:
        return QRectF(self._rect)

    @property
    def image(self) -> QImage | None:
        return self._image

    def set_map(self, values: np.ndarray | None, rect: tuple[float, float, float, float] | None = None) -> None:
        if values is None or rect is None or np.asarray(values).size == 0:
            self._values, self._image, self._rect = None, None, QRectF()
            self.invalidate()
            return
        v = np.asarray(values, np.float32)
        rgba = np.ascontiguousarray(colormap(v))
        h, w = v.shape
        self._image = QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
        self._values = v
        x1, y1, x2, y2 = (float(c) for c in rect)
        self._rect = QRectF(x1, y1, x2 - x1, y2 - y1)
        self.invalidate()

    def value_at(self, x: float, y: float) -> float | None:
        """The grid value under scene point (x, y) (nearest cell), None outside the map."""
        if self._values is None or not self._rect.contains(x, y):
            return None
        h, w = self._values.shape
        col = min(w - 1, int((x - self._rect.left()) / self._rect.width() * w))
        row = min(h - 1, int((y - self._rect.top()) / self._rect.height() * h))
        return float(self._values[row, col])

    def has_cached_content(self) -> bool:
        return self._image is not None

    def paint_cached(self, painter: QPainter, exposed: QRectF, scale: float) -> None:
        if self._image is None:
            return
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        painter.setClipRect(self.image_rect())
        painter.drawImage(self._rect, self._image)
        painter.restore()


__all__ = ["HeatmapLayer", "colormap", "ramp_color"]
