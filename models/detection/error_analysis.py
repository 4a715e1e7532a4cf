"""Where a detector fails, image by image: per-class true positives, false positives (with their reason) and
missed objects per image, the worst images of a class, and the confusion matrix — from one matching pass.

Why per image: AP says *how much* a class fails; the images with the most false positives or the most missed
boxes say *why* (a background texture it fires on, small objects it never finds), and a user fixes data or
settings by looking at them. The matching is :func:`models.detection.matching.match_detections` on the
detections scoring at least ``score_threshold``, so the counts equal what the Detections view shows on each
image at that slider value and match IoU; at score threshold 0 the true/false positive totals equal those of
VOC AP (:func:`models.detection.evaluation.evaluate_detections`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.detection.confusion import ConfusionMatrix, add_image, empty_counts
from models.detection.matching import FP_REASONS, TP, match_detections

#: Orders of :meth:`ErrorTable.worst`: most false positives + missed, most false positives, most missed.
BY_ERRORS = "errors"
BY_FALSE_POSITIVES = "false_positives"
BY_MISSED = "missed"
WORST_ORDERS = (BY_ERRORS, BY_FALSE_POSITIVES, BY_MISSED)


@dataclass
class WorstImage:
    """One image's counts for one class (a row of the worst-images list)."""

    position: int  # position among the evaluated images
    index: int  # ``source.entries`` index (what the window opens)
    name: str
    class_name: str
    false_positives: int
    missed: int
    true_positives: int
    ground_truth: int
    #: False positives per reason (:data:`models.detection.matching.FP_REASONS`).
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return self.false_positives + self.missed


@dataclass
class ErrorTable:
    """Counts per image and class: ``tp``/``fp``/``missed``/``ground_truth`` are int [images, classes];
    ``fp_reasons`` is int [images, classes, len(FP_REASONS)]. False positives count under the detection's
    class; missed and ground truth (non-difficult objects) under the object's."""

    classes: list[str]
    indices: list[int]
    names: list[str]
    tp: np.ndarray
    fp: np.ndarray
    missed: np.ndarray
    ground_truth: np.ndarray
    fp_reasons: np.ndarray
    iou_threshold: float
    score_threshold: float

    def totals(self, class_name: str) -> dict[str, int]:
        """Sums over the images for one class: tp, fp, missed, ground_truth and each FP reason."""
        k = self.classes.index(class_name)
        out = {"tp": int(self.tp[:, k].sum()), "fp": int(self.fp[:, k].sum()),
               "missed": int(self.missed[:, k].sum()), "ground_truth": int(self.ground_truth[:, k].sum())}
        for r, reason in enumerate(FP_REASONS):
            out[reason] = int(self.fp_reasons[:, k, r].sum())
        return out

    def worst(self, class_name: str, by: str = BY_ERRORS, limit: int | None = None) -> list[WorstImage]:
        """Images with at least one error of ``class_name``, worst first by ``by`` (ties: the other count,
        then dataset order). Images without an error of the class are left out: there is nothing to see."""
        if by not in WORST_ORDERS:
            raise ValueError(f"order {by!r} is not one of {', '.join(WORST_ORDERS)}")
        k = self.classes.index(class_name)
        fp, missed = self.fp[:, k], self.missed[:, k]
        key = {BY_ERRORS: (fp + missed, fp), BY_FALSE_POSITIVES: (fp, missed), BY_MISSED: (missed, fp)}[by]
        rows = [i for i in range(len(self.indices)) if (fp[i] if by == BY_FALSE_POSITIVES else
                                                        missed[i] if by == BY_MISSED else fp[i] + missed[i]) > 0]
        rows.sort(key=lambda i: (-int(key[0][i]), -int(key[1][i]), i))
        if limit is not None:
            rows = rows[:limit]
        return [WorstImage(i, self.indices[i], self.names[i], class_name, int(fp[i]), int(missed[i]),
                           int(self.tp[i, k]), int(self.ground_truth[i, k]),
                           {r: int(self.fp_reasons[i, k, j]) for j, r in enumerate(FP_REASONS)}) for i in rows]


@dataclass
class ErrorAnalysis:
    """The matrix and the per-image table of one matching pass (same thresholds)."""

    confusion: ConfusionMatrix
    errors: ErrorTable


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _names(labels: Any) -> list[str]:
    return [] if labels is None else [str(s) for s in list(labels)]


def analyse_errors(ground_truth: Sequence[Any], detections: Sequence[Any], class_names: Sequence[str],
                   indices: Sequence[int] | None = None, image_names: Sequence[str] | None = None,
                   iou_threshold: float = 0.5, score_threshold: float = 0.5, background_iou: float = 0.1
                   ) -> ErrorAnalysis:
    """Match every image's detections scoring ≥ ``score_threshold`` to its ground truth and count.

    ``ground_truth[i]`` / ``detections[i]``: :class:`models.detection.evaluation.ImageGroundTruth` /
    ``ImageDetections`` (labels as class names; ``difficult`` objects and ``crowd`` regions are neither missed
    nor matched). Names met that are not in ``class_names`` are appended. ``indices`` / ``image_names``
    identify the images (default: positions).
    """
    if len(ground_truth) != len(detections):
        raise ValueError(f"{len(ground_truth)} ground-truth images but {len(detections)} detection lists")
    n = len(ground_truth)
    idx = list(range(n)) if indices is None else [int(i) for i in indices]
    names = [str(i) for i in idx] if image_names is None else [str(s) for s in image_names]
    if len(idx) != n or len(names) != n:
        raise ValueError(f"{n} images but {len(idx)} indices and {len(names)} names")
    classes = list(class_names)
    prepared = []
    for gt, det in zip(ground_truth, detections, strict=True):
        gb = np.asarray(_get(gt, "boxes"), np.float64).reshape(-1, 4)
        gn = _names(_get(gt, "labels"))
        diff, crowd = _get(gt, "difficult"), _get(gt, "crowd")
        gc = np.zeros(gb.shape[0], bool) if crowd is None else np.asarray(crowd, bool).reshape(-1)
        gd = (np.zeros(gb.shape[0], bool) if diff is None else np.asarray(diff, bool).reshape(-1)) | gc
        db = np.asarray(_get(det, "boxes"), np.float64).reshape(-1, 4)
        ds = np.asarray(_get(det, "scores"), np.float64).reshape(-1)
        dn = _names(_get(det, "labels"))
        keep = np.flatnonzero(ds >= score_threshold)
        dn = [dn[i] for i in keep.tolist()]
        prepared.append((gb, gn, gd, gc, db[keep], ds[keep], dn))
        for c in gn + dn:
            if c not in classes:
                classes.append(c)
    k = len(classes)
    col = {c: i for i, c in enumerate(classes)}
    counts = empty_counts(k)
    tp = np.zeros((n, k), np.int64)
    fp = np.zeros((n, k), np.int64)
    missed = np.zeros((n, k), np.int64)
    n_gt = np.zeros((n, k), np.int64)
    reasons = np.zeros((n, k, len(FP_REASONS)), np.int64)
    reason_col = {r: j for j, r in enumerate(FP_REASONS)}
    for i, (gb, gn, gd, gc, db, ds, dn) in enumerate(prepared):
        m = match_detections(db, ds, dn, gb, gn, gd, iou_threshold=iou_threshold, background_iou=background_iou,
                             gt_crowd=gc)
        add_image(counts, classes, m, dn, gn)
        for d, outcome in enumerate(m.outcome):
            c = col[dn[d]]
            if outcome == TP:
                tp[i, c] += 1
            elif outcome in reason_col:
                fp[i, c] += 1
                reasons[i, c, reason_col[outcome]] += 1
        for j, name in enumerate(gn):
            if not gd[j]:
                n_gt[i, col[name]] += 1
            if m.missed[j]:
                missed[i, col[name]] += 1
    confusion = ConfusionMatrix(classes, counts, float(iou_threshold), float(background_iou), float(score_threshold))
    table = ErrorTable(classes, idx, names, tp, fp, missed, n_gt, reasons, float(iou_threshold),
                       float(score_threshold))
    return ErrorAnalysis(confusion, table)


__all__ = ["BY_ERRORS", "BY_FALSE_POSITIVES", "BY_MISSED", "WORST_ORDERS", "ErrorAnalysis", "ErrorTable",
           "WorstImage", "analyse_errors"]
