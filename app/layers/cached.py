"""A layer that paints its heavy content once per view into an image and blits it on every later frame.

Why: the anchors layer can hold ~17,000 boxes or ~10,000 centre dots. With software rendering, even opaque
cosmetic-pen rectangles cost ~2.5 µs each, and semi-transparent pens are ~18× slower, so painting them live
on every frame (hover, a crosshair, another layer changing) misses 16 ms by far. Instead the content is drawn
with OPAQUE colours into a viewport-sized image whenever the content or the view transform changes, and every
frame draws that image once with the item's opacity (one blended blit). Zooming or panning redraws it.

Subclasses implement ``paint_cached`` (the heavy, opaque part) and optionally ``paint_live`` (a few boxes
drawn every frame on top: the hovered cell, a selection). Call ``invalidate()`` when the cached content
changes. Painters that are not raster (SVG export, printing) get the content drawn directly, as vectors.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QColor, QImage, QPaintEngine, QPainter, QPixmap
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from app.layers.base import OverlayLayer, view_scale


class CachedOverlayLayer(OverlayLayer):
    """An :class:`OverlayLayer` whose ``paint_cached`` output is kept per view transform (see module doc)."""

    def __init__(self, name: str, parent: QGraphicsItem | None = None) -> None:
        super().__init__(name, parent)
        self._cache: QImage | None = None
        self._cache_key: tuple | None = None
        #: Frames drawn from the cache / frames that re-rendered it (for benchmarks and tests).
        self.cache_hits = 0
        self.cache_misses = 0

    def invalidate(self) -> None:
        """The cached content changed: re-render on the next frame."""
        self._cache = None
        self._cache_key = None
        self.mark_changed()

    def set_image_size(self, width: int, height: int) -> None:
        self._cache = None
        super().set_image_size(width, height)

    # --- to override ---------------------------------------------------------------------------------------
    def has_cached_content(self) -> bool:
        """False skips the cache pass entirely (nothing heavy to show)."""
        return True

    def paint_cached(self, painter: QPainter, exposed: QRectF, scale: float) -> None:
        """Draw the heavy content with opaque colours; the item's opacity is applied when compositing."""

    def paint_live(self, painter: QPainter, exposed: QRectF, scale: float) -> None:
        """Draw the light content every frame (on top of the cached image)."""

    # --- painting ------------------------------------------------------------------------------------------
    def paint_layer(self, painter: QPainter, exposed: QRectF, scale: float) -> None:
        """Direct (vector) painting of both parts: used for non-raster painters."""
        if self.has_cached_content():
            self.paint_cached(painter, exposed, scale)
        self.paint_live(painter, exposed, scale)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        exposed = option.exposedRect if option is not None else self.boundingRect()
        scale = view_scale(painter)
        engine = painter.paintEngine()
        if engine is None or engine.type() != QPaintEngine.Type.Raster or option is None:
            self.paint_layer(painter, exposed, scale)
            return
        if self.has_cached_content():
            image = self._cached_image(painter, scale)
            if image is not None:
                painter.save()
                painter.resetTransform()
                painter.drawImage(QPointF(0, 0), image)
                painter.restore()
        self.paint_live(painter, exposed, scale)

    def _device_size(self, painter: QPainter) -> tuple[int, int, float] | None:
        """Logical size and pixel ratio of what ``painter`` paints on."""
        dev = painter.device()
        if dev is None:
            return None
        dpr = float(dev.devicePixelRatioF()) or 1.0
        if isinstance(dev, (QImage, QPixmap)):  # their width() is in physical pixels
            return int(round(dev.width() / dpr)), int(round(dev.height() / dpr)), dpr
        return int(dev.width()), int(dev.height()), dpr

    def _cached_image(self, painter: QPainter, scale: float) -> QImage | None:
        size = self._device_size(painter)
        if size is None or size[0] <= 0 or size[1] <= 0:
            return None
        w, h, dpr = size
        t = painter.worldTransform()
        key = (w, h, dpr, round(t.m11(), 9), round(t.m12(), 9), round(t.m21(), 9), round(t.m22(), 9),
               round(t.dx(), 3), round(t.dy(), 3))
        if self._cache is not None and key == self._cache_key:
            self.cache_hits += 1
            return self._cache
        self.cache_misses += 1
        image = QImage(max(1, int(round(w * dpr))), max(1, int(round(h * dpr))),
                       QImage.Format.Format_ARGB32_Premultiplied)
        image.setDevicePixelRatio(dpr)
        image.fill(QColor(0, 0, 0, 0))
        p = QPainter(image)
        p.setRenderHints(painter.renderHints())  # e.g. the antialiasing a PNG export asks for
        p.setWorldTransform(t)
        inv, ok = t.inverted()
        visible = inv.mapRect(QRectF(0, 0, w, h)) if ok else self.boundingRect()
        self.paint_cached(p, visible.intersected(self.boundingRect()), scale)
        p.end()
        self._cache, self._cache_key = image, key
        return image


__all__ = ["CachedOverlayLayer"]
