"""Training in spawned worker processes (what the window uses): two data-parallel processes stop together on
cancel — no rank left hanging in an all-reduce — and rank 0 keeps the checkpoint; errors come back as text."""

from __future__ import annotations

import time

import pytest

from models.detection.training import TrainConfig
from models.detection.training_process import TrainingProcess
from tests.tiny_training import tiny_dataset

TINY_MODEL = dict(small_width=8, anchor_sizes=[16, 32, 64], representation_size=32)
TIMEOUT_S = 240


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.mktemp("process_set") / "set")


def _wait(proc: TrainingProcess, until, timeout_s: float = TIMEOUT_S) -> list[tuple]:
    """Poll like the window does until ``until(messages)`` holds; every message seen so far."""
    seen: list[tuple] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen.extend(proc.poll())
        if until(seen):
            return seen
        if not proc.alive():
            seen.extend(proc.poll())
            return seen
        time.sleep(0.05)
    raise AssertionError(f"timed out; last messages: {seen[-3:]}")


def test_two_processes_cancel_together_and_keep_a_checkpoint(tiny_set, tmp_path):
    config = TrainConfig(data=str(tiny_set), out=str(tmp_path / "m.pt"), epochs=50, batch_size=1, min_size=96,
                         max_size=128, device="cpu", warmup_iters=2, threads=1, model=dict(TINY_MODEL))
    proc = TrainingProcess(config, processes=2)
    proc.start()
    try:
        seen = _wait(proc, lambda m: sum(1 for k in m if k[0] == "event" and k[1].kind == "step") >= 4)
        start = next(k[1] for k in seen if k[0] == "event" and k[1].kind == "start")
        assert "2 processes" in start.message and start.steps_per_epoch == 3  # six images over two ranks
        step = next(k[1] for k in seen if k[0] == "event" and k[1].kind == "step" and "images_per_s" in k[1].metrics)
        assert step.metrics["images_per_s"] > 0 and step.eta_s is not None
        proc.cancel()
        seen += _wait(proc, lambda m: any(k[0] in ("result", "error") for k in m), timeout_s=60)
        assert proc.join(30), "a rank did not stop"
    finally:
        proc.terminate()
    errors = [k for k in seen if k[0] == "error"]
    assert not errors, errors
    result = next(k[1] for k in seen if k[0] == "result")
    assert result.status == "cancelled" and result.checkpoint == str(tmp_path / "m.pt")
    assert (tmp_path / "m.pt").is_file() and proc.exitcodes() == [0, 0]


def test_a_setup_error_comes_back_as_a_message(tmp_path):
    config = TrainConfig(data=str(tmp_path / "missing"), out=str(tmp_path / "m.pt"), device="cpu")
    proc = TrainingProcess(config)
    proc.start()
    try:
        seen = _wait(proc, lambda m: any(k[0] in ("result", "error") for k in m))
    finally:
        proc.join(30)
        proc.terminate()
    error = next(k for k in seen if k[0] == "error")
    assert "missing" in error[1]
