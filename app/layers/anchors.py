"""The anchors layer: anchor boxes or cell centres coloured by how training labels them against the GT.

It draws a :class:`models.detection.anchor_labels.AnchorLabelling` mapped to scene pixels (the controller passes the
boxes already scaled from network-input pixels). What it shows:

* ``dots``: one dot per feature-map cell centre, coloured by the most informative label among the cell's
  anchors (positive > ignored > negative > cross-boundary);
* ``boxes``: every anchor of the chosen kinds as a box (thousands: the cached, opaque pass of
  :class:`app.layers.cached.CachedOverlayLayer` keeps a frame cheap);
* ``cell``: nothing in the background, only the highlighted cell;
* always, on top: the highlighted cell (its outline, centre and its anchors in their label colours, the
  chosen one thicker) and the best anchor of each GT box (dashed white, with its IoU): the rule that gives
  every ground-truth box at least one positive anchor.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QLineF, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QGraphicsItem

from app.layers.base import cosmetic_pen, paint_boxes, paint_labels, visible_mask
from app.layers.cached import CachedOverlayLayer
from models.detection.anchor_labels import CROSS_BOUNDARY, KINDS
from models.detection.anchors import IGNORED, NEGATIVE, POSITIVE

MODE_CELL = "cell"
MODE_DOTS = "dots"
MODE_BOXES = "boxes"
MODES = (MODE_CELL, MODE_DOTS, MODE_BOXES)

#: Opaque label colours (the layer's opacity makes them translucent when compositing).
KIND_COLORS: dict[int, QColor] = {
    POSITIVE: QColor(40, 230, 90),
    NEGATIVE: QColor(80, 150, 255),
    IGNORED: QColor(255, 190, 0),
    CROSS_BOUNDARY: QColor(200, 80, 220),
}
#: Paint order: what matters ends on top.
PAINT_ORDER = (CROSS_BOUNDARY, NEGATIVE, IGNORED, POSITIVE)
BEST_COLOR = QColor(255, 255, 255)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of True along the last axis of a [S, L] mask: (sequence, first, last) index arrays."""
    s, length = mask.shape
    padded = np.zeros((s, length + 2), np.int8)
    padded[:, 1:-1] = mask
    d = np.diff(padded, axis=1)
    seq_s, first = np.nonzero(d == 1)
    seq_e, last = np.nonzero(d == -1)
    return seq_s, first, last - 1  # np.nonzero is row-major: starts and ends pair up in order


def grid_outline_segments(boxes: np.ndarray, mask: np.ndarray, grid: tuple[int, int, int]) -> np.ndarray:
    """The outlines of the masked anchors of a full grid as merged horizontal and vertical lines: [M, 4].

    Why: the anchors of one shape at neighbouring cells are the same box shifted by one stride, so where a
    shape is wider than the stride their top (bottom) edges overlap along a row and draw the same pixels.
    Merging each run of consecutive masked cells into one line paints exactly the union of the rectangles'
    outlines with ~20× fewer pixels: 17,000 anchors become a few thousand lines. Shapes narrower (shorter)
    than the stride keep one segment per cell on that axis.
    """
    fh, fw, a = grid
    b = np.asarray(boxes, np.float32).reshape(fh, fw, a, 4)
    m = np.asarray(mask, bool).reshape(fh, fw, a)
    out = []
    # Horizontal edges: along the columns of each (row, anchor).
    bh = b.transpose(0, 2, 1, 3).reshape(fh * a, fw, 4)
    mh = m.transpose(0, 2, 1).reshape(fh * a, fw)
    wide = (bh[:, 0, 2] - bh[:, 0, 0]) >= (bh[:, 1, 0] - bh[:, 0, 0] if fw > 1 else 0)
    seq, first, last = _runs(mh)
    split = ~wide[seq]
    if split.any():  # narrow shapes: one segment per cell
        seq_n = np.repeat(seq[split], last[split] - first[split] + 1)
        first_n = np.concatenate([np.arange(f, e + 1) for f, e in zip(first[split], last[split], strict=True)])
        seq, first, last = (np.concatenate([seq[~split], seq_n]), np.concatenate([first[~split], first_n]),
                            np.concatenate([last[~split], first_n]))
    x1, x2 = bh[seq, first, 0], bh[seq, last, 2]
    for yi in (1, 3):
        y = bh[seq, first, yi]
        out.append(np.stack([x1, y, x2, y], axis=1))
    # Vertical edges: along the rows of each (column, anchor).
    bv = b.transpose(1, 2, 0, 3).reshape(fw * a, fh, 4)
    mv = m.transpose(1, 2, 0).reshape(fw * a, fh)
    tall = (bv[:, 0, 3] - bv[:, 0, 1]) >= (bv[:, 1, 1] - bv[:, 0, 1] if fh > 1 else 0)
    seq, first, last = _runs(mv)
    split = ~tall[seq]
    if split.any():
        seq_n = np.repeat(seq[split], last[split] - first[split] + 1)
        first_n = np.concatenate([np.arange(f, e + 1) for f, e in zip(first[split], last[split], strict=True)])
        seq, first, last = (np.concatenate([seq[~split], seq_n]), np.concatenate([first[~split], first_n]),
                            np.concatenate([last[~split], first_n]))
    y1, y2 = bv[seq, first, 1], bv[seq, last, 3]
    for xi in (0, 2):
        x = bv[seq, first, xi]
        out.append(np.stack([x, y1, x, y2], axis=1))
    return np.concatenate(out, axis=0) if out else np.zeros((0, 4), np.float32)


class AnchorLayer(CachedOverlayLayer):
    """Anchor boxes / centres by label, the highlighted cell and each GT's best anchor."""

    def __init__(self, parent: QGraphicsItem | None = None) -> None:
        super().__init__("Anchors", parent)
        self._boxes = np.zeros((0, 4), np.float32)
        self._kinds = np.zeros(0, np.int8)
        self._centres = np.zeros((0, 2), np.float32)
        self._cell_kinds = np.zeros(0, np.int8)
        self._best = np.zeros(0, np.int64)
        self._gt_numbers = np.zeros(0, np.int64)
        self._best_iou = np.zeros(0, np.float32)
        self._mode = MODE_DOTS
        self._shown_kinds: set[int] = set(KINDS)
        self._cell: np.ndarray = np.zeros(0, np.int64)
        self._cell_rect: tuple[float, float, float, float] | None = None
        self._chosen = -1
        self._groups: list[tuple[int, np.ndarray]] = []
        self._grid: tuple[int, int, int] | None = None
        self._lines: list[tuple[int, np.ndarray]] = []
        self.dot_size = 3.0
        self.last_painted = 0
        self.setZValue(25)
        self.setVisible(False)
        self.setOpacity(0.8)

    # --- state ---------------------------------------------------------------------------------------------
    @property
    def boxes(self) -> np.ndarray:
        """Every anchor in scene pixels."""
        return self._boxes

    @property
    def kinds(self) -> np.ndarray:
        return self._kinds

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def cell(self) -> np.ndarray:
        """Indices of the highlighted cell's anchors (empty: none)."""
        return self._cell

    @property
    def best(self) -> np.ndarray:
        return self._best

    @property
    def shown_kinds(self) -> set[int]:
        return set(self._shown_kinds)

    def set_anchors(self, boxes: np.ndarray, kinds: np.ndarray, centres: np.ndarray, cell_kinds: np.ndarray,
                    best: np.ndarray, best_iou: np.ndarray, grid: tuple[int, int, int] | None = None,
                    gt_numbers: np.ndarray | None = None) -> None:
        """New anchors (scene pixels), their kinds, cell centres with their kinds, each GT's best anchor and
        the number the image gives that GT (default 1, 2, ...: crowd boxes are not matched, so not numbered).

        ``grid`` = (rows, columns, anchors per cell) when the boxes are a full anchor grid in the model's order
        (cell-major): the boxes mode then draws merged edge lines instead of one rectangle per anchor.
        """
        self._grid = None
        if grid is not None and int(np.prod(grid)) == np.asarray(boxes).reshape(-1, 4).shape[0]:
            self._grid = (int(grid[0]), int(grid[1]), int(grid[2]))
        self._boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        self._kinds = np.asarray(kinds, np.int8).reshape(-1)
        self._centres = np.asarray(centres, np.float32).reshape(-1, 2)
        self._cell_kinds = np.asarray(cell_kinds, np.int8).reshape(-1)
        self._best = np.asarray(best, np.int64).reshape(-1)
        self._best_iou = np.asarray(best_iou, np.float32).reshape(-1)
        self._gt_numbers = (np.arange(1, self._best.size + 1) if gt_numbers is None or len(gt_numbers) != self._best.size
                            else np.asarray(gt_numbers, np.int64).reshape(-1))
        self._cell = np.zeros(0, np.int64)
        self._cell_rect = None
        self._chosen = -1
        self._regroup()

    def clear(self) -> None:
        z2, z1 = np.zeros((0, 2)), np.zeros(0)
        self.set_anchors(np.zeros((0, 4)), z1, z2, z1, z1, z1)

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown anchor display {mode!r}; choose from {', '.join(MODES)}")
        if mode != self._mode:
            self._mode = mode
            self.invalidate()

    def set_shown_kinds(self, kinds: set[int]) -> None:
        kinds = set(int(k) for k in kinds)
        if kinds != self._shown_kinds:
            self._shown_kinds = kinds
            self._regroup()

    def set_cell(self, indices: np.ndarray, rect: tuple[float, float, float, float] | None,
                 chosen: int = -1) -> None:
        """Highlight one cell: its anchors' indices, its rectangle (scene) and optionally one chosen anchor."""
        indices = np.asarray(indices, np.int64).reshape(-1)
        if np.array_equal(indices, self._cell) and rect == self._cell_rect and chosen == self._chosen:
            return
        self._cell, self._cell_rect, self._chosen = indices, rect, int(chosen)
        self.update()
        self.changed.emit()

    def _regroup(self) -> None:
        self._groups = [(k, np.flatnonzero(self._kinds == k)) for k in PAINT_ORDER if k in self._shown_kinds]
        self._lines = []
        if self._grid is not None:
            merged = [(k, grid_outline_segments(self._boxes, self._kinds == k, self._grid)) for k, _ in self._groups]
            # Merging pays when the shapes are wider than the stride (the usual case); tiny anchors give more
            # segments than boxes, and then one rectangle per anchor is cheaper.
            if sum(lines.shape[0] for _, lines in merged) < sum(idx.size for _, idx in self._groups):
                self._lines = [(k, lines) for k, lines in merged if lines.shape[0]]
        self.invalidate()

    @property
    def line_segments(self) -> list[tuple[int, np.ndarray]]:
        """What the boxes mode draws for a full grid: (kind, [M, 4] x1 y1 x2 y2 scene lines) in paint order;
        empty when one rectangle per anchor is drawn instead."""
        return list(self._lines)

    # --- painting ------------------------------------------------------------------------------------------
    def has_cached_content(self) -> bool:
        return self._mode in (MODE_DOTS, MODE_BOXES) and self._boxes.shape[0] > 0

    def paint_cached(self, painter: QPainter, exposed: QRectF, scale: float) -> None:
        drawn = 0
        if self._mode == MODE_BOXES and self._lines:
            painter.save()
            for kind, lines in self._lines:
                painter.setPen(cosmetic_pen(KIND_COLORS[kind], 1.0, painter=painter))
                painter.drawLines([QLineF(a, b, c, d) for a, b, c, d in lines.tolist()])
            painter.restore()
            drawn = int(sum(idx.size for _, idx in self._groups))
        elif self._mode == MODE_BOXES:
            for kind, idx in self._groups:
                if idx.size:
                    drawn += paint_boxes(painter, self._boxes[idx], KIND_COLORS[kind], exposed, 1.0)
        elif self._mode == MODE_DOTS and self._centres.shape[0]:
            c = self._centres
            vis = ((c[:, 0] >= exposed.left()) & (c[:, 0] <= exposed.right())
                   & (c[:, 1] >= exposed.top()) & (c[:, 1] <= exposed.bottom()))
            painter.save()
            for kind in PAINT_ORDER:
                if kind not in self._shown_kinds:
                    continue
                idx = np.flatnonzero(vis & (self._cell_kinds == kind))
                if idx.size == 0:
                    continue
                pen = cosmetic_pen(KIND_COLORS[kind], self.dot_size, painter=painter)
                pen.setCapStyle(Qt.PenCapStyle.SquareCap)
                painter.setPen(pen)
                painter.drawPoints([QPointF(x, y) for x, y in c[idx].tolist()])
                drawn += int(idx.size)
            painter.restore()
        self.last_painted = drawn

    def paint_live(self, painter: QPainter, exposed: QRectF, scale: float) -> None:
        if self._cell.size and self._cell_rect is not None:
            x1, y1, x2, y2 = self._cell_rect
            painter.save()
            painter.setPen(cosmetic_pen(QColor(255, 255, 255), 1.5, painter=painter))
            painter.setBrush(QColor(255, 255, 255, 60))
            painter.drawRect(QRectF(x1, y1, x2 - x1, y2 - y1))
            painter.restore()
            for k in PAINT_ORDER:
                sel = self._cell[self._kinds[self._cell] == k]
                if sel.size:
                    paint_boxes(painter, self._boxes[sel], KIND_COLORS[k], exposed, 2.0)
            if 0 <= self._chosen < self._boxes.shape[0]:
                box = self._boxes[[self._chosen]]
                paint_boxes(painter, box, QColor(0, 0, 0), exposed, 5.0)
                paint_boxes(painter, box, KIND_COLORS[int(self._kinds[self._chosen])], exposed, 3.0)
        best = self._best[self._best >= 0]
        if best.size:
            boxes = self._boxes[best]
            paint_boxes(painter, boxes, QColor(0, 0, 0), exposed, 3.5)
            paint_boxes(painter, boxes, BEST_COLOR, exposed, 2.0, style=Qt.PenStyle.DashLine)
            keep = np.flatnonzero(visible_mask(boxes.astype(np.float64), exposed))
            gt_of = np.flatnonzero(self._best >= 0)
            # Labelled inside the bottom edge: the top-left corner is where the GT box's own label sits.
            paint_labels(painter, [(float(boxes[i, 0]), float(boxes[i, 3])) for i in keep],
                         [f"best for GT {self._gt_numbers[gt_of[i]]} · IoU {self._best_iou[gt_of[i]]:.2f}"
                          for i in keep],
                         [BEST_COLOR] * keep.size)


__all__ = ["KIND_COLORS", "MODES", "MODE_BOXES", "MODE_CELL", "MODE_DOTS", "PAINT_ORDER", "AnchorLayer"]
