"""Crowd and difficult boxes in training: regions that are neither object nor background.

COCO marks a group of people too dense to box one by one as one ``iscrowd`` box; VOC marks objects too hard
to expect as ``difficult``. Evaluation ignores both (a detection on one is neither right nor wrong), so training
must not teach either answer there: trained as an object, a crowd box (594×225 px over 13 people in a
coco_tiny photo) teaches the RPN and the head that a strip of many people is one person; dropped, its people
would be taught as background. So a crowd or difficult box is never a positive, and an anchor or RoI lying
mostly inside one (more than 0.7 of its own area), or overlapping one as much as the stage lets a negative
overlap an object, is not sampled as a negative either; an anchor or RoI that
matches an ordinary object stays a positive wherever it lies. Detectron (Girshick et al.) leaves crowd boxes
out of the targets and filters the RoIs inside them at the same 0.7 (``TRAIN.CROWD_FILTER_THRESH``, there
positives too); torchvision's and Detectron2's COCO loaders simply drop crowd boxes, which teaches the people
inside them as background.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from models.boxes import box_iou

#: A negative anchor or RoI lying more than this share of its own area inside an ignored region is left out
#: of the loss (Detectron's crowd filter threshold).
IGNORE_REGION_IOF = 0.7

#: Label values shared with the anchor and RoI labellings (models/detection/anchors.py).
_NEGATIVE, _IGNORED = 0, -1


def inside_share(boxes: Tensor, regions: Tensor) -> Tensor:
    """For each box [N, 4], the largest share of its own area inside one of ``regions`` [M, 4] (0 when M = 0):
    intersection over the box's area, not IoU, so a small box well inside a large crowd box scores 1."""
    boxes = boxes.float().reshape(-1, 4)
    regions = regions.to(boxes).reshape(-1, 4)
    if regions.numel() == 0 or boxes.numel() == 0:
        return boxes.new_zeros(boxes.shape[0])
    lt = torch.maximum(boxes[:, None, :2], regions[None, :, :2])
    rb = torch.minimum(boxes[:, None, 2:], regions[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0).prod(-1)
    return (inter / area.clamp(min=1e-6)[:, None]).max(dim=1).values


def ignore_inside(labels: Tensor, boxes: Tensor, regions: Tensor | None, negative_iou: float | None = None,
                  iof: float = IGNORE_REGION_IOF) -> Tensor:
    """``labels`` (1 object, 0 background, -1 ignored) with every background box set to ignored that lies
    more than ``iof`` of its area inside one of ``regions``, or overlaps one at IoU ≥ ``negative_iou`` (the
    stage's bound for background: a box that would be no negative were the region an object, such as a box
    around a small difficult object); positives stay. A new tensor where anything changes."""
    if regions is None or regions.numel() == 0 or labels.numel() == 0:
        return labels
    near = inside_share(boxes, regions) > iof
    if negative_iou is not None:
        near |= box_iou(boxes.float().reshape(-1, 4), regions.to(boxes).float().reshape(-1, 4)).max(dim=1).values \
            >= negative_iou
    inside = (labels == _NEGATIVE) & near
    if not bool(inside.any()):
        return labels
    out = labels.clone()
    out[inside] = _IGNORED
    return out


def training_truth(target: Mapping[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
    """``(boxes, labels, regions)`` a detector trains on from a dataset target: the ordinary objects, and the
    crowd or difficult ones (``target["difficult"]``) as regions to ignore. A target without the flag has none;
    one without ``labels`` (the class-agnostic RPN needs none) counts every box as class 1."""
    boxes = torch.as_tensor(target["boxes"]).reshape(-1, 4)
    labels = target.get("labels")
    labels = (torch.ones(boxes.shape[0], dtype=torch.int64, device=boxes.device) if labels is None
              else torch.as_tensor(labels).reshape(-1))
    flags = target.get("difficult")
    if flags is None:
        return boxes, labels, boxes[:0]
    flags = torch.as_tensor(flags, dtype=torch.bool, device=boxes.device).reshape(-1)
    if not bool(flags.any()):
        return boxes, labels, boxes[:0]
    return boxes[~flags], labels[~flags], boxes[flags]


__all__ = ["IGNORE_REGION_IOF", "ignore_inside", "inside_share", "training_truth"]
