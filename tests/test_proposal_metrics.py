"""Proposal recall and MABO: hand-computed cases, ignored objects, pooling over images."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.data.annotations import Annotation, BoxObject
from models.proposals.metrics import (
    AR_THRESHOLDS,
    average_recall,
    best_overlaps,
    iou_matrix,
    score_annotation,
    score_image,
    summarize,
)


def test_iou_uses_exclusive_corners() -> None:
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [10, 0, 20, 10], [3, 3, 3, 8]])
    np.testing.assert_allclose(iou_matrix(a, b), [[50 / 150, 1.0, 0.0, 0.0]])
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 4)


def test_best_overlap_recall_and_mabo_by_hand() -> None:
    gt = np.array([[0, 0, 10, 10], [20, 20, 40, 40], [100, 100, 110, 110]], np.float32)
    props = np.array([[0, 0, 10, 10], [20, 20, 40, 30], [0, 0, 5, 10]], np.float32)
    s = score_image(props, gt)
    np.testing.assert_allclose(s.best_iou, [1.0, 0.5, 0.0])
    assert s.best_index.tolist()[:2] == [0, 1]
    assert s.recall(0.5) == pytest.approx(2 / 3)
    assert s.recall(0.7) == pytest.approx(1 / 3)
    assert s.mabo == pytest.approx(0.5)
    np.testing.assert_allclose(best_overlaps(props, gt, chunk=1), s.best_iou)


def test_top_keeps_best_ranked_only() -> None:
    gt = np.array([[0, 0, 10, 10]])
    props = np.array([[50, 50, 60, 60], [0, 0, 10, 10]])
    assert score_image(props, gt, top=1).best_iou.tolist() == [0.0]
    assert score_image(props, gt, top=1).n_proposals == 1
    assert score_image(props, gt).best_iou.tolist() == [1.0]


def test_difficult_and_crowd_objects_are_left_out() -> None:
    ann = Annotation("a.jpg", 100, 100, objects=[
        BoxObject("cat", (0, 0, 10, 10)),
        BoxObject("cat", (50, 50, 90, 90), difficult=True),
        BoxObject("person", (20, 20, 30, 30), crowd=True),
    ])
    s = score_annotation(np.array([[0, 0, 10, 10]]), ann)
    assert s.n_gt == 1 and s.recall(0.5) == 1.0 and s.mabo == 1.0


def test_summary_pools_ground_truth_over_images() -> None:
    a = score_image(np.array([[0, 0, 10, 10]] * 3), np.array([[0, 0, 10, 10]]))  # 1 gt, recalled
    b = score_image(np.zeros((1, 4)), np.array([[0, 0, 4, 4], [5, 5, 9, 9], [1, 1, 2, 2]]))  # 3 gt, none
    empty = score_image(np.array([[0, 0, 1, 1]]), np.zeros((0, 4)))
    summ = summarize([a, b, empty])
    assert summ.images == 3 and summ.gt_boxes == 4
    assert summ.recall[0.5] == pytest.approx(0.25)  # pooled, not the mean of per-image recalls
    assert summ.mabo == pytest.approx(0.25)
    assert summ.boxes_per_image == pytest.approx((3 + 1 + 1) / 3)
    d = summ.as_dict()
    assert {"images", "gt_boxes", "boxes_per_image", "recall@0.5", "recall@0.7", "mabo"} <= set(d)
    assert {"ar", "recall@0.95", "ar@100", "recall@0.5@100", "recall@0.7@2000", "mabo@300"} <= set(d)
    nothing = summarize([empty])
    assert math.isnan(nothing.mabo) and math.isnan(nothing.recall[0.5])


def test_no_proposals_scores_zero() -> None:
    s = score_image(np.zeros((0, 4)), np.array([[0, 0, 5, 5]]))
    assert s.best_iou.tolist() == [0.0] and s.n_proposals == 0


def test_evaluate_dataset_reports_progress_skips_and_cancels(tmp_path) -> None:
    import cv2

    from models.data.annotations import write_voc
    from models.data.datasets import open_dataset
    from models.proposals.metrics import evaluate_dataset
    from models.proposals.selective_search import Cancelled

    img = np.zeros((40, 50, 3), np.uint8)
    img[10:30, 15:35] = (0, 0, 230)
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"im{i}.png"), img)
    write_voc(Annotation("im0.png", 50, 40, objects=[BoxObject("a", (15, 10, 35, 30))]), tmp_path / "im0.xml",
              tmp_path / "im0.png")
    (tmp_path / "im2.png").write_bytes(b"junk")
    ds = open_dataset(tmp_path)
    seen: list[tuple[int, int]] = []
    report = evaluate_dataset(ds, "single", progress=lambda done, total, name: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert report.summary.images == 1 and report.unannotated == 1  # im1 has no XML
    assert len(report.skipped) == 1 and "im2.png" in report.skipped[0]
    assert report.summary.recall[0.5] == 1.0
    d = report.as_dict()
    assert list(d)[:7] == ["images", "gt_boxes", "boxes_per_image", "recall@0.5", "recall@0.7", "mabo",
                           "seconds_per_image"]
    assert {"ar", "recall@0.95", "ar@100", "recall@0.7@2000"} <= set(d)
    with pytest.raises(Cancelled):
        evaluate_dataset(ds, "single", cancelled=lambda: True)


def test_ar_thresholds_are_cocos() -> None:
    assert AR_THRESHOLDS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def _direct_best(props: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Best IoU of each gt box by two plain loops (no vectorised helper), for checking."""
    out = []
    for g in gt:
        best = 0.0
        for p in props:
            iw = min(g[2], p[2]) - max(g[0], p[0])
            ih = min(g[3], p[3]) - max(g[1], p[1])
            inter = max(iw, 0) * max(ih, 0)
            union = (g[2] - g[0]) * (g[3] - g[1]) + (p[2] - p[0]) * (p[3] - p[1]) - inter
            best = max(best, inter / union if union > 0 else 0.0)
        out.append(best)
    return np.array(out)


def test_average_recall_and_budget_recalls_against_a_direct_computation() -> None:
    # Two images; the boxes that fit best come late in the ranking, so budgets cut them off.
    gt1 = np.array([[0, 0, 100, 100], [200, 200, 260, 240]], np.float64)
    props1 = np.array([[0, 0, 50, 100],        # IoU 0.5 with gt 0 (rank 0)
                       [200, 200, 250, 240],   # IoU 50/60 = 0.833 with gt 1 (rank 1)
                       [0, 0, 90, 100],        # IoU 0.9 with gt 0 (rank 2)
                       [200, 200, 260, 240],   # exact gt 1 (rank 3)
                       [0, 0, 100, 100]], np.float64)  # exact gt 0 (rank 4)
    gt2 = np.array([[10, 10, 30, 30]], np.float64)
    props2 = np.array([[10, 10, 30, 26], [10, 10, 30, 20]], np.float64)  # IoU 0.8 then 0.5
    budgets = (1, 2, 3, 4, 100)
    s1 = score_image(props1, gt1, budgets=budgets)
    s2 = score_image(props2, gt2, budgets=budgets)
    summ = summarize([s1, s2], budgets=budgets)
    # By hand first: all boxes → best overlaps 1.0, 1.0, 0.8 → recall@0.85 is 2/3, AR = (8·1 + 7·… )
    # Ten thresholds: 1.0 passes all ten, 0.8 passes 0.5..0.8 (seven) → AR = (10 + 10 + 7) / 30.
    assert summ.average_recall == pytest.approx(27 / 30)
    assert summ.recall[0.85] == pytest.approx(2 / 3)
    for n in budgets:
        best = np.concatenate([_direct_best(props1[:n], gt1), _direct_best(props2[:n], gt2)])
        direct_ar = np.mean([np.mean(best >= t) for t in np.linspace(0.5, 0.95, 10) - 1e-12])
        f = summ.budgets[n]
        assert f.average_recall == pytest.approx(direct_ar)
        assert f.recall[0.5] == pytest.approx(np.mean(best >= 0.5 - 1e-12))
        assert f.recall[0.7] == pytest.approx(np.mean(best >= 0.7))
        assert f.mabo == pytest.approx(best.mean())
        assert f.boxes_per_image == pytest.approx((min(n, 5) + min(n, 2)) / 2)
    # Budget 1 by hand: gt 0 at 0.5, gt 1 missed, image 2 at 0.8 → AR (1 + 0 + 7) / 30, recall@0.7 1/3.
    assert summ.budgets[1].average_recall == pytest.approx(8 / 30)
    assert summ.budgets[1].recall[0.7] == pytest.approx(1 / 3)
    assert summ.budgets[100].average_recall == summ.average_recall  # a budget above every count is "all"
    d = summ.as_dict()
    assert d["ar@1"] == pytest.approx(8 / 30) and d["recall@0.7@1"] == pytest.approx(1 / 3)
    assert average_recall(np.array([1.0, 0.8, 1.0])) == pytest.approx(27 / 30)


def test_budgets_need_scoring_first() -> None:
    s = score_image(np.zeros((5, 4)) + [0, 0, 1, 1], np.array([[0, 0, 1, 1]]), budgets=(2,))
    with pytest.raises(ValueError, match="budget 3"):
        summarize([s], budgets=(3,))
