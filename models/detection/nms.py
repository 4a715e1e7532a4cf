"""Non-maximum suppression: a traced version for the explorer, torchvision's where only the result matters.

The explorer shows *why* a box disappeared: :func:`nms_trace` walks the boxes in score order, as greedy NMS
does, and records for every suppressed box the kept box that suppressed it. It computes one IoU row per kept box
(never the N×N matrix), fine for the few thousand boxes one image has; the detectors call :func:`batched_nms`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torchvision.ops import batched_nms as _tv_batched_nms
from torchvision.ops import nms as _tv_nms


@dataclass
class NmsTrace:
    """Greedy NMS, explained.

    ``kept``: indices (into the input) of the survivors, best score first — exactly ``torchvision.ops.nms``.
    ``suppressed_by``: [N] int64, for each input box the index of the kept box that removed it, -1 if kept.
    ``iou_with_suppressor``: [N] float32, the IoU that removed it (0 for kept boxes).
    """

    kept: np.ndarray
    suppressed_by: np.ndarray
    iou_with_suppressor: np.ndarray
    iou_threshold: float

    def suppressed(self, index: int) -> list[int]:
        """The boxes that ``index`` suppressed."""
        return np.where(self.suppressed_by == index)[0].tolist()


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Indices of kept boxes, best first (torchvision.ops.nms)."""
    return _tv_nms(boxes.float(), scores.float(), iou_threshold)


def batched_nms(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each group (class) independently, best first (torchvision.ops.batched_nms)."""
    return _tv_batched_nms(boxes.float(), scores.float(), groups, iou_threshold)


def nms_trace(boxes: Tensor | np.ndarray, scores: Tensor | np.ndarray, iou_threshold: float,
              groups: Tensor | np.ndarray | None = None) -> NmsTrace:
    """Greedy NMS recording who suppressed whom; with ``groups`` only boxes of one group suppress each other.

    A box is suppressed by the first *kept* box (in score order) overlapping it by more than
    ``iou_threshold`` — the same rule and tie order as torchvision (stable sort by descending score).
    """
    b = torch.as_tensor(np.asarray(boxes) if not isinstance(boxes, Tensor) else boxes).float().reshape(-1, 4)
    s = torch.as_tensor(np.asarray(scores) if not isinstance(scores, Tensor) else scores).float().reshape(-1)
    n = b.shape[0]
    suppressed_by = np.full(n, -1, dtype=np.int64)
    iou_with = np.zeros(n, dtype=np.float32)
    if n == 0:
        return NmsTrace(np.zeros(0, np.int64), suppressed_by, iou_with, float(iou_threshold))
    order = torch.sort(s.cpu(), descending=True, stable=True).indices.numpy()
    bn = b.cpu().numpy().astype(np.float64)
    area = np.clip(bn[:, 2] - bn[:, 0], 0, None) * np.clip(bn[:, 3] - bn[:, 1], 0, None)
    g = None
    if groups is not None:
        g = np.asarray(groups.cpu() if isinstance(groups, Tensor) else groups).reshape(-1)
    removed = np.zeros(n, dtype=bool)
    kept: list[int] = []
    # One IoU row per *kept* box, never the full N×N matrix: 6000 RPN boxes stay a few MB.
    for i in order:
        if removed[i]:
            continue
        kept.append(int(i))
        cand = np.where(~removed)[0]
        if g is not None:
            cand = cand[g[cand] == g[i]]
        cand = cand[cand != i]
        if cand.size == 0:
            continue
        iw = np.clip(np.minimum(bn[i, 2], bn[cand, 2]) - np.maximum(bn[i, 0], bn[cand, 0]), 0, None)
        ih = np.clip(np.minimum(bn[i, 3], bn[cand, 3]) - np.maximum(bn[i, 1], bn[cand, 1]), 0, None)
        inter = iw * ih
        union = area[i] + area[cand] - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
        hit = iou > iou_threshold
        newly = cand[hit]
        removed[newly] = True
        removed[i] = True
        suppressed_by[newly] = i
        iou_with[newly] = iou[hit]
    return NmsTrace(np.asarray(kept, dtype=np.int64), suppressed_by, iou_with, float(iou_threshold))
