"""``train`` with no preset and no model flags takes its settings from the data and says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import main as cli_main
from app.cli.auto_training import wants_auto
from app.cli.training import parser
from models.data.datasets import open_dataset
from models.data.synthetic import write_synthetic
from models.detection.auto_settings import auto_settings
from models.detection.checkpoints import load_checkpoint
from models.detection.config import detector_config


def test_which_command_lines_let_the_data_choose() -> None:
    base = ["--data", "d", "--out", "c"]
    for extra, auto in (([], True), (["--epochs", "3", "--lr", "0.01"], True), (["--anchor-sizes", "32,64"], False),
                        (["--model-arg", "small_stride=8"], False), (["--fc-size=512"], False),
                        (["--min-size", "400"], False), (["--generation", "fast-rcnn"], False),
                        (["--backbone", "vgg16"], False), (["--resume", "x.pt"], False),
                        (["--preset", "shapes"], False)):
        argv = base + extra
        try:
            args = parser().parse_args(argv)
        except SystemExit:  # a backbone this build does not list
            continue
        assert wants_auto(args) is auto, extra


def test_train_without_model_flags_uses_and_prints_the_chosen_settings(tmp_path: Path, capsys) -> None:
    data = write_synthetic(tmp_path / "syn", 6, seed=2)
    out = tmp_path / "m.pt"
    code = cli_main(["train", "--data", str(data), "--out", str(out), "--epochs", "1", "--max-steps", "1",
                     "--threads", "1", "--quiet", "--device", "cpu", "--processes", "1"])
    assert code == 0
    err = capsys.readouterr().err
    assert "settings chosen from" in err and "anchor sizes:" in err and "(yours kept: epochs 1" in err
    source = open_dataset(data)
    chosen, _ = auto_settings(source, source.splits["train"])
    payload = load_checkpoint(out)
    cfg = detector_config("faster-rcnn", payload["model_config"], int(payload.get("version", 2)))
    assert cfg == chosen.detector_config()
    assert cfg.rpn.anchor_sizes == pytest.approx(chosen.anchor_sizes)
    assert cfg.rpn.anchor_ratios == pytest.approx(chosen.anchor_ratios)
    assert (cfg.input.min_size, cfg.input.max_size) == (chosen.min_size, chosen.max_size)
    assert cfg.backbone.small_stride == chosen.model["small_stride"] and cfg.roi_head.representation_size == 256
    assert payload["config"]["epochs"] == 1 and payload["config"]["optimizer"] == "adamw"
    assert payload["config"]["rotate90"] is True  # a synthetic set says it has no "up"


def test_synth_object_and_image_sizes(tmp_path: Path, capsys) -> None:
    """A second synthetic set with other object sizes, to check the data-chosen settings on."""
    out = tmp_path / "big"
    assert cli_main(["synth", "--out", str(out), "--images", "4", "--seed", "1", "--object-sizes", "40,60",
                     "--image-sizes", "200,240", "--quiet"]) == 0
    source = open_dataset(out)
    for entry in source.entries:
        ann = source.store.load(entry)
        assert 200 <= min(ann.width, ann.height) and max(ann.width, ann.height) <= 240
        assert all(max(o.width, o.height) <= 60 for o in ann.objects)
    with pytest.raises(SystemExit):  # argparse refuses LO > HI
        cli_main(["synth", "--out", str(tmp_path / "bad"), "--object-sizes", "60,40"])
