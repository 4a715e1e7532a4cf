"""The superpixels layer: a Felzenszwalb label map drawn over the image as ONE scaled image.

Why one image and not one item (or one polygon) per region: a 500-px segmentation has hundreds of regions
and the hierarchy playback redraws thousands of times while a slider moves. The label map is turned into an
RGBA raster at the segmentation's (working) resolution with a colour lookup table (one numpy indexing), and
painted with one ``drawImage`` stretched over the full-resolution image rect, which is exactly the area the
working image was reduced from. No per-pixel Python, no per-region items.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage, QPainter, QPixmap
from PySide6.QtWidgets import QGraphicsItem

from app.layers.base import OverlayLayer
from models.segmentation import Segmentation, boundary_mask

#: Display styles of the superpixels layer.
FILL_RANDOM = "random"
FILL_MEAN = "mean"
BOUNDARIES = "boundaries"
STYLES = (FILL_RANDOM, FILL_MEAN, BOUNDARIES)

#: Boundary colour (RGBA): bright yellow reads on most photographs.
BOUNDARY_RGBA = (255, 225, 0, 255)


def rgba_to_qimage(rgba: np.ndarray) -> QImage:
    """An owning QImage copy of an H×W×4 uint8 RGBA array (straight alpha)."""
    arr = np.ascontiguousarray(rgba, dtype=np.uint8)
    h, w = arr.shape[:2]
    return QImage(arr.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()


def colorize_labels(labels: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """H×W×4 RGBA of a label map through an [n, 4] uint8 lookup table (labels index the table)."""
    return np.asarray(lut, np.uint8)[np.asarray(labels)]


def boundary_rgba(labels: np.ndarray, rgba: tuple[int, int, int, int] = BOUNDARY_RGBA) -> np.ndarray:
    """H×W×4: ``rgba`` on region boundaries, transparent elsewhere."""
    mask = boundary_mask(labels)
    out = np.zeros(labels.shape + (4,), np.uint8)
    out[mask] = rgba
    return out


def paint_raster(painter: QPainter, pixmap: QPixmap, target: QRectF, exposed: QRectF | None = None) -> None:
    """Stretch ``pixmap`` over ``target`` with nearest-neighbour sampling (crisp region edges when zoomed).

    Only the whole raster pixels meeting ``exposed`` are drawn, so a deep zoom into a large image scales a
    few raster pixels, not the whole raster.
    """
    if pixmap.isNull() or target.isEmpty():
        return
    pw, ph = pixmap.width(), pixmap.height()
    sx, sy = pw / target.width(), ph / target.height()
    area = target if exposed is None else exposed.intersected(target)
    if area.isEmpty():
        return
    x1 = max(0, math.floor((area.left() - target.left()) * sx))
    y1 = max(0, math.floor((area.top() - target.top()) * sy))
    x2 = min(pw, math.ceil((area.right() - target.left()) * sx))
    y2 = min(ph, math.ceil((area.bottom() - target.top()) * sy))
    if x2 <= x1 or y2 <= y1:
        return
    source = QRectF(x1, y1, x2 - x1, y2 - y1)
    dest = QRectF(target.left() + x1 / sx, target.top() + y1 / sy, (x2 - x1) / sx, (y2 - y1) / sy)
    smooth = painter.testRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
    painter.drawPixmap(dest, pixmap, source)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)


class SuperpixelLayer(OverlayLayer):
    """Draws a ``Segmentation``: regions in random or mean colours, or their boundaries.

    Transparency is the item's own opacity (the panel's slider and the layers panel share it).
    """

    def __init__(self, parent: QGraphicsItem | None = None) -> None:
        super().__init__("Superpixels", parent)
        self._seg: Segmentation | None = None
        self._style = FILL_RANDOM
        self._color_seed = 0
        self._rgba: np.ndarray | None = None
        self._pixmap = QPixmap()
        self.setZValue(10)
        self.setOpacity(0.55)
        self.setVisible(False)

    # --- state ---------------------------------------------------------------------------------------------
    @property
    def segmentation(self) -> Segmentation | None:
        return self._seg

    @property
    def style(self) -> str:
        return self._style

    @property
    def n_regions(self) -> int:
        """Regions in the segmentation shown (0 when none)."""
        return 0 if self._seg is None else int(self._seg.n_regions)

    @property
    def raster(self) -> np.ndarray | None:
        """The RGBA array painted (working resolution), for tests and export."""
        return self._rgba

    @property
    def pixmap(self) -> QPixmap:
        return self._pixmap

    def set_segmentation(self, seg: Segmentation | None) -> None:
        self._seg = seg
        self._rebuild()

    def set_style(self, style: str) -> None:
        if style not in STYLES:
            raise ValueError(f"unknown superpixel style {style!r}; choose from {', '.join(STYLES)}")
        if style != self._style:
            self._style = style
            self._rebuild()

    def set_color_seed(self, seed: int) -> None:
        if int(seed) != self._color_seed:
            self._color_seed = int(seed)
            self._rebuild()

    def _rebuild(self) -> None:
        seg = self._seg
        if seg is None or seg.n_regions == 0:
            self._rgba = None
            self._pixmap = QPixmap()
        else:
            if self._style == BOUNDARIES:
                rgba = boundary_rgba(seg.labels)
            else:
                rgb = seg.mean_colors if self._style == FILL_MEAN else seg.random_colors(self._color_seed)
                lut = np.concatenate([np.asarray(rgb, np.uint8), np.full((seg.n_regions, 1), 255, np.uint8)], 1)
                rgba = colorize_labels(seg.labels, lut)
            self._rgba = rgba
            self._pixmap = QPixmap.fromImage(rgba_to_qimage(rgba))
        self.mark_changed()

    # --- painting ------------------------------------------------------------------------------------------
    def paint_layer(self, painter: QPainter, exposed: QRectF, scale: float) -> None:
        # The label map covers the whole image (it was computed from the whole, reduced image).
        paint_raster(painter, self._pixmap, self.image_rect(), exposed)


__all__ = ["BOUNDARIES", "FILL_MEAN", "FILL_RANDOM", "STYLES", "SuperpixelLayer", "boundary_rgba",
           "colorize_labels", "paint_raster", "rgba_to_qimage"]
