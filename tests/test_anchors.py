"""Anchors, their labels and the RPN / RoI-head training targets, checked against torchvision's helpers."""

import math

import torch
from torchvision.models.detection._utils import BalancedPositiveNegativeSampler, BoxCoder, Matcher

from models.boxes import HEAD_STDS, RPN_STDS, box_iou, encode
from models.detection.anchors import (
    AnchorGenerator,
    base_anchors,
    grid_anchors,
    inside_image,
    label_anchors,
    sample_balanced,
    sample_round_robin,
)
from models.detection.config import RoIHeadConfig, RPNConfig
from models.detection.detectors.roi_heads import RoIHeads
from models.detection.detectors.rpn import RegionProposalNetwork


def test_base_anchor_sizes_and_ratios() -> None:
    base = base_anchors((128, 256, 512), (0.5, 1.0, 2.0))
    assert base.shape == (9, 4)
    w = base[:, 2] - base[:, 0]
    h = base[:, 3] - base[:, 1]
    areas = (w * h).reshape(3, 3)
    for i, s in enumerate((128, 256, 512)):
        assert torch.allclose(areas[i], torch.full((3,), float(s * s)), rtol=1e-5)
    assert torch.allclose((h / w).reshape(3, 3)[0], torch.tensor([0.5, 1.0, 2.0]), rtol=1e-5)
    assert torch.allclose(base[:, :2] + base[:, 2:], torch.zeros(9, 2))  # centred on 0


def test_grid_counts_and_order() -> None:
    gen = AnchorGenerator(stride=16)
    a = gen((38, 50))  # a 600×800 image
    assert a.shape == (38 * 50 * 9, 4)
    cells = a.reshape(38, 50, 9, 4)
    centre = (cells[..., :2] + cells[..., 2:]) / 2
    assert torch.allclose(centre[2, 3, 0], torch.tensor([3.5 * 16, 2.5 * 16]))
    assert torch.equal(gen((38, 50)), a)  # cached
    assert gen.anchor_set((4, 5)).per_cell == 9
    assert grid_anchors(base_anchors((32,), (1.0,)), (2, 2), 16).tolist()[3] == [8.0, 8.0, 40.0, 40.0]


def _scene(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = AnchorGenerator((32, 64, 128), (0.5, 1.0, 2.0), 16)
    anchors = gen((20, 25))
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(6, 2, generator=g) * 300
    wh = torch.rand(6, 2, generator=g) * 120 + 20
    return anchors, torch.cat([xy, xy + wh], 1)


def test_anchor_labels_match_torchvision_matcher() -> None:
    anchors, gt = _scene()
    labels, matched, _ = label_anchors(anchors, gt, positive_iou=0.7, negative_iou=0.3)
    tv = Matcher(0.7, 0.3, allow_low_quality_matches=True)(box_iou(gt, anchors))
    tv_labels = torch.where(tv >= 0, 1, torch.where(tv == Matcher.BELOW_LOW_THRESHOLD, 0, -1))
    assert torch.equal(labels.long(), tv_labels)
    pos = labels == 1
    assert pos.sum() >= gt.shape[0]  # every GT has at least its best anchor
    assert torch.equal(matched[pos], tv[pos])


def test_cross_boundary_anchors_are_ignored() -> None:
    anchors, gt = _scene(1)
    labels, _, _ = label_anchors(anchors, gt, image_size=(320, 400))
    outside = ~inside_image(anchors, 320, 400)
    assert outside.any()
    assert (labels[outside] == -1).all()
    assert (labels[~outside] != -1).any()


def test_no_ground_truth_means_all_negative() -> None:
    anchors, _ = _scene()
    labels, matched, _ = label_anchors(anchors, torch.zeros((0, 4)))
    assert (labels == 0).all() and (matched == -1).all()


def test_sampler_proportions() -> None:
    labels = torch.full((5000,), 0, dtype=torch.int8)
    labels[:1000] = 1
    labels[1000:1500] = -1
    pos, neg = sample_balanced(labels, 256, 0.5, torch.Generator().manual_seed(0))
    assert len(pos) == 128 and len(neg) == 128
    assert (labels[pos] == 1).all() and (labels[neg] == 0).all()
    assert len(set(pos.tolist())) == 128
    few = torch.zeros(5000, dtype=torch.int8)
    few[:10] = 1
    pos, neg = sample_balanced(few, 256, 0.5)
    assert len(pos) == 10 and len(neg) == 246  # padded with negatives, as the paper
    tv_pos, tv_neg = BalancedPositiveNegativeSampler(256, 0.5)([few.long()])
    assert int(tv_pos[0].sum()) == len(pos) and int(tv_neg[0].sum()) == len(neg)
    pos, neg = sample_balanced(labels, 128, 0.25)
    assert len(pos) == 32 and len(neg) == 96


def test_round_robin_sampling_gives_each_object_its_share() -> None:
    owners = torch.tensor([0] * 200 + [1] * 3 + [2] * 40)
    candidates = torch.arange(1000, 1000 + owners.numel())
    picked = sample_round_robin(candidates, owners, 32, torch.Generator().manual_seed(0))
    assert picked.numel() == 32 and len(set(picked.tolist())) == 32
    counts = torch.bincount(owners[picked - 1000], minlength=3).tolist()
    assert counts[1] == 3  # the small object keeps every one it has
    assert abs(counts[0] - counts[2]) <= 1 and sum(counts) == 32
    assert torch.equal(sample_round_robin(candidates[:5], owners[:5], 32), candidates[:5])


def test_per_object_positive_sampling_in_the_roi_head() -> None:
    torch.manual_seed(0)
    big, small = torch.tensor([10.0, 10.0, 310.0, 310.0]), torch.tensor([400.0, 400.0, 420.0, 420.0])
    gt = torch.stack([big, small])
    jitter = torch.randn(2000, 4) * 8
    proposals = torch.cat([big + jitter[:1900], small + jitter[1900:] * 0.1])
    counts = {}
    for mode in ("random", "per_object"):
        heads = RoIHeads(8, 2, RoIHeadConfig(positive_sampling=mode))
        _, labels, _ = heads.sample(proposals, gt, torch.tensor([1, 2]))
        counts[mode] = int((labels == 2).sum())
        assert int((labels > 0).sum()) == 32
    assert counts["per_object"] == 16 and counts["random"] < 8


def test_rpn_regression_targets_match_box_coder() -> None:
    anchors, gt = _scene(2)
    rpn = RegionProposalNetwork(8, 16, RPNConfig(anchor_sizes=[32, 64, 128], ignore_cross_boundary=False))
    labels, reg = rpn.targets_for(anchors, gt, (320, 400))
    tv = Matcher(0.7, 0.3, allow_low_quality_matches=True)(box_iou(gt, anchors))
    pos = labels == 1
    expected = BoxCoder((1.0, 1.0, 1.0, 1.0)).encode_single(gt[tv[pos]], anchors[pos])
    assert torch.allclose(reg[pos], expected, atol=1e-5)
    assert torch.allclose(reg[pos], encode(anchors[pos], gt[tv[pos]], RPN_STDS))


def test_roi_head_sampled_targets_match_torchvision() -> None:
    torch.manual_seed(0)
    _, gt = _scene(3)
    labels_gt = torch.tensor([1, 2, 3, 1, 2, 3])
    xy = torch.rand(400, 2) * 300
    proposals = torch.cat([xy, xy + torch.rand(400, 2) * 120 + 10], 1)
    heads = RoIHeads(8, 3, RoIHeadConfig(representation_size=16, bg_iou_low=0.0))
    rois, labels, targets = heads.sample(proposals, gt, labels_gt)
    assert rois.shape[0] == labels.shape[0] == targets.shape[0] <= 128
    fg = labels > 0
    assert fg.sum() <= 32 and fg.sum() > 0  # 25% of 128 at most; GT boxes join the proposals
    # torchvision's RoI heads: Matcher(0.5, 0.5, False) on proposals + GT, BoxCoder(10, 10, 5, 5).
    tv = Matcher(0.5, 0.5, allow_low_quality_matches=False)(box_iou(gt, rois))
    assert torch.equal(fg, tv >= 0)
    assert torch.equal(labels[fg], labels_gt[tv[fg]])
    coder = BoxCoder(tuple(1.0 / s for s in HEAD_STDS))
    assert torch.allclose(targets[fg], coder.encode_single(gt[tv[fg]], rois[fg]), atol=1e-4)
    assert math.isclose(float(coder.weights[0]), 10.0)
