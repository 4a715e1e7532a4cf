"""TP / FP-with-reason / missed tagging of one image's detections, and which detections become suggestions."""

import numpy as np
import pytest

from models.detection.evaluation import evaluate_detections
from models.detection.matching import (
    BACKGROUND,
    DUPLICATE,
    IGNORED,
    LOCALISATION,
    TP,
    WRONG_CLASS,
    match_detections,
    suggest_boxes,
)

GT = np.array([[10, 10, 50, 50], [100, 100, 160, 140], [200, 10, 240, 60]], np.float32)
GT_NAMES = ["cat", "dog", "cat"]


def test_each_reason_on_hand_made_boxes():
    det = np.array([
        [11, 11, 50, 50],      # 0 cat on cat 0, IoU 0.95 -> TP
        [10, 12, 50, 52],      # 1 cat on cat 0 again, lower score -> duplicate
        [100, 100, 160, 140],  # 2 cat exactly on the dog -> wrong class
        [200, 10, 240, 30],    # 3 cat on cat 2 at IoU 0.4 -> poor localisation
        [400, 400, 440, 440],  # 4 cat on nothing -> background
        [100, 100, 158, 140],  # 5 dog on the dog -> TP (lower score than the wrong-class cat)
        [30, 30, 80, 80],      # 6 dog, IoU with cat 0 = 400/(1600+2500-400)=0.108 -> wrong class ("both")
    ], np.float32)
    scores = np.array([0.9, 0.8, 0.95, 0.7, 0.6, 0.5, 0.4])
    names = ["cat", "cat", "cat", "cat", "cat", "dog", "dog"]
    m = match_detections(det, scores, names, GT, GT_NAMES)
    assert m.outcome == [TP, DUPLICATE, WRONG_CLASS, LOCALISATION, BACKGROUND, TP, WRONG_CLASS]
    assert m.gt_index.tolist() == [0, 0, 1, 2, -1, 1, 0]
    assert m.iou[3] == pytest.approx(0.4)
    assert m.missed.tolist() == [False, False, True]  # cat 2 only got a poor box
    assert m.detected_by.tolist() == [0, 5, -1]
    c = m.counts()
    assert (c[TP], m.n_fp, c["missed"]) == (2, 5, 1)
    assert m.false_positives(DUPLICATE) == [1]


def test_localisation_beats_a_weak_other_class_overlap_and_background_needs_low_iou_everywhere():
    gt = np.array([[0, 0, 100, 100], [50, 0, 150, 100]], np.float32)
    # Same-class IoU 0.3 with the cat, other-class IoU 0.6 with the dog -> wrong class (a clear other object).
    m = match_detections(np.array([[40, 0, 140, 100]]), [0.9], ["cat"], gt, ["cat", "dog"])
    assert m.outcome == [WRONG_CLASS] and m.gt_index.tolist() == [1]
    # Same-class 0.33, no other-class overlap -> poor localisation.
    m = match_detections(np.array([[-50, 0, 50, 100]]), [0.9], ["cat"], gt, ["cat", "dog"])
    assert m.outcome == [LOCALISATION]
    # IoU just under t_b with everything -> background; just at t_b -> localisation.
    m = match_detections(np.array([[0, 0, 100, 9.9], [0, 0, 100, 10]]), [0.9, 0.8], ["cat", "cat"],
                         gt[:1], ["cat"])
    assert m.outcome == [BACKGROUND, LOCALISATION]


def test_difficult_and_crowd_are_neither_hit_nor_miss():
    m = match_detections(np.array([[10, 10, 50, 50], [200, 10, 240, 60]]), [0.9, 0.8], ["cat", "cat"],
                         GT, GT_NAMES, gt_ignored=np.array([True, False, False]))
    assert m.outcome == [IGNORED, TP]
    assert m.missed.tolist() == [False, True, False] and m.n_fp == 0


def test_a_detection_mostly_inside_a_crowd_region_is_ignored_and_the_region_matches_nothing():
    gt = np.array([[0, 0, 200, 100], [150, 20, 190, 95]], np.float32)  # a crowd region, a boxed person
    det = np.array([[10, 10, 40, 90], [150, 20, 190, 95], [152, 20, 192, 95], [180, 10, 240, 90]], np.float32)
    crowd = np.array([True, False])
    m = match_detections(det, [0.9, 0.8, 0.7, 0.6], ["person"] * 4, gt, ["person"] * 2, gt_crowd=crowd)
    assert m.outcome[:3] == [IGNORED, TP, IGNORED] and m.outcome[3] != TP and m.n_fp == 1
    assert m.gt_index[0] == 0 and m.iou[0] == pytest.approx(1.0)  # the share of the detection inside the crowd
    assert m.missed.tolist() == [False, False] and m.gt_ignored.tolist() == [True, False]
    # another class's detection in a person crowd is no person: scored as usual
    other = match_detections(det[:1], [0.9], ["dog"], gt, ["person"] * 2, gt_crowd=crowd)
    assert other.outcome == [BACKGROUND]
    # the counts agree with the evaluation's
    res = evaluate_detections([{"boxes": gt, "labels": ["person"] * 2, "difficult": crowd, "crowd": crowd}],
                              [{"boxes": det, "scores": [0.9, 0.8, 0.7, 0.6], "labels": ["person"] * 4}],
                              ["person"], coco=False)
    assert (m.n_tp, m.n_fp) == (res.true_positives["person"], res.false_positives["person"])


@pytest.mark.parametrize("with_crowds", [False, True])
def test_true_and_false_positives_agree_with_the_evaluation_counts(with_crowds):
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 200, (40, 2))
    det = np.concatenate([xy, xy + rng.uniform(20, 60, (40, 2))], axis=1)
    scores = rng.uniform(0, 1, 40)
    names = [["cat", "dog"][k] for k in rng.integers(0, 2, 40)]
    gxy = rng.uniform(0, 200, (8, 2))
    gt = np.concatenate([gxy, gxy + rng.uniform(20, 60, (8, 2))], axis=1)
    gnames = [["cat", "dog"][k] for k in rng.integers(0, 2, 8)]
    crowd = np.arange(8) < (3 if with_crowds else 0)
    m = match_detections(det, scores, names, gt, gnames, gt_crowd=crowd)
    res = evaluate_detections([{"boxes": gt, "labels": gnames, "crowd": crowd}],
                              [{"boxes": det, "scores": scores, "labels": names}], ["cat", "dog"], coco=False)
    assert m.n_ignored == (0 if not with_crowds else len(det) - m.n_tp - m.n_fp) and (m.n_ignored > 0) == with_crowds
    assert m.n_tp == sum(res.true_positives.values())
    assert m.n_fp == sum(res.false_positives.values())


def test_suggestions_skip_boxes_the_user_drew_and_each_other():
    det = np.array([[10, 10, 50, 50], [12, 10, 52, 50], [100, 100, 160, 140], [300, 300, 340, 340],
                    [301, 300, 341, 340], [0, 0, 5, 5]], np.float32)
    scores = np.array([0.9, 0.95, 0.9, 0.8, 0.85, 0.2])
    names = ["cat", "dog", "cat", "cat", "cat", "cat"]
    user = np.array([[11, 11, 50, 50], [100, 100, 160, 140]], np.float32)
    out = suggest_boxes(det, scores, names, user, ["cat", "dog"], score_threshold=0.5)
    # 0: over the user's cat -> no. 1: a dog over a cat box -> offered. 2: a cat over the user's dog -> offered
    # (another class). 4 beats 3 (same object, higher score). 5: below the threshold.
    assert out.tolist() == [1, 2, 4]
    assert suggest_boxes(det, scores, names, user, ["cat", "dog"], 0.99).tolist() == []
