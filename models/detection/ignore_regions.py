"""Crowd and difficult boxes in training: regions that are neither object nor background.

COCO marks a group of people too dense to box one by one as one ``iscrowd`` box; VOC marks objects too hard
to expect as ``difficult``. Training on either as an ordinary object (594×225 px over 13 people in a
coco_tiny photo) teaches the RPN and the head that a strip of many people is one person. In training: a crowd
or difficult box is never a positive, and an anchor, RoI or crop that would be a negative only because its
overlap with such a region does not count (IoU with the region at or above the stage's background bound: the
RPN's 0.3, the head's 0.5) is ignored rather than taught as background. Boxes inside a crowd that overlap it
little stay negatives.

That was VOC's evaluation of a difficult box (a detection is ignored when the box it overlaps best is the
region, at IoU > 0.5), which the evaluation applied to crowds too until 2026-12-01. It now scores a crowd region
as COCO does (models/detection/evaluation.py): a detection mostly inside one (half its area) is not scored,
since it found one of the unboxed people there. So training is now stricter than the evaluation inside a crowd:
it still teaches a half-person box there as background, which the evaluation no longer counts either way.
Detectron's crowd filter, which also leaves out every negative lying mostly inside a crowd box (over 0.7 of its
area), is the training rule that would match; measured under the old scoring only, it lowered AP@0.5 on the
first fold of both coco_tiny splits (bench/README.md, "Crowd boxes in training"), so it is not the default
until it is measured under the scoring the product now uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from models.boxes import box_iou

#: Label values shared with the anchor and RoI labellings (models/detection/anchors.py).
_NEGATIVE, _IGNORED = 0, -1


def ignore_near(labels: Tensor, boxes: Tensor, regions: Tensor | None, negative_iou: float) -> Tensor:
    """``labels`` (1 object, 0 background, -1 ignored) of ``boxes`` [N, 4] with every background box that
    overlaps one of ``regions`` at IoU ≥ ``negative_iou`` (the stage's bound for background: it would be no
    negative were the region an object) set to ignored; positives stay. A new tensor where anything changes."""
    if regions is None or regions.numel() == 0 or labels.numel() == 0:
        return labels
    boxes = boxes.float().reshape(-1, 4)
    overlap = box_iou(boxes, regions.to(boxes).float().reshape(-1, 4)).max(dim=1).values
    near = (labels == _NEGATIVE) & (overlap >= negative_iou)
    if not bool(near.any()):
        return labels
    out = labels.clone()
    out[near] = _IGNORED
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


__all__ = ["ignore_near", "training_truth"]
