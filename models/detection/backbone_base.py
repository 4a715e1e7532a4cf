"""What every backbone is: a body with an output channel count and a stride (:class:`Backbone`), what its
weights came from (:class:`WeightsInfo`), and the error for weights that are not here
(:class:`BackboneWeightsError`). Apart from models/detection/backbones.py (the registry and the builders) so
the small CNN's module can build one without importing the registry.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


class BackboneWeightsError(RuntimeError):
    """Requested weights are not available offline, or the file does not fit the backbone."""


@dataclass
class WeightsInfo:
    """What the backbone was initialised from, for logs and checkpoints: "scratch", "imagenet" or a path."""

    source: str
    message: str


class Backbone(nn.Module):
    """A body with ``out_channels`` and ``stride``; ``forward(x [B,3,H,W] normalised) -> [B,C,H/s,W/s]``.

    ``new_layers``: names (prefixes, relative to this module) of layers that start random even when the rest
    is pretrained; fine-tuning trains them at the heads' learning rate, not the backbone's reduced one
    (:func:`models.detection.training.parameter_groups`)."""

    def __init__(self, body: nn.Module, out_channels: int, stride: int, name: str,
                 new_layers: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.body = body
        self.out_channels = int(out_channels)
        self.stride = int(stride)
        self.name = name
        self.new_layers = tuple(new_layers)
        self.options: dict = {}  # the registry options it was built with (saved in detector configs)
        self.weights_info = WeightsInfo("scratch", "initialised randomly")

    def is_new_layer(self, parameter_name: str) -> bool:
        """Whether ``parameter_name`` (relative to this module) belongs to one of :attr:`new_layers`."""
        return any(parameter_name == p or parameter_name.startswith(p + ".") for p in self.new_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
