"""Faster R-CNN (Ren et al., 2015): a backbone, a Region Proposal Network and a Fast R-CNN head sharing one
feature map, trained jointly on the four losses (the paper's "approximate joint training": proposals are
treated as constants, no gradient flows through their coordinates).

Defaults are the paper's; the settings are the parts of a :class:`~models.detection.config.DetectorConfig`
(backbone, input, RPN, RoI head), saved in checkpoints through :meth:`FasterRCNN.config`, so a trained model
is rebuilt exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from models.boxes import RPN_STDS, clip_boxes, decode
from models.detection.anchors import AnchorSet, label_anchors
from models.detection.backbones import Backbone, config_with_backbone
from models.detection.config import DetectorConfig
from models.detection.detectors.base import AugmentationMerge, Detections, Detector
from models.detection.detectors.roi_heads import RoIHeads
from models.detection.detectors.rpn import RegionProposalNetwork
from models.detection.nms import NmsTrace, nms_trace
from models.detection.score_calibration import ScoreCalibration


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; the gradient scaled by ``scale`` on the way back."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:  # noqa: ANN001 - autograd's context
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # noqa: ANN001
        return grad * ctx.scale, None


def scale_gradient(x: Tensor, scale: float) -> Tensor:
    """``x`` unchanged, its gradient scaled by ``scale`` (DeFRCN's gradient-decoupled layer): 1 returns ``x``
    itself, 0 detaches it (the RPN's loss then trains the RPN alone, not the backbone it shares)."""
    if scale == 1.0:
        return x
    if scale == 0.0:
        return x.detach()
    return _ScaleGradient.apply(x, float(scale))


def _to_input(boxes: np.ndarray | None, factors: tuple[float, float]) -> torch.Tensor:
    """Boxes [N, 4] in original pixels brought to the network input by (y, x) ``factors``; none: [0, 4]."""
    g = torch.as_tensor(np.asarray(boxes if boxes is not None else np.zeros((0, 4)), np.float32).reshape(-1, 4)).clone()
    g[:, 0::2] *= factors[1]
    g[:, 1::2] *= factors[0]
    return g


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
    #: With test-time augmentation (several test sizes, mirrored): how the passes were merged; ``candidates``,
    #: ``detection_nms`` and ``detections`` are then the merge's (:meth:`Detector.merged_trace`).
    merge: AugmentationMerge | None = None
    calibration: ScoreCalibration | None = None  # of ``detections``, when the model calibrates


class FasterRCNN(Detector):
    generation = "faster-rcnn"

    def __init__(self, class_names: list[str], config: DetectorConfig | None = None, *,
                 backbone: Backbone | None = None) -> None:
        """``config``: every setting (default: the paper's); ``backbone``: an already built body, else one is
        built from ``config.backbone``. Keyword settings: :meth:`build`."""
        config, backbone = config_with_backbone(self.generation, config, backbone)
        super().__init__(class_names, config)
        self.backbone = backbone
        self.rpn = RegionProposalNetwork(backbone.out_channels, backbone.stride, config.rpn)
        self.roi_heads = RoIHeads(backbone.out_channels, len(class_names), config.roi_head,
                                  spatial_scale=1.0 / backbone.stride)

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
        rpn = self.rpn(scale_gradient(features, self.parts.rpn.backbone_gradient), sizes, targets)
        head = self.roi_heads(features, rpn.proposals, sizes, targets)
        if self.training:
            return {**rpn.losses, **head.losses}
        return head.detections

    @torch.no_grad()
    def trace(self, image: np.ndarray, gt_boxes: np.ndarray | None = None,
              score_threshold: float | None = None, ignore_regions: np.ndarray | None = None) -> FasterRCNNTrace:
        """Run one image through every stage and keep each intermediate (eval mode, no gradients).

        ``gt_boxes`` (original pixels) labels the anchors as training would, with ``ignore_regions`` (its crowd
        or difficult boxes, original pixels, not in ``gt_boxes``); ``score_threshold`` defaults to the head's own.
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
                g, regions = (_to_input(b, factors).to(aset.boxes.device) for b in (gt_boxes, ignore_regions))
                label_anchors(aset, g, positive_iou=self.rpn.positive_iou, negative_iou=self.rpn.negative_iou,
                              image_size=size if self.rpn.ignore_cross_boundary else None, ignore_regions=regions)
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
            traced = FasterRCNNTrace(
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
            return self.merged_trace(traced, image, score_threshold)
        finally:
            self.train(was_training)

    def decode_anchor_deltas(self, anchors: Tensor, deltas: Tensor) -> Tensor:
        """Anchors moved by RPN deltas (what every proposal is before clipping): for the explorer."""
        return decode(anchors, deltas, RPN_STDS)
