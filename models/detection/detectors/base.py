"""The interface every detector generation shares (R-CNN, Fast R-CNN, Faster R-CNN).

The app and the headless commands only ever call :meth:`Detector.predict` (detections in the pixels of the
image passed in) and :meth:`Detector.trace` (the intermediates the explorer draws); training calls
``forward(images, targets)`` for the loss dict. Resizing to the model's shorter side / longer-side cap and
the ImageNet normalisation live here, in the model, so every caller feeds plain 0..1 RGB.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from models.detection.config import IMAGENET_MEAN, IMAGENET_STD, DetectorConfig, detector_config

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Detections", "Detector", "AugmentedPass", "AugmentationMerge",
           "box_vote", "checked_size_range", "pass_average", "resize_image", "resize_scale", "to_tensor"]


@dataclass
class Detections:
    """Detections of one image. ``labels`` are 1..K; label ``i`` is ``class_names[i - 1]`` (0 = background
    is never reported). Boxes are float32 xyxy in pixels of the image given to ``predict``."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def names(self) -> list[str]:
        return [self.class_names[int(i) - 1] for i in self.labels]

    @classmethod
    def empty(cls, class_names: list[str]) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), list(class_names))


@dataclass
class AugmentedPass:
    """One pass of test-time augmentation: the shorter side it ran at (None: the model's own), whether on the
    mirrored image, and its detections mapped back to the original image's pixels (after the pass's own NMS
    and, with a size range, only the objects that size may report)."""

    size: int | None
    flip: bool
    detections: Detections

    @property
    def name(self) -> str:
        return f"{'model size' if self.size is None else self.size}{', mirrored' if self.flip else ''}"


@dataclass
class AugmentationMerge:
    """How the passes of test-time augmentation became one set of detections, for the explorer to draw.

    ``candidates`` are every pass's detections in one list (original pixels; ``pass_index`` says whose), the
    merge's per-class NMS trace indexes them, and ``detections`` are the kept ones, moved by the vote when
    ``method`` is "vote" or "average" (``voters[i]``: the candidates that voted for detection ``i``) and, for
    "average", scored by the mean over the passes (:func:`pass_average`); sorted by the final score, those
    under the caller's threshold dropped, at most the detection cap. ``kept_index[i]``: the candidate NMS kept
    that became detection ``i`` (the explorer draws the moved box in its place). A model with fitted prototype
    calibration then recalibrates those scores and re-ranks (``calibration``,
    :class:`~models.detection.score_calibration.ScoreCalibration`)."""

    passes: list[AugmentedPass]
    candidates: Detections
    pass_index: np.ndarray  # [N] int: the pass each candidate came from
    nms: Any  # NmsTrace over candidates
    method: str  # "nms", "vote" or "average"
    detections: Detections
    voters: list[np.ndarray] = field(default_factory=list)
    kept_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    #: What prototype calibration did to ``detections`` (same order), None when the model does not calibrate.
    calibration: Any = None


def box_vote(boxes: Tensor, scores: Tensor, labels: Tensor, kept: Tensor, iou_threshold: float
             ) -> tuple[Tensor, list[np.ndarray]]:
    """Box voting (Gidaris & Komodakis, ICCV 2015): each kept box becomes the score-weighted mean of the boxes
    of its class that overlap it at IoU ≥ ``iou_threshold`` (itself included). The passes of test-time
    augmentation each place the object a little differently; their weighted mean is a better estimate than
    the single highest-scoring box, and NMS alone throws the others away. Returns the moved boxes and, per
    kept box, the indices of its voters."""
    from torchvision.ops import box_iou

    if kept.numel() == 0:
        return boxes[kept], []
    iou = box_iou(boxes[kept], boxes)
    same = labels[kept][:, None] == labels[None, :]
    votes = (iou >= iou_threshold) & same
    votes[torch.arange(kept.numel()), kept] = True
    w = votes.float() * scores[None, :].float()
    moved = (w @ boxes.float()) / w.sum(1, keepdim=True)
    return moved, [torch.where(v)[0].numpy() for v in votes]


def pass_average(scores: Tensor, pass_index: np.ndarray, voters: list[np.ndarray], passes: int) -> Tensor:
    """Each merged detection's score as the mean over the ``passes`` of each pass's best voter (0 for a pass
    that did not see it): test-time augmentation's usual averaging of class probabilities, for detections
    (as weighted box fusion, Solovyev et al. 2021). A box that one pass of four reports keeps a quarter of its
    score, one that every pass agrees on keeps its mean: agreement across the augmentations ranks first."""
    out = torch.zeros(len(voters), dtype=torch.float32)
    for i, v in enumerate(voters):
        best: dict[int, float] = {}
        for j in v.tolist():
            k = int(pass_index[j])
            best[k] = max(best.get(k, 0.0), float(scores[j]))
        out[i] = sum(best.values()) / passes
    return out


def resize_scale(height: int, width: int, min_size: int, max_size: int) -> float:
    """Scale that brings the shorter side to ``min_size`` unless the longer side would pass ``max_size``
    (the papers' single-scale training and testing: 600 / 1000)."""
    scale = float(min_size) / min(height, width)
    if max(height, width) * scale > max_size:
        scale = float(max_size) / max(height, width)
    return scale


def to_tensor(image: np.ndarray) -> Tensor:
    """HxWx3 uint8 RGB → [3, H, W] float32 in 0..1."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {image.shape}")
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)


def resize_image(image: Tensor, scale: float) -> Tensor:
    """Bilinear resize of a [3, H, W] tensor by ``scale`` (sizes rounded to whole pixels)."""
    h, w = image.shape[-2:]
    nh, nw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    if (nh, nw) == (h, w):
        return image
    return F.interpolate(image[None], size=(nh, nw), mode="bilinear", align_corners=False)[0]


def checked_size_range(values: Sequence[float]) -> tuple[float, float]:
    """A test size range ``(lo, hi)`` as floats, or ValueError unless 0 <= lo < hi."""
    lo, hi = (float(v) for v in values)
    if not 0 <= lo < hi:
        raise ValueError(f"a test size range is 0 <= lo < hi, got {lo:g}, {hi:g}")
    return lo, hi


class Detector(torch.nn.Module):
    """Base class: subclasses implement ``forward`` and ``trace``; ``predict`` is shared.

    ``forward(images, targets)`` takes already-resized [3, H, W] 0..1 tensors (what the training dataset
    yields); in training mode it returns the loss dict, in eval mode a list of ``{"boxes", "scores",
    "labels"}`` in those resized pixels.

    Every setting comes from one :class:`~models.detection.config.DetectorConfig` (``self.parts``), saved in
    checkpoints by :meth:`config`; :meth:`build` takes settings as keywords, :meth:`from_config` a saved config.
    """

    generation: str = "base"

    def __init__(self, class_names: list[str], config: DetectorConfig) -> None:
        super().__init__()
        self.class_names = list(class_names)
        self.parts = config
        inp = config.input
        self.min_size = inp.min_size
        self.max_size = inp.max_size
        self.test_sizes = tuple(inp.test_sizes)
        self.test_flip = inp.test_flip
        self.test_merge = inp.test_merge
        self.test_size_range = None if inp.test_size_range is None else checked_size_range(inp.test_size_range)
        if config.roi_head is not None:  # multi-scale merging; classification + localisation has one box
            self.merge_nms, self.merge_max_detections = config.roi_head.nms, config.roi_head.detections_per_image
        if config.roi_head is not None and config.roi_head.calibration == "prototype":
            from models.detection.score_calibration import PrototypeCalibrator

            self.calibrator = PrototypeCalibrator(len(self.class_names), config.roi_head.calibration_alpha)
        self.register_buffer("image_mean", torch.tensor(inp.image_mean, dtype=torch.float32).view(3, 1, 1),
                             persistent=False)
        self.register_buffer("image_std", torch.tensor(inp.image_std, dtype=torch.float32).view(3, 1, 1),
                             persistent=False)

    @classmethod
    def build(cls, class_names: list[str], backbone: object = None, *, config: DetectorConfig | None = None,
              **settings: object) -> Detector:
        """A fresh detector from keyword settings: ``backbone`` a name or a built
        :class:`~models.detection.backbones.Backbone`; ``settings`` part dicts (``rpn={"nms": 0.6}``), dotted
        names as ``**{"rpn.nms": 0.6}`` or the flat names (``anchor_sizes=(16, 32)``, ``small_width=8``),
        applied over ``config`` (default: the generation's paper settings)."""
        overrides = dict(settings)
        built = None
        if isinstance(backbone, str):
            overrides["backbone.name"] = backbone
        elif backbone is not None:
            built = backbone
        cfg = (config or DetectorConfig.default(cls.generation)).with_overrides(overrides)
        return cls(class_names, cls.pinned(cfg, legacy=False), backbone=built)

    @classmethod
    def from_config(cls, class_names: list[str], config: dict | DetectorConfig, version: int = 2) -> Detector:
        """Rebuild a saved model without touching any weights file (the checkpoint's state dict supplies the
        weights); ``config`` in either checkpoint layout (``version`` 1: flat names)."""
        from models.detection.backbones import backbone_from_part

        cfg = cls.pinned(detector_config(cls.generation, config, version), legacy=True)
        return cls(class_names, cfg, backbone=backbone_from_part(cfg.backbone, rebuild=True))

    @classmethod
    def pinned(cls, config: DetectorConfig, legacy: bool) -> DetectorConfig:
        """``config`` with settings that mean "the library's default" written out as values, so a model does
        not change when a default does (``legacy``: a saved model's, whose empty settings mean the defaults
        of its time; :meth:`~models.detection.config.DetectorConfig.pinned`)."""
        return config.pinned(legacy)

    def config(self) -> dict:
        """Every setting as plain nested dicts (part → field → value): with the state dict, enough to rebuild."""
        return self.parts.to_dict()

    def set_input_size(self, min_size: int, max_size: int) -> None:
        """Change the size images are resized to (kept in the config, so checkpoints remember it): for
        fine-tuning at a larger size than the model was first trained at."""
        self.parts = self.parts.with_overrides({"input": {"min_size": min_size, "max_size": max_size}})
        self.min_size, self.max_size = self.parts.input.min_size, self.parts.input.max_size

    def set_test_augmentation(self, test_sizes: Sequence[int] | None = None, test_flip: bool | None = None,
                              test_merge: str | None = None, test_size_range: Sequence[float] | None = None
                              ) -> None:
        """Change test-time augmentation (None: keep the current value), in the config too, so a model saved
        afterwards keeps it and the summary shows it: what ``evaluate --test-sizes ...`` does."""
        changes: dict[str, Any] = {}
        if test_sizes is not None:
            changes["test_sizes"] = [int(v) for v in test_sizes]
        if test_flip is not None:
            changes["test_flip"] = bool(test_flip)
        if test_merge is not None:
            changes["test_merge"] = str(test_merge)
        if test_size_range is not None:
            changes["test_size_range"] = list(checked_size_range(test_size_range))
        self.parts = self.parts.with_overrides({"input": changes})
        inp = self.parts.input
        self.test_sizes, self.test_flip, self.test_merge = tuple(inp.test_sizes), inp.test_flip, inp.test_merge
        self.test_size_range = None if inp.test_size_range is None else checked_size_range(inp.test_size_range)

    @contextmanager
    def single_pass(self) -> Iterator[None]:
        """Inside the block the model tests at its own size alone, not mirrored; its test-time augmentation
        (config included) comes back afterwards, also after an error. For training's per-epoch validation:
        a live curve that needs no extra passes (4 passes cost 4× the CPU on every epoch)."""
        saved = (self.parts, self.test_sizes, self.test_flip)
        try:
            if len(self.test_passes) > 1:
                self.set_test_augmentation(test_sizes=[], test_flip=False)
            yield
        finally:
            self.parts, self.test_sizes, self.test_flip = saved

    @property
    def test_passes(self) -> list[tuple[int | None, bool]]:
        """(shorter side or None for the model's own, mirrored) of every test pass, in the order they run."""
        sizes = tuple(sorted(self.test_sizes)) or (None,)
        return [(size, flip) for size in sizes for flip in ((False, True) if self.test_flip else (False,))]

    @property
    def num_classes(self) -> int:
        """K, without background."""
        return len(self.class_names)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    #: Shorter sides to test at (multi-scale testing); empty: ``min_size`` alone, as the papers.
    test_sizes: tuple[int, ...] = ()
    #: Also run each test size on the mirrored image and merge (test-time flip augmentation).
    test_flip: bool = False
    #: Valid object range in multi-scale testing (SNIP, Singh & Davis 2018): at each size keep only the
    #: detections whose √area in that size's input pixels lies in [lo, hi) — the smallest size keeps
    #: everything above lo, the largest everything below hi — so each object is judged at the scale the
    #: network handles best. None: keep everything from every size.
    test_size_range: tuple[float, float] | None = None
    #: Per-class NMS IoU and detection cap when merging the scales of multi-scale testing.
    merge_nms: float = 0.3
    merge_max_detections: int = 100

    def prepare(self, image: np.ndarray, min_size: int | None = None) -> tuple[Tensor, tuple[float, float]]:
        """Tensor resized to the model's scale (or shorter side ``min_size``, the longer-side cap scaled with
        it), and the per-axis factors (sy, sx) from original to resized."""
        t = to_tensor(image)
        h, w = t.shape[-2:]
        short = self.min_size if min_size is None else int(min_size)
        cap = self.max_size if min_size is None else int(round(self.max_size * short / self.min_size))
        t = resize_image(t, resize_scale(h, w, short, cap))
        return t.to(self.device), (t.shape[-2] / h, t.shape[-1] / w)

    def to_original(self, boxes: Tensor, factors: tuple[float, float], height: int, width: int) -> np.ndarray:
        sy, sx = factors
        b = boxes.detach().float().cpu().clone()
        b[:, 0::2] = (b[:, 0::2] / sx).clamp(0, width)
        b[:, 1::2] = (b[:, 1::2] / sy).clamp(0, height)
        return b.numpy().astype(np.float32)

    @torch.no_grad()
    def predict(self, images: list[np.ndarray], score_threshold: float = 0.05) -> list[Detections]:
        """Detect objects in RGB uint8 images of any size; boxes come back in each image's own pixels.

        Images run one at a time: no padding to a common size, so results do not depend on the batch.
        With ``test_sizes`` (and ``test_flip``) each image runs at every size (and mirrored) and the
        detections of all of them are merged (:meth:`merge_passes`): small objects are found at the large
        sizes, large ones at the small sizes; ``test_size_range`` says which size may report which objects.
        """
        was_training = self.training
        self.eval()
        try:
            return [self.merge_passes(image, score_threshold).detections for image in images]
        finally:
            self.train(was_training)

    @torch.no_grad()
    def merge_passes(self, image: np.ndarray, score_threshold: float = 0.05) -> AugmentationMerge:
        """Run every test pass on ``image`` and merge them, keeping what each step did (:class:`AugmentationMerge`).

        The merge is the detections' own per-class NMS at the RoI head's IoU over all passes' detections (a
        pass's duplicates of an object another pass found better are removed as a pass's own duplicates
        are); ``test_merge`` "vote" then moves each kept box to its voters' weighted mean (:func:`box_vote`),
        "average" also scores it by the mean over the passes (:func:`pass_average`). With one pass nothing
        is merged.

        The passes run at the head's own score threshold (or ``score_threshold`` where that is lower), not
        at ``score_threshold``: a pass that scored an object 0.1 must count 0.1 in the average whatever the
        caller asks for, else the average would depend on the caller's threshold and fall below it. Lower
        than the head's threshold needs no pass to go: the head has already dropped those scores (a pass
        under it counts 0, as a single-pass model would not report it either). Only then, on the merged
        scores, sorted by them, ``score_threshold`` and the detection cap apply. A model with fitted prototype
        calibration keeps the head's output (its threshold, the cap), calibrates it, re-ranks, and only then
        applies ``score_threshold``, to the calibrated scores."""
        from models.detection.nms import NmsTrace, nms_trace

        internal = min(float(score_threshold), self.head_score_threshold())
        was_training = self.training
        self.eval()
        try:
            plan = self.test_passes
            sizes = list(dict.fromkeys(size for size, _ in plan))  # ascending: test_passes' order
            passes = []
            for size, flip in plan:
                valid = self._valid_range(sizes.index(size), len(sizes))
                boxes, scores, labels = self._detect_at(image, size, flip, internal, valid)
                passes.append(AugmentedPass(size, flip, Detections(boxes.numpy().astype(np.float32),
                                                              scores.numpy().astype(np.float32),
                                                              labels.numpy().astype(np.int64),
                                                              list(self.class_names))))
        finally:
            self.train(was_training)
        boxes = torch.from_numpy(np.concatenate([p.detections.boxes for p in passes]).reshape(-1, 4))
        scores = torch.from_numpy(np.concatenate([p.detections.scores for p in passes]))
        labels = torch.from_numpy(np.concatenate([p.detections.labels for p in passes]))
        pass_index = np.concatenate([np.full(len(p.detections), i, np.int64) for i, p in enumerate(passes)])
        candidates = Detections(boxes.numpy(), scores.numpy(), labels.numpy(), list(self.class_names))
        if len(passes) > 1:
            trace = nms_trace(boxes, scores, self.merge_nms, groups=labels)
        else:  # one pass: its own NMS is done; every detection stays, in its (score) order
            n = int(scores.numel())
            trace = NmsTrace(np.arange(n, dtype=np.int64), np.full(n, -1, np.int64), np.zeros(n, np.float32),
                             float(self.merge_nms))
        # Every NMS survivor is voted on and scored; the cap comes after the final ranking, so an object the
        # passes agree on is not cut for a lone strong box that averaging then ranks lower.
        kept = torch.as_tensor(np.asarray(trace.kept, np.int64), dtype=torch.long)
        voters: list[np.ndarray] = []
        final_boxes, final_scores = boxes[kept], scores[kept]
        if self.test_merge in ("vote", "average") and len(passes) > 1:
            final_boxes, voters = box_vote(boxes, scores, labels, kept, self.merge_nms)
        if self.test_merge == "average" and len(passes) > 1:
            final_scores = pass_average(scores, pass_index, voters, len(passes))
        calibrator = self.fitted_calibrator()
        # A calibrating model first keeps what the head reported (its own threshold, as DeFRCN calibrates the
        # detector's output); the caller's threshold then applies to the calibrated scores.
        first = internal if calibrator is not None else float(score_threshold)
        order = torch.sort(final_scores, descending=True, stable=True).indices
        order = order[final_scores[order] >= first][: self.merge_max_detections]
        final_boxes, final_scores, kept = final_boxes[order], final_scores[order], kept[order]
        voters = [voters[int(i)] for i in order] if voters else []
        calibration = None
        if calibrator is not None and len(order):
            rank, calibration = calibrator.rerank(image, final_boxes.numpy(), final_scores.numpy(),
                                                  labels[kept].numpy(), score_threshold)
            rank_t = torch.from_numpy(rank).long()
            final_boxes, kept = final_boxes[rank_t].reshape(-1, 4), kept[rank_t]
            final_scores = torch.from_numpy(calibration.scores)
            voters = [voters[int(i)] for i in rank] if voters else []
        final = Detections(final_boxes.numpy().astype(np.float32).reshape(-1, 4),
                           final_scores.numpy().astype(np.float32), labels[kept].numpy().astype(np.int64),
                           list(self.class_names))
        return AugmentationMerge(passes, candidates, pass_index, trace, self.test_merge, final, voters,
                                 kept.numpy().astype(np.int64), calibration)

    def fitted_calibrator(self) -> Any:
        """The :class:`~models.detection.score_calibration.PrototypeCalibrator` when the model calibrates its
        scores and its prototypes are fitted, else None (``roi_head.calibration`` "none", or a model saved
        before training ended)."""
        calibrator = self._modules.get("calibrator")
        return calibrator if calibrator is not None and calibrator.fitted else None

    def head_score_threshold(self) -> float:
        """The score a detection needs to leave the head (the RoI head's, or R-CNN's SVM scores' threshold)."""
        roi = getattr(self, "roi_heads", None)
        value = getattr(roi, "score_threshold", getattr(self, "box_score_threshold", None))
        if value is None:
            head = self.parts.roi_head
            value = head.score_threshold if head is not None else 0.0
        return float(value)

    def merged_trace(self, trace: Any, image: np.ndarray, score_threshold: float | None = None) -> Any:
        """``trace`` (of one pass at the model's own size) with its last stage replaced by the merge of the
        test passes when the model tests at several sizes or mirrored, so the window shows what ``predict``
        returns: ``candidates`` become every pass's detections (in the trace's input pixels, as its own
        candidates are), ``detection_nms`` the merging NMS over them, ``detections`` the merged result, and
        ``trace.merge`` keeps each pass (:class:`AugmentationMerge`). The earlier stages stay the single pass's.
        A model with fitted prototype calibration goes through the merge even with one pass, so that the window
        shows the calibrated scores ``predict`` returns (``trace.calibration``)."""
        one_pass = len(self.test_passes) < 2
        if one_pass and self.fitted_calibrator() is None:
            return trace
        if score_threshold is None:  # the head's own, as the single-pass trace
            score_threshold = self.head_score_threshold()
        thr = float(score_threshold)
        if one_pass:  # nothing to merge: the trace's own detections are calibrated, its NMS trace stays
            calibrator = self.fitted_calibrator()
            det = trace.detections
            rank, trace.calibration = calibrator.rerank(image, det.boxes, det.scores, det.labels, thr)
            trace.detections = Detections(det.boxes[rank].reshape(-1, 4), trace.calibration.scores,
                                          det.labels[rank], list(det.class_names))
            return trace
        merge = self.merge_passes(image, thr)
        trace.calibration = merge.calibration
        sy, sx = trace.factors
        boxes = merge.candidates.boxes.copy()
        boxes[:, 0::2] *= np.float32(sx)
        boxes[:, 1::2] *= np.float32(sy)
        trace.candidates = Detections(boxes, merge.candidates.scores, merge.candidates.labels,
                                      list(self.class_names))
        trace.detection_nms = merge.nms
        trace.detections = merge.detections
        trace.merge = merge
        return trace

    def _valid_range(self, position: int, count: int) -> tuple[float, float]:
        """[lo, hi) of √area in input pixels for the test size at ``position`` of ``count`` (ascending)."""
        if self.test_size_range is None or count < 2:
            return 0.0, math.inf
        lo, hi = self.test_size_range
        return (float(lo) if position < count - 1 else 0.0), (float(hi) if position > 0 else math.inf)

    def _detect_at(self, image: np.ndarray, size: int | None, flip: bool, score_threshold: float,
                   valid: tuple[float, float]) -> tuple[Tensor, Tensor, Tensor]:
        """One pass of test-time augmentation: boxes in the original image's pixels, scores, labels."""
        height, width = image.shape[:2]
        used = np.ascontiguousarray(image[:, ::-1]) if flip else image
        t, factors = self.prepare(used, size)
        det = self._forward_test(used, t, factors)
        input_boxes = det["boxes"].float()
        side = ((input_boxes[:, 2] - input_boxes[:, 0]).clamp(min=0)
                * (input_boxes[:, 3] - input_boxes[:, 1]).clamp(min=0)).sqrt()
        keep = (det["scores"] >= score_threshold) & (side >= valid[0]) & (side < valid[1])
        boxes = torch.from_numpy(self.to_original(input_boxes[keep], factors, height, width))
        if flip:
            boxes = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1)
        return boxes, det["scores"][keep].float().cpu(), det["labels"][keep].cpu().long()

    def _forward_test(self, image: np.ndarray, t: Tensor, factors: tuple[float, float]) -> dict[str, Tensor]:
        """The eval-mode forward of one prepared image ``t`` (``image``: the RGB array it was made from, for
        generations whose proposals come from outside the network)."""
        return self.forward([t])[0]

    def trace(self, image: np.ndarray, gt_boxes: np.ndarray | None = None,  # noqa: ANN201 - own dataclass each
              score_threshold: float | None = None, ignore_regions: np.ndarray | None = None):
        """Every stage's intermediates on one image, for the window to draw. One call for all generations:
        ``gt_boxes`` and ``ignore_regions`` (crowd or difficult boxes, original pixels) label the anchors of
        the generations that have them, and the others take and ignore them."""
        raise NotImplementedError
