"""The RoIs one training step of the detection head would sample: background thin, foreground bold on top.

Boxes come in scene pixels from the stage (computed by :func:`models.detection.detectors.roi_heads.sample_rois`);
ground-truth boxes the head adds to its candidates and then samples as foreground are drawn dashed, so the
user sees which foreground RoIs are the perfect boxes rather than proposals.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QGraphicsItem

from app.layers.base import OverlayLayer, paint_boxes

FG_COLOR = QColor(40, 230, 90)
BG_COLOR = QColor(70, 140, 255, 200)


class RoiSamplingLayer(OverlayLayer):
    """Foreground and background RoIs of one sampled batch."""

    def __init__(self, parent: QGraphicsItem | None = None) -> None:
        super().__init__("RoI sampling", parent)
        self._fg = np.zeros((0, 4), np.float32)
        self._bg = np.zeros((0, 4), np.float32)
        self._fg_is_gt = np.zeros(0, bool)
        self.setZValue(25)
        self.setVisible(False)

    @property
    def foreground(self) -> np.ndarray:
        return self._fg

    @property
    def background(self) -> np.ndarray:
        return self._bg

    @property
    def foreground_is_gt(self) -> np.ndarray:
        return self._fg_is_gt

    def set_rois(self, foreground: np.ndarray, background: np.ndarray, foreground_is_gt: np.ndarray | None = None) -> None:
        self._fg = np.asarray(foreground, np.float32).reshape(-1, 4)
        self._bg = np.asarray(background, np.float32).reshape(-1, 4)
        self._fg_is_gt = (np.zeros(self._fg.shape[0], bool) if foreground_is_gt is None
                          else np.asarray(foreground_is_gt, bool).reshape(-1))
        self.mark_changed()

    def clear(self) -> None:
        self.set_rois(np.zeros((0, 4)), np.zeros((0, 4)))

    def paint_layer(self, painter: QPainter, exposed: QRectF, scale: float) -> None:
        paint_boxes(painter, self._bg, BG_COLOR, exposed, 1.0)
        if self._fg.shape[0]:
            paint_boxes(painter, self._fg, FG_COLOR, exposed, 2.0, mask=~self._fg_is_gt)
            paint_boxes(painter, self._fg, FG_COLOR, exposed, 2.0, style=Qt.PenStyle.DashLine, mask=self._fg_is_gt)


__all__ = ["BG_COLOR", "FG_COLOR", "RoiSamplingLayer"]
