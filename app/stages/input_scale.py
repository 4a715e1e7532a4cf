"""Network-input pixels ↔ scene pixels, for the detector stages that draw a trace.

Layers draw in scene pixels (the full-resolution displayed image); a detector's trace is in the pixels of its
*network input* (the image resized so the shorter side is ``min_size``, e.g. 600), and anchor sizes are meant
in those pixels. One :class:`InputScale` per image maps between the two: ``sx``/``sy`` are input pixels per
scene pixel, taken from the input size and the displayed size (so it holds whichever pixels, full or a reduced
preview, the model was run on).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class InputScale:
    """Input pixels per scene pixel along x (``sx``) and y (``sy``)."""

    sx: float = 1.0
    sy: float = 1.0

    @classmethod
    def from_sizes(cls, input_size: tuple[int, int], scene_width: int, scene_height: int) -> InputScale:
        """``input_size`` is (h, w) as traces store it; the scene size is (width, height)."""
        h, w = input_size
        return cls(float(w) / max(1, int(scene_width)), float(h) / max(1, int(scene_height)))

    @property
    def is_identity(self) -> bool:
        return self.sx == 1.0 and self.sy == 1.0

    def boxes_to_scene(self, boxes: np.ndarray) -> np.ndarray:
        b = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
        b[:, 0::2] /= self.sx
        b[:, 1::2] /= self.sy
        return b

    def boxes_to_input(self, boxes: np.ndarray) -> np.ndarray:
        b = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
        b[:, 0::2] *= self.sx
        b[:, 1::2] *= self.sy
        return b

    def points_to_scene(self, points: np.ndarray) -> np.ndarray:
        p = np.asarray(points, np.float32).reshape(-1, 2).copy()
        p[:, 0] /= self.sx
        p[:, 1] /= self.sy
        return p

    def point_to_input(self, x: float, y: float) -> tuple[float, float]:
        return float(x) * self.sx, float(y) * self.sy


__all__ = ["InputScale"]
