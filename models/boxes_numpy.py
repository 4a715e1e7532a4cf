"""Box overlap on NumPy arrays: the one IoU that evaluation, proposal metrics and the synthetic generator share.

Kept apart from :mod:`models.boxes` (which works on torch tensors) so that the modules that only need NumPy
(proposal metrics in the GUI, the evaluation of saved detections, the shape generator) do not import torch.
:mod:`models.boxes` re-exports :func:`box_iou_numpy` so detectors find both IoUs in one place.
"""

from __future__ import annotations

import numpy as np


def _areas_and_intersection(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Areas of ``a`` [N] and ``b`` [M] and their pairwise intersections [N, M] (float64, exclusive corners)."""
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    return area_a, area_b, iw * ih


def box_iou_numpy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` [N, 4] with every box in ``b`` [M, 4] as a float64 [N, M] matrix.

    Boxes are ``[x1, y1, x2, y2]`` with exclusive corners (area = (x2-x1)·(y2-y1), no ``+ 1``). A pair whose
    union is empty (two degenerate boxes) has IoU 0, never NaN; empty inputs give an empty matrix.
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]), np.float64)
    area_a, area_b, inter = _areas_and_intersection(a, b)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def box_ioa_numpy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The share of each box in ``a`` [N, 4] that lies inside each box in ``b`` [M, 4] (intersection over the area
    of ``a``), float64 [N, M]: how COCO's evaluation overlaps a detection with a crowd region, which holds many
    objects, so that a detection of one of them is "in" the region without matching its extent. A box of ``a``
    with no area gives 0."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]), np.float64)
    area_a, _, inter = _areas_and_intersection(a, b)
    return np.where(area_a[:, None] > 0, inter / np.where(area_a[:, None] > 0, area_a[:, None], 1.0), 0.0)


__all__ = ["box_ioa_numpy", "box_iou_numpy"]
