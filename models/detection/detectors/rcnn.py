"""R-CNN (Girshick et al., CVPR 2014): every Selective Search proposal warped and run through the CNN on its own.

Pipeline, as the paper:
1. Selective Search ``fast`` proposals (cached on disk, :mod:`models.proposals.cache`).
2. Each proposal grown by ``context`` pixels of surroundings at the network's input scale, warped
   anisotropically to ``warp_size``² (outside the image filled with the mean, i.e. 0 after normalisation).
3. The CNN (backbone → fc6 → fc7) is fine-tuned on warped proposals with a (K+1)-way softmax: foreground
   IoU ≥ 0.5 with a ground-truth box (labelled with its class), the rest background; per image and step
   ``crops_per_image`` (32) crops, at most 25 % foreground, drawn from all the image's positives (its
   ground-truth boxes included) and its other proposals. 2 images per step → 64 crops.
4. fc7 features ("CNN codes", through the product's one cache :mod:`models.detection.features`, keyed by image content,
   box and a hash of the CNN's weights) train per-class linear SVMs with hard-negative mining (positives: the
   ground-truth boxes only; negatives: proposals with IoU < 0.3 with every box of the class;
   :mod:`models.detection.svm`) and per-class ridge box regressors on proposals with IoU > 0.6.
5. Test: the top ``proposals_test`` (500) proposals, SVM scores, regressed boxes, per-class NMS at 0.3.

Sizes on the CPU: the paper warps to 227 px for an ImageNet VGG/AlexNet on a GPU. With the small backbone
from scratch on two CPU cores, ``warp_size`` is 64 px: the small CNN's 16× stride gives a 4×4 map, still
enough for the synthetic shapes' outlines, and a 64-px crop costs ~1/12 of a 224-px one, so 500 test
proposals run in a few seconds per image. ``context`` is 5 px, the paper's 16 px of 227 at that scale.
Reported scores are the sigmoid of the SVM margin (monotonic, so ranking and mAP are the SVM's), which lets
the usual 0.05 score threshold apply; before the SVMs are trained (mid-training checkpoints) the fine-tuned
softmax scores detections instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

from models.boxes import box_iou, clip_boxes, decode, encode
from models.detection.anchors import NEGATIVE, POSITIVE, sample_balanced
from models.detection.backbones import Backbone, config_with_backbone
from models.detection.config import V1_NAMES, DetectorConfig
from models.detection.detectors.base import AugmentationMerge, Detections, Detector
from models.detection.detectors.fast_rcnn import proposal_params
from models.detection.detectors.roi_heads import TwoFCHead
from models.detection.features import CnnCodeExtractor, FeatureCache, cnn_codes, context_boxes, warp_crops
from models.detection.ignore_regions import ignore_near, training_truth
from models.detection.nms import NmsTrace, batched_nms, nms_trace
from models.detection.score_calibration import ScoreCalibration
from models.detection.svm import fit_ridge, mine_hard_negatives, train_linear_svm
from models.proposals.cache import ProposalCache

#: R-CNN regresses un-normalised (dx, dy, dw, dh) with ridge regression.
UNIT_STDS = (1.0, 1.0, 1.0, 1.0)
#: Mean L2 norm the fc7 codes are scaled to before the SVMs and the ridge regressors (the paper's released code,
#: ``feat_norm_mean = 20``). The SVM's C = 10⁻³ and ridge's α = 1000 only mean what the paper meant for
#: features of that size, and the size depends on the network: 25-30 for the small CNN fine-tuned on the shapes
#: (where scaling changes little), other values for other backbones and training lengths. The scale is folded
#: into the saved weights (w·(s·x) = (s·w)·x), so detection needs nothing new and older checkpoints load as they were.
FEATURE_NORM = 20.0


class WarpCNN(nn.Module):
    """backbone → flatten the (warp_size / stride)² map → fc6 → fc7: fc7 is the CNN code.

    The map is average-pooled to at most :data:`MAX_GRID`² cells first (AlexNet's pool5 is 6×6, VGG's 7×7): a
    224-px warp on a stride-16 ImageNet backbone gives 14×14, which flattened would make fc6 alone ~4× larger
    than everything else together."""

    MAX_GRID = 8

    def __init__(self, backbone: Backbone, warp_size: int, representation_size: int, dropout: float) -> None:
        super().__init__()
        self.backbone = backbone
        self.grid = min(self.MAX_GRID, max(1, int(warp_size) // backbone.stride))
        self.head = TwoFCHead(backbone.out_channels * self.grid * self.grid, representation_size, dropout)

    def forward(self, crops: Tensor) -> Tensor:
        x = self.backbone(crops)
        if tuple(x.shape[-2:]) != (self.grid, self.grid):
            x = F.adaptive_avg_pool2d(x, self.grid)
        return self.head(x)


@dataclass
class RCNNTrace:
    """R-CNN's intermediates. Field names mean what they mean in FasterRCNNTrace / FastRCNNTrace; boxes in the
    network-input pixels of ``prepare`` (``factors`` original → input) unless named ``*_original``."""

    input_size: tuple[int, int]
    factors: tuple[float, float]
    proposals_original: np.ndarray  # [P, 4] Selective Search boxes (original pixels)
    proposals: np.ndarray  # [P, 4] input pixels
    proposal_scores: np.ndarray  # [P] 1 → 0 by Selective Search rank
    proposal_seconds: float
    crops: np.ndarray  # [P, S, S, 3] uint8 RGB: what the CNN saw for each proposal (context included)
    context_boxes_original: np.ndarray  # [P, 4] the region each crop was warped from (original pixels)
    svm_scores: np.ndarray  # [P, K] raw SVM margins (0 columns before the SVMs are trained)
    class_scores: np.ndarray  # [P, K+1] sigmoid of the SVM margins, column 0 = 1 - best (or the softmax)
    class_boxes: np.ndarray  # [P, K+1, 4] per-class regressed boxes (input pixels)
    candidates: Detections  # above the score threshold, before per-class NMS (input pixels)
    detection_nms: NmsTrace
    detections: Detections  # final, ORIGINAL pixels
    #: With test-time augmentation (several test sizes, mirrored): how the passes were merged; ``candidates``,
    #: ``detection_nms`` and ``detections`` are then the merge's (:meth:`Detector.merged_trace`).
    merge: AugmentationMerge | None = None
    calibration: ScoreCalibration | None = None  # of ``detections``, when the model calibrates


class RCNN(Detector):
    generation = "rcnn"

    def __init__(self, class_names: list[str], config: DetectorConfig | None = None, *,
                 backbone: Backbone | None = None) -> None:
        """``config``: every setting (default: the CPU adaptation above); ``backbone``: an already built body,
        else one is built from ``config.backbone``. Keyword settings: :meth:`build`."""
        config, backbone = config_with_backbone(self.generation, config, backbone)
        super().__init__(class_names, config)
        # Each setting also as an attribute under its flat name (self.warp_size, self.crops_per_image,
        # self.svm_c, self.box_nms ...), which the stages below read.
        for flat, (part, name) in V1_NAMES.items():
            if part in ("proposals", "roi_head", "warp", "svm"):
                setattr(self, flat, getattr(getattr(config, part), name))
        warp_size, representation_size = config.warp.size, config.roi_head.representation_size
        self.cnn = WarpCNN(backbone, warp_size, representation_size, config.roi_head.dropout)
        k = len(class_names)
        self.classifier = nn.Linear(representation_size, k + 1)  # fine-tuning only
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)
        self.register_buffer("svm_weight", torch.zeros(k, representation_size))
        self.register_buffer("svm_bias", torch.zeros(k))
        self.register_buffer("reg_weight", torch.zeros(k, representation_size, 4))
        self.register_buffer("reg_bias", torch.zeros(k, 4))
        self.register_buffer("svm_trained", torch.zeros((), dtype=torch.uint8))
        self.proposal_params = proposal_params(config.proposals)
        self.proposal_cache = ProposalCache()
        self.proposal_seconds = 0.0
        self._feature_cache: FeatureCache | None = None
        #: Read and write CNN codes through the cache; off when timing the network honestly (``compare``).
        self.use_feature_cache = True
        self.extractor = CnnCodeExtractor(self.cnn, lambda m, x: m(x), input_size=self.warp_size, layer="fc7",
                                          context=self.context, batch_size=64, mean=config.input.image_mean,
                                          std=config.input.image_std)

    @property
    def backbone(self) -> Backbone:
        return self.cnn.backbone

    @property
    def feature_cache(self) -> FeatureCache:
        """The product's CNN-code cache (opened on first use)."""
        if self._feature_cache is None:
            self._feature_cache = FeatureCache()
        return self._feature_cache

    @feature_cache.setter
    def feature_cache(self, cache: FeatureCache | None) -> None:
        self._feature_cache = cache

    def external_proposals(self, image: np.ndarray, top: int | None = None) -> np.ndarray:
        t0 = time.perf_counter()
        boxes = self.proposal_cache.get(image, self.proposal_params)
        self.proposal_seconds += time.perf_counter() - t0
        n = self.proposals_test if top is None else int(top)
        return boxes[:n] if n > 0 else boxes

    # ------------------------------------------------------------------------------------------- warping

    def warp(self, image: Tensor, boxes: Tensor) -> Tensor:
        """Crops of a 0..1 [3, H, W] image: each box with its context, warped to ``warp_size``²,
        normalised; outside the image 0 (the mean colour)."""
        x = ((image.float() - self.image_mean.to(image.device)) / self.image_std.to(image.device))[None]
        grown = torch.from_numpy(context_boxes(boxes.detach().cpu().numpy(), self.warp_size, self.context))
        rois = torch.cat([grown.new_zeros((len(grown), 1)), grown], 1).to(x)
        return roi_align(x, rois, (self.warp_size, self.warp_size), 1.0, sampling_ratio=-1, aligned=True)

    # ------------------------------------------------------------------------------------------ training

    def sample(self, proposals: Tensor, gt_boxes: Tensor, gt_labels: Tensor,
               ignore_regions: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Boxes and labels (0 background) of one image's fine-tuning crops: at most ``crops_per_image``,
        ``positive_fraction`` of them foreground (IoU ≥ ``fg_iou``), ground-truth boxes among the candidates;
        no background crop overlapping one of ``ignore_regions`` (crowd or difficult boxes) at IoU ≥ ``fg_iou``."""
        boxes = torch.cat([gt_boxes.float(), proposals.float()]) if gt_boxes.numel() else proposals.float()
        if gt_boxes.numel() == 0:
            labels = torch.zeros(len(boxes), dtype=torch.int64)
            flags = torch.full((len(boxes),), NEGATIVE, dtype=torch.int8)
        else:
            iou = box_iou(gt_boxes.float(), boxes)
            best, arg = iou.max(0)
            labels = torch.where(best >= self.fg_iou, gt_labels.long()[arg], torch.zeros_like(arg))
            flags = torch.where(labels > 0, POSITIVE, NEGATIVE).to(torch.int8)
        flags = ignore_near(flags, boxes, ignore_regions, self.fg_iou)
        pos, neg = sample_balanced(flags, self.crops_per_image, self.positive_fraction)
        idx = torch.cat([pos, neg])
        return boxes[idx], labels[idx]

    def forward(self, images: list[Tensor], targets: list[dict] | None = None,  # noqa: ANN201
                proposals: list[Tensor] | None = None):
        """Training: the fine-tuning loss ``{"cls"}`` on sampled warped proposals (``target["proposals"]``).
        Eval: detections per image in the input tensors' pixels (proposals given, or Selective Search)."""
        if self.training:
            if targets is None or not all("proposals" in t for t in targets):
                raise ValueError("R-CNN training needs target['proposals'] (Selective Search boxes per image)")
            crops, labels = [], []
            for image, t in zip(images, targets, strict=True):
                props = torch.as_tensor(t["proposals"]).float().cpu()[: self.proposals_train]
                gt_boxes, gt_labels, regions = training_truth(t)
                boxes, lab = self.sample(props, gt_boxes.float().cpu(), gt_labels.cpu(), regions.float().cpu())
                if len(boxes):  # none: every candidate lay inside a crowd or difficult box
                    crops.append(self.warp(image, boxes.to(image.device)))
                    labels.append(lab)
            if not crops:  # a zero loss on every weight, so a step (and DDP's all-reduce) still happens
                return {"cls": sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0}
            logits = self.classifier(self.cnn(torch.cat(crops)))
            return {"cls": F.cross_entropy(logits.float(), torch.cat(labels).to(logits.device))}
        out = []
        for i, image in enumerate(images):
            if proposals is not None:
                boxes = proposals[i].float()
            else:
                rgb = (image.detach().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
                boxes = torch.from_numpy(self.external_proposals(rgb))
            h, w = image.shape[-2:]
            boxes = clip_boxes(boxes.to(image.device), h, w)
            codes = self.cnn(self.warp(image, boxes)) if len(boxes) else image.new_zeros((0, self.representation_size))
            det = self._detect(boxes, codes, (h, w))
            out.append({"boxes": det[0], "scores": det[1], "labels": det[2]})
        return out

    def _scores(self, codes: Tensor) -> tuple[Tensor, Tensor]:
        """(raw SVM margins [P, K], class scores [P, K+1] in 0..1)."""
        if int(self.svm_trained):
            svm = codes.float() @ self.svm_weight.t() + self.svm_bias
            p = torch.sigmoid(svm)
            return svm, torch.cat([1 - p.max(1, keepdim=True).values.clamp(max=1), p], 1)
        return codes.new_zeros((len(codes), self.num_classes)), F.softmax(self.classifier(codes).float(), -1)

    def _class_boxes(self, boxes: Tensor, codes: Tensor, size: tuple[int, int]) -> Tensor:
        """[P, K+1, 4] per-class ridge-regressed boxes (column 0: the proposal itself)."""
        deltas = torch.einsum("pd,kdt->pkt", codes.float(), self.reg_weight) + self.reg_bias  # [P, K, 4]
        p, k = deltas.shape[:2]
        moved = decode(boxes.float().repeat_interleave(k, 0), deltas.reshape(-1, 4), UNIT_STDS).reshape(p, k, 4)
        return clip_boxes(torch.cat([boxes.float()[:, None], moved], 1), size[0], size[1])

    def _detect(self, boxes: Tensor, codes: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor]:
        _, probs = self._scores(codes)
        cboxes = self._class_boxes(boxes, codes, size)[:, 1:]
        p = probs[:, 1:]
        labels = torch.arange(1, p.shape[1] + 1, device=p.device).expand_as(p)
        keep = p > self.box_score_threshold
        b, s, lab = cboxes[keep], p[keep], labels[keep]
        kept = batched_nms(b, s, lab, self.box_nms)[: self.detections_per_image]
        return b[kept], s[kept], lab[kept]

    def codes_of(self, image: np.ndarray, boxes: np.ndarray, keep_crops: bool = False):  # noqa: ANN201
        """fc7 codes of ``boxes`` (original pixels) through the CNN-code cache."""
        self.extractor.device = self.device
        cache = self.feature_cache if self.use_feature_cache else None
        return cnn_codes(image, boxes, self.extractor, cache, keep_crops=keep_crops)

    def _forward_test(self, image: np.ndarray, t: Tensor, factors: tuple[float, float]) -> dict[str, Tensor]:
        """Crops from the ORIGINAL image (as the paper: no resizing before warping), codes from the cache."""
        h, w = image.shape[:2]
        boxes = self.external_proposals(image)
        codes = torch.from_numpy(self.codes_of(image, boxes).codes).to(self.device).reshape(len(boxes), -1)
        b, s, lab = self._detect(torch.from_numpy(boxes).to(self.device), codes, (h, w))
        scale = torch.tensor([factors[1], factors[0], factors[1], factors[0]], device=b.device)
        return {"boxes": b * scale, "scores": s, "labels": lab}

    # ------------------------------------------------------------------------------ SVMs and regressors

    def fit_classifiers(self, samples: Sequence[Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]],
                        progress: Callable[[str, int, int], None] | None = None) -> dict[str, float]:
        """Train the per-class SVMs (hard-negative mining) and ridge box regressors on fc7 codes.

        ``samples``: per training image a loader returning (RGB uint8, GT boxes [G, 4], GT labels [G] in
        1..K, proposals [P, 4]), all in the image's own pixels; loaders, so one image at a time is in memory.
        Returns a few counts for the log.
        """
        k = self.num_classes
        gt_codes, gt_labels, prop_codes, prop_best, prop_iou_cls, reg_x, reg_y, reg_cls = [], [], [], [], [], [], [], []
        for n, load in enumerate(samples, 1):
            image, gt, labels, props = load()
            props = np.asarray(props, np.float32).reshape(-1, 4)[: self.proposals_train]
            gt = np.asarray(gt, np.float32).reshape(-1, 4)
            labels = np.asarray(labels, np.int64)
            if len(gt) + len(props) == 0:  # e.g. only a crowd box, every proposal inside it: nothing to learn
                if progress is not None:
                    progress("codes", n, len(samples))
                continue
            codes = self.codes_of(image, np.concatenate([gt, props])).codes
            gt_codes.append(codes[: len(gt)])
            gt_labels.append(labels)
            pc = codes[len(gt):]
            prop_codes.append(pc)
            iou = box_iou(torch.from_numpy(gt), torch.from_numpy(props)).numpy() if len(gt) else \
                np.zeros((0, len(props)), np.float32)
            # per class: the best IoU of each proposal with that class's boxes (negatives: < 0.3 for it)
            per_class = np.zeros((len(props), k), np.float32)
            for c in range(1, k + 1):
                if (labels == c).any():
                    per_class[:, c - 1] = iou[labels == c].max(0)
            prop_iou_cls.append(per_class)
            if len(gt):
                best, arg = iou.max(0), iou.argmax(0)
                sel = best > self.bbox_iou
                if sel.any():
                    reg_x.append(pc[sel])
                    reg_y.append(encode(torch.from_numpy(props[sel]), torch.from_numpy(gt[arg[sel]]),
                                        UNIT_STDS).numpy())
                    reg_cls.append(labels[arg[sel]])
            prop_best.append(len(props))
            if progress is not None:
                progress("codes", n, len(samples))
        dim = self.representation_size
        gx = np.concatenate(gt_codes) if gt_codes else np.zeros((0, dim), np.float32)
        gl = np.concatenate(gt_labels) if gt_labels else np.zeros(0, np.int64)
        px = np.concatenate(prop_codes) if prop_codes else np.zeros((0, dim), np.float32)
        mean_norm = float(np.linalg.norm(px, axis=1).mean()) if len(px) else 0.0
        scale = np.float32(FEATURE_NORM / mean_norm) if mean_norm > 0 else np.float32(1.0)
        gx, px = gx * scale, px * scale
        pic = np.concatenate(prop_iou_cls) if prop_iou_cls else np.zeros((0, k), np.float32)
        bounds = np.cumsum([0] + prop_best)
        stats: dict[str, float] = {}
        weights = torch.zeros(k, dim)
        biases = torch.zeros(k)
        for c in range(1, k + 1):
            pos = gx[gl == c]
            if len(pos) == 0:  # a class absent from the training images is never detected
                biases[c - 1] = -10.0
                continue
            negative = pic[:, c - 1] < self.svm_negative_iou
            cache = np.zeros(len(px), bool)
            first = np.flatnonzero(negative[bounds[0]:bounds[min(1, len(bounds) - 1)]])
            cache[first[: 4 * self.crops_per_image]] = True  # start from part of the first image's negatives
            svm = train_linear_svm(pos, px[cache], self.svm_c, self.svm_positive_weight)
            for _ in range(self.svm_passes):
                grown = 0
                for i in range(len(bounds) - 1):
                    lo, hi = bounds[i], bounds[i + 1]
                    idx = np.flatnonzero(negative[lo:hi]) + lo
                    hard = mine_hard_negatives(svm, px[idx], cache[idx], self.svm_margin)
                    cache[idx[hard]] = True
                    grown += len(hard)
                    if (i + 1) % self.svm_retrain_every == 0 and grown:
                        svm = train_linear_svm(pos, px[cache], self.svm_c, self.svm_positive_weight)
                if grown == 0:
                    break
                svm = train_linear_svm(pos, px[cache], self.svm_c, self.svm_positive_weight)
            weights[c - 1] = torch.from_numpy(svm.weight * scale)  # back to unscaled codes
            biases[c - 1] = svm.bias
            stats[f"negatives_{self.class_names[c - 1]}"] = float(cache.sum())
            if progress is not None:
                progress("svm", c, k)
        rx = np.concatenate(reg_x) * scale if reg_x else np.zeros((0, dim), np.float32)
        ry = np.concatenate(reg_y) if reg_y else np.zeros((0, 4), np.float32)
        rc = np.concatenate(reg_cls) if reg_cls else np.zeros(0, np.int64)
        rw = torch.zeros(k, dim, 4)
        rb = torch.zeros(k, 4)
        for c in range(1, k + 1):
            reg = fit_ridge(rx[rc == c], ry[rc == c], self.ridge_alpha)
            rw[c - 1], rb[c - 1] = torch.from_numpy(reg.weight * scale), torch.from_numpy(reg.bias)
        with torch.no_grad():
            self.svm_weight.copy_(weights)
            self.svm_bias.copy_(biases)
            self.reg_weight.copy_(rw)
            self.reg_bias.copy_(rb)
            self.svm_trained.fill_(1)
        stats["regression_examples"] = float(len(rx))
        stats["code_mean_norm"] = round(mean_norm, 3)
        return stats

    # ------------------------------------------------------------------------------------------- trace

    @torch.no_grad()
    def trace(self, image: np.ndarray, gt_boxes: np.ndarray | None = None,
              score_threshold: float | None = None,
              ignore_regions: np.ndarray | None = None) -> RCNNTrace:
        del gt_boxes, ignore_regions
        was_training = self.training
        self.eval()
        try:
            h, w = image.shape[:2]
            _, factors = self.prepare(image)
            t0 = time.perf_counter()
            original = self.external_proposals(image)
            seconds = time.perf_counter() - t0
            got = self.codes_of(image, original)
            codes = torch.from_numpy(got.codes).reshape(len(original), -1)
            boxes = torch.from_numpy(original)
            svm, probs = self._scores(codes)
            cboxes = self._class_boxes(boxes, codes, (h, w))
            thr = self.box_score_threshold if score_threshold is None else score_threshold
            p = probs[:, 1:]
            lab = torch.arange(1, p.shape[1] + 1).expand_as(p)
            keep = p > thr
            cb, cs, cl = cboxes[:, 1:][keep], p[keep], lab[keep]
            dtrace = nms_trace(cb, cs, self.box_nms, groups=cl)
            kept = dtrace.kept[: self.detections_per_image]
            sy, sx = factors
            scale = torch.tensor([sx, sy, sx, sy])
            final = Detections(cb[kept].numpy().astype(np.float32), cs[kept].numpy().astype(np.float32),
                               cl[kept].numpy().astype(np.int64), list(self.class_names))
            crops = warp_crops(image, original, self.warp_size, self.context, self.extractor.mean, self.extractor.std)
            rgb = (crops * self.image_std.cpu() + self.image_mean.cpu()).clamp(0, 1).mul(255).round().byte()
            n = len(original)
            input_size = (int(round(h * sy)), int(round(w * sx)))
            traced = RCNNTrace(
                input_size=input_size, factors=factors, proposals_original=original,
                proposals=(boxes * scale).numpy(), proposal_scores=1.0 - np.arange(n, dtype=np.float32) / max(n, 1),
                proposal_seconds=seconds, crops=rgb.permute(0, 2, 3, 1).numpy(),
                context_boxes_original=context_boxes(original, self.warp_size, self.context),
                svm_scores=svm.numpy(), class_scores=probs.numpy(), class_boxes=(cboxes * scale).numpy(),
                candidates=Detections((cb * scale).numpy(), cs.numpy(), cl.numpy().astype(np.int64),
                                      list(self.class_names)),
                detection_nms=dtrace, detections=final)
            return self.merged_trace(traced, image, score_threshold)
        finally:
            self.train(was_training)
