"""The superpixels layer: a Felzenszwalb label map drawn over the image as ONE scaled image.

Why one image and not one item (or one polygon) per region: a 500-px segmentation has hundreds of regions
and the hierarchy playback redraws thousands of times while a slider moves. The label map is turned into an
RGBA raster at the segmentation's (working) resolution with a colour lookup table (one numpy indexing), and
painted with one ``drawImage`` stretched over the full-resolution image rect, which is exactly the area the
working image was reduced from. No per-pixel Python, no per-region items.

Boundaries are the exception: traced at working resolution and stretched, a one-pixel line becomes a band
as thick as the reduction factor (4 px on a 2,000-px photo segmented at 500) and looks blocky; traced at
the image's full resolution, a line is thinner than a screen pixel when the image is shown to fit, and
nearest-neighbour painting drops parts of it. So they are traced at the resolution they are shown at: the
labels are upsampled nearest-neighbour to the image size times the view's zoom (at least the labels' own
size, at most ``MAX_BOUNDARY_SIDE``; the zoom quantised to quarter octaves, rounded down so a line is never
thinner than a screen pixel) and the boundary raster is rebuilt only when that size changes.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage, QPainter, QPixmap
from PySide6.QtWidgets import QGraphicsItem

from app.layers.base import OverlayLayer
from models.proposals.segmentation import Segmentation, boundary_mask

#: Display styles of the superpixels layer.
FILL_RANDOM = "random"
FILL_MEAN = "mean"
BOUNDARIES = "boundaries"
STYLES = (FILL_RANDOM, FILL_MEAN, BOUNDARIES)

#: Boundary colour (RGBA): bright yellow reads on most photographs.
BOUNDARY_RGBA = (255, 225, 0, 255)
#: Longest side of the boundary raster (a 4096×3072 RGBA raster is 48 MB); deeper zooms thicken the lines.
MAX_BOUNDARY_SIDE = 4096


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


def upsample_labels(labels: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resize of a label map to ``width``×``height``, sampling exactly as ``paint_raster``
    stretches a raster: output pixel x takes label column floor(x · w / width)."""
    h, w = labels.shape
    ys = (np.arange(height, dtype=np.int64) * h) // max(height, 1)
    xs = (np.arange(width, dtype=np.int64) * w) // max(width, 1)
    return labels[ys[:, None], xs[None, :]]


def boundary_raster_size(labels_shape: tuple[int, int], display: tuple[int, int],
                         max_side: int = MAX_BOUNDARY_SIDE) -> tuple[int, int]:
    """(width, height) to trace boundaries at: the displayed size, capped at ``max_side``, never below the
    labels' own size (a label map shown smaller than it was computed keeps its resolution)."""
    h, w = labels_shape
    dw, dh = display
    if dw <= w or dh <= h:
        return w, h
    f = min(1.0, max_side / max(dw, dh))
    return max(w, round(dw * f)), max(h, round(dh * f))


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
        self._built_for: tuple[int, int] | None = None  # (width, height) the boundary raster was traced at
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
        """The RGBA array painted, for tests and export: the fills at working resolution, boundaries at the
        resolution last painted (the image's own size before the first paint)."""
        if self._style == BOUNDARIES and self._built_for is None:
            self._trace_boundaries(1.0)
        return self._rgba

    @property
    def pixmap(self) -> QPixmap:
        if self._style == BOUNDARIES and self._built_for is None:
            self._trace_boundaries(1.0)
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
        self._rgba = None
        self._pixmap = QPixmap()
        self._built_for = None  # boundaries are traced when painted, at the zoom they are shown at
        if seg is not None and seg.n_regions > 0 and self._style != BOUNDARIES:
            rgb = seg.mean_colors if self._style == FILL_MEAN else seg.random_colors(self._color_seed)
            lut = np.concatenate([np.asarray(rgb, np.uint8), np.full((seg.n_regions, 1), 255, np.uint8)], 1)
            self._rgba = colorize_labels(seg.labels, lut)
            self._pixmap = QPixmap.fromImage(rgba_to_qimage(self._rgba))
        self.mark_changed()

    def boundary_size(self, scale: float) -> tuple[int, int]:
        """(width, height) the boundaries are traced at for a view showing ``scale`` screen px per image px."""
        if self._seg is None:
            return (0, 0)
        q = 2.0 ** (math.floor(math.log2(max(scale, 1e-6)) * 4) / 4)  # quarter octaves, rounded down
        shown = (max(1, math.floor(self.image_width * q)), max(1, math.floor(self.image_height * q)))
        return boundary_raster_size(self._seg.labels.shape, shown)

    def _trace_boundaries(self, scale: float) -> None:
        seg = self._seg
        if seg is None or seg.n_regions == 0:
            return
        size = self.boundary_size(scale)
        if size == self._built_for:
            return
        w, h = size
        labels = seg.labels if (h, w) == seg.labels.shape else upsample_labels(seg.labels, w, h)
        self._rgba = boundary_rgba(labels)
        self._pixmap = QPixmap.fromImage(rgba_to_qimage(self._rgba))
        self._built_for = size

    # --- painting ------------------------------------------------------------------------------------------
    def paint_layer(self, painter: QPainter, exposed: QRectF, scale: float) -> None:
        if self._style == BOUNDARIES:
            self._trace_boundaries(scale)  # no-op unless the zoom moved to another quarter octave
        # The label map covers the whole image (it was computed from the whole, reduced image).
        paint_raster(painter, self._pixmap, self.image_rect(), exposed)


__all__ = ["BOUNDARIES", "FILL_MEAN", "FILL_RANDOM", "MAX_BOUNDARY_SIDE", "STYLES", "SuperpixelLayer",
           "boundary_raster_size", "boundary_rgba", "colorize_labels", "paint_raster", "rgba_to_qimage",
           "upsample_labels"]
