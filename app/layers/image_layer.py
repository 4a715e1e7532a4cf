"""The image itself, as the bottom canvas layer.

Why it scales its pixmap: a huge image is decoded as a reduced preview (``DecodedImage.scale`` < 1) but
scene coordinates are ALWAYS full-resolution pixels, so every box, in every layer, means the same pixels
whatever the preview size. The preview is drawn stretched over ``[0, width] × [0, height]``.

Brightness/contrast is a display-only 256-entry LUT over the preview (cheap, and never touches the data a
model would see).
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage, QPainter, QPixmap
from PySide6.QtWidgets import QGraphicsItem

from app.layers.base import OverlayLayer, device_pixel_ratio
from models.data.io import DecodedImage


def brightness_contrast_lut(brightness: float, contrast: float) -> np.ndarray:
    """LUT for ``out = (v - 128) * contrast + 128 + brightness * 255``, clipped to 0..255.

    ``brightness`` 0 and ``contrast`` 1 leave the image unchanged; brightness is a fraction of the full
    range (-1..1), contrast a gain (e.g. 0.5..3).
    """
    v = np.arange(256, dtype=np.float32)
    out = (v - 128.0) * float(contrast) + 128.0 + float(brightness) * 255.0
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """An owning QImage copy of an H×W×3 uint8 RGB array."""
    arr = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = arr.shape[:2]
    img = QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888)
    return img.copy()  # detach from the numpy buffer


class ImageLayer(OverlayLayer):
    """Paints the (possibly reduced) image over the full-resolution image rect."""

    def __init__(self, parent: QGraphicsItem | None = None) -> None:
        super().__init__("Image", parent)
        self._decoded: DecodedImage | None = None
        self._pixmap = QPixmap()
        self._brightness = 0.0
        self._contrast = 1.0
        self.setZValue(-1000)

    @property
    def decoded(self) -> DecodedImage | None:
        return self._decoded

    @property
    def pixmap(self) -> QPixmap:
        return self._pixmap

    def set_image(self, decoded: DecodedImage | None) -> None:
        self._decoded = decoded
        if decoded is None:
            self.set_image_size(0, 0)
        else:
            self.set_image_size(decoded.width, decoded.height)
        self._rebuild()

    @property
    def brightness(self) -> float:
        return self._brightness

    @property
    def contrast(self) -> float:
        return self._contrast

    def set_brightness_contrast(self, brightness: float, contrast: float) -> None:
        """Display adjustment for dark images; see ``brightness_contrast_lut`` for the meaning."""
        if (float(brightness), float(contrast)) == (self._brightness, self._contrast):
            return
        self._brightness, self._contrast = float(brightness), float(contrast)
        self._rebuild()

    def _rebuild(self) -> None:
        if self._decoded is None or self._decoded.pixels.size == 0:
            self._pixmap = QPixmap()
        else:
            pixels = self._decoded.pixels
            if (self._brightness, self._contrast) != (0.0, 1.0):
                pixels = np.take(brightness_contrast_lut(self._brightness, self._contrast), pixels)
            self._pixmap = QPixmap.fromImage(rgb_to_qimage(pixels))
        self.mark_changed()

    def value_at(self, x: float, y: float) -> tuple[int, ...] | None:
        """The RGB value under full-resolution point (x, y) (from the preview), None outside the image."""
        d = self._decoded
        if d is None or not (0 <= x < d.width and 0 <= y < d.height):
            return None
        ph, pw = d.pixels.shape[:2]
        px = min(pw - 1, int(x * pw / d.width))
        py = min(ph - 1, int(y * ph / d.height))
        return tuple(int(v) for v in d.pixels[py, px])

    def paint_layer(self, painter: QPainter, exposed: QRectF, scale: float) -> None:
        if self._pixmap.isNull() or self._decoded is None:
            return
        w, h = self._decoded.width, self._decoded.height
        pw, ph = self._pixmap.width(), self._pixmap.height()
        area = exposed.intersected(QRectF(0, 0, w, h))
        if area.isEmpty():
            return
        sx, sy = pw / w, ph / h
        # Whole preview pixels covering the exposed area: drawing a sub-rect keeps huge images cheap.
        x1 = max(0, math.floor(area.left() * sx))
        y1 = max(0, math.floor(area.top() * sy))
        x2 = min(pw, math.ceil(area.right() * sx))
        y2 = min(ph, math.ceil(area.bottom() * sy))
        if x2 <= x1 or y2 <= y1:
            return
        source = QRectF(x1, y1, x2 - x1, y2 - y1)
        target = QRectF(x1 / sx, y1 / sy, (x2 - x1) / sx, (y2 - y1) / sy)
        # Zoomed in (2+ device pixels per image pixel, counting HiDPI), show crisp pixel blocks for precise
        # labelling; otherwise filter smoothly.
        device_per_preview_px = scale * device_pixel_ratio(painter) / sx
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, device_per_preview_px < 2.0)
        painter.drawPixmap(target, self._pixmap, source)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        return self.image_rect()
