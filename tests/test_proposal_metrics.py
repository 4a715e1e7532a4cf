"""Proposal recall and MABO: hand-computed cases, ignored objects, pooling over images."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.annotations import Annotation, BoxObject
from models.proposal_metrics import best_overlaps, iou_matrix, score_annotation, score_image, summarize


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
    assert set(d) == {"images", "gt_boxes", "boxes_per_image", "recall@0.5", "recall@0.7", "mabo"}
    nothing = summarize([empty])
    assert math.isnan(nothing.mabo) and math.isnan(nothing.recall[0.5])


def test_no_proposals_scores_zero() -> None:
    s = score_image(np.zeros((0, 4)), np.array([[0, 0, 5, 5]]))
    assert s.best_iou.tolist() == [0.0] and s.n_proposals == 0


def test_evaluate_dataset_reports_progress_skips_and_cancels(tmp_path) -> None:
    import cv2

    from models.annotations import write_voc
    from models.datasets import open_dataset
    from models.proposal_metrics import evaluate_dataset
    from models.selective_search import Cancelled

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
    assert list(d) == ["images", "gt_boxes", "boxes_per_image", "recall@0.5", "recall@0.7", "mabo",
                       "seconds_per_image"]
    with pytest.raises(Cancelled):
        evaluate_dataset(ds, "single", cancelled=lambda: True)
