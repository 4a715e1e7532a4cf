"""Faster R-CNN (Ren et al., 2015): a backbone, a Region Proposal Network and a Fast R-CNN head sharing one
feature map, trained jointly on the four losses (the paper's "approximate joint training": proposals are
treated as constants, no gradient flows through their coordinates).

Defaults are the paper's; every one is a constructor argument and is saved in checkpoints through
:meth:`FasterRCNN.config`, so a trained model is rebuilt exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from models.boxes import RPN_STDS, clip_boxes, decode
from models.detection.anchors import AnchorGenerator, AnchorSet, label_anchors
from models.detection.backbones import Backbone, backbone_from_config, build_backbone
from models.detection.detectors.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Detections,
    Detector,
    checked_size_range,
)
from models.detection.detectors.roi_heads import RoIHeads
from models.detection.detectors.rpn import RegionProposalNetwork
from models.detection.nms import NmsTrace, nms_trace


@dataclass
class FasterRCNNTrace:
    """Everything between the image and the detections, for the explorer to draw.

    Boxes are in the pixels of the *network input* (the resized image, ``input_size``) unless named
    ``*_original``; ``factors`` = (sy, sx) maps original → input. Arrays are numpy on the CPU.
    """

    input_size: tuple[int, int]
    factors: tuple[float, float]
    feature_size: tuple[int, int]
    anchors: AnchorSet  # labels filled when ground truth was given
    objectness: np.ndarray  # [N] sigmoid probability per anchor
    rpn_deltas: np.ndarray  # [N, 4]
    proposals_pre_nms: np.ndarray  # [M, 4] top-k decoded, clipped anchors entering NMS
    proposal_scores_pre_nms: np.ndarray
    proposal_nms: NmsTrace  # indices into proposals_pre_nms
    proposals: np.ndarray  # [P, 4] after NMS and top-n: the RoIs of the head at test time
    proposal_scores: np.ndarray
    pooled_features: np.ndarray  # [P, C, 7, 7]
    class_scores: np.ndarray  # [P, K+1] softmax, column 0 background
    class_boxes: np.ndarray  # [P, K+1, 4] per-class regressed boxes (input pixels)
    candidates: Detections  # above the score threshold, before per-class NMS (input pixels)
    detection_nms: NmsTrace  # indices into candidates
    detections: Detections  # final, in ORIGINAL image pixels
    #: [C, h, w] float32 backbone feature map the RPN and the RoI pooling read (for the RoI grid view).
    features: np.ndarray | None = None


class FasterRCNN(Detector):
    generation = "faster-rcnn"

    def __init__(self, class_names: list[str], backbone: Backbone | str = "small", *, backbone_weights=None,
                 small_width: int = 32, small_norm: str = "group", small_stride: int = 16, small_context: bool = False,
                 backbone_options: dict | None = None, min_size: int = 600, max_size: int = 1000,
                 anchor_sizes: Sequence[float] = (128, 256, 512), anchor_ratios: Sequence[float] = (0.5, 1.0, 2.0),
                 rpn_mid_channels: int | None = None, rpn_positive_iou: float = 0.7, rpn_negative_iou: float = 0.3,
                 rpn_batch_size: int = 256, rpn_positive_fraction: float = 0.5, rpn_pre_nms_train: int = 12000,
                 rpn_post_nms_train: int = 2000, rpn_pre_nms_test: int = 6000, rpn_post_nms_test: int = 300,
                 rpn_nms: float = 0.7, rpn_min_size: float = 0.0, ignore_cross_boundary: bool = True,
                 pool_size: int = 7, pooling: str = "pool", representation_size: int = 4096, dropout: float = 0.0,
                 roi_fg_iou: float = 0.5, roi_bg_iou_high: float = 0.5, roi_bg_iou_low: float = 0.0,
                 roi_batch_size: int = 128, roi_positive_fraction: float = 0.25, roi_positive_sampling: str = "random",
                 box_score_threshold: float = 0.05, box_nms: float = 0.3, detections_per_image: int = 100,
                 test_sizes: Sequence[int] = (), test_flip: bool = False,
                 test_size_range: Sequence[float] | None = None,
                 image_mean: Sequence[float] = IMAGENET_MEAN, image_std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__(class_names, min_size, max_size)
        size_range = None if test_size_range is None else checked_size_range(test_size_range)
        if isinstance(backbone, str):
            backbone = build_backbone(backbone, backbone_weights, small_width=small_width, small_norm=small_norm,
                                      small_stride=small_stride, small_context=small_context,
                                      options=backbone_options)
        self.backbone = backbone
        self._config = dict(
            backbone=backbone.name, backbone_pretrained=backbone.weights_info.source != "scratch",
            small_width=small_width, small_norm=small_norm, small_stride=small_stride, small_context=bool(small_context),
            backbone_options=dict(backbone.options or backbone_options or {}), min_size=min_size, max_size=max_size,
            anchor_sizes=[float(s) for s in anchor_sizes], anchor_ratios=[float(r) for r in anchor_ratios],
            rpn_mid_channels=rpn_mid_channels, rpn_positive_iou=rpn_positive_iou,
            rpn_negative_iou=rpn_negative_iou, rpn_batch_size=rpn_batch_size,
            rpn_positive_fraction=rpn_positive_fraction, rpn_pre_nms_train=rpn_pre_nms_train,
            rpn_post_nms_train=rpn_post_nms_train, rpn_pre_nms_test=rpn_pre_nms_test,
            rpn_post_nms_test=rpn_post_nms_test, rpn_nms=rpn_nms, rpn_min_size=rpn_min_size,
            ignore_cross_boundary=ignore_cross_boundary, pool_size=pool_size, pooling=pooling,
            representation_size=representation_size, dropout=dropout, roi_fg_iou=roi_fg_iou,
            roi_bg_iou_high=roi_bg_iou_high, roi_bg_iou_low=roi_bg_iou_low, roi_batch_size=roi_batch_size,
            roi_positive_fraction=roi_positive_fraction, roi_positive_sampling=roi_positive_sampling,
            box_score_threshold=box_score_threshold,
            box_nms=box_nms, detections_per_image=detections_per_image, test_sizes=[int(v) for v in test_sizes],
            test_flip=bool(test_flip),
            test_size_range=None if size_range is None else list(size_range),
            image_mean=[float(v) for v in image_mean], image_std=[float(v) for v in image_std])
        self.test_sizes = tuple(int(v) for v in test_sizes)
        self.test_flip = bool(test_flip)
        self.test_size_range = size_range
        self.merge_nms, self.merge_max_detections = float(box_nms), int(detections_per_image)
        stride = backbone.stride
        self.rpn = RegionProposalNetwork(
            backbone.out_channels, AnchorGenerator(anchor_sizes, anchor_ratios, stride),
            mid_channels=rpn_mid_channels, positive_iou=rpn_positive_iou, negative_iou=rpn_negative_iou,
            batch_size_per_image=rpn_batch_size, positive_fraction=rpn_positive_fraction,
            pre_nms_top_n_train=rpn_pre_nms_train, post_nms_top_n_train=rpn_post_nms_train,
            pre_nms_top_n_test=rpn_pre_nms_test, post_nms_top_n_test=rpn_post_nms_test,
            nms_threshold=rpn_nms, min_size=rpn_min_size, ignore_cross_boundary=ignore_cross_boundary)
        self.roi_heads = RoIHeads(
            backbone.out_channels, len(class_names), pool_size=pool_size, spatial_scale=1.0 / stride,
            pooling=pooling, representation_size=representation_size, dropout=dropout, fg_iou=roi_fg_iou,
            bg_iou_high=roi_bg_iou_high, bg_iou_low=roi_bg_iou_low, batch_size_per_image=roi_batch_size,
            positive_fraction=roi_positive_fraction, positive_sampling=roi_positive_sampling,
            score_threshold=box_score_threshold,
            nms_threshold=box_nms, detections_per_image=detections_per_image)
        self.register_buffer("image_mean", torch.tensor(list(image_mean), dtype=torch.float32).view(3, 1, 1),
                             persistent=False)
        self.register_buffer("image_std", torch.tensor(list(image_std), dtype=torch.float32).view(3, 1, 1),
                             persistent=False)

    def config(self) -> dict:
        return dict(self._config)

    @classmethod
    def from_config(cls, class_names: list[str], config: dict) -> FasterRCNN:
        """Rebuild without touching any weights file: the checkpoint's state dict supplies the weights.
        A backbone trained from ImageNet keeps its frozen-BN layout (``backbone_pretrained``)."""
        cfg = dict(config)
        bb = backbone_from_config(cfg)
        return cls(class_names, bb, **cfg)

    def batch(self, images: list[Tensor]) -> tuple[Tensor, list[tuple[int, int]]]:
        """Normalise and zero-pad (after normalisation: padding is the mean colour) to a common size."""
        sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
        h = max(s[0] for s in sizes)
        w = max(s[1] for s in sizes)
        if len(images) == 1:
            x = ((images[0].to(self.image_mean) - self.image_mean) / self.image_std)[None]
        else:
            x = images[0].new_zeros((len(images), 3, h, w)).to(self.image_mean)
            for i, im in enumerate(images):
                x[i, :, : im.shape[-2], : im.shape[-1]] = (im.to(self.image_mean) - self.image_mean) / self.image_std
        return x, sizes

    def forward(self, images: list[Tensor], targets: list[dict] | None = None):  # noqa: ANN201
        x, sizes = self.batch(images)
        features = self.backbone(x)
        rpn = self.rpn(features, sizes, targets)
        head = self.roi_heads(features, rpn.proposals, sizes, targets)
        if self.training:
            return {**rpn.losses, **head.losses}
        return head.detections

    @torch.no_grad()
    def trace(self, image: np.ndarray, gt_boxes: np.ndarray | None = None,
              score_threshold: float | None = None) -> FasterRCNNTrace:
        """Run one image through every stage and keep each intermediate (eval mode, no gradients).

        ``gt_boxes`` (original pixels) labels the anchors as training would; ``score_threshold`` defaults to
        the head's own.
        """
        was_training = self.training
        self.eval()
        try:
            t, factors = self.prepare(image)
            x, sizes = self.batch([t])
            size = sizes[0]
            features = self.backbone(x)
            rpn = self.rpn(features, sizes, keep_maps=True)
            aset = self.rpn.anchor_generator.anchor_set(tuple(features.shape[-2:]))
            if gt_boxes is not None:
                g = torch.as_tensor(np.asarray(gt_boxes, np.float32).reshape(-1, 4)).clone()
                g[:, 0::2] *= factors[1]
                g[:, 1::2] *= factors[0]
                label_anchors(aset, g.to(aset.boxes.device), positive_iou=self.rpn.positive_iou,
                              negative_iou=self.rpn.negative_iou,
                              image_size=size if self.rpn.ignore_cross_boundary else None)
            pre_boxes, pre_scores = rpn.pre_nms[0]
            ptrace = nms_trace(pre_boxes, pre_scores, self.rpn.nms_threshold)
            heads = self.roi_heads
            proposals = rpn.proposals[0]
            pooled = heads.pool(features, [proposals])
            logits, deltas = heads.predictor(heads.box_head(pooled))
            probs = F.softmax(logits.float(), -1)
            cboxes = clip_boxes(decode(proposals.float(), deltas.float(), heads.box_stds).reshape(
                proposals.shape[0], -1, 4), size[0], size[1])
            thr = heads.score_threshold if score_threshold is None else score_threshold
            p = probs[:, 1:]
            lab = torch.arange(1, p.shape[1] + 1).expand_as(p)
            keep = p > thr
            cand_boxes, cand_scores, cand_labels = cboxes[:, 1:][keep], p[keep], lab[keep]
            dtrace = nms_trace(cand_boxes, cand_scores, heads.nms_threshold, groups=cand_labels)
            kept = dtrace.kept[: heads.detections_per_image]
            final = Detections(self.to_original(cand_boxes[kept], factors, image.shape[0], image.shape[1]),
                               cand_scores[kept].cpu().numpy().astype(np.float32),
                               cand_labels[kept].cpu().numpy().astype(np.int64), list(self.class_names))
            return FasterRCNNTrace(
                input_size=size, factors=factors, feature_size=tuple(features.shape[-2:]), anchors=aset,
                objectness=torch.sigmoid(rpn.objectness[0]).cpu().numpy(),
                rpn_deltas=rpn.deltas[0].cpu().numpy(),
                proposals_pre_nms=pre_boxes.cpu().numpy(), proposal_scores_pre_nms=pre_scores.cpu().numpy(),
                proposal_nms=ptrace, proposals=proposals.cpu().numpy(),
                proposal_scores=rpn.scores[0].cpu().numpy(), pooled_features=pooled.cpu().numpy(),
                class_scores=probs.cpu().numpy(), class_boxes=cboxes.cpu().numpy(),
                candidates=Detections(cand_boxes.cpu().numpy(), cand_scores.cpu().numpy(),
                                      cand_labels.cpu().numpy().astype(np.int64), list(self.class_names)),
                detection_nms=dtrace, detections=final, features=features[0].float().cpu().numpy())
        finally:
            self.train(was_training)

    def decode_anchor_deltas(self, anchors: Tensor, deltas: Tensor) -> Tensor:
        """Anchors moved by RPN deltas (what every proposal is before clipping): for the explorer."""
        return decode(anchors, deltas, RPN_STDS)
