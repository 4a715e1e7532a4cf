"""The overlay-layer base every canvas layer builds on, and one-pass box painting helpers.

The rule: EACH LAYER IS ONE GRAPHICS ITEM THAT PAINTS ALL ITS BOXES IN ONE PASS. Later layers hold
thousands of proposals or anchors; one QGraphicsItem per box would make the scene index, hit-testing and
repaint crawl. A layer keeps its boxes in numpy arrays and paints only those meeting the exposed rect.

Coordinates: a layer's item coordinates are the scene's, i.e. full-resolution displayed image pixels.
Line widths, handle sizes and label fonts are in screen pixels (cosmetic pens, text drawn untransformed),
so the overlay stays crisp and readable at any zoom and on HiDPI screens.

Visibility and opacity are QGraphicsItem's own (``setVisible``/``setOpacity``), whose ``visibleChanged``
and ``opacityChanged`` signals the layers panel listens to.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsObject, QStyleOptionGraphicsItem, QWidget

from app.layers.palette import class_color, text_color_for

ColorsLike = QColor | Sequence[QColor] | np.ndarray | None

__all__ = ["class_color"]  # re-exported: its home is app.layers.palette


def view_scale(painter: QPainter) -> float:
    """Screen (logical) pixels per scene unit under the painter's current transform."""
    t = painter.worldTransform()
    s = math.hypot(t.m11(), t.m12())
    return s if s > 0 else 1.0


def device_pixel_ratio(painter: QPainter | None) -> float:
    """Device pixels per logical pixel of what ``painter`` paints on (2 on a typical HiDPI screen)."""
    dev = painter.device() if painter is not None else None
    return float(dev.devicePixelRatioF()) if dev is not None else 1.0


def cosmetic_pen(color: QColor, width: float = 1.5, style: Qt.PenStyle = Qt.PenStyle.SolidLine,
                 painter: QPainter | None = None) -> QPen:
    """A pen ``width`` logical screen pixels wide whatever the zoom.

    Qt draws cosmetic pens in *device* pixels, so on a HiDPI screen (device pixel ratio 2) a 2-px line
    would look 1 px thin; pass the painter and the width is scaled by its device pixel ratio.
    """
    pen = QPen(color, width * device_pixel_ratio(painter), style)
    pen.setCosmetic(True)
    pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
    return pen


def visible_mask(boxes: np.ndarray, exposed: QRectF | None) -> np.ndarray:
    """Which of the N×4 boxes meet ``exposed`` (all when None)."""
    if exposed is None or boxes.shape[0] == 0:
        return np.ones(boxes.shape[0], bool)
    return ((boxes[:, 2] >= exposed.left()) & (boxes[:, 0] <= exposed.right())
            & (boxes[:, 3] >= exposed.top()) & (boxes[:, 1] <= exposed.bottom()))


class BoxColors:
    """Per-box colours prepared for batching: an integer key per box and key -> QColor.

    Build it once when a layer's boxes change (``prepare_colors``) and pass it to ``paint_boxes`` instead of
    raw colours, so a repaint does no colour conversion. Fewer distinct colours paint faster (one Qt call
    per colour): quantise continuous colour maps (e.g. scores) to a few dozen levels.
    """

    __slots__ = ("keys", "table")

    def __init__(self, keys: np.ndarray, table: dict[int, QColor]) -> None:
        self.keys = keys
        self.table = table

    def color(self, i: int) -> QColor:
        return self.table[int(self.keys[i])]


def prepare_colors(colors: ColorsLike | BoxColors, n: int) -> BoxColors:
    """Normalise one QColor, a list of QColor, or an N×3/N×4 uint8 array into ``BoxColors``."""
    if isinstance(colors, BoxColors):
        return colors
    if colors is None:
        colors = QColor(255, 255, 0)
    if isinstance(colors, QColor):
        return BoxColors(np.zeros(n, np.int64), {0: colors})
    if isinstance(colors, np.ndarray):
        arr = np.asarray(colors)
        if arr.ndim == 2 and arr.shape[1] in (3, 4) and arr.shape[0] == n:
            arr = arr.astype(np.int64)
            if arr.shape[1] == 3:
                arr = np.concatenate([arr, np.full((arr.shape[0], 1), 255, np.int64)], axis=1)
            keys = (arr[:, 0] << 24) | (arr[:, 1] << 16) | (arr[:, 2] << 8) | arr[:, 3]
            table = {k: QColor((k >> 24) & 255, (k >> 16) & 255, (k >> 8) & 255, k & 255)
                     for k in np.unique(keys).tolist()}
            return BoxColors(keys, table)
        raise ValueError(f"colour array must be {n}×3 or {n}×4 uint8, got {arr.shape}")
    qcolors = list(colors)
    if len(qcolors) != n:
        raise ValueError(f"{len(qcolors)} colours for {n} boxes")
    keys = np.array([c.rgba() for c in qcolors], np.int64)
    table = {int(c.rgba()): c for c in qcolors}
    return BoxColors(keys, table)


def paint_boxes(painter: QPainter, boxes: np.ndarray, colors: ColorsLike | BoxColors = None,
                exposed: QRectF | None = None,
                width: float = 1.5, fill_alpha: int = 0, style: Qt.PenStyle = Qt.PenStyle.SolidLine,
                mask: np.ndarray | None = None) -> int:
    """Paint N×4 xyxy ``boxes`` with per-box ``colors`` in one pass; returns how many were drawn.

    Boxes outside ``exposed`` are skipped, and boxes sharing a colour are drawn with one ``drawRects``
    call, so ten thousand boxes cost a few numpy operations and a handful of Qt calls.
    ``colors``: one QColor, a list of QColor, an N×3/N×4 uint8 array, or ``BoxColors``. ``fill_alpha`` > 0 also fills
    each box with its colour at that alpha. ``mask`` preselects boxes (e.g. only positives).
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    n = boxes.shape[0]
    if n == 0:
        return 0
    prepared = prepare_colors(colors, n)
    keys, table = prepared.keys, prepared.table
    keep = visible_mask(boxes, exposed)
    if mask is not None:
        keep &= np.asarray(mask, bool)
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        return 0
    painter.save()
    # Group by colour with one sort (not one scan per colour): many distinct colours stay O(N log N).
    sub_keys = keys[idx]
    order = np.argsort(sub_keys, kind="stable")
    idx, sub_keys = idx[order], sub_keys[order]
    uniq, starts = np.unique(sub_keys, return_index=True)
    ends = np.append(starts[1:], idx.size)
    coords = boxes[idx].tolist()
    painter.setBrush(Qt.BrushStyle.NoBrush)
    pen = cosmetic_pen(QColor(), width, style, painter)
    for key, a, b in zip(uniq.tolist(), starts.tolist(), ends.tolist(), strict=True):
        color = table[key]
        rects = [QRectF(x1, y1, x2 - x1, y2 - y1) for x1, y1, x2, y2 in coords[a:b]]
        pen.setColor(color)
        painter.setPen(pen)
        if fill_alpha > 0:
            fill = QColor(color)
            fill.setAlpha(fill_alpha)
            painter.setBrush(fill)
        painter.drawRects(rects)
    painter.restore()
    return int(idx.size)


def label_font(point_size: float = 9.0) -> QFont:
    font = QFont()
    font.setPointSizeF(point_size)
    font.setBold(True)
    return font


def place_labels(anchors: Sequence[tuple[float, float]], widths: Sequence[float], h: float,
                 dx: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Screen rects (N×4 x, y, w, h) for tags at screen ``anchors``, and which of them still overlap.

    Each tag tries, in order: just above its anchor, just inside the box, then one and two rows higher;
    it takes the first place that overlaps no tag placed before it. A tag with no free place keeps the
    first one and is marked, so the painter can fade it (a crowded image stays readable, not a smear).
    """
    n = len(anchors)
    rects = np.zeros((n, 4), np.float64)
    clash = np.zeros(n, bool)
    for k, ((x, y), w) in enumerate(zip(anchors, widths, strict=True)):
        above = y - h - 1 if y - h - 1 >= 0 else y + 1
        tops = [above, y + 1, above - h - 1, above - 2 * h - 2]
        best = None
        for top in tops:
            if top < 0:
                continue
            r = (x + dx, top, w, h + 1)
            if k == 0 or not _overlaps(rects[:k], r).any():
                best = r
                break
        if best is None:
            best = (x + dx, above, w, h + 1)
            clash[k] = True
        rects[k] = best
    return rects, clash


def _overlaps(rects: np.ndarray, r: tuple[float, float, float, float]) -> np.ndarray:
    return ((rects[:, 0] < r[0] + r[2]) & (r[0] < rects[:, 0] + rects[:, 2])
            & (rects[:, 1] < r[1] + r[3]) & (r[1] < rects[:, 1] + rects[:, 3]))


def paint_labels(painter: QPainter, anchors: Sequence[tuple[float, float]], texts: Sequence[str],
                 colors: Sequence[QColor], font: QFont | None = None, max_labels: int = 300,
                 dx: float = 0.0) -> np.ndarray:
    """Draw ``texts`` at scene points ``anchors`` (top-left of each box) in screen-pixel size.

    Text is drawn untransformed so it stays readable at every zoom; each label sits on a filled tag of the
    box colour, placed by ``place_labels`` so tags do not cover one another (those that must, fade), with
    black or white text, whichever contrasts more with the tag. Past ``max_labels`` labels are skipped:
    thousands would be unreadable anyway. ``dx`` shifts labels right (screen pixels), e.g. clear of a
    corner handle. Returns the screen rects drawn (N×4 x, y, w, h), for tests and hit-testing.
    """
    if not texts:
        return np.zeros((0, 4))
    font = font or label_font()
    fm = QFontMetricsF(font)
    t = painter.worldTransform()
    n = min(len(texts), len(anchors), len(colors), max_labels)
    pts = [t.map(QPointF(x, y)) for x, y in anchors[:n]]
    widths = [fm.horizontalAdvance(text) + 6 for text in texts[:n]]
    rects, clash = place_labels([(p.x(), p.y()) for p in pts], widths, fm.height(), dx)
    painter.save()
    painter.resetTransform()
    painter.setFont(font)
    for k in range(n):
        x, y, w, h = rects[k].tolist()
        rect = QRectF(x, y, w, h)
        bg = QColor(colors[k])
        bg.setAlpha(90 if clash[k] else 215)
        fg = text_color_for(colors[k])
        if clash[k]:
            fg.setAlpha(150)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(bg)
        painter.drawRect(rect)
        painter.setPen(fg)
        painter.drawText(rect.adjusted(3, 0, -3, 0), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                         texts[k])
    painter.restore()
    return rects


class OverlayLayer(QGraphicsObject):
    """One canvas layer: one graphics item covering the image, painting everything it shows in one pass.

    Subclasses implement ``paint_layer(painter, exposed, scale)``; ``exposed`` is the scene rect needing
    repaint (use it to cull) and ``scale`` is screen pixels per image pixel (for zoom-dependent detail).
    Call ``mark_changed()`` after changing what the layer shows.
    """

    #: Content or appearance changed (the layers panel and anything caching the view listen).
    changed = Signal()

    #: Extra room around the image for labels/handles drawn in screen pixels outside the boxes.
    MARGIN = 64.0

    def __init__(self, name: str, parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self._name = name
        self._width = 0
        self._height = 0
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        self.visibleChanged.connect(self.changed)
        self.opacityChanged.connect(self.changed)

    @property
    def name(self) -> str:
        return self._name

    @property
    def visible(self) -> bool:
        return self.isVisible()

    @visible.setter
    def visible(self, on: bool) -> None:
        self.setVisible(bool(on))

    # Opacity is QGraphicsItem's own: ``opacity()`` / ``setOpacity(float)`` (0..1).

    def set_image_size(self, width: int, height: int) -> None:
        """Called by the canvas when the image changes; sets the area the layer covers."""
        if (width, height) != (self._width, self._height):
            self.prepareGeometryChange()
            self._width, self._height = int(width), int(height)
        self.update()

    @property
    def image_width(self) -> int:
        return self._width

    @property
    def image_height(self) -> int:
        return self._height

    def image_rect(self) -> QRectF:
        return QRectF(0, 0, self._width, self._height)

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        m = self.MARGIN + 0.25 * max(self._width, self._height)
        return self.image_rect().adjusted(-m, -m, m, m)

    def mark_changed(self) -> None:
        self.update()
        self.changed.emit()

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        exposed = option.exposedRect if option is not None else self.boundingRect()
        self.paint_layer(painter, exposed, view_scale(painter))

    def paint_layer(self, painter: QPainter, exposed: QRectF, scale: float) -> None:
        """Override: draw the layer's content."""


class BoxArrayLayer(OverlayLayer):
    """A read-only layer of many boxes with per-box colours and optional labels.

    The ready-made base for proposals, anchors, detections: ``set_boxes(boxes, colors, labels)`` and done.
    """

    def __init__(self, name: str, parent: QGraphicsItem | None = None, line_width: float = 1.0,
                 fill_alpha: int = 0) -> None:
        super().__init__(name, parent)
        self._boxes = np.zeros((0, 4), np.float32)
        self._colors = prepare_colors(None, 0)
        self._labels: list[str] | None = None
        self.line_width = line_width
        self.fill_alpha = fill_alpha

    def set_boxes(self, boxes: np.ndarray, colors: ColorsLike = None, labels: Sequence[str] | None = None) -> None:
        self._boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        self._colors = prepare_colors(colors, self._boxes.shape[0])
        self._labels = list(labels) if labels is not None else None
        self.mark_changed()

    @property
    def boxes(self) -> np.ndarray:
        return self._boxes

    def paint_layer(self, painter: QPainter, exposed: QRectF, scale: float) -> None:
        paint_boxes(painter, self._boxes, self._colors, exposed, self.line_width, self.fill_alpha)
        if self._labels:
            keep = np.flatnonzero(visible_mask(self._boxes.astype(np.float64), exposed))
            paint_labels(painter, [(float(self._boxes[i, 0]), float(self._boxes[i, 1])) for i in keep],
                         [self._labels[i] for i in keep], [self._colors.color(i) for i in keep])
