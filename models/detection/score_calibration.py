"""Prototype score calibration: an ImageNet classifier's second opinion on each detection's score.

A detector fine-tuned on a few dozen photographs learns its classifier (the RoI head's fully connected
layers) from a few hundred boxes, and it ranks poorly the objects in poses it rarely saw. DeFRCN (Qiao et al., ICCV 2021) calls this its Prototypical Calibration Block: each
detection's crop goes through a network trained on ImageNet (a fixed feature extractor: the "CNN codes" of
:mod:`models.detection.features`), and the cosine similarity of its code to the mean code of the training
boxes of its class (the class *prototype*) is mixed into the score::

    score' = alpha · score + (1 − alpha) · cos(code(box), prototype[class])     for lower <= score < upper

DeFRCN's values: alpha 0.5, lower 0.05, upper 1.0 (scores outside are left alone). The prototypes are the
mean codes of the training set's boxes (crowd and difficult ones left out), computed once after training and
kept in the model's state dict (buffers of :class:`PrototypeCalibrator`), so a checkpoint carries them.

Measured on coco_tiny's persons, the fine-tuning preset's fifteen cross-validation folds (bench/README.md,
"Prototype calibration"): AP@0.5 0.263 → 0.267, higher on 9 of 15 folds — a small gain, within the
folds' noise, for one more EfficientNet-Lite0 pass per detection. Calibrated scores are no probabilities:
the cosines are mostly well above 0.5, so weak detections come out at 0.3-0.4.

Codes are EfficientNet-Lite0's ImageNet codes (crops warped to 224 px with 16 px of context, R-CNN's),
whatever the detector's own backbone: the prototypes and the detections must be read by the same network,
and that network's weights ship with the product. The extractor is not a submodule: its 4.7 M parameters
must neither train nor enter the detector's checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

#: DeFRCN's PCB settings (its config: PCB_ALPHA 0.5, PCB_LOWER 0.05, PCB_UPPER 1.0).
ALPHA, LOWER, UPPER = 0.5, 0.05, 1.0
#: Width of EfficientNet-Lite0's pooled code.
CODE_DIM = 1280


def imagenet_extractor(device: str | torch.device = "cpu"):  # noqa: ANN201 - features.CnnCodeExtractor
    """The product's shared ImageNet extractor (:func:`models.detection.features.shared_imagenet_extractor`;
    WeightsPackageMissing, with how to install it, when the weights package is absent)."""
    from models.detection.features import shared_imagenet_extractor

    return shared_imagenet_extractor(device)


@dataclass
class ScoreCalibration:
    """What calibration did to one image's detections: :meth:`PrototypeCalibrator.calibrate` returns them in
    the order it was given; the detector then re-ranks them together with its detections, so that entry ``i``
    describes detection ``i`` of what ``predict`` returns (and of ``trace.calibration``)."""

    head_scores: np.ndarray  # [M] the scores the detector gave
    similarity: np.ndarray  # [M] cosine of the box's code to its class prototype; NaN where not computed
    scores: np.ndarray  # [M] after calibration
    applied: np.ndarray  # [M] bool: lower <= head score < upper and the class has a prototype
    alpha: float


class PrototypeCalibrator(nn.Module):
    """Per-class prototypes (buffers: saved with the model) and the calibration rule of the module docstring."""

    def __init__(self, num_classes: int, alpha: float = ALPHA, lower: float = LOWER, upper: float = UPPER) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"the calibration's alpha is in [0, 1], got {alpha:g}")
        self.alpha, self.lower, self.upper = float(alpha), float(lower), float(upper)
        self.register_buffer("prototypes", torch.zeros(num_classes, CODE_DIM))
        self.register_buffer("counts", torch.zeros(num_classes, dtype=torch.int64))

    @property
    def fitted(self) -> bool:
        """True once some class has a prototype (a model saved before fitting calibrates nothing)."""
        return bool(self.counts.sum() > 0)

    def fit(self, images: Iterable[Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray]]],
            cancelled: Callable[[], bool] | None = None, progress: Callable[[int, int], None] | None = None,
            cache: object | None = None, problems: list[str] | None = None) -> dict[str, int]:
        """Prototypes from the training boxes: ``images`` yields loaders of (RGB pixels, boxes [N, 4] in those
        pixels, labels 1..K) — crowd and difficult boxes already left out. Each prototype is the mean code of
        its class's boxes; a class without boxes keeps none (its detections stay uncalibrated). ``cache``: a
        :class:`~models.detection.features.FeatureCache` (the same boxes come back at every training).
        An image that cannot be read is skipped, with a message appended to ``problems``. Returns the box
        count per class index (as a string, 1..K)."""
        sums, counts = self.accumulate(images, cancelled, progress, cache, problems)
        return self.set_prototypes(sums, counts)

    def accumulate(self, images: Iterable[Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray]]],
                   cancelled: Callable[[], bool] | None = None, progress: Callable[[int, int], None] | None = None,
                   cache: object | None = None, problems: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`fit`'s first half: the sum of each class's box codes [K, 1280] (float64) and the box count per
        class [K], without changing the prototypes. Apart so that the ranks of a data-parallel run each sum
        their share of the images and add the sums up (the mean of all boxes, whatever the split)."""
        from models.data.io import ImageError
        from models.detection.features import cnn_codes

        extractor = imagenet_extractor(self.prototypes.device)
        loaders = list(images)
        k = self.prototypes.shape[0]
        sums, counts = np.zeros((k, CODE_DIM), np.float64), np.zeros(k, np.int64)
        for done, load in enumerate(loaders):
            if cancelled is not None and cancelled():
                raise InterruptedError("calibration stopped")
            try:
                pixels, boxes, labels = load()
            except (ImageError, OSError) as exc:
                if problems is not None:
                    problems.append(f"{exc}; skipped")
                continue
            boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
            labels = np.asarray(labels, np.int64).reshape(-1)
            if len(boxes):
                codes = cnn_codes(pixels, boxes, extractor, cache).codes
                np.add.at(sums, labels - 1, codes)
                np.add.at(counts, labels - 1, 1)
            if progress is not None:
                progress(done + 1, len(loaders))
        return sums, counts

    def set_prototypes(self, sums: np.ndarray, counts: np.ndarray) -> dict[str, int]:
        """Prototypes = ``sums`` / ``counts`` (:meth:`accumulate`'s, or their sum over ranks); a class with no
        box keeps a zero prototype and count 0 (its detections stay uncalibrated). Returns the counts as
        :meth:`fit` does."""
        sums, counts = np.asarray(sums, np.float64), np.asarray(counts, np.int64)
        means = sums / np.maximum(counts, 1)[:, None]
        self.prototypes.copy_(torch.from_numpy(means.astype(np.float32)))
        self.counts.copy_(torch.from_numpy(counts))
        return {str(i + 1): int(c) for i, c in enumerate(counts)}

    def rerank(self, image: np.ndarray, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
               score_threshold: float) -> tuple[np.ndarray, ScoreCalibration]:
        """Calibrate, re-rank by the calibrated score and drop what falls under ``score_threshold`` (the
        caller's threshold applies to the scores it gets back). Returns the kept inputs' indices in the new
        order and the calibration in that order."""
        cal = self.calibrate(image, boxes, scores, labels)
        rank = np.argsort(-cal.scores, kind="stable")
        rank = rank[cal.scores[rank] >= np.float32(score_threshold)]
        return rank, replace(cal, **{name: getattr(cal, name)[rank] for name in
                                     ("head_scores", "similarity", "scores", "applied")})

    def calibrate(self, image: np.ndarray, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray
                  ) -> ScoreCalibration:
        """Calibrated scores of one image's detections (``boxes`` in ``image``'s pixels, ``labels`` 1..K)."""
        scores = np.asarray(scores, np.float32).reshape(-1)
        labels = np.asarray(labels, np.int64).reshape(-1)
        counts = self.counts.cpu().numpy()
        applied = (scores >= self.lower) & (scores < self.upper) & (counts[labels - 1] > 0) if len(scores) else \
            np.zeros(0, bool)
        similarity = np.full(len(scores), np.nan, np.float32)
        out = scores.copy()
        if applied.any():
            codes = imagenet_extractor(self.prototypes.device).compute(
                image, np.asarray(boxes, np.float32).reshape(-1, 4)[applied])[0]
            protos = self.prototypes.cpu().numpy()[labels[applied] - 1]
            cos = (codes * protos).sum(1) / (np.linalg.norm(codes, axis=1) * np.linalg.norm(protos, axis=1) + 1e-12)
            similarity[applied] = cos
            out[applied] = self.alpha * scores[applied] + (1.0 - self.alpha) * cos
        return ScoreCalibration(scores, similarity, out.astype(np.float32), applied, self.alpha)


def target_loaders(targets: Iterable) -> list[Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """One loader per :class:`~models.data.training_data.ImageTargets`: the decoded image (unflipped, as read
    for display: a huge photo comes back shrunk, its boxes with it) and its boxes and labels, crowd and
    difficult boxes left out — what :meth:`PrototypeCalibrator.fit` takes."""
    from models.data.io import read_image

    def loader(t):  # noqa: ANN001, ANN202 - ImageTargets
        def load() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            dec = read_image(t.path)
            ordinary = ~np.asarray(t.difficult, bool)
            boxes = np.asarray(t.boxes, np.float32).reshape(-1, 4)[ordinary] * np.float32(dec.scale)
            return dec.pixels, boxes, np.asarray(t.labels, np.int64)[ordinary]
        return load

    return [loader(t) for t in targets]


def enable_calibration(model: nn.Module, alpha: float = ALPHA) -> PrototypeCalibrator:
    """Give a detector prototype calibration (unfitted), in its config too, so that a checkpoint saved
    afterwards rebuilds it: for a model trained without it (``main.py calibrate``). ValueError for a model
    without a detection head (classification + localisation answers once per image)."""
    if getattr(model.parts, "roi_head", None) is None:
        raise ValueError(f"a {model.generation} model has no detections to calibrate")
    model.parts = model.parts.with_overrides({"roi_head": {"calibration": "prototype",
                                                           "calibration_alpha": float(alpha)}})
    calibrator = PrototypeCalibrator(model.num_classes, alpha).to(next(model.parameters()).device)
    model.calibrator = calibrator
    return calibrator


def fit_on_dataset(model: nn.Module, source: object, indices: Iterable[int],
                   cancelled: Callable[[], bool] | None = None, progress: Callable[[int, int], None] | None = None
                   ) -> tuple[dict[str, int], list[str]]:
    """Fit ``model.calibrator`` on the labelled boxes of ``source.entries[indices]`` (the model's classes;
    the others ignored), through the product's CNN-code cache. Returns boxes per class name and messages
    for images that could not be read (skipped)."""
    from models.data.annotations import AnnotationError
    from models.data.io import ImageError
    from models.data.training_data import load_targets
    from models.detection.features import FeatureCache

    targets, problems = [], []
    for idx in indices:
        try:
            t, _ = load_targets(source, int(idx), list(model.class_names), report_other_classes=False)
        except (AnnotationError, ImageError, OSError) as exc:
            problems.append(f"{source.entries[int(idx)].name}: {exc}; skipped")
            continue
        targets.append(t)
    with FeatureCache() as cache:
        counts = model.calibrator.fit(target_loaders(targets), cancelled, progress, cache, problems)
    return {model.class_names[int(k) - 1]: n for k, n in counts.items()}, problems
