"""Runs: listed from a folder with their settings, time, status and per-step losses; AP per class cached."""

import json
import math
import threading
from pathlib import Path

import pytest

from models.detection.runs import (
    cache_path,
    evaluate_run,
    evaluation_indices,
    list_runs,
    loss_curves,
    read_log,
)
from tests.tiny_training import tiny_dataset, train_tiny


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs_models")
    data = tiny_dataset(base / "set")
    root = base / "runs"
    train_tiny(data, root / "20260101-000000-faster-rcnn" / "model.pt", lr=0.01)
    train_tiny(data, root / "20260101-000100-faster-rcnn" / "model.pt", lr=0.003, max_steps=3)
    (root / "broken").mkdir()
    (root / "broken" / "model.pt").write_bytes(b"PK\x03\x04 this is not a checkpoint")
    return data, root


def _by_name(records):
    return {r.name: r for r in records}


def test_runs_are_listed_with_settings_time_status_and_step_losses(runs_root) -> None:
    _, root = runs_root
    runs = _by_name(list_runs(root))
    assert set(runs) == {"20260101-000000-faster-rcnn", "20260101-000100-faster-rcnn", "broken"}
    a, b = runs["20260101-000000-faster-rcnn"], runs["20260101-000100-faster-rcnn"]
    for run, steps, lr in ((a, 4, 0.01), (b, 3, 0.003)):
        assert run.readable and run.status == "finished" and run.generation == "faster-rcnn"
        assert run.backbone == "small" and run.settings["lr"] == lr and f"lr {lr:g}" in run.summary
        assert run.train_seconds is not None and run.train_seconds > 0
        assert run.device == "cpu" and run.class_names == ["circle", "square", "triangle"]
        curves = loss_curves(run)
        assert curves.per_step and curves.steps == list(range(1, steps + 1))
        assert set(curves.losses) == {"rpn_objectness", "rpn_box", "cls", "box", "total"}
        assert curves.names[0] == "total" and all(len(v) == steps for v in curves.losses.values())
        # the curve holds exactly what the log recorded for each step
        logged = read_log(run.path)[-1]["steps"]
        assert [s["total"] for s in logged] == curves.losses["total"]
        assert curves.epochs[-1] == pytest.approx(steps / 3)  # 6 training images, batch 2: 3 steps an epoch
        assert math.isfinite(run.final_losses["total"])


def test_a_corrupt_checkpoint_is_a_row_with_a_message(runs_root) -> None:
    _, root = runs_root
    bad = _by_name(list_runs(root))["broken"]
    assert not bad.readable and bad.status == "unreadable"
    assert "not a readable detector checkpoint" in bad.error and str(bad.path) in bad.error


def test_listing_again_reuses_unchanged_runs(runs_root) -> None:
    _, root = runs_root
    first = list_runs(root)
    again = list_runs(root, previous=first)
    assert all(x is y for x, y in zip(first, again, strict=True))


def test_cancelled_and_failed_runs_say_so(runs_root, tmp_path, monkeypatch) -> None:
    from models.detection.detectors.faster_rcnn import FasterRCNN

    data, _ = runs_root
    cancel = threading.Event()
    from models.detection.training import train
    from tests.tiny_training import tiny_config

    out = tmp_path / "c" / "model.pt"
    out.parent.mkdir()
    result = train(tiny_config(data, out, max_steps=None, epochs=3),
                   callbacks=lambda ev: cancel.set() if ev.kind == "step" and ev.global_step == 4 else None,
                   cancel=cancel)
    assert result.status == "cancelled"
    original = FasterRCNN.forward
    calls = {"n": 0}

    def failing(self, images, targets=None):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("CUDA out of memory (simulated)")
        return original(self, images, targets)

    monkeypatch.setattr(FasterRCNN, "forward", failing)
    failed_out = tmp_path / "f" / "model.pt"
    with pytest.raises(RuntimeError, match="simulated"):
        train_tiny(data, failed_out, max_steps=None, epochs=3)
    runs = _by_name(list_runs(tmp_path))
    cancelled, failed = runs["c"], runs["f"]
    assert cancelled.status == "cancelled" and "cancelled during epoch 2" in cancelled.message
    assert cancelled.epochs_completed == 1 and loss_curves(cancelled).steps == [1, 2, 3, 4]
    assert failed.status == "failed" and "CUDA out of memory (simulated)" in failed.message
    assert failed.epochs_completed == 0 and loss_curves(failed).steps == [1, 2]


def test_ap_per_class_equals_the_evaluation_and_is_cached(runs_root) -> None:
    from models.data.datasets import open_dataset
    from models.detection.checkpoints import load_detector
    from models.detection.evaluation import evaluate_detector

    data, root = runs_root
    ckpt = root / "20260101-000000-faster-rcnn" / "model.pt"
    source = open_dataset(str(data))
    indices = evaluation_indices(source, "test")
    expected, _ = evaluate_detector(load_detector(ckpt, "cpu"), source, indices)
    first = evaluate_run(ckpt, source, "test", device="cpu")
    assert not first.cached and cache_path(ckpt).is_file()
    for cls, ap in expected.AP.items():
        assert first.AP[cls] == pytest.approx(ap, abs=1e-6, nan_ok=True)
    assert first.mAP == pytest.approx(expected.mAP, abs=1e-6)
    second = evaluate_run(ckpt, source, "test", device="cpu")
    assert second.cached and second.result == first.result
    # relabelling a test image changes the key: computed afresh, not served stale
    entry = source.entries[indices[0]]
    xml = entry.path.with_suffix(".xml")
    if not xml.is_file():
        xml = next(Path(data).rglob(entry.path.stem + ".xml"))
    text = xml.read_text()
    xml.write_text(text.replace("<name>", "<name>x", 1))
    try:
        third = evaluate_run(ckpt, open_dataset(str(data)), "test", device="cpu")
        assert not third.cached
    finally:
        xml.write_text(text)
    doc = json.loads(cache_path(ckpt).read_text())
    assert len(doc["entries"]) == 2
