"""Traced NMS agrees with torchvision and explains every suppression; RoI bin geometry matches roi_pool."""

import numpy as np
import torch
from torchvision.ops import batched_nms as tv_batched_nms
from torchvision.ops import box_iou
from torchvision.ops import nms as tv_nms
from torchvision.ops import roi_align as tv_roi_align

from models.detection.nms import nms_trace
from models.detection.roi import roi_align, roi_bins, roi_pool


def _boxes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 200
    boxes = torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 80 + 5], 1)
    return boxes, torch.rand(n, generator=g)


def test_traced_nms_equals_torchvision_and_records_suppressors() -> None:
    boxes, scores = _boxes(400, 0)
    for thr in (0.3, 0.5, 0.7):
        t = nms_trace(boxes, scores, thr)
        assert t.kept.tolist() == tv_nms(boxes, scores, thr).tolist()
        kept = set(t.kept.tolist())
        iou = box_iou(boxes, boxes)
        for i in range(len(boxes)):
            s = int(t.suppressed_by[i])
            if i in kept:
                assert s == -1
            else:
                assert s in kept and scores[s] >= scores[i] and float(iou[s, i]) > thr
                assert np.isclose(t.iou_with_suppressor[i], float(iou[s, i]), atol=1e-5)
        assert sum(len(t.suppressed(k)) for k in kept) == len(boxes) - len(kept)


def test_traced_nms_per_group_equals_batched_nms() -> None:
    boxes, scores = _boxes(300, 1)
    groups = torch.randint(0, 3, (300,), generator=torch.Generator().manual_seed(2))
    t = nms_trace(boxes, scores, 0.5, groups=groups)
    assert sorted(t.kept.tolist()) == sorted(tv_batched_nms(boxes, scores, groups, 0.5).tolist())
    sup = t.suppressed_by >= 0
    assert (groups.numpy()[sup] == groups.numpy()[t.suppressed_by[sup]]).all()


def test_empty_nms() -> None:
    t = nms_trace(torch.zeros((0, 4)), torch.zeros(0), 0.5)
    assert t.kept.size == 0 and t.suppressed_by.size == 0


def test_roi_pool_shape() -> None:
    feats = torch.randn(2, 8, 20, 30)
    rois = [torch.tensor([[0.0, 0.0, 100.0, 80.0]]), torch.tensor([[30.0, 40.0, 200.0, 300.0], [5, 5, 9, 9.0]])]
    out = roi_pool(feats, rois, (7, 7), 1 / 16)
    assert out.shape == (3, 8, 7, 7)


def test_roi_bins_reproduce_roi_pool() -> None:
    """Max over each bin's cells, as described by roi_bins, is exactly what roi_pool returns."""
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(1, 4, 25, 31, generator=g)
    for roi in ([10.0, 20.0, 170.0, 130.0], [0.0, 0.0, 495.0, 399.0], [33.3, 47.9, 61.2, 300.0],
                [100.0, 100.0, 108.0, 104.0]):
        pooled = roi_pool(feats, torch.tensor([[0.0] + roi]), (7, 7), 1 / 16)[0]
        bins = roi_bins(np.array(roi), (7, 7), 1 / 16, feature_size=(25, 31))
        assert bins.cells.shape == (7, 7, 4) and bins.image_boxes.shape == (7, 7, 4)
        for i in range(7):
            for j in range(7):
                x1, y1, x2, y2 = bins.cells[i, j]
                if x2 <= x1 or y2 <= y1:
                    assert torch.all(pooled[:, i, j] == 0)
                    continue
                expect = feats[0, :, y1:y2, x1:x2].amax(dim=(1, 2))
                assert torch.allclose(pooled[:, i, j], expect)
        assert np.allclose(bins.image_boxes, bins.cells * 16)


def test_roi_align_gradient_equals_torchvision() -> None:
    """Our CPU backward must give torchvision's gradient, for RoIs inside, across and beyond the map edge,
    RoIs under one cell, and several images."""
    g = torch.Generator().manual_seed(3)
    features = torch.randn(2, 5, 12, 15, generator=g)
    corners = torch.rand(40, 2, generator=g) * torch.tensor([15 * 8.0, 12 * 8.0]) - 10
    sizes = torch.rand(40, 2, generator=g) * 80 + 0.5
    rois = torch.cat([torch.randint(0, 2, (40, 1), generator=g).float(), corners, corners + sizes], 1)
    rois[0, 1:] = torch.tensor([118.0, 92.0, 160.0, 130.0])  # beyond the bottom-right edge
    rois[1, 1:] = torch.tensor([3.0, 3.0, 4.0, 4.0])  # a fraction of a cell
    ours_in = features.clone().requires_grad_()
    theirs_in = features.clone().requires_grad_()
    ours = roi_align(ours_in, rois, (3, 4), 1 / 8, 2)
    theirs = tv_roi_align(theirs_in, rois, (3, 4), 1 / 8, 2, aligned=False)
    upstream = torch.randn(theirs.shape, generator=g)
    ours.backward(upstream)
    theirs.backward(upstream)
    assert torch.allclose(ours, theirs)
    assert theirs_in.grad.abs().sum() > 0
    assert torch.allclose(ours_in.grad, theirs_in.grad, atol=1e-5)


def test_roi_align_gradient_without_rois() -> None:
    features = torch.randn(1, 4, 6, 6, requires_grad=True)
    roi_align(features, torch.zeros((0, 5)), (7, 7), 1 / 8).sum().backward()
    assert features.grad is not None and not features.grad.any()
