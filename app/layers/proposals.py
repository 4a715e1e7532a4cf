"""The proposals layer: Selective Search boxes, all or the top N, coloured by rank or by best IoU with GT.

One item paints every box (see ``app.layers.base``): a 2,000-box proposal set costs a handful of
``drawRects`` calls. Colours are prepared in a few discrete groups when the boxes, N or the colouring change,
never in ``paint``. Groups are painted in a fixed order so what matters ends on top: the best-ranked boxes
(rank colouring) or the boxes that hit a ground-truth object (IoU colouring).

Boxes come in scene coordinates (full-resolution image pixels); the best IoU of each box with the counted
ground truth is computed by the caller (``models.proposals.metrics``) and handed over, so the layer only draws.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QGraphicsItem

from app.layers.base import paint_boxes, paint_labels
from app.layers.cached import CachedOverlayLayer

COLOR_BY_RANK = "rank"
COLOR_BY_IOU = "iou"
COLOR_MODES = (COLOR_BY_RANK, COLOR_BY_IOU)

#: Rank colouring uses this many hue steps (red = best ranked … violet = last shown).
RANK_LEVELS = 12
#: IoU colouring: (lower bound, colour, line width); the thresholds are those of the recall read-out.
IOU_BANDS: tuple[tuple[float, QColor, float], ...] = (
    (0.0, QColor(90, 140, 255, 150), 1.0),
    (0.5, QColor(255, 200, 0, 230), 1.5),
    (0.7, QColor(40, 230, 90, 255), 2.0),
)
NO_GT_COLOR = QColor(200, 200, 200, 170)


def rank_color(level: int, levels: int = RANK_LEVELS) -> QColor:
    """Hue from red (best ranks) to violet (last shown)."""
    t = level / max(levels - 1, 1)
    return QColor.fromHsvF(0.78 * t, 0.9, 1.0, 0.9)


class ProposalsLayer(CachedOverlayLayer):
    """Draws ranked proposal boxes; knows which box is under a point for the hover read-out.

    The thousands of boxes are painted once per view into the layer's cache (2,000 semi-transparent boxes
    cost ~30 ms a frame painted live); the hovered box is drawn live on top, so hovering repaints nothing else.
    """

    #: Hit tolerance around a box edge, in screen pixels.
    TOLERANCE = 4.0

    def __init__(self, parent: QGraphicsItem | None = None) -> None:
        super().__init__("Proposals", parent)
        self._boxes = np.zeros((0, 4), np.float32)
        self._best_iou: np.ndarray | None = None
        self._top_n = 0
        self._color_by = COLOR_BY_RANK
        self._hover = -1
        self._groups: list[tuple[np.ndarray, QColor, float]] = []
        self.last_painted = 0
        self.setZValue(20)
        self.setVisible(False)

    # --- state ---------------------------------------------------------------------------------------------
    @property
    def boxes(self) -> np.ndarray:
        """All proposals (scene coordinates), best-ranked first."""
        return self._boxes

    @property
    def best_iou(self) -> np.ndarray | None:
        """[N] best IoU of each proposal with the counted ground truth; None when there is no ground truth."""
        return self._best_iou

    @property
    def top_n(self) -> int:
        """How many best-ranked boxes are shown; 0 means all."""
        return self._top_n

    @property
    def shown_count(self) -> int:
        n = self._boxes.shape[0]
        return n if self._top_n <= 0 else min(n, self._top_n)

    @property
    def shown_boxes(self) -> np.ndarray:
        return self._boxes[: self.shown_count]

    @property
    def color_by(self) -> str:
        return self._color_by

    @property
    def hover(self) -> int:
        return self._hover

    @property
    def groups(self) -> list[tuple[np.ndarray, QColor, float]]:
        """What is painted, in order: (box indices, colour, line width). For tests and legends."""
        return self._groups

    def set_proposals(self, boxes: np.ndarray, best_iou: np.ndarray | None = None) -> None:
        self._boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        self._best_iou = None if best_iou is None else np.asarray(best_iou, np.float64).reshape(-1)
        if self._best_iou is not None and self._best_iou.shape[0] != self._boxes.shape[0]:
            raise ValueError(f"{self._best_iou.shape[0]} IoU values for {self._boxes.shape[0]} boxes")
        self._hover = -1
        self._regroup()

    def set_best_iou(self, best_iou: np.ndarray | None) -> None:
        """New ground truth, same boxes (e.g. the user edited a box)."""
        self.set_proposals(self._boxes, best_iou)

    def clear(self) -> None:
        self.set_proposals(np.zeros((0, 4), np.float32), None)

    def set_top_n(self, n: int) -> None:
        n = max(0, int(n))
        if n != self._top_n:
            self._top_n = n
            if self._hover >= self.shown_count:
                self._hover = -1
            self._regroup()

    def set_color_by(self, mode: str) -> None:
        if mode not in COLOR_MODES:
            raise ValueError(f"unknown colouring {mode!r}; choose from {', '.join(COLOR_MODES)}")
        if mode != self._color_by:
            self._color_by = mode
            self._regroup()

    def set_hover(self, index: int) -> None:
        index = int(index) if 0 <= int(index) < self.shown_count else -1
        if index != self._hover:
            self._hover = index
            self.update()

    def _regroup(self) -> None:
        """Split the shown boxes into colour groups, in paint order (last painted ends on top)."""
        n = self.shown_count
        groups: list[tuple[np.ndarray, QColor, float]] = []
        if n:
            if self._color_by == COLOR_BY_IOU:
                if self._best_iou is None:
                    groups.append((np.arange(n), NO_GT_COLOR, 1.0))
                else:
                    iou = self._best_iou[:n]
                    bounds = [b for b, _, _ in IOU_BANDS] + [np.inf]
                    for (lo, color, width), hi in zip(IOU_BANDS, bounds[1:], strict=True):
                        idx = np.flatnonzero((iou >= lo) & (iou < hi))
                        if idx.size:
                            groups.append((idx, color, width))
            else:
                levels = min(RANK_LEVELS, n)
                level = (np.arange(n) * levels) // n
                for lv in range(levels - 1, -1, -1):  # worst first, best on top
                    idx = np.flatnonzero(level == lv)
                    if idx.size:
                        groups.append((idx, rank_color(lv, levels), 1.5 if lv == 0 else 1.0))
        self._groups = groups
        self.invalidate()

    # --- hit testing ---------------------------------------------------------------------------------------
    def hit_test(self, x: float, y: float, zoom: float = 1.0) -> int:
        """Index of the best-ranked shown box whose outline passes within ``TOLERANCE`` screen px of (x, y).

        Outlines, not interiors: with hundreds of nested boxes nearly every point is inside many of them, but
        the line under the mouse is the one the user is looking at. -1 when none.
        """
        boxes = self.shown_boxes
        if boxes.shape[0] == 0:
            return -1
        tol = self.TOLERANCE / max(zoom, 1e-6)
        x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
        in_x = (x >= x1 - tol) & (x <= x2 + tol)
        in_y = (y >= y1 - tol) & (y <= y2 + tol)
        near_v = (np.abs(x - x1) <= tol) | (np.abs(x - x2) <= tol)
        near_h = (np.abs(y - y1) <= tol) | (np.abs(y - y2) <= tol)
        hit = np.flatnonzero((near_v & in_y) | (near_h & in_x))
        return int(hit[0]) if hit.size else -1

    def describe(self, index: int) -> str:
        """One line for the hover read-out: rank, size and best IoU of box ``index``."""
        if not 0 <= index < self._boxes.shape[0]:
            return ""
        x1, y1, x2, y2 = (float(v) for v in self._boxes[index])
        text = f"proposal #{index + 1} of {self._boxes.shape[0]} · {x2 - x1:.0f}×{y2 - y1:.0f} px at ({x1:.0f}, {y1:.0f})"
        if self._best_iou is not None:
            text += f" · best IoU with GT {self._best_iou[index]:.2f}"
        else:
            text += " · no ground truth"
        return text

    # --- painting ------------------------------------------------------------------------------------------
    def has_cached_content(self) -> bool:
        return bool(self._groups)

    def paint_cached(self, painter: QPainter, exposed: QRectF, scale: float) -> None:
        drawn = 0
        for idx, color, width in self._groups:
            drawn += paint_boxes(painter, self._boxes[idx], color, exposed, width)
        self.last_painted = drawn

    def paint_live(self, painter: QPainter, exposed: QRectF, scale: float) -> None:
        if self._hover >= 0:
            box = self._boxes[[self._hover]]
            paint_boxes(painter, box, QColor(0, 0, 0, 200), exposed, 4.5)
            paint_boxes(painter, box, QColor(255, 255, 255), exposed, 2.5, 40)
            label = f"#{self._hover + 1}"
            if self._best_iou is not None:
                label += f" IoU {self._best_iou[self._hover]:.2f}"
            paint_labels(painter, [(float(box[0, 0]), float(box[0, 1]))], [label], [QColor(255, 255, 255)])


__all__ = ["COLOR_BY_IOU", "COLOR_BY_RANK", "COLOR_MODES", "IOU_BANDS", "ProposalsLayer", "rank_color"]

