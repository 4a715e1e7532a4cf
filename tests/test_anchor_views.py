"""models.detection.anchor_labels and models.detection.rpn_views: the result objects the anchor, RPN and regression stages draw."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.ops import nms as tv_nms

from models.boxes import RPN_STDS, box_iou, decode
from models.detection.anchor_labels import (
    CROSS_BOUNDARY,
    AnchorSpec,
    feature_size_for,
    input_geometry,
    label_anchor_grid,
    parse_numbers,
)
from models.detection.anchors import IGNORED, NEGATIVE, POSITIVE, AnchorGenerator, label_anchors
from models.detection.config import DetectorConfig
from models.detection.detectors.base import Detector
from models.detection.rpn_views import (
    anchor_regression,
    objectness_grid,
    roi_at,
    roi_regression,
    select_proposals,
)

GT = np.array([[40.0, 50.0, 180.0, 170.0], [300.0, 20.0, 330.0, 60.0]], np.float32)


def test_labelling_matches_label_anchors_and_splits_cross_boundary() -> None:
    spec = AnchorSpec(16, (32.0, 64.0, 128.0), (0.5, 1.0, 2.0))
    lab = label_anchor_grid(spec, (240, 400), GT)
    assert lab.feature_size == (15, 25)
    ref = AnchorGenerator(spec.sizes, spec.ratios, 16)((15, 25))
    assert torch.equal(lab.anchors.boxes, ref)
    labels, _, max_iou = label_anchors(ref, torch.tensor(GT), image_size=(240, 400))
    kinds = lab.kinds
    inside = ((ref[:, 0] >= 0) & (ref[:, 1] >= 0) & (ref[:, 2] <= 400) & (ref[:, 3] <= 240)).numpy()
    assert np.array_equal(kinds[inside], labels.numpy()[inside])
    assert np.all(kinds[~inside] == CROSS_BOUNDARY) and np.array_equal(lab.crosses, ~inside)
    counts = lab.counts()
    assert counts[POSITIVE] == int((labels == 1).sum())
    assert counts[NEGATIVE] == int((labels == 0).sum())
    assert counts[IGNORED] + counts[CROSS_BOUNDARY] == int((labels == -1).sum())
    assert sum(counts.values()) == ref.shape[0]
    assert np.allclose(lab.max_iou, max_iou.numpy())


def test_best_anchor_of_each_gt_is_positive_even_below_the_threshold() -> None:
    spec = AnchorSpec(16, (128.0,), (1.0,))  # 128-px squares: the 30×40 GT box overlaps none by 0.7
    lab = label_anchor_grid(spec, (256, 400), GT)
    iou = box_iou(torch.tensor(GT), lab.anchors.boxes).numpy()
    iou[:, lab.crosses] = -1  # cross-boundary anchors are not considered in training
    for g in range(2):
        assert lab.best_anchor[g] == int(np.argmax(iou[g]))
        assert lab.kinds[lab.best_anchor[g]] == POSITIVE
        assert np.isclose(lab.best_iou[g], iou[g].max())
    small = lab.best_anchor[1]
    assert lab.best_iou[1] < 0.7 and lab.forced[small]


def test_no_ground_truth_means_every_inside_anchor_is_negative() -> None:
    lab = label_anchor_grid(AnchorSpec(16, (32.0,), (1.0,)), (64, 64), np.zeros((0, 4)))
    assert set(np.unique(lab.kinds).tolist()) <= {NEGATIVE, CROSS_BOUNDARY}
    assert lab.best_anchor.shape == (0,)
    keep_all = label_anchor_grid(AnchorSpec(16, (32.0,), (1.0,), ignore_cross_boundary=False), (64, 64),
                                 np.zeros((0, 4)))
    assert np.all(keep_all.kinds == NEGATIVE) and keep_all.crosses.any()


def test_cells_map_points_to_their_anchors() -> None:
    spec = AnchorSpec(8, (16.0, 32.0), (0.5, 1.0, 2.0))
    lab = label_anchor_grid(spec, (40, 64), GT[:1] / 4)
    assert lab.cell_at(17.0, 9.0) == (1, 2)
    assert lab.cell_at(-1.0, 3.0) is None and lab.cell_at(3.0, 40.0) is None
    idx = lab.cell_indices(1, 2)
    centres = (lab.boxes[idx, :2] + lab.boxes[idx, 2:]) / 2
    assert np.allclose(centres, [[20.0, 12.0]] * 6)
    assert lab.describe(idx[4]) == (32.0, 1.0)
    assert np.allclose(lab.centres()[1 * 8 + 2], [20.0, 12.0])
    ck = lab.cell_kinds()
    assert ck.shape == (5 * 8,)
    for cell in range(40):
        ks = set(lab.kinds[cell * 6:(cell + 1) * 6].tolist())
        expect = next(k for k in (POSITIVE, IGNORED, NEGATIVE, CROSS_BOUNDARY) if k in ks)
        assert ck[cell] == expect


def test_bad_parameters_give_clear_errors() -> None:
    with pytest.raises(ValueError, match="stride"):
        label_anchor_grid(AnchorSpec(0), (64, 64), GT)
    with pytest.raises(ValueError, match="negative IoU"):
        label_anchor_grid(AnchorSpec(16, positive_iou=0.2, negative_iou=0.5), (64, 64), GT)
    with pytest.raises(ValueError, match="too many"):
        label_anchor_grid(AnchorSpec(1, (8.0,) * 10, (1.0,) * 10), (1000, 1000), GT)
    assert parse_numbers("128, 256;512", "size") == (128.0, 256.0, 512.0)
    for bad in ("", "a, 3", "-2"):
        with pytest.raises(ValueError, match="size"):
            parse_numbers(bad, "size")


def test_input_geometry_is_the_detectors_resize() -> None:
    det = Detector(["a"], DetectorConfig.default("faster-rcnn").with_overrides({"input": {"min_size": 600,
                                                                                           "max_size": 1000}}))
    det.dummy = torch.nn.Linear(1, 1)  # prepare() moves to the model's device: it needs one parameter
    image = np.zeros((333, 517, 3), np.uint8)
    t, factors = det.prepare(image)
    size, f = input_geometry(333, 517, 600, 1000)
    assert size == tuple(t.shape[-2:]) and np.allclose(f, factors)
    assert feature_size_for((600, 931), 16) == (38, 59)


def test_objectness_grid_is_the_max_over_each_cells_anchors() -> None:
    rng = np.random.default_rng(0)
    obj = rng.random(3 * 4 * 5).astype(np.float32)
    grid = objectness_grid(obj, (3, 4), 5)
    for r in range(3):
        for c in range(4):
            assert grid[r, c] == obj[(r * 4 + c) * 5:(r * 4 + c + 1) * 5].max()
    with pytest.raises(ValueError):
        objectness_grid(obj, (3, 4), 4)


def test_select_proposals_is_torchvision_nms_then_top_n() -> None:
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 200, (300, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(10, 80, (300, 2))], 1).astype(np.float32)
    scores = rng.random(300).astype(np.float32)
    for thr, n in ((0.3, 20), (0.7, 50), (0.95, 1000)):
        sel = select_proposals(boxes, scores, n, thr)
        ref = tv_nms(torch.tensor(boxes), torch.tensor(scores), thr).numpy()
        assert np.array_equal(sel.kept, ref[:n]) and sel.survivors == ref.size
        assert np.array_equal(sel.before, np.argsort(-scores, kind="stable")[:n])
    assert select_proposals(np.zeros((0, 4)), np.zeros(0), 5, 0.5).kept.size == 0


def test_anchor_and_roi_regression_decode_the_stored_deltas() -> None:
    aset = AnchorGenerator((32.0, 64.0), (0.5, 1.0, 2.0), 16).anchor_set((4, 5))
    rng = np.random.default_rng(2)
    deltas = rng.normal(0, 0.2, (aset.boxes.shape[0], 4)).astype(np.float32)
    obj = rng.random(aset.boxes.shape[0]).astype(np.float32)
    r = anchor_regression(aset, deltas, obj, 37)
    expect = decode(aset.boxes[37:38], torch.tensor(deltas[37:38]), RPN_STDS)[0].numpy()
    assert np.allclose(r.box, expect) and np.allclose(r.deltas, deltas[37])
    assert r.cell == (1, 1) and (r.size, r.ratio) == (32.0, 1.0) and r.objectness == obj[37]
    with pytest.raises(IndexError):
        anchor_regression(aset, deltas, obj, 10_000)
    rois = np.array([[10, 10, 50, 60], [0, 0, 100, 100]], np.float32)
    cls_scores = np.array([[0.1, 0.2, 0.7], [0.5, 0.4, 0.1]], np.float32)
    cls_boxes = np.stack([rois + 2, rois - 1, rois * 1.1], 1).astype(np.float32)
    rr = roi_regression(rois, np.array([0.9, 0.8]), cls_scores, cls_boxes, 0)
    assert rr.best_class == 2 and np.allclose(rr.class_boxes, cls_boxes[0])
    back = decode(torch.tensor(rois[:1]).expand(3, 4), torch.tensor(rr.deltas))
    assert np.allclose(back.numpy(), cls_boxes[0], atol=1e-4)
    assert roi_at(rois, np.array([0.9, 0.8]), 20, 20) == 0
    assert roi_at(rois, np.array([0.9, 0.8]), 80, 80) == 1
    assert roi_at(rois, np.array([0.9, 0.8]), 200, 80) == -1
