"""A layer of boxes in a few styles (colour, width, solid/dashed) with a text tag on each: detections, NMS
candidates, suggested boxes.

Why one more box layer: ``BoxArrayLayer`` paints one style and semi-transparent labels; the detector views need
several styles at once (kept vs suppressed, true vs false positive, missed ground truth dashed) and hundreds of
tags that stay cheap to paint. Everything that costs (grouping boxes by style, measuring text, choosing the
text colour) happens in :meth:`LabelledBoxesLayer.set_boxes`; ``paint`` maps the anchors with one numpy
operation, fills every tag of a colour with one ``drawRects`` and draws each text from a cached
``QStaticText``. Tags are opaque: semi-transparent fills are many times slower in the software rasteriser, and
the layer's opacity (QGraphicsItem's) still applies when the scene composites it. The item caches what it
painted in device pixels (``DeviceCoordinateCache``), so frames that do not change the layer or the zoom cost
a pixmap copy.

Text colour follows the tag's WCAG contrast (:func:`app.layers.palette.text_color_for`), so a label on yellow
is black and on blue is white.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFontMetricsF, QPainter, QStaticText, QTransform
from PySide6.QtWidgets import QGraphicsItem

from app.layers.base import OverlayLayer, label_font, paint_boxes, visible_mask
from app.layers.palette import text_color_for

#: Where a box's tag sits: just above its top-left corner (falls inside when there is no room), inside the box
#: under the top edge, or inside above the bottom edge. Layers drawn over the same boxes (ground truth tags sit
#: above) pick different places so tags do not cover each other.
ABOVE, INSIDE_TOP, INSIDE_BOTTOM = 0, 1, 2
#: Alpha of a tag that found no free place (its fill, its text).
FADED_ALPHA, FADED_TEXT_ALPHA = 90, 150


@dataclass(frozen=True)
class BoxStyle:
    """How one group of boxes is drawn: outline colour, width in screen pixels, pen style."""

    color: QColor
    width: float = 1.5
    pen: Qt.PenStyle = Qt.PenStyle.SolidLine


def settle_tags(x: np.ndarray, top: np.ndarray, widths: np.ndarray, h: float, direction: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Move tags so they do not cover one another: new tops, and which tags found no free place.

    Tags later in the arrays are drawn on top, so they are placed first (they matter most: true positives
    over false ones, the current NMS box over the rest). Each tries its own place, then one row further in
    ``direction`` (+1 down, -1 up, per tag), one row the other way, two rows on; a tag with no free place
    keeps its own and is reported, to be drawn faded. Screen pixels. Placed tags are filed in a coarse grid
    of cells, so each try compares against the few tags near it, not all of them: 300 tags settle in about a
    millisecond, and only when the layer repaints (its cache holds the result between frames).
    """
    n = x.shape[0]
    out = top.astype(np.float64).copy()
    clash = np.zeros(n, bool)
    step = h + 1.0
    cw, ch = 64.0, step
    grid: dict[tuple[int, int], list[tuple[float, float, float, float]]] = {}
    xs, ws, ts, ds = x.tolist(), widths.tolist(), top.tolist(), direction.tolist()

    def cells(x0: float, y0: float, w: float) -> list[tuple[int, int]]:
        return [(i, j) for i in range(int(x0 // cw), int((x0 + w) // cw) + 1)
                for j in range(int(y0 // ch), int((y0 + h) // ch) + 1)]

    def free(x0: float, y0: float, w: float) -> bool:
        for c in cells(x0, y0, w):
            for (a, b, aw, bh) in grid.get(c, ()):
                if a < x0 + w and x0 < a + aw and b < y0 + h and y0 < b + bh:
                    return False
        return True

    for k in range(n - 1, -1, -1):
        x0, w, d = xs[k], ws[k], ds[k]
        for off in (0.0, d * step, -d * step, 2 * d * step):
            y0 = ts[k] + off
            if free(x0, y0, w):
                break
        else:
            y0 = ts[k]
            clash[k] = True
        out[k] = y0
        rect = (x0, y0, w, h)
        for c in cells(x0, y0, w):
            grid.setdefault(c, []).append(rect)
    return out, clash


class LabelledBoxesLayer(OverlayLayer):
    """Boxes grouped by style key, each with an optional tag; painted in style order (last on top)."""

    #: Tags above this count are not drawn (a wall of text reads as nothing); boxes always are.
    MAX_LABELS = 600

    def __init__(self, name: str, parent: QGraphicsItem | None = None, z: float = 30.0) -> None:
        super().__init__(name, parent)
        self._boxes = np.zeros((0, 4), np.float32)
        self._keys = np.zeros(0, np.int64)
        self._styles: dict[int, BoxStyle] = {}
        self._order: list[int] = []
        self._groups: list[tuple[np.ndarray, BoxStyle]] = []
        self._labels: list[str] = []
        self._label_idx = np.zeros(0, np.int64)
        self._label_place = np.zeros(0, np.int64)
        self._label_fill: list[QColor] = []
        self._label_text: list[QColor] = []
        self._label_width = np.zeros(0)
        self._static: list[QStaticText] = []
        self._font = label_font()
        self._fm = QFontMetricsF(self._font)
        self.last_painted = 0
        self.last_labels = 0
        self.setZValue(z)
        # Painted once into a device-pixel cache and then blitted: a repaint for anything else (hover, another
        # layer, panning, the layer's opacity) costs one pixmap copy; zoom or new content repaints it.
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)

    # --- content ---------------------------------------------------------------------------------------------
    @property
    def boxes(self) -> np.ndarray:
        return self._boxes

    @property
    def keys(self) -> np.ndarray:
        """Style key per box."""
        return self._keys

    @property
    def labels(self) -> list[str]:
        """Tag text per box ("" = none)."""
        return list(self._labels)

    def indices(self, key: int) -> np.ndarray:
        """Boxes drawn with style ``key``."""
        return np.flatnonzero(self._keys == key)

    def clear(self) -> None:
        self.set_boxes(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), {})

    def set_boxes(self, boxes: np.ndarray, keys: np.ndarray, styles: dict[int, BoxStyle],
                  labels: Sequence[str] | None = None, label_colors: Sequence[QColor] | None = None,
                  order: Sequence[int] | None = None, label_places: Sequence[int] | np.ndarray | int = ABOVE
                  ) -> None:
        """``boxes`` [N, 4] scene xyxy; ``keys`` [N] style key per box (into ``styles``); ``labels`` the tag text
        per box ("" for none), filled with ``label_colors`` (default: the box's style colour); ``order`` the
        style keys in paint order (default: ascending; later keys end on top); ``label_places`` where each tag
        sits (:data:`ABOVE`, :data:`INSIDE_TOP`, :data:`INSIDE_BOTTOM`; one value for all or one per box)."""
        self._boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        n = self._boxes.shape[0]
        self._keys = np.asarray(keys, np.int64).reshape(-1)
        if self._keys.shape[0] != n:
            raise ValueError(f"{self._keys.shape[0]} style keys for {n} boxes")
        missing = set(np.unique(self._keys).tolist()) - set(styles)
        if missing:
            raise ValueError(f"no style for key(s) {sorted(missing)}")
        self._styles = dict(styles)
        self._order = list(order) if order is not None else sorted(self._styles)
        self._groups = [(idx, self._styles[k]) for k in self._order
                        if k in self._styles and (idx := np.flatnonzero(self._keys == k)).size]
        self._labels = list(labels) if labels is not None else [""] * n
        if len(self._labels) != n:
            raise ValueError(f"{len(self._labels)} labels for {n} boxes")
        # Tags in paint order too: a tag of a box on top is drawn after (over) the others.
        rank = {k: r for r, k in enumerate(self._order)}
        with_text = [i for i in range(n) if self._labels[i]]
        with_text.sort(key=lambda i: rank.get(int(self._keys[i]), -1))
        self._label_idx = np.asarray(with_text[: self.MAX_LABELS], np.int64)
        places = np.broadcast_to(np.asarray(label_places, np.int64), (n,))
        self._label_place = places[self._label_idx].copy()
        fills = []
        for i in self._label_idx.tolist():
            c = label_colors[i] if label_colors is not None else self._styles[int(self._keys[i])].color
            c = QColor(c)
            c.setAlpha(255)
            fills.append(c)
        self._label_fill = fills
        self._label_text = [text_color_for(c) for c in fills]
        self._label_width = np.asarray([self._fm.horizontalAdvance(self._labels[i]) + 6
                                        for i in self._label_idx.tolist()], np.float64)
        self._static = []
        for i in self._label_idx.tolist():
            st = QStaticText(self._labels[i])
            st.setTextFormat(Qt.TextFormat.PlainText)
            st.prepare(QTransform(), self._font)
            self._static.append(st)
        self.mark_changed()

    # --- picking -------------------------------------------------------------------------------------------
    def box_at(self, x: float, y: float, candidates: np.ndarray | None = None) -> int:
        """The smallest box containing (x, y) (the one a click most likely means), among ``candidates``; -1."""
        idx = np.arange(self._boxes.shape[0]) if candidates is None else np.asarray(candidates, np.int64)
        if idx.size == 0:
            return -1
        b = self._boxes[idx]
        inside = (x >= b[:, 0]) & (x <= b[:, 2]) & (y >= b[:, 1]) & (y <= b[:, 3])
        if not inside.any():
            return -1
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        area = np.where(inside, area, np.inf)
        return int(idx[int(np.argmin(area))])

    # --- painting ------------------------------------------------------------------------------------------
    def paint_layer(self, painter: QPainter, exposed: QRectF, scale: float) -> None:
        drawn = 0
        for idx, style in self._groups:
            drawn += paint_boxes(painter, self._boxes[idx], style.color, exposed, style.width, style=style.pen)
        self.last_painted = drawn
        self.last_labels = self._paint_labels(painter, exposed)

    def _paint_labels(self, painter: QPainter, exposed: QRectF) -> int:
        if self._label_idx.size == 0:
            return 0
        b = self._boxes[self._label_idx].astype(np.float64)
        vis = np.flatnonzero(visible_mask(b, exposed))
        if vis.size == 0:
            return 0
        t = painter.worldTransform()
        # Axis-aligned view (the canvas zooms and pans, never rotates): one affine map for every anchor.
        px = b[vis, 0] * t.m11() + t.dx()
        py = b[vis, 1] * t.m22() + t.dy()
        pb = b[vis, 3] * t.m22() + t.dy()
        h = self._fm.height() + 1
        place = self._label_place[vis]
        top = np.where(place == INSIDE_TOP, py + 1,
                       np.where(place == INSIDE_BOTTOM, pb - h - 1, np.where(py - h >= 0, py - h, py + 1)))
        widths = self._label_width[vis]
        top, clash = settle_tags(px, top, widths, h, np.where(place == INSIDE_BOTTOM, -1.0, 1.0))
        painter.save()
        painter.resetTransform()
        painter.setFont(self._font)
        # Tags with no free place first and see-through (the tags over them stay readable), then the rest opaque;
        # fills batched per colour, so a few hundred tags cost a handful of drawRects and one text call each.
        for faded in (True, False):
            sel = np.flatnonzero(clash == faded)
            if sel.size == 0:
                continue
            rects: dict[int, tuple[QColor, list[QRectF]]] = {}
            for j in sel.tolist():
                c = self._label_fill[int(vis[j])]
                rects.setdefault(c.rgba(), (c, []))[1].append(QRectF(px[j], top[j], widths[j], h))
            painter.setPen(Qt.PenStyle.NoPen)
            for c, rs in rects.values():
                fill = QColor(c)
                if faded:
                    fill.setAlpha(FADED_ALPHA)
                painter.setBrush(fill)
                painter.drawRects(rs)
            current = -1
            for j in sel.tolist():
                k = int(vis[j])
                tc = self._label_text[k]
                key = tc.rgba()
                if key != current:
                    pen = QColor(tc)
                    if faded:
                        pen.setAlpha(FADED_TEXT_ALPHA)
                    painter.setPen(pen)
                    current = key
                painter.drawStaticText(QPointF(px[j] + 3, top[j] + 0.5), self._static[k])
        painter.restore()
        return int(vis.size)


__all__ = ["ABOVE", "INSIDE_BOTTOM", "INSIDE_TOP", "BoxStyle", "LabelledBoxesLayer", "settle_tags"]
