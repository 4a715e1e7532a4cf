"""Backbones: output stride and channels, the small CNN's stride-8 fusion, and weights from files or not at all."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.backbones import BackboneWeightsError, build_backbone, small_cnn
from models.checkpoints import load_detector, save_checkpoint
from models.detectors import build_detector

CLASSES = ["circle", "square", "triangle"]


@pytest.mark.parametrize(("stride", "channels"), [(16, 8 * 8), (8, 4 * 8)])
def test_small_cnn_output_has_its_stride_and_channels(stride: int, channels: int) -> None:
    bb = small_cnn(width=8, stride=stride)
    assert bb.stride == stride and bb.out_channels == channels
    out = bb(torch.rand(2, 3, 128, 96))
    assert out.shape == (2, channels, 128 // stride, 96 // stride)


@pytest.mark.parametrize("stride", [8, 16])
def test_small_cnn_context_stage_keeps_the_output_shape(stride: int) -> None:
    plain, ctx = small_cnn(width=8, stride=stride), small_cnn(width=8, stride=stride, context=True)
    x = torch.rand(1, 3, 160, 128)
    assert ctx(x).shape == plain(x).shape
    assert ctx.out_channels == plain.out_channels and ctx.stride == plain.stride


def _receptive_reach(bb, size: int = 384) -> int:
    """How far (pixels, along x) from the image centre an input pixel still moves the centre output cell."""
    x = torch.rand(1, 3, size, size, requires_grad=True)
    out = bb(x)
    h, w = out.shape[-2:]
    out[0, :, h // 2, w // 2].sum().backward()
    cols = torch.where(x.grad.abs().sum(dim=(0, 1, 2)) > 0)[0]
    return int(max(abs(int(cols.min()) - size // 2), abs(int(cols.max()) - size // 2)))


def test_small_cnn_context_stage_sees_further() -> None:
    """Why the stride-32 stage exists: a RoI inside a large shape must still see the shape's outline.
    (BatchNorm in eval mode, a per-channel affine map: GroupNorm's statistics would spread every pixel's
    influence over the whole image and hide the convolutions' reach.)"""
    torch.manual_seed(0)
    plain = _receptive_reach(small_cnn(width=4, norm="batch", stride=8).eval())
    wide = _receptive_reach(small_cnn(width=4, norm="batch", stride=8, context=True).eval())
    assert plain < 100 and wide >= plain + 48


def test_small_cnn_rejects_other_strides() -> None:
    with pytest.raises(ValueError, match="8 or 16"):
        small_cnn(width=8, stride=32)


def test_stride_8_feature_map_sees_detail_the_stride_16_map_merges() -> None:
    """Two dots 12 px apart land in one stride-16 cell but in different stride-8 cells; the fused map
    must respond to both (its top-down path alone could not separate them)."""
    torch.manual_seed(0)
    bb = small_cnn(width=8, stride=8).eval()
    base = torch.zeros(1, 3, 64, 64)
    a, b = base.clone(), base.clone()
    a[..., 18:22, 18:22] = 1.0
    b[..., 18:22, 26:30] = 1.0
    with torch.no_grad():
        fa, fb = bb(a), bb(b)
    diff = (fa - fb).abs().sum(1)[0]
    # The two dots sit in stride-8 columns 2 and 3: the difference shows up between those columns.
    assert diff[:, 2:4].sum() > 0.1 * diff.sum()


def test_faster_rcnn_on_a_stride_8_small_backbone_trains_and_round_trips(tmp_path) -> None:
    torch.manual_seed(0)
    m = build_detector("faster-rcnn", CLASSES, backbone="small", small_width=8, small_stride=8,
                       anchor_sizes=(16, 32), representation_size=32, min_size=96, max_size=128,
                       rpn_pre_nms_train=300, rpn_post_nms_train=100, box_score_threshold=0.0)
    assert m.backbone.stride == 8 and m.rpn.anchor_generator.stride == 8
    m.train()
    losses = m([torch.rand(3, 96, 120)], [{"boxes": torch.tensor([[10.0, 12.0, 40.0, 50.0]]),
                                            "labels": torch.tensor([2])}])
    sum(losses.values()).backward()
    assert m.backbone.body.lateral.weight.grad is not None and m.backbone.body.top.weight.grad is not None
    m.eval()
    image = np.random.default_rng(0).integers(0, 255, (96, 120, 3), dtype=np.uint8)
    trace = m.trace(image)
    assert trace.feature_size == (96 // 8, 120 // 8)
    assert trace.anchors.boxes.shape[0] == (96 // 8) * (120 // 8) * 6
    path = save_checkpoint(tmp_path / "m.pt", model=m, config={}, class_names=CLASSES, split={}, epoch=1)
    loaded = load_detector(path, device="cpu")
    assert loaded.config()["small_stride"] == 8 and loaded.backbone.stride == 8
    assert loaded.config()["small_context"] is False
    a, b = m.predict([image], 0.0)[0], loaded.predict([image], 0.0)[0]
    assert np.allclose(a.scores, b.scores, atol=1e-5)


def test_small_weights_load_from_a_file_and_foreign_files_are_refused(tmp_path) -> None:
    torch.manual_seed(1)
    trained = small_cnn(width=8)
    path = tmp_path / "small.pth"
    torch.save(trained.state_dict(), path)
    loaded = build_backbone("small", str(path), small_width=8)
    assert loaded.weights_info.source == str(path)
    assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), loaded.state_dict().values(),
                                                 strict=True))
    torch.save({"something.else": torch.zeros(3)}, tmp_path / "foreign.pth")
    with pytest.raises(BackboneWeightsError, match="none of its tensors fit"):
        build_backbone("small", str(tmp_path / "foreign.pth"), small_width=8)
    with pytest.raises(BackboneWeightsError, match="not found"):
        build_backbone("small", str(tmp_path / "missing.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(BackboneWeightsError, match="cannot read weights"):
        build_backbone("small", str(tmp_path / "junk.pth"), small_width=8)


def test_imagenet_weights_offline_are_a_clear_error_not_a_download(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(BackboneWeightsError, match="does not download"):
        build_backbone("mobilenet_v3", "imagenet")
    bb = build_backbone("mobilenet_v3")  # default: cached weights if any, else random and says so
    assert bb.weights_info.source == "scratch" and "--weights" in bb.weights_info.message
    assert bb.stride == 16 and bb(torch.rand(1, 3, 64, 80)).shape == (1, bb.out_channels, 4, 5)
