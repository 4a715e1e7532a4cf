"""One image's detections against its ground truth: which are right, which are wrong and why, what was missed.

The evaluation view and the Detections stage of the explorer show every box tagged, so a user sees *why* AP is
what it is. The true/false positive decision is exactly the one :mod:`models.detection.evaluation` uses for VOC AP (so
the counts here add up to the AP's): per class, detections in descending score order (ties keep input order)
are matched to the ground-truth box of their class with the highest IoU; IoU must *exceed* ``iou_threshold``.

Every detection gets one outcome (the false-positive reasons follow the error analysis of Hoiem et al.,
"Diagnosing Error in Object Detectors", ECCV 2012, and TIDE, Bolya et al., ECCV 2020, with TIDE's background
threshold ``t_b`` = ``background_iou`` = 0.1 and foreground threshold ``t_f`` = ``iou_threshold``):

``tp`` — true positive: its best same-class ground-truth box has IoU > t_f, that box is neither difficult nor
    crowd, and no higher-scoring detection of the class has taken it.
``ignored`` — its best same-class ground-truth box has IoU > t_f but is difficult (VOC's rule), or it would be
    a false positive but at least t_f of its own area lies inside a crowd region of its class (COCO's
    ``iscrowd`` rule: a crowd region holds many unboxed objects, so a detection of one of them is neither
    right nor wrong; a crowd region is matched by nothing, and ``iou`` is then that share): neither right
    nor wrong. A crowd region is no object of any class: a box of another class on it is judged as if it
    were not there (background, not a wrong class).
``duplicate`` — its best same-class ground-truth box has IoU > t_f but a higher-scoring detection has already
    taken it: the object was found twice (usually NMS let a second box through).
``wrong_class`` — none of the above, and it overlaps a ground-truth box of *another* class with IoU > t_f
    (TIDE's classification error): the box is on an object, with the wrong name.
``localisation`` — poor localisation: none of the above, and its best same-class IoU lies in [t_b, t_f]: on
    the right object, but the box is too loose, too tight or shifted (TIDE's localisation error).
    A detection with no same-class box at IoU ≥ t_b but another-class box at IoU in [t_b, t_f] (TIDE's
    "both" error) also counts as ``wrong_class``: its name is the first thing wrong.
``background`` — IoU < t_b with every ground-truth box of every class: fired on nothing.

Ground-truth boxes: ``missed`` (false negatives) are those that are not difficult/crowd and that no ``tp``
took; difficult and crowd boxes are never missed and never counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.boxes_numpy import box_ioa_numpy
from models.detection.evaluation import iou_matrix

TP = "tp"
IGNORED = "ignored"
DUPLICATE = "duplicate"
WRONG_CLASS = "wrong_class"
LOCALISATION = "localisation"
BACKGROUND = "background"
#: False-positive reasons, in the order a panel lists them.
FP_REASONS = (DUPLICATE, WRONG_CLASS, LOCALISATION, BACKGROUND)
OUTCOMES = (TP, IGNORED, *FP_REASONS)
#: Words for a user (panel counts, box labels).
OUTCOME_TEXT = {TP: "true positive", IGNORED: "ignored (difficult/crowd)", DUPLICATE: "duplicate",
                WRONG_CLASS: "wrong class", LOCALISATION: "poor localisation", BACKGROUND: "background"}


@dataclass
class DetectionMatch:
    """Per-detection outcome and per-ground-truth status for one image (see the module docstring).

    ``outcome[i]``: one of :data:`OUTCOMES`. ``gt_index[i]``: the ground-truth box the outcome refers to (the
    matched box for tp/ignored/duplicate, the overlapped box for wrong_class/localisation), -1 for background.
    ``iou[i]``: the IoU with that box (for background: the largest IoU with any box, < t_b).
    ``missed[j]``: ground-truth box ``j`` is a false negative. ``gt_ignored[j]``: difficult or crowd.
    ``detected_by[j]``: the tp detection that found box ``j``, -1 if none.
    """

    outcome: list[str]
    gt_index: np.ndarray
    iou: np.ndarray
    missed: np.ndarray
    gt_ignored: np.ndarray
    detected_by: np.ndarray
    iou_threshold: float
    background_iou: float

    @property
    def n_tp(self) -> int:
        return self.outcome.count(TP)

    @property
    def n_fp(self) -> int:
        return sum(self.outcome.count(r) for r in FP_REASONS)

    @property
    def n_missed(self) -> int:
        return int(self.missed.sum())

    @property
    def n_ignored(self) -> int:
        return self.outcome.count(IGNORED)

    def counts(self) -> dict[str, int]:
        """Detections per outcome (every outcome present, zeros included) plus ``"missed"`` GT boxes."""
        out = {k: self.outcome.count(k) for k in OUTCOMES}
        out["missed"] = self.n_missed
        return out

    def false_positives(self, reason: str | None = None) -> list[int]:
        """Indices of false positives (of one reason)."""
        wanted = FP_REASONS if reason is None else (reason,)
        return [i for i, o in enumerate(self.outcome) if o in wanted]


def match_detections(det_boxes: np.ndarray, det_scores: np.ndarray, det_names: Sequence[str],
                     gt_boxes: np.ndarray, gt_names: Sequence[str], gt_ignored: np.ndarray | None = None,
                     iou_threshold: float = 0.5, background_iou: float = 0.1,
                     gt_crowd: np.ndarray | None = None) -> DetectionMatch:
    """Tag every detection of one image and find the missed ground truth (rules in the module docstring).

    Boxes are [N, 4] xyxy in the same pixels; names are class names. ``gt_ignored`` marks difficult/crowd
    boxes, ``gt_crowd`` which of them are crowd regions (default none of either; a crowd box is ignored
    whether or not ``gt_ignored`` says so).
    """
    db = np.asarray(det_boxes, np.float64).reshape(-1, 4)
    ds = np.asarray(det_scores, np.float64).reshape(-1)
    gb = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    dn, gn = [str(n) for n in det_names], [str(n) for n in gt_names]
    if not (db.shape[0] == ds.shape[0] == len(dn)):
        raise ValueError(f"{db.shape[0]} detected boxes, {ds.shape[0]} scores, {len(dn)} names")
    if gb.shape[0] != len(gn):
        raise ValueError(f"{gb.shape[0]} ground-truth boxes but {len(gn)} names")
    ign = np.zeros(gb.shape[0], bool) if gt_ignored is None else np.asarray(gt_ignored, bool).reshape(-1)
    crowd = np.zeros(gb.shape[0], bool) if gt_crowd is None else np.asarray(gt_crowd, bool).reshape(-1)
    if ign.shape[0] != gb.shape[0] or crowd.shape[0] != gb.shape[0]:
        raise ValueError(f"{ign.shape[0]} ignore and {crowd.shape[0]} crowd flags for {gb.shape[0]} ground-truth "
                         "boxes")
    ign = ign | crowd
    t_f, t_b = float(iou_threshold), float(background_iou)
    n, m = db.shape[0], gb.shape[0]
    same = np.array([[a == b for b in gn] for a in dn], bool).reshape(n, m)
    # A crowd region is no object to match or to be near: only "mostly inside it" counts (COCO's rule).
    ious = np.where(crowd[None, :], -1.0, iou_matrix(db, gb)) if n and m else np.zeros((n, m))
    inside = np.where(same & crowd[None, :], box_ioa_numpy(db, gb), -1.0) if n and crowd.any() \
        else np.full((n, m), -1.0)
    outcome = [""] * n
    gt_index = np.full(n, -1, np.int64)
    best = np.zeros(n)
    taken = np.zeros(m, bool)
    detected_by = np.full(m, -1, np.int64)
    order = np.argsort(-ds, kind="stable")
    for i in order.tolist():
        same_iou = np.where(same[i], ious[i], -1.0)
        j = int(np.argmax(same_iou)) if m else -1
        if j >= 0 and same_iou[j] > t_f and (ign[j] or not taken[j]):
            gt_index[i], best[i] = j, same_iou[j]
            if ign[j]:
                outcome[i] = IGNORED
            else:
                outcome[i] = TP
                taken[j] = True
                detected_by[j] = i
            continue
        c = int(np.argmax(inside[i])) if m else -1
        if c >= 0 and inside[i, c] >= t_f:  # a would-be false positive inside a crowd region of its class
            outcome[i], gt_index[i], best[i] = IGNORED, c, inside[i, c]
            continue
        if j >= 0 and same_iou[j] > t_f:
            outcome[i], gt_index[i], best[i] = DUPLICATE, j, same_iou[j]
            continue
        other_iou = np.where(same[i], -1.0, ious[i])
        k = int(np.argmax(other_iou)) if m else -1
        if k >= 0 and other_iou[k] > t_f:
            outcome[i], gt_index[i], best[i] = WRONG_CLASS, k, other_iou[k]
        elif j >= 0 and same_iou[j] >= t_b:
            outcome[i], gt_index[i], best[i] = LOCALISATION, j, same_iou[j]
        elif k >= 0 and other_iou[k] >= t_b:
            outcome[i], gt_index[i], best[i] = WRONG_CLASS, k, other_iou[k]
        else:
            outcome[i] = BACKGROUND
            best[i] = max(float(ious[i].max()), 0.0) if m else 0.0
    missed = ~ign & ~taken
    return DetectionMatch(outcome, gt_index, best.astype(np.float32), missed, ign, detected_by, t_f, t_b)


def suggest_boxes(det_boxes: np.ndarray, det_scores: np.ndarray, det_names: Sequence[str],
                  gt_boxes: np.ndarray, gt_names: Sequence[str], score_threshold: float,
                  overlap_iou: float = 0.5) -> np.ndarray:
    """Which detections to offer as new ground-truth boxes (model-assisted labelling), best score first.

    A detection is offered when its score is ≥ ``score_threshold`` and it overlaps no existing ground-truth
    box of the same class at IoU ≥ ``overlap_iou`` (the user's box wins: a suggestion never duplicates it) nor
    a higher-scoring offered detection of the same class at IoU ≥ ``overlap_iou`` (so accepting every
    suggestion never adds two boxes for one object). Returns indices into the detections.
    """
    db = np.asarray(det_boxes, np.float64).reshape(-1, 4)
    ds = np.asarray(det_scores, np.float64).reshape(-1)
    gb = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    dn, gn = [str(n) for n in det_names], [str(n) for n in gt_names]
    order = [int(i) for i in np.argsort(-ds, kind="stable") if ds[i] >= score_threshold]
    if not order:
        return np.zeros(0, np.int64)
    gt_iou = iou_matrix(db[order], gb) if gb.shape[0] else np.zeros((len(order), 0))
    chosen: list[int] = []
    for r, i in enumerate(order):
        if any(gt_iou[r, j] >= overlap_iou and gn[j] == dn[i] for j in range(gb.shape[0])):
            continue
        if chosen:
            prev = [c for c in chosen if dn[c] == dn[i]]
            if prev and iou_matrix(db[[i]], db[prev]).max() >= overlap_iou:
                continue
        chosen.append(i)
    return np.asarray(chosen, np.int64)


__all__ = ["BACKGROUND", "DUPLICATE", "FP_REASONS", "IGNORED", "LOCALISATION", "OUTCOMES", "OUTCOME_TEXT", "TP",
           "WRONG_CLASS", "DetectionMatch", "match_detections", "suggest_boxes"]
