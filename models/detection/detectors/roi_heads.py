"""The Fast R-CNN detection head on proposals (Fast R-CNN section 2; Faster R-CNN section 3.2).

Training samples 128 RoIs per image, 25% foreground (IoU ≥ 0.5 with a GT box, labelled with its class) and the
rest background (IoU in [bg_low, 0.5)); the ground-truth boxes themselves join the proposals, as in both
reference implementations, so the head sees perfect foreground from the first step. Each RoI is pooled to 7×7
on the stride-16 map, flattened through two fully connected layers, then a softmax over K+1 classes and
class-specific box deltas (normalised by stds 0.1/0.1/0.2/0.2). Inference keeps, per class, boxes above a
score threshold and applies NMS (0.3 in the paper) per class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.boxes import HEAD_STDS, box_iou, clip_boxes, decode, encode, remove_small
from models.detection.anchors import POSITIVE, match_boxes, sample_balanced, sample_round_robin
from models.detection.config import RoIHeadConfig
from models.detection.ignore_regions import ignore_near, training_truth
from models.detection.nms import batched_nms
from models.detection.roi import roi_align, roi_pool


@dataclass
class RoiSample:
    """The RoIs one training step of the head learns from, for one image (all indices into ``proposals``).

    ``proposals`` are the candidates the sampler saw: the RPN's proposals followed, when the head adds them,
    by the ground-truth boxes themselves (so index ≥ ``num_proposals`` is a GT box). ``max_iou``/``matched``:
    each candidate's best IoU with the ground truth and which GT box that is (-1 without ground truth);
    ``labels``: 1 foreground-eligible, 0 background-eligible, -1 neither (between the bands).
    """

    proposals: Tensor  # [N, 4]
    num_proposals: int
    max_iou: Tensor  # [N]
    matched: Tensor  # [N] int64
    labels: Tensor  # [N] int8
    positive: Tensor  # indices of the sampled foreground RoIs
    negative: Tensor  # indices of the sampled background RoIs


def sample_rois(proposals: Tensor, gt_boxes: Tensor, *, fg_iou: float = 0.5, bg_iou_high: float = 0.5,
                bg_iou_low: float = 0.0, batch_size: int = 128, positive_fraction: float = 0.25,
                positive_sampling: str = "random", add_gt_as_proposals: bool = True,
                generator: torch.Generator | None = None, ignore_regions: Tensor | None = None) -> RoiSample:
    """Foreground / background RoIs of one image as the head's training samples them (Fast R-CNN 2.3).

    Foreground: IoU ≥ ``fg_iou`` with a GT box; background: best IoU in [``bg_iou_low``, ``bg_iou_high``);
    at most ``batch_size`` RoIs, up to ``positive_fraction`` of them foreground, the rest filled with
    background. ``positive_sampling="per_object"`` takes the foreground in turns from each GT box.
    ``ignore_regions`` (crowd or difficult boxes, not in ``gt_boxes``): a background RoI overlapping one at IoU
    ≥ ``bg_iou_high`` is not sampled (:mod:`models.detection.ignore_regions`). The one code path of
    :meth:`RoIHeads.sample`, so the explorer shows exactly what training does; ``generator`` seeds it.
    """
    gt_boxes = gt_boxes.to(proposals).reshape(-1, 4)
    n_props = int(proposals.shape[0])
    if add_gt_as_proposals and gt_boxes.numel():
        proposals = torch.cat([proposals, gt_boxes])
    n = int(proposals.shape[0])
    if gt_boxes.numel() == 0:
        lab = ignore_near(torch.zeros(n, dtype=torch.int8, device=proposals.device), proposals, ignore_regions,
                          bg_iou_high)
        pos, neg = sample_balanced(lab, batch_size, positive_fraction, generator)
        return RoiSample(proposals, n_props, torch.zeros(n, device=proposals.device),
                         torch.full((n,), -1, dtype=torch.int64, device=proposals.device), lab, pos, neg)
    iou = box_iou(gt_boxes, proposals)
    matched, lab = match_boxes(iou, fg_iou, bg_iou_high, allow_low_quality=False)
    best = iou.max(dim=0).values
    lab[best < bg_iou_low] = -1  # Fast R-CNN's [0.1, 0.5) background band, when bg_iou_low > 0
    lab = ignore_near(lab, proposals, ignore_regions, bg_iou_high)
    pos, neg = sample_balanced(lab, batch_size, positive_fraction, generator)
    if positive_sampling == "per_object":
        every = torch.where(lab == POSITIVE)[0]
        pos = sample_round_robin(every, matched[every], pos.numel(), generator)
    return RoiSample(proposals, n_props, best, matched, lab, pos, neg)


class TwoFCHead(nn.Module):
    """flatten → fc → ReLU (→ dropout) → fc → ReLU: VGG16's fc6/fc7 shape (4096) by default."""

    def __init__(self, in_features: int, representation_size: int = 4096, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_features, representation_size)
        self.fc7 = nn.Linear(representation_size, representation_size)
        self.dropout = float(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.fc6(x.flatten(1)))
        if self.dropout:
            x = F.dropout(x, self.dropout, self.training)
        x = F.relu(self.fc7(x))
        if self.dropout:
            x = F.dropout(x, self.dropout, self.training)
        return x


class BoxPredictor(nn.Module):
    """Softmax logits over K+1 classes and 4 deltas per class (column 0, background, is never used)."""

    def __init__(self, in_features: int, num_classes_with_bg: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(in_features, num_classes_with_bg)
        self.bbox_pred = nn.Linear(in_features, 4 * num_classes_with_bg)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.cls_score(x), self.bbox_pred(x)


@dataclass
class HeadOutput:
    detections: list[dict[str, Tensor]]
    losses: dict[str, Tensor]
    rois: list[Tensor] | None = None
    pooled: Tensor | None = None
    class_logits: Tensor | None = None
    box_deltas: Tensor | None = None


class RoIHeads(nn.Module):
    """RoI pooling + two FC layers + classifier/regressor, with sampling, losses and per-class NMS; the
    settings come from one :class:`RoIHeadConfig` (pooling and sampling validated there)."""

    def __init__(self, in_channels: int, num_classes: int, config: RoIHeadConfig | None = None, *,
                 spatial_scale: float = 1.0 / 16, add_gt_as_proposals: bool = True,
                 box_stds: Sequence[float] = HEAD_STDS, smooth_l1_beta: float = 1.0,
                 min_box_size: float = 1e-2) -> None:
        super().__init__()
        cfg = config or RoIHeadConfig()
        self.config = cfg
        self.num_classes = int(num_classes)  # K, without background
        self.pool_size = (cfg.pool_size, cfg.pool_size)
        self.spatial_scale = float(spatial_scale)
        self.pooling = cfg.pooling
        self.box_head = TwoFCHead(in_channels * cfg.pool_size * cfg.pool_size, cfg.representation_size, cfg.dropout)
        self.predictor = BoxPredictor(cfg.representation_size, self.num_classes + 1)
        self.fg_iou, self.bg_iou_high, self.bg_iou_low = cfg.fg_iou, cfg.bg_iou_high, cfg.bg_iou_low
        self.batch_size_per_image = cfg.batch_size
        self.positive_fraction = cfg.positive_fraction
        self.positive_sampling = cfg.positive_sampling
        self.add_gt_as_proposals = add_gt_as_proposals
        self.box_stds = tuple(float(s) for s in box_stds)
        self.smooth_l1_beta = smooth_l1_beta
        self.score_threshold = cfg.score_threshold
        self.nms_threshold = cfg.nms
        self.detections_per_image = cfg.detections_per_image
        self.min_box_size = min_box_size

    def pool(self, features: Tensor, rois: list[Tensor]) -> Tensor:
        fn = roi_pool if self.pooling == "pool" else roi_align
        return fn(features, [r.to(features.dtype) for r in rois], self.pool_size, self.spatial_scale)

    def sampling_params(self) -> dict:
        """The keyword arguments of :func:`sample_rois` this head trains with (for the explorer's view)."""
        return dict(fg_iou=self.fg_iou, bg_iou_high=self.bg_iou_high, bg_iou_low=self.bg_iou_low,
                    batch_size=self.batch_size_per_image, positive_fraction=self.positive_fraction,
                    positive_sampling=self.positive_sampling, add_gt_as_proposals=self.add_gt_as_proposals)

    def sample(self, proposals: Tensor, gt_boxes: Tensor, gt_labels: Tensor,
               ignore_regions: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """RoIs, class labels (0 = background) and encoded targets [R, 4] for one image; ``ignore_regions``:
        its crowd or difficult boxes (not in ``gt_boxes``)."""
        s = sample_rois(proposals, gt_boxes, **self.sampling_params(), ignore_regions=ignore_regions)
        idx = torch.cat([s.positive, s.negative])
        rois = s.proposals[idx]
        if gt_boxes.numel() == 0:
            return rois, torch.zeros(idx.numel(), dtype=torch.int64, device=rois.device), \
                torch.zeros((idx.numel(), 4), device=rois.device)
        gt_boxes = gt_boxes.to(rois)
        labels = gt_labels.to(rois.device)[s.matched[idx]].long()
        labels[s.positive.numel():] = 0
        targets = encode(rois, gt_boxes[s.matched[idx]], self.box_stds)
        return rois, labels, targets

    def loss(self, class_logits: Tensor, box_deltas: Tensor, labels: Tensor, targets: Tensor) -> dict[str, Tensor]:
        """Softmax cross-entropy over all sampled RoIs; smooth-L1 on the true class's deltas of foreground
        RoIs, divided by the number of sampled RoIs (background RoIs contribute zero, as in the paper's [u≥1]).
        No RoI at all (every candidate of the batch lay inside a crowd box): zero losses, still on the graph."""
        if labels.numel() == 0:
            zero = class_logits.float().sum() * 0.0 + box_deltas.float().sum() * 0.0
            return {"cls": zero, "box": zero.clone()}
        cls = F.cross_entropy(class_logits.float(), labels)
        fg = torch.where(labels > 0)[0]
        d = box_deltas.float().reshape(box_deltas.shape[0], -1, 4)[fg, labels[fg]]
        box = F.smooth_l1_loss(d, targets[fg].float(), beta=self.smooth_l1_beta, reduction="sum") \
            / max(labels.numel(), 1)
        return {"cls": cls, "box": box}

    def postprocess(self, class_logits: Tensor, box_deltas: Tensor, rois: list[Tensor],
                    image_sizes: list[tuple[int, int]]) -> list[dict[str, Tensor]]:
        probs = F.softmax(class_logits.float(), -1)
        boxes_all = decode(torch.cat(rois).float(), box_deltas.float(), self.box_stds)
        out = []
        start = 0
        k1 = self.num_classes + 1
        for r, (h, w) in zip(rois, image_sizes, strict=True):
            n = r.shape[0]
            p = probs[start:start + n, 1:]
            b = clip_boxes(boxes_all[start:start + n].reshape(n, k1, 4)[:, 1:], h, w)
            start += n
            labels = torch.arange(1, k1, device=p.device).expand(n, -1)
            b, p, labels = b.reshape(-1, 4), p.reshape(-1), labels.reshape(-1)
            keep = torch.where(p > self.score_threshold)[0]
            b, p, labels = b[keep], p[keep], labels[keep]
            keep = remove_small(b, self.min_box_size)
            b, p, labels = b[keep], p[keep], labels[keep]
            keep = batched_nms(b, p, labels, self.nms_threshold)[: self.detections_per_image]
            out.append({"boxes": b[keep], "scores": p[keep], "labels": labels[keep]})
        return out

    def forward(self, features: Tensor, proposals: list[Tensor], image_sizes: list[tuple[int, int]],
                targets: list[dict] | None = None, keep_maps: bool = False) -> HeadOutput:
        if self.training:
            if targets is None:
                raise ValueError("training the detection head needs targets")
            sampled = [self.sample(p.detach(), *training_truth(t)) for p, t in zip(proposals, targets, strict=True)]
            rois = [s[0] for s in sampled]
            pooled = self.pool(features, rois)
            class_logits, box_deltas = self.predictor(self.box_head(pooled))
            losses = self.loss(class_logits, box_deltas, torch.cat([s[1] for s in sampled]),
                               torch.cat([s[2] for s in sampled]))
            return HeadOutput([], losses)
        pooled = self.pool(features, proposals)
        class_logits, box_deltas = self.predictor(self.box_head(pooled))
        dets = self.postprocess(class_logits, box_deltas, proposals, image_sizes)
        out = HeadOutput(dets, {})
        if keep_maps:
            out.rois, out.pooled, out.class_logits, out.box_deltas = proposals, pooled, class_logits, box_deltas
        return out
