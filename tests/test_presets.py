"""Named presets: complete sets of part objects + training fields, overridable field by field, on the command
line (``train --preset NAME``) as in code."""

import dataclasses

import pytest
import torch

from models.detection.checkpoints import load_checkpoint, load_detector
from models.detection.config import GENERATION_PARTS, ConfigError, DetectorConfig
from models.detection.detectors import build_detector
from models.detection.presets import (
    Preset,
    UnknownPreset,
    default_train_config,
    describe_preset,
    get_preset,
    preset,
    preset_names,
    register_preset,
    setting_help,
    train_config_from_preset,
)
from models.detection.training import TrainConfig
from tests.tiny_training import tiny_dataset

CLASSES = ["circle", "square", "triangle"]


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.mktemp("preset_set") / "set", count=6)


def test_the_measured_recipes_and_the_papers_settings_are_there() -> None:
    names = preset_names()
    assert {"shapes-cpu", "paper-gpu"} <= set(names)
    assert {get_preset(n).generation for n in names} == set(GENERATION_PARTS)  # every generation has one
    shapes = get_preset("shapes-cpu")
    assert shapes.generation == "faster-rcnn" and shapes.description
    assert shapes.model.rpn.anchor_sizes == [32.0, 64.0, 128.0, 256.0]
    assert shapes.model.backbone.small_stride == 8 and shapes.model.roi_head.pooling == "align"
    assert (shapes.training.optimizer, shapes.training.lr, shapes.training.epochs) == ("adamw", 0.001, 18)
    paper = get_preset("paper-gpu")
    assert paper.model.backbone.name == "vgg16" and paper.model.input.min_size == 600
    assert paper.model.rpn.anchor_sizes == [128.0, 256.0, 512.0] and paper.model.roi_head.representation_size == 4096
    assert paper.training.optimizer == "sgd"


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_describes_in_full_and_builds_its_model(name) -> None:
    item = get_preset(name)
    described = describe_preset(name)
    assert list(described) == [*GENERATION_PARTS[item.generation], "training"]
    assert {k: v for k, v in described.items() if k != "training"} == item.model.to_dict()
    assert described["training"]["epochs"] == item.training.epochs
    assert "data" not in described["training"] and "min_size" not in described["training"]
    assert all(setting_help(part, key) for part, values in described.items() for key in values)  # tooltips
    parts = train_config_from_preset(name, "d", "o", {"backbone.weights": "none"}).detector_config()
    with torch.device("meta"):  # the papers' VGG16 heads are 100M+ parameters: build the shapes only
        model = build_detector(item.generation, CLASSES, config=parts)
    assert model.generation == item.generation and model.parts.roi_head == item.model.roi_head
    assert model.backbone.name == item.model.backbone.name


def test_a_presets_values_reach_the_built_model_and_overrides_win() -> None:
    config = train_config_from_preset("shapes-cpu", "data", "out.pt", {
        "epochs": "3", "rpn.anchor_ratios": "1.0", "small_width": 8, "roi_head.representation_size": 32,
        "training.lr": 0.002})
    assert isinstance(config, TrainConfig) and (config.data, config.out) == ("data", "out.pt")
    assert config.epochs == 3 and config.lr == 0.002 and config.optimizer == "adamw"  # the rest stays the preset's
    model = build_detector("faster-rcnn", CLASSES, config=config.detector_config())
    assert model.rpn.anchor_generator.sizes == (32.0, 64.0, 128.0, 256.0)  # the preset's
    assert model.rpn.anchor_generator.ratios == (1.0,)  # overridden
    assert model.backbone.stride == 8 and model.roi_heads.pooling == "align"
    assert model.roi_heads.box_head.fc6.out_features == 32 and model.min_size == 512
    assert model.rpn.pre_nms_top_n["train"] == 2000 and model.roi_heads.positive_sampling == "per_object"


def test_overrides_are_checked_and_mirrored_fields_move_together() -> None:
    c = train_config_from_preset("shapes-cpu", "d", "o", {"backbone": "efficientnet_lite0", "min_size": 320})
    assert c.backbone == c.model.backbone.name == "efficientnet_lite0"
    assert c.min_size == c.model.input.min_size == 320
    assert get_preset("shapes-cpu").training.min_size is None  # --resume keeps a checkpoint's size
    for bad, message in (({"epochz": 3}, "unknown detector setting 'epochz'"),
                         ({"training.epochz": 3}, "training has no setting 'epochz'"),
                         ({"epochs": "many"}, "training.epochs expects int"),
                         ({"proposals.train": 10}, "faster-rcnn has no proposals part"),
                         ({"generation": "rcnn"}, "for faster-rcnn")):
        with pytest.raises(ConfigError, match=message):
            train_config_from_preset("shapes-cpu", "d", "o", bad)
    with pytest.raises(UnknownPreset, match="shapes-cpu"):
        get_preset("no-such-preset")


def test_adding_a_preset_is_one_call() -> None:
    item = preset("test-tiny", "a tiny Fast R-CNN for a test", "fast-rcnn",
                  model={"small_width": 8, "proposals.train": 50}, training={"epochs": 1})
    try:
        assert register_preset(item) is item and "test-tiny" in preset_names()
        assert describe_preset("test-tiny")["proposals"]["train"] == 50
        assert train_config_from_preset("test-tiny", "d", "o").batch_size == 2  # Fast R-CNN's 2 images
        with pytest.raises(ValueError, match="exists already"):
            register_preset(item)
        with pytest.raises(ConfigError, match="not all for"):
            register_preset(Preset("mixed", "", "rcnn", item.model, item.training), replace=True)
    finally:
        from models.detection import presets
        presets._REGISTRY.pop("test-tiny", None)


def test_without_a_preset_the_generations_paper_settings_apply() -> None:
    c = default_train_config("d", "o", "fast-rcnn", {"epochs": 2})
    assert c.batch_size == 2 and c.epochs == 2 and c.model == DetectorConfig.default("fast-rcnn")
    assert default_train_config("d", "o").detector_config() == DetectorConfig.default("faster-rcnn")


def test_a_train_config_round_trips_as_plain_data() -> None:
    c = train_config_from_preset("rcnn-shapes-cpu", "d", "o", {"warp.size": 48})
    again = TrainConfig(**c.to_dict())
    assert again.detector_config() == c.detector_config() and again.detector_config().warp.size == 48
    plain = dataclasses.replace(again, model={"warp": {"size": 40}})  # a dict of overrides still works
    assert plain.detector_config() == DetectorConfig.default("rcnn").with_overrides({"warp.size": 40})


def test_train_command_with_a_preset_and_explicit_flags(tiny_set, tmp_path, capsys) -> None:
    from app.cli import main

    assert main(["train", "--list-presets"]) == 0
    assert "shapes-cpu (faster-rcnn)" in capsys.readouterr().out
    out = tmp_path / "p.pt"
    common = ["--data", str(tiny_set), "--out", str(out)]
    assert main(["train", "--preset", "shapes-cpu", *common, "--epochs", "5", "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert "training.epochs = 5" in printed and "rpn.anchor_sizes = [32.0, 64.0, 128.0, 256.0]" in printed
    code = main(["train", "--preset", "shapes-cpu", *common, "--epochs", "1", "--max-steps", "2", "--min-size",
                 "96", "--max-size", "128", "--fc-size", "32", "--model-arg", "small_width=8", "--model-arg",
                 "rpn.post_nms_train=64", "--device", "cpu", "--threads", "1", "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert "preset shapes-cpu" in capsys.readouterr().err
    payload = load_checkpoint(out)
    cfg, train_cfg = payload["model_config"], payload["config"]
    assert cfg["rpn"]["anchor_sizes"] == [32.0, 64.0, 128.0, 256.0] and cfg["backbone"]["small_stride"] == 8
    assert cfg["rpn"]["post_nms_train"] == 64 and cfg["roi_head"]["representation_size"] == 32
    assert cfg["input"]["min_size"] == 96 and cfg["backbone"]["small_width"] == 8
    assert train_cfg["optimizer"] == "adamw" and train_cfg["epochs"] == 1 and train_cfg["rotate90"] is True
    assert load_detector(out, device="cpu").rpn.anchor_generator.sizes == (32.0, 64.0, 128.0, 256.0)
    assert main(["train", "--preset", "shapes-cpu", *common, "--model-arg", "proposals.train=5"]) == 2
    assert "no proposals part" in capsys.readouterr().err


@pytest.mark.parametrize("path, name", [("resources/models/frcnn_shapes.pt", "shapes-cpu"),
                                        ("resources/models/fast_rcnn_shapes.pt", "fast-rcnn-shapes-cpu"),
                                        ("resources/models/rcnn_shapes.pt", "rcnn-shapes-cpu")])
def test_the_cpu_presets_are_the_recipes_of_the_shipped_models(path, name) -> None:
    """Each CPU preset holds exactly the settings the shipped model of its generation was trained with."""
    from pathlib import Path

    from models.detection.checkpoints import model_parts

    file = Path(__file__).resolve().parents[1] / path
    if not file.is_file():
        pytest.skip(f"{file} is not here")
    payload = load_checkpoint(file)
    item = get_preset(name)
    assert model_parts(payload) == item.model
    for key in ("epochs", "lr", "optimizer", "rotate90", "seed"):
        assert payload["config"][key] == getattr(item.training, key), key
