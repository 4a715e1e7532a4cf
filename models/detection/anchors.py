"""Anchors: the reference boxes the RPN scores and regresses (Faster R-CNN, section 3.1).

At every cell of a stride-``s`` feature map sit ``len(sizes) * len(ratios)`` boxes centred on the cell's centre
in image pixels; size is the square root of the area, ratio is height / width (paper: 128², 256², 512² at
1:2, 1:1, 2:1, stride 16, so ~20k anchors for a 1000×600 image). Training labels each anchor against the ground
truth: positive if IoU ≥ 0.7 or it is the best anchor of some GT box, negative if IoU < 0.3 with every GT,
ignored otherwise; anchors crossing the image border are ignored in training (they make the loss hard to
optimise, section 3.3). The explorer draws :class:`AnchorSet` with its labels, so it is plain data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from models.boxes import box_iou
from models.detection.ignore_regions import ignore_near

#: Anchor labels (as in torchvision's RPN): 1 object, 0 background, -1 ignored by the loss.
POSITIVE, NEGATIVE, IGNORED = 1, 0, -1


def base_anchors(sizes: Sequence[float] = (128, 256, 512), ratios: Sequence[float] = (0.5, 1.0, 2.0)) -> Tensor:
    """The ``len(sizes) * len(ratios)`` anchors centred on (0, 0), ordered size-major: [A, 4] float32.

    A ratio r = h / w keeps the area: ``w = size / sqrt(r)``, ``h = size * sqrt(r)``.
    """
    out = []
    for size in sizes:
        for r in ratios:
            w = float(size) / float(r) ** 0.5
            h = float(size) * float(r) ** 0.5
            out.append([-w / 2, -h / 2, w / 2, h / 2])
    return torch.tensor(out, dtype=torch.float32)


def grid_anchors(base: Tensor, feature_size: tuple[int, int], stride: int) -> Tensor:
    """Shift ``base`` over a feature map of ``(height, width)`` cells: [height * width * A, 4].

    Order is cell-major (row, column), then anchor, the order the RPN head's outputs are flattened in.
    Centres are at the cell centre ``(i + 0.5) * stride``, so a stride-16 map of a 600-px image covers it
    symmetrically.
    """
    fh, fw = feature_size
    ys = (torch.arange(fh, dtype=torch.float32, device=base.device) + 0.5) * stride
    xs = (torch.arange(fw, dtype=torch.float32, device=base.device) + 0.5) * stride
    cy, cx = torch.meshgrid(ys, xs, indexing="ij")
    shifts = torch.stack([cx, cy, cx, cy], dim=-1).reshape(-1, 1, 4)
    return (shifts + base.to(shifts.device).reshape(1, -1, 4)).reshape(-1, 4)


@dataclass
class AnchorSet:
    """Every anchor of one image, and (after :func:`label_anchors`) how training sees each of them."""

    boxes: Tensor  # [N, 4] xyxy pixels of the (resized) network input
    stride: int
    sizes: tuple[float, ...]
    ratios: tuple[float, ...]
    feature_size: tuple[int, int]
    labels: Tensor | None = None  # [N] int8: 1 positive, 0 negative, -1 ignored
    matched: Tensor | None = None  # [N] int64 index of the matched GT box, -1 for none
    max_iou: Tensor | None = None  # [N] best IoU with any GT

    @property
    def per_cell(self) -> int:
        return len(self.sizes) * len(self.ratios)


class AnchorGenerator(torch.nn.Module):
    """Anchors for a feature-map size, cached: the grid is identical for every image of the same size."""

    def __init__(self, sizes: Sequence[float] = (128, 256, 512), ratios: Sequence[float] = (0.5, 1.0, 2.0),
                 stride: int = 16) -> None:
        super().__init__()
        self.sizes = tuple(float(s) for s in sizes)
        self.ratios = tuple(float(r) for r in ratios)
        self.stride = int(stride)
        self.register_buffer("base", base_anchors(self.sizes, self.ratios), persistent=False)
        self._cache: dict[tuple, Tensor] = {}

    @property
    def num_per_cell(self) -> int:
        return len(self.sizes) * len(self.ratios)

    def forward(self, feature_size: tuple[int, int]) -> Tensor:
        key = (int(feature_size[0]), int(feature_size[1]), str(self.base.device))
        grid = self._cache.get(key)
        if grid is None:
            if len(self._cache) > 16:
                self._cache.clear()
            grid = grid_anchors(self.base, key[:2], self.stride)
            self._cache[key] = grid
        return grid

    def anchor_set(self, feature_size: tuple[int, int]) -> AnchorSet:
        return AnchorSet(self.forward(feature_size), self.stride, self.sizes, self.ratios,
                         (int(feature_size[0]), int(feature_size[1])))


def inside_image(anchors: Tensor, height: float, width: float, border: float = 0.0) -> Tensor:
    """Boolean mask of anchors lying entirely inside the image (within ``border`` pixels)."""
    return ((anchors[:, 0] >= -border) & (anchors[:, 1] >= -border)
            & (anchors[:, 2] <= width + border) & (anchors[:, 3] <= height + border))


def match_boxes(iou: Tensor, high: float, low: float, allow_low_quality: bool) -> tuple[Tensor, Tensor]:
    """Assign each column (anchor / proposal) of an IoU matrix [G, N] to a row (GT box).

    Returns ``(matched, label)``: the GT index of the best overlap for each column (also for negatives, where
    it is only informative), and 1 for IoU ≥ ``high``, 0 below ``low``, -1 in between. With
    ``allow_low_quality`` every GT's best column(s) (ties included) become positive even below ``high`` —
    the paper's rule (i), without which a GT with no 0.7 overlap would never be learned.
    """
    n = iou.shape[1]
    if iou.shape[0] == 0:
        return (torch.full((n,), -1, dtype=torch.int64, device=iou.device),
                torch.zeros((n,), dtype=torch.int8, device=iou.device))
    best, matched = iou.max(dim=0)
    label = torch.full((n,), IGNORED, dtype=torch.int8, device=iou.device)
    label[best >= high] = POSITIVE
    label[best < low] = NEGATIVE
    if allow_low_quality:
        best_per_gt = iou.max(dim=1).values
        gt_idx, col_idx = torch.where((iou == best_per_gt[:, None]) & (best_per_gt[:, None] > 0))
        label[col_idx] = POSITIVE
    return matched, label


def label_anchors(anchors: Tensor | AnchorSet, gt_boxes: Tensor, *, positive_iou: float = 0.7,
                  negative_iou: float = 0.3, best_for_gt: bool = True,
                  image_size: tuple[int, int] | None = None, border: float = 0.0,
                  ignore_regions: Tensor | None = None) -> AnchorSet | tuple:
    """Label anchors against ground truth (paper section 3.1.2).

    ``image_size=(height, width)`` ignores anchors crossing the image border (``border`` pixels of slack),
    as the paper does in training; None keeps them all (torchvision's behaviour, used when comparing).
    ``ignore_regions`` (crowd or difficult boxes, not in ``gt_boxes``): a negative anchor overlapping one at
    IoU ≥ ``negative_iou`` is ignored (:mod:`models.detection.ignore_regions`).
    Given an :class:`AnchorSet`, fills its ``labels``/``matched``/``max_iou`` and returns it; given a tensor,
    returns ``(labels int8 [N], matched int64 [N] (-1 where no GT), max_iou [N])``.
    """
    boxes = anchors.boxes if isinstance(anchors, AnchorSet) else anchors
    n = boxes.shape[0]
    labels = torch.full((n,), IGNORED, dtype=torch.int8, device=boxes.device)
    matched = torch.full((n,), -1, dtype=torch.int64, device=boxes.device)
    max_iou = torch.zeros((n,), dtype=torch.float32, device=boxes.device)
    if image_size is not None:
        keep = torch.where(inside_image(boxes, image_size[0], image_size[1], border))[0]
    else:
        keep = torch.arange(n, device=boxes.device)
    gt_boxes = gt_boxes.to(boxes.device).float().reshape(-1, 4)
    if gt_boxes.shape[0] == 0:
        labels[keep] = NEGATIVE
    elif keep.numel():
        iou = box_iou(gt_boxes, boxes[keep])
        m, lab = match_boxes(iou, positive_iou, negative_iou, best_for_gt)
        labels[keep] = lab
        matched[keep] = torch.where(lab == POSITIVE, m, torch.full_like(m, -1))
        max_iou[keep] = iou.max(dim=0).values
    labels = ignore_near(labels, boxes, ignore_regions, negative_iou)
    if isinstance(anchors, AnchorSet):
        anchors.labels, anchors.matched, anchors.max_iou = labels, matched, max_iou
        return anchors
    return labels, matched, max_iou


def sample_balanced(labels: Tensor, batch_size: int, positive_fraction: float,
                    generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Pick at most ``batch_size`` labelled items, up to ``positive_fraction`` of them positive.

    Returns ``(positive indices, negative indices)``. When positives are short the batch is filled with
    negatives (paper: "if there are fewer than 128 positive samples, we pad the mini-batch with negative
    ones"). Random choice uses ``generator`` so a seeded run is reproducible.
    """
    pos = torch.where(labels == POSITIVE)[0]
    neg = torch.where(labels == NEGATIVE)[0]
    num_pos = min(pos.numel(), int(batch_size * positive_fraction))
    num_neg = min(neg.numel(), batch_size - num_pos)
    dev = labels.device
    perm_p = torch.randperm(pos.numel(), generator=generator, device="cpu")[:num_pos].to(dev)
    perm_n = torch.randperm(neg.numel(), generator=generator, device="cpu")[:num_neg].to(dev)
    return pos[perm_p], neg[perm_n]


def sample_round_robin(candidates: Tensor, owners: Tensor, count: int,
                       generator: torch.Generator | None = None) -> Tensor:
    """At most ``count`` of ``candidates``, taken in turns from each owner (the ground-truth box it matched).

    Why: a 300-pixel shape overlaps hundreds of proposals at IoU ≥ 0.5 and a 20-pixel one a handful, so
    sampling foreground uniformly leaves the small shapes a few RoIs per batch; taking turns gives each
    object the same share (Libra R-CNN's instance-balanced positive sampling). Random within an owner.
    """
    n = candidates.numel()
    if n <= count:
        return candidates
    perm = torch.randperm(n, generator=generator, device="cpu").to(candidates.device)
    cand, own = candidates[perm], owners[perm]
    order = torch.argsort(own, stable=True)
    sorted_own = own[order]
    pos = torch.arange(n, device=candidates.device)
    starts = torch.ones(n, dtype=torch.bool, device=candidates.device)
    starts[1:] = sorted_own[1:] != sorted_own[:-1]
    group_start = torch.cummax(torch.where(starts, pos, torch.zeros_like(pos)), 0).values
    turn = torch.empty_like(pos)
    turn[order] = pos - group_start  # 0 for each owner's first pick, 1 for its second, ...
    return cand[torch.argsort(turn * n + pos)[:count]]
