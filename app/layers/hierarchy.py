"""Hierarchy playback: the regions of one Selective Search grouping as they are before merge step s.

At step s the layer shows every region present (``Hierarchy.labels_at(s)``) in a dimmed random colour, the
two regions about to merge in strong colours (orange ``a``, cyan ``b``) with their boxes dashed, and the box
of the region they form drawn solid white. The region raster is ONE image at segmentation resolution painted
stretched over the image (see ``app.layers.superpixels``), so scrubbing the step slider stays fluid.

The hierarchy's boxes are in the pixels of the image it was computed on (the decoded, possibly reduced
image); ``box_scale`` maps them to scene (full-resolution) pixels.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPixmap
from PySide6.QtWidgets import QGraphicsItem

from app.layers.base import OverlayLayer, paint_boxes, paint_labels
from app.layers.superpixels import colorize_labels, paint_raster, rgba_to_qimage
from models.proposals.segmentation import boundary_mask
from models.proposals.selective_search import Hierarchy, Merge

COLOR_A = (255, 140, 0)
COLOR_B = (0, 210, 255)
NEW_BOX = QColor(255, 255, 255)
#: Alpha of the regions not being merged, and of the merging pair.
OTHER_ALPHA = 120
PAIR_ALPHA = 235


class HierarchyLayer(OverlayLayer):
    """Replays one ``Hierarchy``: ``set_step(s)`` shows the state before merge s and highlights merge s."""

    def __init__(self, parent: QGraphicsItem | None = None) -> None:
        super().__init__("Hierarchy playback", parent)
        self._h: Hierarchy | None = None
        self._box_scale = 1.0
        self._step = 0
        self._colors = np.zeros((0, 3), np.uint8)
        self._rgba: np.ndarray | None = None
        self._pixmap = QPixmap()
        self._merge: Merge | None = None
        self._region_count = 0
        self.setZValue(15)
        self.setOpacity(0.8)
        self.setVisible(False)

    # --- state ---------------------------------------------------------------------------------------------
    @property
    def hierarchy(self) -> Hierarchy | None:
        return self._h

    @property
    def step(self) -> int:
        return self._step

    @property
    def n_steps(self) -> int:
        return 0 if self._h is None else self._h.n_steps

    @property
    def merge(self) -> Merge | None:
        """The merge highlighted at the current step (None without a hierarchy or with no merges)."""
        return self._merge

    @property
    def highlighted_pair(self) -> tuple[int, int] | None:
        return None if self._merge is None else (self._merge.a, self._merge.b)

    @property
    def region_count(self) -> int:
        """Regions present before the current merge (the initial regions minus the merges done)."""
        return self._region_count

    @property
    def raster(self) -> np.ndarray | None:
        return self._rgba

    def scene_box(self, region: int) -> np.ndarray:
        """Box of ``region`` in scene pixels."""
        assert self._h is not None
        return self._h.region_boxes[region].astype(np.float64) * self._box_scale

    @property
    def new_box(self) -> np.ndarray | None:
        """Scene box of the region formed at the current step."""
        return None if self._merge is None else self.scene_box(self._merge.new_region)

    def set_hierarchy(self, hierarchy: Hierarchy | None, box_scale: float = 1.0, seed: int = 0) -> None:
        """Show ``hierarchy``; ``box_scale`` = scene pixels per hierarchy-box pixel (1 / DecodedImage.scale)."""
        self._h = hierarchy
        self._box_scale = float(box_scale)
        if hierarchy is not None:
            n = hierarchy.region_boxes.shape[0]
            self._colors = np.random.default_rng(seed).integers(40, 256, (n, 3), dtype=np.uint8)
        self._step = 0
        self._render()

    def set_step(self, step: int) -> None:
        step = max(0, min(int(step), max(self.n_steps - 1, 0)))
        if step != self._step:
            self._step = step
            self._render()

    def _render(self) -> None:
        h = self._h
        if h is None or h.n_initial == 0:
            self._rgba, self._pixmap, self._merge, self._region_count = None, QPixmap(), None, 0
            self.mark_changed()
            return
        s = self._step
        self._merge = h.merge(s) if h.n_steps else None
        self._region_count = h.n_initial - s
        labels = h.labels_at(s)
        lut = np.empty((self._colors.shape[0], 4), np.uint8)
        lut[:, :3] = self._colors
        lut[:, 3] = OTHER_ALPHA
        if self._merge is not None:
            lut[self._merge.a] = (*COLOR_A, PAIR_ALPHA)
            lut[self._merge.b] = (*COLOR_B, PAIR_ALPHA)
        rgba = colorize_labels(labels, lut)
        rgba[boundary_mask(labels)] = (0, 0, 0, 200)  # region outlines: see where one region ends
        self._rgba = rgba
        self._pixmap = QPixmap.fromImage(rgba_to_qimage(rgba))
        self.mark_changed()

    # --- painting ------------------------------------------------------------------------------------------
    def paint_layer(self, painter: QPainter, exposed: QRectF, scale: float) -> None:
        paint_raster(painter, self._pixmap, self.image_rect(), exposed)
        m = self._merge
        if m is None:
            return
        pair = np.stack([self.scene_box(m.a), self.scene_box(m.b)])
        paint_boxes(painter, pair, [QColor(*COLOR_A), QColor(*COLOR_B)], exposed, 2.0, 0, Qt.PenStyle.DashLine)
        new = self.new_box
        assert new is not None
        paint_boxes(painter, new[None], QColor(0, 0, 0, 200), exposed, 5.0)
        paint_boxes(painter, new[None], NEW_BOX, exposed, 2.5)
        paint_labels(painter, [(float(new[0]), float(new[1]))], [f"step {m.step + 1}: sim {m.similarity:.2f}"],
                     [NEW_BOX])


__all__ = ["COLOR_A", "COLOR_B", "HierarchyLayer"]
