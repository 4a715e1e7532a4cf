"""What the explorer shows of a Faster R-CNN trace's RPN and box regression, as small result objects.

The network ran once (:meth:`models.detection.detectors.faster_rcnn.FasterRCNN.trace`); these functions only re-read
its outputs: the objectness of each feature-map cell (the best of its anchors), the proposals the RPN keeps
for a top-N and an NMS threshold the user picks (NMS re-run on the stored pre-NMS boxes, never the network),
and, for one anchor or one RoI, the box before and after its predicted deltas.

Boxes are in network-input pixels, as in the trace.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from models.boxes import HEAD_STDS, RPN_STDS, decode, encode
from models.detection.anchors import AnchorSet
from models.detection.nms import nms


def objectness_grid(objectness: np.ndarray, feature_size: tuple[int, int], per_cell: int) -> np.ndarray:
    """[fh, fw] objectness of each cell: the maximum over its ``per_cell`` anchors (anchor order is
    cell-major, as :func:`models.detection.anchors.grid_anchors`)."""
    fh, fw = int(feature_size[0]), int(feature_size[1])
    obj = np.asarray(objectness, np.float32).reshape(-1)
    if obj.size != fh * fw * per_cell:
        raise ValueError(f"{obj.size} objectness values for {fh}×{fw} cells × {per_cell} anchors")
    return obj.reshape(fh, fw, per_cell).max(axis=2)


@dataclass
class ProposalSelection:
    """Top-N proposals before and after NMS at one threshold (indices into the pre-NMS boxes)."""

    top_n: int
    iou_threshold: float
    before: np.ndarray  # [<=N] the N best-scoring boxes entering NMS, best first
    kept: np.ndarray  # [<=N] the first N NMS survivors, best first (torchvision.ops.nms order)
    survivors: int  # NMS survivors before the top-N cut
    candidates: int  # boxes entering NMS


def select_proposals(boxes: np.ndarray, scores: np.ndarray, top_n: int, iou_threshold: float) -> ProposalSelection:
    """The RPN's last two steps with other numbers: greedy NMS at ``iou_threshold`` over every pre-NMS box
    (:func:`models.detection.nms.nms`, i.e. ``torchvision.ops.nms``), then the ``top_n`` best survivors."""
    b = torch.as_tensor(np.asarray(boxes, np.float32).reshape(-1, 4))
    s = torch.as_tensor(np.asarray(scores, np.float32).reshape(-1))
    if b.shape[0] != s.shape[0]:
        raise ValueError(f"{b.shape[0]} boxes but {s.shape[0]} scores")
    n = max(0, int(top_n))
    thr = float(iou_threshold)
    if b.shape[0] == 0:
        empty = np.zeros(0, np.int64)
        return ProposalSelection(n, thr, empty, empty, 0, 0)
    order = torch.sort(s, descending=True, stable=True).indices
    kept = nms(b, s, thr)
    return ProposalSelection(n, thr, order[:n].numpy().astype(np.int64), kept[:n].numpy().astype(np.int64),
                             int(kept.numel()), int(b.shape[0]))


@dataclass
class AnchorRegression:
    """One anchor and where the RPN's deltas move it (the proposal before clipping and NMS)."""

    index: int
    cell: tuple[int, int]  # (row, column) on the feature map
    size: float
    ratio: float
    anchor: np.ndarray  # [4] input pixels
    deltas: np.ndarray  # [4] (dx, dy, dw, dh) as the RPN predicts them (RPN_STDS = 1: un-normalised)
    box: np.ndarray  # [4] decode(anchor, deltas): the anchor moved, not yet clipped to the image
    objectness: float


def anchor_regression(anchors: AnchorSet, deltas: np.ndarray, objectness: np.ndarray, index: int) -> AnchorRegression:
    """Anchor ``index`` of the trace's anchor set, decoded with its RPN deltas (:func:`models.boxes.decode`)."""
    n = anchors.boxes.shape[0]
    i = int(index)
    if not 0 <= i < n:
        raise IndexError(f"anchor {i} of {n}")
    a = anchors.boxes[i: i + 1].float().cpu()
    d = torch.as_tensor(np.asarray(deltas, np.float32).reshape(-1, 4)[i: i + 1])
    box = decode(a, d, RPN_STDS)[0].numpy()
    per = anchors.per_cell
    cell = i // per
    k = i % per
    nr = len(anchors.ratios)
    return AnchorRegression(i, (cell // anchors.feature_size[1], cell % anchors.feature_size[1]),
                            float(anchors.sizes[k // nr]), float(anchors.ratios[k % nr]), a[0].numpy(),
                            d[0].numpy(), box, float(np.asarray(objectness).reshape(-1)[i]))


def best_anchor_in_cell(objectness: np.ndarray, per_cell: int, row: int, col: int, width: int) -> int:
    """Index of the highest-objectness anchor of cell (row, col) on a map ``width`` cells wide."""
    start = (int(row) * int(width) + int(col)) * int(per_cell)
    return start + int(np.argmax(np.asarray(objectness).reshape(-1)[start: start + per_cell]))


@dataclass
class RoIRegression:
    """One RoI of the head and its per-class regressed boxes with the class probabilities."""

    index: int
    roi: np.ndarray  # [4] input pixels (a proposal after the RPN's NMS)
    roi_score: float  # the RPN's objectness of the proposal
    class_scores: np.ndarray  # [K+1] softmax, column 0 background
    class_boxes: np.ndarray  # [K+1, 4] decoded with the head's deltas and clipped to the image
    deltas: np.ndarray  # [K+1, 4] deltas (HEAD_STDS-normalised) mapping the RoI onto each class box
    best_class: int  # argmax over the object classes (1..K)


def roi_regression(rois: np.ndarray, roi_scores: np.ndarray, class_scores: np.ndarray, class_boxes: np.ndarray,
                   index: int) -> RoIRegression:
    """RoI ``index`` with its per-class boxes. ``deltas`` are re-encoded from the (clipped) class boxes, so
    for a box the clipping moved they are what reaches the image, not the raw network output."""
    n = int(np.asarray(rois).shape[0])
    i = int(index)
    if not 0 <= i < n:
        raise IndexError(f"RoI {i} of {n}")
    roi = np.asarray(rois, np.float32)[i]
    cboxes = np.asarray(class_boxes, np.float32)[i].reshape(-1, 4)
    scores = np.asarray(class_scores, np.float32)[i].reshape(-1)
    ref = torch.as_tensor(roi).reshape(1, 4).expand(cboxes.shape[0], 4)
    deltas = encode(ref, torch.as_tensor(cboxes), HEAD_STDS).numpy()
    best = 1 + int(np.argmax(scores[1:])) if scores.size > 1 else 0
    return RoIRegression(i, roi, float(np.asarray(roi_scores).reshape(-1)[i]), scores, cboxes, deltas, best)


def roi_at(rois: np.ndarray, scores: np.ndarray, x: float, y: float) -> int:
    """The best-scoring RoI containing input point (x, y); -1 when none does."""
    b = np.asarray(rois, np.float32).reshape(-1, 4)
    inside = np.flatnonzero((b[:, 0] <= x) & (x <= b[:, 2]) & (b[:, 1] <= y) & (y <= b[:, 3]))
    if inside.size == 0:
        return -1
    s = np.asarray(scores, np.float32).reshape(-1)[inside]
    return int(inside[int(np.argmax(s))])


__all__ = ["AnchorRegression", "ProposalSelection", "RoIRegression", "anchor_regression", "best_anchor_in_cell",
           "objectness_grid", "roi_at", "roi_regression", "select_proposals"]
