"""Box arithmetic shared by every detector: IoU and the R-CNN box parametrisation.

Boxes are float ``[x1, y1, x2, y2]`` in pixels with x2/y2 exclusive, so a box's width is ``x2 - x1`` (no
``+ 1`` as in the original Caffe code). The parametrisation is the one of R-CNN / Fast R-CNN / Faster R-CNN:

    tx = (gx - px) / pw,  ty = (gy - py) / ph,  tw = log(gw / pw),  th = log(gh / ph)

with centres ``(px, py)`` and sizes ``(pw, ph)``. The papers normalise the targets by fixed standard deviations
(0.1, 0.1, 0.2, 0.2) for the detection head and (1, 1, 1, 1) for the RPN; we express that as ``stds`` and
divide (torchvision's ``BoxCoder`` multiplies by ``weights = 1 / stds``, the same numbers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.ops import box_iou as _tv_box_iou

from models.boxes_numpy import box_iou_numpy  # noqa: F401  (the NumPy IoU, re-exported beside box_iou)

#: exp() is clamped so a wild regression output cannot produce an inf box: log(1000 / 16), as torchvision.
BBOX_XFORM_CLIP = math.log(1000.0 / 16)

#: Target standard deviations of the Fast R-CNN head (the papers' BBOX_NORMALIZE_STDS).
HEAD_STDS = (0.1, 0.1, 0.2, 0.2)
#: The RPN regresses un-normalised targets.
RPN_STDS = (1.0, 1.0, 1.0, 1.0)


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU matrix [len(a), len(b)]; empty inputs give an empty matrix rather than an error."""
    if a.numel() == 0 or b.numel() == 0:
        return torch.zeros((a.shape[0], b.shape[0]), dtype=torch.float32, device=a.device)
    return _tv_box_iou(a.float(), b.float())


def box_area(boxes: Tensor) -> Tensor:
    """Area of xyxy boxes; degenerate boxes have area 0, never negative."""
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)


def _std_tensor(stds: Sequence[float], like: Tensor) -> Tensor:
    return torch.as_tensor(stds, dtype=like.dtype, device=like.device)


def encode(reference: Tensor, target: Tensor, stds: Sequence[float] = HEAD_STDS,
           means: Sequence[float] = (0.0, 0.0, 0.0, 0.0)) -> Tensor:
    """Deltas that move each ``reference`` box (anchor, proposal) onto the matching ``target`` box.

    Both are [N, 4]; the result is [N, 4] ``(t - means) / stds``. Used to build regression targets.
    """
    reference = reference.float()
    target = target.float()
    pw = reference[:, 2] - reference[:, 0]
    ph = reference[:, 3] - reference[:, 1]
    px = reference[:, 0] + 0.5 * pw
    py = reference[:, 1] + 0.5 * ph
    gw = target[:, 2] - target[:, 0]
    gh = target[:, 3] - target[:, 1]
    gx = target[:, 0] + 0.5 * gw
    gy = target[:, 1] + 0.5 * gh
    t = torch.stack([(gx - px) / pw, (gy - py) / ph, torch.log(gw / pw), torch.log(gh / ph)], dim=1)
    return (t - _std_tensor(means, t)) / _std_tensor(stds, t)


def decode(reference: Tensor, deltas: Tensor, stds: Sequence[float] = HEAD_STDS,
           means: Sequence[float] = (0.0, 0.0, 0.0, 0.0), clip: float = BBOX_XFORM_CLIP) -> Tensor:
    """Apply deltas to reference boxes: the inverse of :func:`encode`.

    ``deltas`` may be [N, 4] or [N, 4 * C] (one set per class, the Fast R-CNN head); the result has the same
    shape. ``tw``/``th`` are clamped at ``clip`` before exp() so untrained networks give huge but finite boxes.
    """
    reference = reference.to(deltas.dtype)
    n = deltas.shape[0]
    d = deltas.reshape(n, -1, 4)
    d = d * _std_tensor(stds, d) + _std_tensor(means, d)
    pw = (reference[:, 2] - reference[:, 0])[:, None]
    ph = (reference[:, 3] - reference[:, 1])[:, None]
    px = reference[:, 0][:, None] + 0.5 * pw
    py = reference[:, 1][:, None] + 0.5 * ph
    cx = d[..., 0] * pw + px
    cy = d[..., 1] * ph + py
    w = torch.exp(d[..., 2].clamp(max=clip)) * pw
    h = torch.exp(d[..., 3].clamp(max=clip)) * ph
    out = torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)
    return out.reshape(deltas.shape)


def clip_boxes(boxes: Tensor, height: int, width: int) -> Tensor:
    """Clamp xyxy boxes (any leading shape, last dim 4) to the image ``[0, width] x [0, height]``."""
    x = boxes[..., 0::2].clamp(0, width)
    y = boxes[..., 1::2].clamp(0, height)
    return torch.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], dim=-1)


def remove_small(boxes: Tensor, min_size: float) -> Tensor:
    """Indices of boxes whose width and height are both at least ``min_size`` (pixels)."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return torch.where((w >= min_size) & (h >= min_size))[0]
