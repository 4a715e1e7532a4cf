"""The small CNN that trains from scratch on a CPU in minutes: conv + norm + ReLU blocks down to stride 8 or 16,
optionally a context stage (:class:`TopDownFusion` of a deeper map back onto the output's), max-pool or strided
forms, and the shallow pooled form the classification + localisation preset uses.

Registered as the ``small`` backbone by models/detection/backbones.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.detection.backbone_base import Backbone


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    raise ValueError(f"small CNN norm is 'group' or 'batch', not {kind!r}")


def _conv_bn(cin: int, cout: int, stride: int, norm: str = "group", pool: bool = False) -> list[nn.Module]:
    """3×3 conv + norm + ReLU; with ``pool`` a stride-2 layer convolves at full resolution and then takes the
    2×2 maximum instead of skipping every other position."""
    if pool and stride == 2:
        return [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), _norm(norm, cout), nn.ReLU(inplace=True),
                nn.MaxPool2d(2)]
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), _norm(norm, cout), nn.ReLU(inplace=True)]


class TopDownFusion(nn.Module):
    """The small CNN's fine output: its top, upsampled level by level and added to a 1×1 projection of each
    earlier stage it passes (stride 16, then 8), then a 3×3 conv — the top-down path of a Feature Pyramid
    Network (Lin et al. 2017), kept to its finest level.

    Why: at stride 16 a 20-pixel shape covers one or two feature cells, too few for the RoI head to tell
    a triangle from a circle; the stride-8 stage still sees its corners, and the top adds the context of
    the deeper layers. With a stride-32 top the deepest features see about 250 pixels, so a RoI inside a
    300-pixel shape still knows where the shape's outline is. Costs about half as much again as the body.
    """

    def __init__(self, trunk: nn.Sequential, taps: list[int], tap_channels: list[int], top_channels: int,
                 out_channels: int, norm: str) -> None:
        super().__init__()
        self.trunk = trunk
        self.taps = [int(t) for t in taps]  # layer counts after which a finer stage ends, finest first
        if len(self.taps) == 1:  # names of the one-level layout, so its checkpoints keep loading
            self.lateral = nn.Conv2d(tap_channels[0], out_channels, 1)
        else:
            self.laterals = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in tap_channels)
        self.top = nn.Conv2d(top_channels, out_channels, 1)
        self.smooth = nn.Sequential(*_conv_bn(out_channels, out_channels, 1, norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layers = list(self.trunk)
        stages: list[torch.Tensor] = []
        start = 0
        for tap in self.taps:
            for layer in layers[start:tap]:
                x = layer(x)
            stages.append(x)
            start = tap
        for layer in layers[start:]:
            x = layer(x)
        laterals = [self.lateral] if len(self.taps) == 1 else list(self.laterals)
        y = self.top(x)
        for stage, lateral in zip(reversed(stages), reversed(laterals), strict=True):
            y = F.interpolate(y, size=stage.shape[-2:], mode="nearest") + lateral(stage)
        return self.smooth(y)


def small_cnn(width: int = 32, norm: str = "group", stride: int = 16, context: bool = False,
              pool: bool = False, shallow: bool = False, last_pool: bool = True, first_stride: int = 1) -> Backbone:
    """Eight 3×3 conv+norm+ReLU layers, four of them stride 2 → stride 16, ``8 * width`` channels.

    Roughly 1 GMAC for a 400×500 input at width 32: small enough to train from scratch on two CPU cores.
    GroupNorm by default, not BatchNorm: detectors train on 1-2 images of very different content per batch,
    so BatchNorm's running statistics (used at test time) do not match the per-batch statistics the network
    learnt with — a BN model scored far worse in eval mode than in train mode on its own training images.
    GroupNorm computes the same thing in training and at test time.
    ``stride=8`` adds a :class:`TopDownFusion` so small objects keep their shape on the feature map; it then
    has ``4 * width`` channels. ``context=True`` adds a stride-32 stage (two more layers, cheap at that
    stride) whose output flows down through the same fusion: for objects larger than the body's ~120-pixel
    receptive field, which otherwise look like a uniformly filled patch from inside.
    ``pool=True`` downsamples by 2×2 max-pooling after full-resolution convolutions (about twice the cost):
    a shape's corner is reported wherever it falls in the window, which classification + localisation
    trained from scratch on 400 images needed (``backbone.options: {"pool": true}``). ``shallow=True`` keeps
    only the four downsampling layers (conv + norm + ReLU + pool, widths w, 2w, 4w, 8w): from scratch on 400
    one-shape images the eight-layer plain stack (no residual connections) stayed at chance for 20+ epochs
    where the four-layer one learnt (bench/README.md, classification + localisation).
    ``last_pool=False`` (shallow pooled form only) leaves out the last layer's 2×2 max-pool: the same four
    convolutions at the same cost, a map of stride 8 instead of 16 (8×8 cells rather than 4×4 for a 64-px
    input), so a box can be placed to within a few pixels.
    ``first_stride=2`` (shallow pooled form only) makes the first convolution step two pixels before its
    2×2 max-pool: an input of twice the side (128 px rather than 64) at the same cost and the same map size,
    the first layer seeing the finer pixels — a 15 %-side shape is ~20 px instead of ~10, enough to show a
    triangle's corner — where doubling the side with the full-resolution first layer costs ~2.2×.
    """
    if stride not in (8, 16):
        raise ValueError(f"the small CNN's stride is 8 or 16, not {stride}")
    if not last_pool and not (pool and shallow and stride == 16 and not context):
        raise ValueError("last_pool=False applies to the shallow pooled small CNN (pool and shallow, stride 16, "
                         "no context)")
    if first_stride not in (1, 2):
        raise ValueError(f"the small CNN's first_stride is 1 or 2, not {first_stride}")
    if first_stride != 1 and not (pool and shallow):
        raise ValueError("first_stride=2 applies to the shallow pooled small CNN (pool and shallow)")
    w = width
    layers: list[nn.Module] = []
    def same(c: int, n: int = 1) -> list[nn.Module]:  # stride-1 layers (none when shallow)
        return [] if shallow else [m for _ in range(n) for m in _conv_bn(c, c, 1, norm)]

    layers += _conv_bn(3, w, 2, norm, pool)
    if first_stride == 2:  # the same layer, its convolution stepping two pixels (before the max-pool)
        layers[0] = nn.Conv2d(3, w, 3, 2, 1, bias=False)
    layers += _conv_bn(w, 2 * w, 2, norm, pool) + same(2 * w)
    layers += _conv_bn(2 * w, 4 * w, 2, norm, pool) + same(4 * w)
    end8 = len(layers)  # the stride-8 stage ends here
    layers += _conv_bn(4 * w, 8 * w, 2 if last_pool else 1, norm, pool) + same(8 * w, 2)
    end16 = len(layers)
    if context:
        layers += _conv_bn(8 * w, 8 * w, 2, norm, pool) + same(8 * w)
    trunk = nn.Sequential(*layers)
    body: nn.Module = trunk
    out_channels = 8 * w
    taps, tap_channels = ([end8], [4 * w]) if stride == 8 else ([], [])
    if context:
        taps, tap_channels = taps + [end16], tap_channels + [8 * w]
    if taps:
        out_channels = 4 * w if stride == 8 else 8 * w
        body = TopDownFusion(trunk, taps, tap_channels, 8 * w, out_channels, norm)
    for m in body.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return Backbone(body, out_channels, (stride if last_pool else 8) * first_stride, "small")
