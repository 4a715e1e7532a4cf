"""Region Proposal Network (Faster R-CNN, section 3.1).

A 3×3 conv slides over the stride-16 feature map; two sibling 1×1 convs give, for each of the ``A`` anchors at
every position, an objectness logit and 4 box deltas. The paper's two-way softmax (object / not object) is
written here as one logit with a sigmoid, which is the same model with half the outputs. Proposals are the
anchors moved by their deltas, clipped to the image, the top ``pre_nms_top_n`` by score, NMS at 0.7, then the
top ``post_nms_top_n`` (12000 → 2000 in training, 6000 → 300 at test).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.boxes import RPN_STDS, clip_boxes, decode, encode, remove_small
from models.detection.anchors import AnchorGenerator, label_anchors, sample_balanced
from models.detection.config import RPNConfig
from models.detection.ignore_regions import training_truth
from models.detection.nms import nms


class RPNHead(nn.Module):
    """3×3 conv + ReLU, then 1×1 convs to ``A`` logits and ``4A`` deltas (Gaussian init, std 0.01)."""

    def __init__(self, in_channels: int, num_anchors: int, mid_channels: int | None = None) -> None:
        super().__init__()
        mid = int(mid_channels or in_channels)
        self.conv = nn.Conv2d(in_channels, mid, 3, padding=1)
        self.cls_logits = nn.Conv2d(mid, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(mid, 4 * num_anchors, 1)
        for layer in (self.conv, self.cls_logits, self.bbox_pred):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        t = F.relu(self.conv(x))
        return self.cls_logits(t), self.bbox_pred(t)


@dataclass
class RPNOutput:
    """Per image: proposals after NMS (and their objectness) plus, when asked for, the raw maps."""

    proposals: list[Tensor]
    scores: list[Tensor]
    losses: dict[str, Tensor]
    objectness: Tensor | None = None  # [B, N] logits, N = h * w * A in anchor order
    deltas: Tensor | None = None  # [B, N, 4]
    anchors: Tensor | None = None  # [N, 4]
    pre_nms: list[tuple[Tensor, Tensor]] | None = None  # per image (boxes, scores) entering NMS


class RegionProposalNetwork(nn.Module):
    """Anchors + head + proposal selection + the two RPN losses, set by one :class:`RPNConfig`."""

    def __init__(self, in_channels: int, stride: int, config: RPNConfig | None = None,
                 smooth_l1_beta: float = 1.0 / 9) -> None:
        super().__init__()
        cfg = config or RPNConfig()
        self.config = cfg
        self.anchor_generator = AnchorGenerator(cfg.anchor_sizes, cfg.anchor_ratios, stride)
        self.head = RPNHead(in_channels, self.anchor_generator.num_per_cell, cfg.mid_channels)
        self.positive_iou = cfg.positive_iou
        self.negative_iou = cfg.negative_iou
        self.batch_size_per_image = cfg.batch_size
        self.positive_fraction = cfg.positive_fraction
        self.pre_nms_top_n = {"train": cfg.pre_nms_train, "test": cfg.pre_nms_test}
        self.post_nms_top_n = {"train": cfg.post_nms_train, "test": cfg.post_nms_test}
        self.nms_threshold = cfg.nms
        self.min_size = cfg.min_size
        self.ignore_cross_boundary = cfg.ignore_cross_boundary
        self.smooth_l1_beta = smooth_l1_beta

    def _mode(self) -> str:
        return "train" if self.training else "test"

    def flatten(self, logits: Tensor, deltas: Tensor) -> tuple[Tensor, Tensor]:
        """[B, A, h, w] and [B, 4A, h, w] → [B, h*w*A] and [B, h*w*A, 4], the order of ``grid_anchors``."""
        b, a, h, w = logits.shape
        obj = logits.permute(0, 2, 3, 1).reshape(b, -1)
        d = deltas.reshape(b, a, 4, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, 4)
        return obj, d

    def select(self, anchors: Tensor, objectness: Tensor, deltas: Tensor, image_size: tuple[int, int],
               keep_pre_nms: bool = False) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor] | None]:
        """Proposals of one image: top-k by objectness, decode, clip, drop tiny, NMS, top-n."""
        obj = objectness.detach()
        k = min(self.pre_nms_top_n[self._mode()], obj.numel())
        scores, idx = obj.topk(k, sorted=True)
        boxes = decode(anchors[idx], deltas.detach()[idx].float(), RPN_STDS)
        boxes = clip_boxes(boxes, image_size[0], image_size[1])
        keep = remove_small(boxes, self.min_size) if self.min_size > 0 else \
            torch.where((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))[0]
        boxes, scores = boxes[keep], scores[keep]
        pre = (boxes, torch.sigmoid(scores.float())) if keep_pre_nms else None
        keep = nms(boxes, scores, self.nms_threshold)[: self.post_nms_top_n[self._mode()]]
        return boxes[keep], torch.sigmoid(scores[keep].float()), pre

    def targets_for(self, anchors: Tensor, gt_boxes: Tensor, image_size: tuple[int, int],
                    ignore_regions: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Anchor labels (1/0/-1) and encoded regression targets [N, 4] for one image; ``ignore_regions``:
        its crowd or difficult boxes (not in ``gt_boxes``)."""
        labels, matched, _ = label_anchors(
            anchors, gt_boxes, positive_iou=self.positive_iou, negative_iou=self.negative_iou,
            image_size=image_size if self.ignore_cross_boundary else None, ignore_regions=ignore_regions)
        reg = torch.zeros_like(anchors)
        pos = matched >= 0
        if pos.any():
            reg[pos] = encode(anchors[pos], gt_boxes.to(anchors)[matched[pos]], RPN_STDS)
        return labels, reg

    def loss(self, anchors: Tensor, objectness: Tensor, deltas: Tensor, targets: list[dict],
             image_sizes: list[tuple[int, int]]) -> dict[str, Tensor]:
        """Binary cross-entropy over 256 sampled anchors per image and smooth-L1 over their positives, both
        normalised by the number sampled (the paper's λ=10 with N_reg≈2400 is about the same weight)."""
        obj_l, obj_t, reg_p, reg_t = [], [], [], []
        for i, (t, size) in enumerate(zip(targets, image_sizes, strict=True)):
            gt_boxes, _, regions = training_truth(t)
            labels, reg = self.targets_for(anchors, gt_boxes, size, regions)
            pos, neg = sample_balanced(labels, self.batch_size_per_image, self.positive_fraction)
            idx = torch.cat([pos, neg])
            obj_l.append(objectness[i, idx])
            obj_t.append((labels[idx] == 1).to(objectness.dtype))
            reg_p.append(deltas[i, pos])
            reg_t.append(reg[pos])
        n = max(sum(x.numel() for x in obj_l), 1)
        obj = F.binary_cross_entropy_with_logits(torch.cat(obj_l).float(), torch.cat(obj_t).float(),
                                                 reduction="sum") / n
        box = F.smooth_l1_loss(torch.cat(reg_p).float(), torch.cat(reg_t).float(), beta=self.smooth_l1_beta,
                               reduction="sum") / n
        return {"rpn_objectness": obj, "rpn_box": box}

    def forward(self, features: Tensor, image_sizes: list[tuple[int, int]], targets: list[dict] | None = None,
                keep_maps: bool = False) -> RPNOutput:
        logits, deltas_map = self.head(features)
        objectness, deltas = self.flatten(logits, deltas_map)
        anchors = self.anchor_generator(tuple(features.shape[-2:]))
        proposals, scores, pre = [], [], []
        for i, size in enumerate(image_sizes):
            p, s, pr = self.select(anchors, objectness[i], deltas[i], size, keep_pre_nms=keep_maps)
            proposals.append(p)
            scores.append(s)
            pre.append(pr)
        losses: dict[str, Tensor] = {}
        if self.training:
            if targets is None:
                raise ValueError("training the RPN needs targets")
            losses = self.loss(anchors, objectness, deltas, targets, image_sizes)
        out = RPNOutput(proposals, scores, losses)
        if keep_maps:
            out.objectness, out.deltas, out.anchors, out.pre_nms = objectness, deltas, anchors, pre
        return out
