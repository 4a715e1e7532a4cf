"""A detection confusion matrix with background: which objects each class's boxes land on, and what is missed.

Why its own rules and not the classifier's matrix: a detector's error is not only a wrong name; it also fires
on nothing and misses objects. The matrix is built from the per-image matching of
:func:`models.detection.matching.match_detections` (the VOC matching AP uses), so its numbers agree with the
TP/FP/missed counts the Detections view shows for each image.

Only detections scoring at least ``score_threshold`` count (AP uses every score; a matrix needs an operating
point, like a user looking at the boxes the Detections view shows at that slider value). IoU thresholds are
the matching's: a detection is on an object when IoU > ``iou_threshold`` (t_f, VOC's 0.5); below
``background_iou`` (t_b, 0.1) it is on nothing.

Rows are the ground truth — each class, then ``background`` — and columns the prediction — each class, then
``missed``:

* ``[c, c]`` (diagonal): true positives of class c, each object counted at most once;
* ``[g, c]``, g ≠ c: class-c detections that overlap an object of class g at IoU > t_f (a wrong name; outcome
  ``wrong_class`` with IoU above t_f);
* ``[background, c]``: every other false positive of class c — fired on nothing (``background``), poorly
  placed (``localisation``: same-class IoU in [t_b, t_f]), a second box on an object already found
  (``duplicate``), or a wrong name on a barely overlapped object (``wrong_class`` with IoU ≤ t_f);
* ``[g, missed]``: objects of class g that no true positive found (false negatives);
* ``[background, missed]`` is always 0 (nothing is missed on background).

So each column sums to the class's detections at that score (less those ignored: on a difficult object, as
VOC does, or inside a crowd region, as COCO does), and for each class diagonal + missed = its non-difficult objects. A wrong-name box
on an object that was *also* found correctly counts in both that object's diagonal and its off-diagonal cell:
the matrix counts detections, plus misses, not objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.detection.matching import IGNORED, TP, WRONG_CLASS, DetectionMatch

#: The last row's label: detections on no object of any class.
BACKGROUND_ROW = "background"
#: The last column's label: objects that no detection found.
MISSED_COLUMN = "missed"


@dataclass
class ConfusionMatrix:
    """``counts[row, column]`` with rows ``classes + [background]`` and columns ``classes + [missed]``."""

    classes: list[str]
    counts: np.ndarray  # int64 [K + 1, K + 1]
    iou_threshold: float
    background_iou: float
    score_threshold: float

    @property
    def row_labels(self) -> list[str]:
        return [*self.classes, BACKGROUND_ROW]

    @property
    def column_labels(self) -> list[str]:
        return [*self.classes, MISSED_COLUMN]

    def cell(self, ground_truth: str, predicted: str) -> int:
        """The count for a row label (a class or ``background``) and a column label (a class or ``missed``)."""
        return int(self.counts[self.row_labels.index(ground_truth), self.column_labels.index(predicted)])

    def rows(self) -> list[list[Any]]:
        """The matrix as table rows for a CSV: a header row, then one row per ground-truth label."""
        out: list[list[Any]] = [["ground truth \\ predicted", *self.column_labels]]
        for label, row in zip(self.row_labels, self.counts.tolist(), strict=True):
            out.append([label, *row])
        return out


def add_image(counts: np.ndarray, classes: Sequence[str], match: DetectionMatch, det_names: Sequence[str],
              gt_names: Sequence[str]) -> None:
    """Add one image's matching (of the detections above the score threshold) to ``counts`` in place.

    Names not in ``classes`` raise KeyError: the caller decides the class list once for all images.
    """
    k = len(classes)
    col = {c: i for i, c in enumerate(classes)}
    for i, outcome in enumerate(match.outcome):
        if outcome == IGNORED:
            continue
        pred = col[str(det_names[i])]
        if outcome == TP:
            counts[pred, pred] += 1
        elif outcome == WRONG_CLASS and float(match.iou[i]) > match.iou_threshold:
            counts[col[str(gt_names[int(match.gt_index[i])])], pred] += 1
        else:
            counts[k, pred] += 1
    for j in np.flatnonzero(match.missed).tolist():
        counts[col[str(gt_names[j])], k] += 1


def empty_counts(n_classes: int) -> np.ndarray:
    return np.zeros((n_classes + 1, n_classes + 1), np.int64)


__all__ = ["BACKGROUND_ROW", "MISSED_COLUMN", "ConfusionMatrix", "add_image", "empty_counts"]
