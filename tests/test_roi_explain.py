"""The RoI pooling explanation agrees with torchvision, and the RoI sampler is the head's own."""

import math

import numpy as np
import pytest
import torch
from torchvision.ops import roi_align as tv_roi_align
from torchvision.ops import roi_pool as tv_roi_pool

from models.boxes import box_iou
from models.detection.anchors import POSITIVE
from models.detection.config import RoIHeadConfig
from models.detection.detectors.roi_heads import RoIHeads, sample_rois
from models.detection.roi_explain import explain_roi_pooling, roi_at

ROIS = ([10.0, 20.0, 170.0, 130.0], [0.0, 0.0, 495.0, 399.0], [33.3, 47.9, 61.2, 300.0],
        [100.0, 100.0, 108.0, 104.0], [450.0, 350.0, 700.0, 600.0])


def _features(seed: int = 0, c: int = 5, h: int = 25, w: int = 31) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((c, h, w)).astype(np.float32)


def _bilinear(fmap: np.ndarray, y: float, x: float) -> float:
    """torchvision's RoIAlign interpolation rule, written out on scalars (independent of the code tested)."""
    h, w = fmap.shape
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    if y0 >= h - 1:
        y0 = y1 = h - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= w - 1:
        x0 = x1 = w - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    return ((1 - ly) * (1 - lx) * fmap[y0, x0] + (1 - ly) * lx * fmap[y0, x1]
            + ly * (1 - lx) * fmap[y1, x0] + ly * lx * fmap[y1, x1])


@pytest.mark.parametrize("roi", ROIS)
def test_pool_argmax_cells_hold_roi_pools_output(roi) -> None:
    feats = _features()
    e = explain_roi_pooling(feats, np.array(roi), method="pool", spatial_scale=1 / 16)
    expect = tv_roi_pool(torch.from_numpy(feats)[None], torch.tensor([[0.0, *roi]]), (7, 7), 1 / 16)[0].numpy()
    assert np.array_equal(e.pooled, expect)
    for ch in range(feats.shape[0]):
        v = e.view(ch)
        for i in range(7):
            for j in range(7):
                x, y = v.argmax_cells[i, j]
                if x < 0:
                    assert expect[ch, i, j] == 0  # an empty bin (RoI off the map)
                    continue
                x1, y1, x2, y2 = e.bins[i, j]
                assert x1 <= x < x2 and y1 <= y < y2  # the arg-max lies in its bin
                assert feats[ch, y, x] == expect[ch, i, j]
    mean = e.view(None)
    assert np.allclose(mean.pooled, expect.mean(0))
    assert ((mean.argmax_share > 0) == (mean.argmax_cells[..., 0] >= 0)).all()


def test_small_roi_shares_cells_between_bins() -> None:
    """A RoI of 4×3 cells pooled to 7×7: 49 bins over 12 cells, each cell read by several bins."""
    feats = _features(1)
    e = explain_roi_pooling(feats, np.array([100.0, 100.0, 140.0, 120.0]), method="pool", spatial_scale=1 / 16)
    assert tuple(e.region) == (6, 6, 10, 9)  # rounded: x 6.25→6 .. 8.75→9, y 6.25→6 .. 7.5→8 (ends inclusive)
    assert e.bins_per_cell.sum() >= 49 and e.shared_cells == int((e.bins_per_cell > 0).sum())
    assert e.bins_per_cell[6:9, 6:10].min() >= 6  # every cell of the RoI feeds at least six of the 49 bins
    big = explain_roi_pooling(feats, np.array([0.0, 0.0, 400.0, 350.0]), method="pool", spatial_scale=1 / 16)
    # 26×23 cells into 7×7: floor/ceil bin edges share only the border cells between neighbouring bins
    assert big.bins_per_cell.max() <= 4 and big.bins_per_cell[:23, :26].min() >= 1
    # the same small RoI with RoIAlign: still shared cells (samples of neighbouring bins interpolate them)
    a = explain_roi_pooling(feats, np.array([100.0, 100.0, 140.0, 120.0]), method="align", spatial_scale=1 / 16)
    assert a.shared_cells > 0


@pytest.mark.parametrize("roi", ROIS)
@pytest.mark.parametrize("ratio", [1, 2])
def test_align_sample_points_average_to_roi_align(roi, ratio) -> None:
    feats = _features(2)
    e = explain_roi_pooling(feats, np.array(roi), method="align", spatial_scale=1 / 16, sampling_ratio=ratio)
    expect = tv_roi_align(torch.from_numpy(feats)[None], torch.tensor([[0.0, *roi]]), (7, 7), 1 / 16, ratio,
                          aligned=False)[0].numpy()
    assert np.allclose(e.pooled, expect)
    assert e.sample_points.shape == (7, 7, ratio, ratio, 2)
    for ch in (0, 3):
        mine = np.zeros((7, 7))
        for i in range(7):
            for j in range(7):
                pts = e.sample_points[i, j].reshape(-1, 2)
                mine[i, j] = np.mean([_bilinear(feats[ch], y, x) for x, y in pts])
                x1, y1, x2, y2 = e.bins[i, j]
                assert ((pts[:, 0] > x1) & (pts[:, 0] < x2) & (pts[:, 1] > y1) & (pts[:, 1] < y2)).all()
        assert np.allclose(mine, expect[ch], atol=1e-5)
        v = e.view(ch)  # the view's per-sample values average to the same output
        assert np.allclose(v.sample_values.mean(axis=(2, 3)), expect[ch], atol=1e-5)


def test_bad_input_gives_clear_errors() -> None:
    with pytest.raises(ValueError, match="method"):
        explain_roi_pooling(_features(), np.array([0, 0, 10, 10.0]), method="max")
    with pytest.raises(ValueError, match="non-finite"):
        explain_roi_pooling(_features(), np.array([0, 0, math.nan, 10.0]))
    with pytest.raises(ValueError, match="channel"):
        explain_roi_pooling(_features(), np.array([0, 0, 100, 100.0])).view(99)


def test_roi_at_picks_the_smallest_box_around_the_point() -> None:
    boxes = np.array([[0, 0, 100, 100], [10, 10, 50, 50], [20, 20, 40, 40], [200, 200, 220, 220.0]])
    assert roi_at(boxes, 30, 30) == 2
    assert roi_at(boxes, 15, 15) == 1
    assert roi_at(boxes, 90, 90) == 0
    assert roi_at(boxes, 150, 150) == -1


def _proposals(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 300
    return torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 150 + 10], 1)


@pytest.mark.parametrize("mode", ["random", "per_object"])
def test_sample_rois_is_what_the_head_trains_on(mode) -> None:
    props = _proposals(400, 0)
    gt = torch.tensor([[50.0, 60.0, 200.0, 210.0], [220.0, 30.0, 300.0, 120.0]])
    heads = RoIHeads(8, 3, RoIHeadConfig(positive_sampling=mode, batch_size=64, positive_fraction=0.25))
    torch.manual_seed(7)
    rois, labels, _ = heads.sample(props, gt, torch.tensor([1, 2]))
    torch.manual_seed(7)
    s = sample_rois(props, gt, **heads.sampling_params())
    assert torch.equal(rois, s.proposals[torch.cat([s.positive, s.negative])])
    assert int((labels > 0).sum()) == s.positive.numel()


def test_sample_rois_respects_thresholds_and_fraction() -> None:
    props = _proposals(600, 1)
    gt = torch.tensor([[50.0, 60.0, 200.0, 210.0], [220.0, 30.0, 300.0, 120.0]])
    s = sample_rois(props, gt, fg_iou=0.6, bg_iou_high=0.4, bg_iou_low=0.1, batch_size=32, positive_fraction=0.25,
                    generator=torch.Generator().manual_seed(0))
    assert s.proposals.shape[0] == 602 and s.num_proposals == 600  # GT boxes joined the candidates
    iou = box_iou(gt, s.proposals).max(0).values
    assert torch.allclose(iou, s.max_iou)
    assert (iou[s.positive] >= 0.6).all()
    assert ((iou[s.negative] >= 0.1) & (iou[s.negative] < 0.4)).all()
    eligible = int((s.labels == POSITIVE).sum())
    assert s.positive.numel() == min(eligible, 8) and s.positive.numel() + s.negative.numel() <= 32
    assert len(set(s.positive.tolist()) | set(s.negative.tolist())) == s.positive.numel() + s.negative.numel()
    again = sample_rois(props, gt, fg_iou=0.6, bg_iou_high=0.4, bg_iou_low=0.1, batch_size=32,
                        positive_fraction=0.25, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.positive, s.positive) and torch.equal(again.negative, s.negative)  # seeded
    other = sample_rois(props, gt, fg_iou=0.6, bg_iou_high=0.4, bg_iou_low=0.1, batch_size=32,
                        positive_fraction=0.25, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(other.negative, s.negative)


@pytest.mark.parametrize("pooling", ["pool", "align"])
def test_trace_keeps_the_feature_map_the_head_pooled(pooling) -> None:
    from models.detection.detectors import build_detector
    from models.detection.roi_explain import explain_for_head

    torch.manual_seed(0)
    m = build_detector("faster-rcnn", ["a", "b"], backbone="small", small_width=8, anchor_sizes=(16, 32, 64),
                       representation_size=32, min_size=128, max_size=160, rpn_post_nms_test=50, pooling=pooling)
    t = m.trace(np.random.default_rng(0).integers(0, 255, (128, 150, 3), dtype=np.uint8))
    assert t.features.dtype == np.float32 and t.features.shape == (m.backbone.out_channels, *t.feature_size)
    for k in (0, len(t.proposals) - 1):
        e = explain_for_head(t.features, t.proposals[k], m.roi_heads)
        assert e.method == pooling and np.allclose(e.pooled, t.pooled_features[k], atol=1e-5)


def test_training_proposals_are_those_of_a_train_mode_rpn() -> None:
    from models.detection.detectors import build_detector
    from models.detection.training_rois import training_proposals

    torch.manual_seed(0)
    m = build_detector("faster-rcnn", ["a", "b"], backbone="small", small_width=8, anchor_sizes=(16, 32, 64),
                       representation_size=32, min_size=128, max_size=160, rpn_pre_nms_train=900,
                       rpn_post_nms_train=400, rpn_pre_nms_test=300, rpn_post_nms_test=50).eval()
    t = m.trace(np.random.default_rng(0).integers(0, 255, (128, 150, 3), dtype=np.uint8))
    props = training_proposals(m.rpn, t.features, t.input_size)
    assert not m.training and not m.rpn.training  # the model's own mode is untouched
    assert len(t.proposals) <= 50 < len(props) <= 400
    m.rpn.train()
    with torch.no_grad():
        feats = torch.from_numpy(t.features)[None]
        out = m.rpn(feats, [t.input_size], [{"boxes": torch.tensor([[10.0, 10.0, 60.0, 60.0]])}])
    assert np.allclose(props, out.proposals[0].numpy())
