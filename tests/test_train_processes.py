"""``train`` starts the two-process data-parallel run itself for the data-chosen settings on a CPU with two or
more cores (as ``torchrun --nproc_per_node=2`` would), and only rank 0 of a launch prints.

The decision is tested without training (the trainers replaced by recorders); one short real run starts two
processes (gloo), and one kills a process mid-run to see the failure surface as a message and a non-zero code.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import signal

import pytest

from app.cli import main as cli_main
from models.detection import training_process
from models.detection.training_process import (
    TrainingFailed,
    choose_processes,
    run_training_processes,
)
from tests.tiny_training import tiny_config, tiny_dataset


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.mktemp("processes_set") / "set", count=8, seed=11)


# --- the decision ---------------------------------------------------------------------------------------------


def test_two_processes_for_data_chosen_settings_on_two_cores() -> None:
    choice = choose_processes(data_chosen=True, cores=2, env={})
    assert (choice.processes, choice.threads) == (2, 1)
    assert "2 cores" in choice.reason and "faster than one process with 2 threads" in choice.reason
    four = choose_processes(data_chosen=True, cores=4, env={})
    assert (four.processes, four.threads) == (2, 2)  # the cores shared between the two


@pytest.mark.parametrize("kwargs, why", [
    (dict(data_chosen=True, cores=1, env={}), "one usable CPU core"),
    (dict(data_chosen=False, cores=2, env={}), "preset"),
    (dict(data_chosen=True, cores=2, env={}, on_cpu=False), "GPU"),
    (dict(data_chosen=True, cores=2, env={"RANK": "0", "WORLD_SIZE": "2"}), "torchrun"),
    (dict(data_chosen=True, cores=2, env={"WORLD_SIZE": "2"}), "torchrun"),
])
def test_one_process_otherwise(kwargs: dict, why: str) -> None:
    choice = choose_processes(**kwargs)
    assert choice.processes == 1 and choice.threads is None and why in choice.reason


def test_the_requested_count_wins() -> None:
    assert choose_processes(data_chosen=True, requested=1, cores=2, env={}).processes == 1
    forced = choose_processes(data_chosen=False, requested=2, cores=2, env={})
    assert (forced.processes, forced.threads) == (2, 1)
    assert choose_processes(data_chosen=False, requested=3, cores=1, env={}).threads == 1
    with pytest.raises(ValueError, match="at least 1"):
        choose_processes(data_chosen=True, requested=0, env={})
    with pytest.raises(ValueError, match="torchrun"):
        choose_processes(data_chosen=True, requested=2, env={"RANK": "1", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="CPU"):
        choose_processes(data_chosen=True, requested=2, on_cpu=False, env={})
    # inside torchrun, asking for one process is what it is already
    assert choose_processes(data_chosen=True, requested=1, env={"RANK": "0"}).processes == 1


def test_usable_cores_follow_the_affinity_mask() -> None:
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no affinity mask on this platform")
    assert training_process.usable_cores() == len(os.sched_getaffinity(0))


class _Recorder:
    """Stands in for both trainers: records which one the command called, with what."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object, int]] = []

    def single(self, config, callbacks=None, cancel=None):  # noqa: ANN001, ANN201
        self.calls.append(("single", config, 1))
        return _result(config)

    def processes(self, config, processes, callbacks=None, cancel=None):  # noqa: ANN001, ANN201
        self.calls.append(("processes", config, processes))
        return _result(config)


def _result(config):  # noqa: ANN001, ANN202
    from models.detection.training import TrainResult

    return TrainResult("completed", 1, config.out, f"trained 1 epochs; checkpoint {config.out}", 0.1)


@pytest.fixture
def recorder(monkeypatch) -> _Recorder:
    rec = _Recorder()
    import models.detection.training as training

    monkeypatch.setattr(training, "train", rec.single)
    monkeypatch.setattr(training_process, "run_training_processes", rec.processes)
    monkeypatch.setattr(training_process, "usable_cores", lambda: 2)
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    return rec


def test_the_command_launches_two_processes_for_the_data_chosen_settings(tiny_set, tmp_path, recorder,
                                                                          capsys) -> None:
    common = ["--data", str(tiny_set), "--out", str(tmp_path / "m.pt"), "--device", "cpu", "--quiet"]
    assert cli_main(["train", *common]) == 0
    kind, config, processes = recorder.calls[-1]
    assert (kind, processes) == ("processes", 2)
    assert config.threads == 1 and config.batch_size == 1  # the recipe's 2 images per step over two ranks
    err = capsys.readouterr().err
    assert "2 processes: 2 cores: two data-parallel processes" in err and "settings chosen from" in err
    # per process: its share of the images buys more epochs than one process's whole set
    assert "on each of 2 processes" in err

    assert cli_main(["train", *common, "--threads", "2"]) == 0
    assert recorder.calls[-1][1].threads == 2  # a given --threads wins
    assert cli_main(["train", *common, "--processes", "1"]) == 0
    kind, config, _ = recorder.calls[-1]
    assert kind == "single" and config.batch_size == 2 and config.threads is None
    assert cli_main(["train", *common, "--anchor-sizes", "16,32"]) == 0  # model flags: the user chose
    assert recorder.calls[-1][0] == "single"


def test_presets_keep_one_process_unless_asked(tiny_set, tmp_path, recorder, capsys) -> None:
    common = ["--preset", "shapes-cpu", "--data", str(tiny_set), "--out", str(tmp_path / "m.pt"), "--quiet"]
    assert cli_main(["train", *common]) == 0
    assert recorder.calls[-1][0] == "single"
    assert cli_main(["train", *common, "--processes", "2"]) == 0
    kind, config, processes = recorder.calls[-1]
    assert (kind, processes, config.threads) == ("processes", 2, 1)
    assert "2 processes (--processes 2)" in capsys.readouterr().err
    assert cli_main(["train", *common, "--processes", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err


def test_under_torchrun_only_rank_0_prints(tiny_set, tmp_path, recorder, capsys, monkeypatch) -> None:
    common = ["train", "--data", str(tiny_set), "--out", str(tmp_path / "m.pt"), "--device", "cpu", "--quiet"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert cli_main(common) == 0
    kind, config, _ = recorder.calls[-1]
    assert kind == "single" and config.batch_size == 1  # torchrun started the processes; sized per process
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("RANK", "0")
    assert cli_main(common) == 0
    err = capsys.readouterr().err
    assert "settings chosen from" in err and "on each of 2 processes" in err and "trained 1 epochs" in err
    assert "train: 2 processes" not in err  # no second launch inside torchrun's
    monkeypatch.setenv("RANK", "1")
    assert cli_main([*common[:-1], "--preset", "shapes-cpu"]) == 0
    assert capsys.readouterr().err == ""


# --- real processes -------------------------------------------------------------------------------------------


def _two_processes_possible() -> str | None:
    """Why two gloo processes cannot start here (None: they can)."""
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        return "torch.distributed with gloo is not available"
    try:
        training_process.free_port()
    except OSError as exc:
        return f"no local TCP port for the rendezvous: {exc}"
    return None


needs_two_processes = pytest.mark.skipif(_two_processes_possible() is not None,
                                         reason=str(_two_processes_possible()))


@needs_two_processes
def test_the_plain_command_trains_in_two_processes(tiny_set, tmp_path, capsys, monkeypatch) -> None:
    """A few steps of the real thing: a checkpoint that loads and detects, and the training log."""
    from models.detection.checkpoints import load_checkpoint, load_detector
    from models.detection.runs import read_log

    for key in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    out = tmp_path / "two.pt"
    code = cli_main(["train", "--data", str(tiny_set), "--out", str(out), "--processes", "2", "--epochs", "1",
                     "--max-steps", "2", "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "2 processes" in err and "trained" in err
    payload = load_checkpoint(out)
    assert payload["config"]["batch_size"] == 1 and payload["config"]["threads"] == 1
    model = load_detector(out, device="cpu")
    import numpy as np

    assert model.predict([np.zeros((100, 120, 3), np.uint8)], 0.0)[0].boxes.shape[1] == 4
    (record,) = read_log(out)  # one run, one line, written by rank 0 only
    assert record["status"] == "completed" and record["world_size"] == 2 and record["global_step"] == 2


@needs_two_processes
def test_an_error_in_the_processes_is_a_message_and_a_non_zero_code(tiny_set, tmp_path, capsys) -> None:
    code = cli_main(["train", "--data", str(tiny_set), "--out", str(tmp_path / "x.pt"), "--classes", "zebra",
                     "--processes", "2", "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "no class 'zebra'" in err and "of 2)" in err and "ValueError" not in err and "Traceback" not in err
    assert "--processes 1" not in err  # the user asked for two: no hint
    assert not (tmp_path / "x.pt").exists()


@needs_two_processes
def test_a_process_that_dies_fails_the_run_and_stops_the_other(tiny_set, tmp_path) -> None:
    config = tiny_config(tiny_set, tmp_path / "dies.pt", epochs=50, max_steps=None, batch_size=1)
    killed: list[int] = []

    def kill_rank_1(ev) -> None:  # noqa: ANN001 - TrainEvent, in this (the parent) process
        if ev.kind == "step" and not killed:
            for child in mp.active_children():
                if child.name == "rcnn-train-1":
                    os.kill(child.pid, signal.SIGKILL)
                    killed.append(child.pid)

    # Two wordings, by which side sees the death first (with_deaths / exit_summary): both name process 2.
    with pytest.raises(TrainingFailed, match=r"process 2 of 2( was killed \(signal 9\)|: exit code -9)"):
        run_training_processes(config, 2, callbacks=kill_rank_1, poll_s=0.05)
    assert killed
    assert not [c for c in mp.active_children() if c.name.startswith("rcnn-train")]  # rank 0 stopped too



@needs_two_processes
def test_the_window_names_the_process_that_died_as_the_command_does(qtbot, tiny_set, tmp_path) -> None:
    from app.stages.training.run import TrainingRun

    config = tiny_config(tiny_set, tmp_path / "dies_in_window.pt", epochs=50, max_steps=None, batch_size=1)
    run = TrainingRun(config, 2)
    killed: list[int] = []

    def kill_rank_1(ev) -> None:  # noqa: ANN001 - TrainEvent, emitted in this (the GUI) thread by the run's timer
        if ev.kind == "step" and not killed:
            for child in mp.active_children():
                if child.name == "rcnn-train-1":
                    os.kill(child.pid, signal.SIGKILL)
                    killed.append(child.pid)

    run.event.connect(kill_rank_1)
    with qtbot.waitSignal(run.failed, timeout=120_000) as failed:
        run.start()
    assert killed
    # Rank 0 usually reports its partner's closed connection first; the message leads with the real cause.
    assert re.search(r"process 2 of 2 (was killed \(signal 9\)|: exit code -9)", failed.args[0]), failed.args[0]
    assert not run.running
    assert not [c for c in mp.active_children() if c.name.startswith("rcnn-train")]


def test_a_failed_runs_wording_from_exit_codes() -> None:
    assert training_process.with_deaths("connection closed by peer", [None, -9]) == (
        "process 2 of 2 was killed (signal 9); then connection closed by peer")
    assert training_process.with_deaths("no class 'zebra'", [1, 0]) == "no class 'zebra'"  # an exit is no kill
    assert training_process.exit_summary([0, -15]) == (
        "a training process exited without a result (process 2 of 2: exit code -15, killed by signal 15)")
    assert training_process.exit_summary([0]) == "a training process exited without a result (process 1 of 1: exit code 0)"
