"""Fast R-CNN (Girshick, ICCV 2015): external Selective Search proposals, one feature map per image.

The whole image goes through the backbone once; each proposal is RoI-max-pooled to 7×7 on that map at the
backbone's stride, flattened through two fully connected layers, and a sibling softmax over K+1 classes and
per-class box regressor score and refine it. Training is single-stage with the multi-task loss
(cross-entropy + smooth L1 on the true class's deltas of foreground RoIs only); minibatches hold 2 images ×
64 RoIs, 25 % foreground (IoU ≥ 0.5) and the rest background with IoU in [0.1, 0.5), and the ground-truth
boxes join the proposals (the paper's sampling, and :class:`~models.detection.detectors.roi_heads.RoIHeads` already
implements head, sampling, losses and per-class NMS — Faster R-CNN uses the same class with RPN proposals).

What Faster R-CNN later replaced is the proposal stage: here it is Selective Search ``fast`` mode on the CPU,
outside the network, cached on disk (:mod:`models.proposals.cache`) because it costs far more than the network.
Training proposals are computed once for the dataset (see :mod:`models.detection.training`) and travel in each target
as ``target["proposals"]`` (resized, flipped and turned with the image); at test time :meth:`predict` and
:meth:`trace` get them from the cache. ``proposal_seconds`` adds up the time spent on proposals, so a
comparison can report the network's time and the proposals' time separately.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from models.boxes import clip_boxes, decode
from models.detection.backbones import Backbone, config_with_backbone
from models.detection.config import DetectorConfig, ProposalConfig
from models.detection.detectors.base import AugmentationMerge, Detections, Detector
from models.detection.detectors.roi_heads import RoIHeads
from models.detection.nms import NmsTrace, nms_trace
from models.detection.score_calibration import ScoreCalibration
from models.proposals.cache import ProposalCache, ProposalParams


def proposal_params(config: ProposalConfig) -> ProposalParams:
    """The Selective Search parameters of a proposals part. ``top`` is the larger of the training and test
    budgets; the cache key leaves it out (every budget is a prefix of one cached ranking), so R-CNN and Fast
    R-CNN with different budgets read the same entry."""
    return ProposalParams(mode=config.mode, ks=None if config.ks is None else tuple(config.ks),
                          max_side=config.max_side, seed=config.seed, top=max(config.train, config.test),
                          min_box_size=config.min_box_size, near_duplicate_iou=config.near_duplicates,
                          groupings=tuple(config.groupings) if config.groupings else None)


@dataclass
class FastRCNNTrace:
    """Everything between the image and the detections. Field names mean what they mean in
    :class:`~models.detection.detectors.faster_rcnn.FasterRCNNTrace`, so the RoI-grid, NMS and detection layers draw
    either; there is no anchor/RPN part, and the proposals are Selective Search's (in its rank order, with a
    rank-based ``proposal_scores`` from 1 down to 0 in place of objectness).

    Boxes are in the pixels of the *network input* (``input_size``) unless named ``*_original``.
    """

    input_size: tuple[int, int]
    factors: tuple[float, float]
    feature_size: tuple[int, int]
    features: np.ndarray  # [C, h, w] the backbone's map the RoIs are pooled from
    proposals_original: np.ndarray  # [P, 4] Selective Search boxes in original pixels (the external proposals)
    proposals: np.ndarray  # [P, 4] the same in input pixels: the head's RoIs
    proposal_scores: np.ndarray  # [P] 1 → 0 by Selective Search rank
    proposal_seconds: float  # time to get the proposals (milliseconds when read from the cache)
    pooled_features: np.ndarray  # [P, C, 7, 7]
    class_scores: np.ndarray  # [P, K+1] softmax, column 0 background
    class_boxes: np.ndarray  # [P, K+1, 4] per-class regressed boxes (input pixels)
    candidates: Detections  # above the score threshold, before per-class NMS (input pixels)
    detection_nms: NmsTrace  # indices into candidates
    detections: Detections  # final, in ORIGINAL image pixels
    #: With test-time augmentation (several test sizes, mirrored): how the passes were merged; ``candidates``,
    #: ``detection_nms`` and ``detections`` are then the merge's (:meth:`Detector.merged_trace`).
    merge: AugmentationMerge | None = None
    calibration: ScoreCalibration | None = None  # of ``detections``, when the model calibrates


class FastRCNN(Detector):
    generation = "fast-rcnn"

    def __init__(self, class_names: list[str], config: DetectorConfig | None = None, *,
                 backbone: Backbone | None = None) -> None:
        """``config``: every setting (default: the paper's); ``backbone``: an already built body, else one is
        built from ``config.backbone``. Keyword settings: :meth:`build`."""
        config, backbone = config_with_backbone(self.generation, config, backbone)
        super().__init__(class_names, config)
        self.backbone = backbone
        props = config.proposals
        self.proposals_train = props.train
        self.proposals_test = props.test
        # One Selective Search run serves training and testing: the cache holds the larger budget.
        self.proposal_params = proposal_params(props)
        self.proposal_cache = ProposalCache()
        self.proposal_seconds = 0.0
        self.roi_heads = RoIHeads(backbone.out_channels, len(class_names), config.roi_head,
                                  spatial_scale=1.0 / backbone.stride, add_gt_as_proposals=True)

    # ------------------------------------------------------------------------------------------ proposals

    def external_proposals(self, image: np.ndarray, top: int | None = None) -> np.ndarray:
        """Selective Search boxes of an RGB uint8 image (its pixels), from the cache when there; the time it
        took is added to ``proposal_seconds``."""
        t0 = time.perf_counter()
        boxes = self.proposal_cache.get(image, self.proposal_params)
        self.proposal_seconds += time.perf_counter() - t0
        n = self.proposals_test if top is None else int(top)
        return boxes[:n] if n > 0 else boxes

    @staticmethod
    def _scaled(boxes: np.ndarray, factors: tuple[float, float], device: torch.device) -> Tensor:
        b = torch.as_tensor(np.asarray(boxes, np.float32).reshape(-1, 4)).clone()
        b[:, 0::2] *= factors[1]
        b[:, 1::2] *= factors[0]
        return b.to(device)

    # ----------------------------------------------------------------------------------------- network

    def batch(self, images: list[Tensor]) -> tuple[Tensor, list[tuple[int, int]]]:
        """Normalise and zero-pad (after normalisation: padding is the mean colour) to a common size."""
        sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
        h, w = max(s[0] for s in sizes), max(s[1] for s in sizes)
        x = images[0].new_zeros((len(images), 3, h, w)).to(self.image_mean)
        for i, im in enumerate(images):
            x[i, :, : im.shape[-2], : im.shape[-1]] = (im.to(self.image_mean) - self.image_mean) / self.image_std
        return x, sizes

    def forward(self, images: list[Tensor], targets: list[dict] | None = None,  # noqa: ANN201
                proposals: list[Tensor] | None = None):
        """``proposals``: per image [P, 4] in the input tensors' pixels; in training they default to each
        target's ``"proposals"`` (the dataset's cached Selective Search boxes), at test time to Selective
        Search on the input tensor itself (callers with the original image use :meth:`predict`)."""
        if proposals is None:
            if targets is not None and all("proposals" in t for t in targets):
                proposals = [torch.as_tensor(t["proposals"]).float() for t in targets]
                if self.training:
                    proposals = [p[: self.proposals_train] for p in proposals]
            elif self.training:
                raise ValueError("Fast R-CNN training needs target['proposals'] (Selective Search boxes per image)")
            else:
                proposals = [self._scaled(self.external_proposals(
                    (im.detach().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()), (1.0, 1.0),
                    im.device) for im in images]
        x, sizes = self.batch(images)
        features = self.backbone(x)
        proposals = [clip_boxes(p.to(features.device).float(), h, w) for p, (h, w) in zip(proposals, sizes,
                                                                                          strict=True)]
        head = self.roi_heads(features, proposals, sizes, targets if self.training else None)
        if self.training:
            return head.losses
        return head.detections

    def _forward_test(self, image: np.ndarray, t: Tensor, factors: tuple[float, float]) -> dict[str, Tensor]:
        """One test pass: the proposals come from the original (possibly mirrored) image."""
        boxes = self.external_proposals(image)
        return self.forward([t], proposals=[self._scaled(boxes, factors, t.device)])[0]

    @torch.no_grad()
    def trace(self, image: np.ndarray, gt_boxes: np.ndarray | None = None,
              score_threshold: float | None = None,
              ignore_regions: np.ndarray | None = None) -> FastRCNNTrace:
        """Run one image through every stage and keep each intermediate (eval mode, no gradients).
        ``gt_boxes`` and ``ignore_regions`` are accepted for the same call as Faster R-CNN's trace; there are no
        anchors to label."""
        del gt_boxes, ignore_regions
        was_training = self.training
        self.eval()
        try:
            t, factors = self.prepare(image)
            x, sizes = self.batch([t])
            size = sizes[0]
            t0 = time.perf_counter()
            original = self.external_proposals(image)
            seconds = time.perf_counter() - t0
            features = self.backbone(x)
            proposals = clip_boxes(self._scaled(original, factors, features.device), size[0], size[1])
            heads = self.roi_heads
            pooled = heads.pool(features, [proposals])
            logits, deltas = heads.predictor(heads.box_head(pooled))
            probs = F.softmax(logits.float(), -1)
            cboxes = clip_boxes(decode(proposals.float(), deltas.float(), heads.box_stds).reshape(
                proposals.shape[0], -1, 4), size[0], size[1])
            thr = heads.score_threshold if score_threshold is None else score_threshold
            p = probs[:, 1:]
            lab = torch.arange(1, p.shape[1] + 1, device=p.device).expand_as(p)
            keep = p > thr
            cand_boxes, cand_scores, cand_labels = cboxes[:, 1:][keep], p[keep], lab[keep]
            dtrace = nms_trace(cand_boxes, cand_scores, heads.nms_threshold, groups=cand_labels)
            kept = dtrace.kept[: heads.detections_per_image]
            final = Detections(self.to_original(cand_boxes[kept], factors, image.shape[0], image.shape[1]),
                               cand_scores[kept].cpu().numpy().astype(np.float32),
                               cand_labels[kept].cpu().numpy().astype(np.int64), list(self.class_names))
            n = len(original)
            traced = FastRCNNTrace(
                input_size=size, factors=factors, feature_size=tuple(features.shape[-2:]),
                features=features[0].float().cpu().numpy(), proposals_original=np.asarray(original, np.float32),
                proposals=proposals.cpu().numpy(),
                proposal_scores=(1.0 - np.arange(n, dtype=np.float32) / max(n, 1)),
                proposal_seconds=seconds, pooled_features=pooled.cpu().numpy(),
                class_scores=probs.cpu().numpy(), class_boxes=cboxes.cpu().numpy(),
                candidates=Detections(cand_boxes.cpu().numpy(), cand_scores.cpu().numpy(),
                                      cand_labels.cpu().numpy().astype(np.int64), list(self.class_names)),
                detection_nms=dtrace, detections=final)
            return self.merged_trace(traced, image, score_threshold)
        finally:
            self.train(was_training)
