"""Box parametrisation: our encode/decode against torchvision's BoxCoder, round trips, clamping."""

import math

import numpy as np
import torch
from torchvision.models.detection._utils import BoxCoder

from models.boxes import (
    BBOX_XFORM_CLIP,
    HEAD_STDS,
    RPN_STDS,
    box_iou,
    clip_boxes,
    decode,
    encode,
    remove_small,
)


def _random_boxes(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 500
    wh = torch.rand(n, 2, generator=g) * 200 + 2
    return torch.cat([xy, xy + wh], 1)


def test_encode_decode_round_trip() -> None:
    ref, gt = _random_boxes(200, 0), _random_boxes(200, 1)
    for stds in (HEAD_STDS, RPN_STDS, (0.5, 0.25, 0.3, 0.7)):
        back = decode(ref, encode(ref, gt, stds), stds)
        assert torch.allclose(back, gt, atol=1e-3)


def test_matches_torchvision_box_coder() -> None:
    """stds (0.1, 0.1, 0.2, 0.2) are torchvision's weights (10, 10, 5, 5); RPN uses 1s in both."""
    ref, gt = _random_boxes(100, 2), _random_boxes(100, 3)
    for stds in (HEAD_STDS, RPN_STDS):
        coder = BoxCoder(tuple(1.0 / s for s in stds))
        ours = encode(ref, gt, stds)
        assert torch.allclose(ours, coder.encode_single(gt, ref), atol=1e-4)
        deltas = torch.randn(100, 4) * 0.5
        assert torch.allclose(decode(ref, deltas, stds), coder.decode_single(deltas, ref), atol=1e-3)


def test_per_class_deltas_decode_each_group() -> None:
    ref = _random_boxes(5, 4)
    deltas = torch.randn(5, 3 * 4)
    out = decode(ref, deltas)
    assert out.shape == (5, 12)
    for c in range(3):
        assert torch.allclose(out[:, 4 * c:4 * c + 4], decode(ref, deltas[:, 4 * c:4 * c + 4]))


def test_exp_is_clamped() -> None:
    ref = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    out = decode(ref, torch.tensor([[0.0, 0.0, 1e4, 1e4]]), RPN_STDS)
    assert torch.isfinite(out).all()
    assert math.isclose(float(out[0, 2] - out[0, 0]), 10 * math.exp(BBOX_XFORM_CLIP), rel_tol=1e-4)


def test_iou_clip_and_small() -> None:
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    b = torch.tensor([[5.0, 0.0, 15.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    assert np.allclose(box_iou(a, b).numpy(), [[50 / 150, 0.0]])
    assert box_iou(a, torch.zeros((0, 4))).shape == (1, 0)
    clipped = clip_boxes(torch.tensor([[-5.0, -5.0, 50.0, 8.0]]), height=6, width=40)
    assert clipped.tolist() == [[0.0, 0.0, 40.0, 6.0]]
    assert remove_small(torch.tensor([[0.0, 0.0, 1.0, 5.0], [0.0, 0.0, 3.0, 3.0]]), 2.0).tolist() == [1]


def test_numpy_iou_matches_torch_and_handles_degenerate_boxes() -> None:
    from models.boxes import box_iou_numpy

    a, b = _random_boxes(30, 2), _random_boxes(40, 3)
    np.testing.assert_allclose(box_iou_numpy(a.numpy(), b.numpy()), box_iou(a, b).numpy(), atol=1e-6)
    zero = np.array([[5.0, 5.0, 5.0, 5.0]])
    assert box_iou_numpy(zero, zero)[0, 0] == 0.0  # empty union: 0, not NaN
    assert box_iou_numpy(np.zeros((0, 4)), b.numpy()).shape == (0, 40)


def test_one_numpy_iou_is_shared() -> None:
    """Evaluation, proposal metrics and the synthetic generator use the same function, not copies."""
    import models.data.synthetic as synthetic
    import models.detection.evaluation as evaluation
    import models.proposals.metrics as proposal_metrics
    from models.boxes_numpy import box_iou_numpy

    assert evaluation.iou_matrix is box_iou_numpy
    assert proposal_metrics.iou_matrix is box_iou_numpy
    assert synthetic.box_iou_numpy is box_iou_numpy
    assert not hasattr(synthetic, "box_iou")
