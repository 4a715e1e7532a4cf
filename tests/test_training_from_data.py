"""The Training panel's "Settings from the data": what ``train --data D --out C`` with no preset chooses
(models.detection.auto_settings, read in a worker), shown in the table with the reasons, overridable, and
the run it starts equal to the command's."""

from __future__ import annotations

import dataclasses

import pytest
from PySide6.QtCore import Qt

from app.cli.training import command_config, parser
from app.stages.training import options
from app.stages.training import stage as stage_module
from app.stages.training.panel import FROM_DATA, NO_PRESET
from models.data.datasets import open_dataset
from models.detection import auto_settings as auto_settings_module
from models.detection.auto_settings import split_auto_settings
from tests.test_main_window import make_window, settings  # noqa: F401 - settings is a fixture
from tests.test_training_panel import open_set, training
from tests.tiny_training import tiny_dataset


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.mktemp("from_data_set") / "set")


@pytest.fixture
def window(qtbot, settings):  # noqa: F811 - the fixture imported above
    w = make_window(qtbot, settings, thumbnails=False)
    yield w
    w.close()


def show_from_data(qtbot, stage) -> object:
    """Choose another entry, then "Settings from the data" as a user would; the settings shown."""
    stage.panel.preset.setCurrentText("shapes-cpu")
    with qtbot.waitSignal(stage.autoSettingsShown, timeout=30_000) as shown:
        stage.panel.preset.setCurrentText(FROM_DATA)
    return shown.args[0]


def test_the_entry_is_the_default_and_fills_the_table_with_what_the_data_chooses(qtbot, window, tiny_set):
    stage = training(window)
    with qtbot.waitSignal(stage.autoSettingsShown, timeout=30_000):
        open_set(qtbot, window, tiny_set)
    panel = stage.panel
    assert panel.generation.currentText() == "faster-rcnn" and panel.preset.currentText() == FROM_DATA
    names = [panel.preset.itemText(i) for i in range(panel.preset.count())]
    assert "shapes-cpu" in names and "paper-gpu" in names and NO_PRESET in names  # the others stay
    shown = show_from_data(qtbot, stage)
    expected, _stats = split_auto_settings(open_dataset(tiny_set), processes=panel.processes())
    assert shown.overrides() == expected.overrides()
    described = options.describe_settings(None, "faster-rcnn", expected)
    for part, values in described.items():
        for name, value in values.items():
            assert panel.setting_item(part, name).text(1) == options.format_value(value, (part, name)), (part, name)
    assert panel.setting_item("rpn", "anchor_sizes").text(1) == options.format_value(expected.anchor_sizes)
    assert panel.setting_item("input", "min_size").text(1) == str(expected.min_size)
    assert panel.epochs.value() == expected.epochs
    # Each choice carries its reason; the note says where they come from.
    assert expected.reasons["anchor sizes"] in panel.setting_item("rpn", "anchor_sizes").toolTip(1)
    assert expected.reasons["training size"] in panel.setting_item("input", "min_size").toolTip(1)
    assert expected.reasons["epochs"] in panel.epochs.toolTip()
    assert panel.auto_note.isVisible() or panel.auto_note.text()
    assert "anchor sizes" in panel.auto_note.toolTip()
    # The paper's settings are still an entry of their own, and differ.
    panel.preset.setCurrentText(NO_PRESET)
    assert panel.setting_item("rpn", "anchor_sizes").text(1) != options.format_value(expected.anchor_sizes)


def test_an_overridden_field_reaches_the_config_and_survives_a_change_of_processes(qtbot, window, tiny_set,
                                                                                  monkeypatch):
    monkeypatch.setattr(stage_module, "usable_cores", lambda: 2)
    stage = open_set(qtbot, window, tiny_set)
    panel = stage.panel
    panel.device.setCurrentText("cpu")
    auto = show_from_data(qtbot, stage)
    panel.set_setting_text("rpn", "anchor_sizes", "20, 40")
    panel.set_setting_text("training", "lr", "0.002")
    config = options.build_config(stage.choices(), "/tmp/x/model.pt")
    assert config.detector_config().rpn.anchor_sizes == [20.0, 40.0] and config.lr == 0.002
    assert config.detector_config().backbone.small_stride == auto.model["small_stride"]  # not overridden
    assert config.time_budget_s == auto.time_budget_s and config.optimizer == auto.optimizer
    # One process instead of two: the data's choice for one (2 images per step), the user's edits kept; the
    # boxes read once are not read again for the other count.
    stage.docks()[0].show()
    processes = panel.processes()
    reads = []
    real_compute = auto_settings_module.compute_box_stats
    monkeypatch.setattr(auto_settings_module, "compute_box_stats",
                        lambda *a, **k: reads.append(1) or real_compute(*a, **k))
    with qtbot.waitSignal(stage.autoSettingsShown, timeout=30_000) as shown:
        qtbot.mouseClick(panel.two_processes, Qt.MouseButton.LeftButton)
    assert panel.processes() != processes
    assert shown.args[0].batch_size == max(1, 2 // panel.processes())
    assert reads == []
    expected, _stats = split_auto_settings(open_dataset(tiny_set), processes=panel.processes())
    assert shown.args[0].epochs == expected.epochs and shown.args[0].model == expected.model
    config = options.build_config(stage.choices(), "/tmp/x/model.pt")
    assert config.detector_config().rpn.anchor_sizes == [20.0, 40.0] and config.lr == 0.002
    assert config.batch_size == shown.args[0].batch_size


def test_the_panels_run_is_the_train_commands_run(qtbot, window, tiny_set, tmp_path):
    stage = open_set(qtbot, window, tiny_set)
    show_from_data(qtbot, stage)
    out = str(tmp_path / "model.pt")
    command = command_config(parser().parse_args(["--data", stage._data_path(), "--out", out]))
    expected, choice = command.config, command.choice
    stage.panel.val_images.setValue(expected.val_images)  # the live validation curve: the command has none
    choices = stage.choices()
    choices.data = stage._data_path()
    config = options.build_config(choices, out)
    assert choices.processes == choice.processes
    assert config == expected, [f.name for f in dataclasses.fields(config)
                                if getattr(config, f.name) != getattr(expected, f.name)]


def test_settings_that_cannot_be_chosen_are_a_message_not_a_run(qtbot, window, tiny_set, monkeypatch):
    def fails(job, source, processes, stats=None):  # noqa: ANN001, ARG001
        raise ValueError("no usable boxes in the training images")

    monkeypatch.setattr(stage_module, "_auto_settings_job", fails)
    stage = training(window)
    with qtbot.waitSignal(stage.autoSettingsFailed, timeout=30_000):
        open_set(qtbot, window, tiny_set)
    panel = stage.panel
    assert panel.data_chosen() and "no usable boxes" in panel.auto_note.text()
    assert stage.start() is None and stage.run is None
    assert "no usable boxes" in panel.status.text()
    panel.preset.setCurrentText("shapes-cpu")  # a preset still trains
    assert not panel.auto_note.text()
