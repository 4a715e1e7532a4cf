"""Benchmark: time for the evaluation view on a dataset split with a checkpoint (issue 16), in the real window.

What is timed: from the view's Evaluate (the loaded model on the split) to the tables, curves, matrix and worst
images being shown (its ``evaluated`` signal), split into the model run (images read + ``predict``, one torch
thread as every model job of the window) and the scoring (VOC AP, COCO AP, confusion matrix and per-image
errors). Also: re-scoring at another score threshold (no model run), the longest event-loop stall while the
evaluation runs (a 5 ms QTimer, as ``bench/gui.py``), and — unless ``--no-headless`` — the headless
``evaluate_detector`` on the same images with the same thread count, so the window's overhead can be read off.
The view's mAP and the headless one are printed side by side: they must be equal.

Run from the repository root (the default data is ``synth --images 400 --seed 0`` with its 300/100 split):

    QT_QPA_PLATFORM=offscreen python bench/gui_evaluation.py --data /work/ship/syn400 --split test
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from PySide6.QtCore import QElapsedTimer, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.gui_gc import install_gui_thread_gc  # noqa: E402


def measure_view(model_path: Path, data: Path, split: str, threads: int, timeout_s: float = 1800.0) -> dict:
    """Evaluate in the real window; seconds to the shown report, its parts, the stall and the re-score."""
    from app.main_window import MainWindow, process_events_until
    from app.settings import Settings
    from app.stages.evaluation import EvaluationStage
    from app.stages.model import ModelStage, jobs

    tmp = Path(tempfile.mkdtemp(prefix="bench_gui_eval_"))
    os.environ["RCNN_EXPLORER_DATA"] = str(tmp / "data")
    jobs.GUI_TORCH_THREADS = threads
    window = MainWindow(Settings(tmp / "s.ini"), thumbnails=False)
    window.resize(1600, 1000)
    window.show()
    if not window.open_path(data):
        raise SystemExit(f"cannot open {data}")
    model_stage = next(s for s in window.stages if isinstance(s, ModelStage))
    stage = next(s for s in window.stages if isinstance(s, EvaluationStage))
    model_stage.load_model(model_path, "cpu")
    # Let the model's trace of the first image finish first: the evaluation is timed alone.
    if not process_events_until(lambda: window.detector_session.trace is not None, 120_000):
        raise SystemExit(f"the model did not load: {model_stage.panel.status.text()}")
    stage.panel.set_split(split)
    if stage.panel.split() != split:
        raise SystemExit(f"the dataset has no split {split!r}")
    if not stage.evaluate_action.isEnabled():
        raise SystemExit("the Detector menu's evaluate entry is disabled")
    done: list[object] = []
    stage.evaluated.connect(done.append)
    gaps: list[float] = []
    clock = QElapsedTimer()
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: gaps.append(clock.restart()))
    t0 = time.perf_counter()
    clock.start()
    timer.start()
    stage.evaluate_action.trigger()  # Detector → Evaluate on the Dataset…: opens the view and runs the model
    process_events_until(lambda: bool(done), int(timeout_s * 1000))
    timer.stop()
    seconds = time.perf_counter() - t0
    report = done[0] if done else None
    if report is None:
        raise SystemExit(f"the evaluation failed: {stage.panel.status_label.text()}")
    outcome = stage._outcome  # noqa: SLF001 - the bench reads where the time went
    t1 = time.perf_counter()
    stage.show_report(report)
    show_s = time.perf_counter() - t1
    again: list[object] = []
    stage.rescored.connect(again.append)
    t2 = time.perf_counter()
    stage.panel.score_spin.setValue(0.7)
    process_events_until(lambda: bool(again), 120_000)
    rescore_s = time.perf_counter() - t2
    g = np.asarray(gaps[1:] or [0.0])
    out = {"images": report.result.n_images, "seconds": seconds, "model_seconds": outcome.detector_seconds,
           "scoring_seconds": report.scoring_seconds, "show_seconds": show_s, "rescore_seconds": rescore_s,
           "mAP": report.result.mAP, "coco_AP": report.result.coco_AP,
           "AP": {c: v for c, v in report.result.AP.items()},
           "max_gap_ms": float(g.max()), "p99_gap_ms": float(np.percentile(g, 99)), "threads": threads}
    window.shutdown()
    window.close()
    return out


def measure_headless(model_path: Path, data: Path, split: str, threads: int) -> dict:
    """``evaluate_detector`` (what ``python main.py evaluate`` runs) on the same images, same threads."""
    import torch

    from models.data.datasets import open_dataset
    from models.data.splits import dataset_splits, split_indices
    from models.detection.checkpoints import load_detector
    from models.detection.evaluation import evaluate_detector

    torch.set_num_threads(threads)
    source = open_dataset(data)
    indices = split_indices(dataset_splits(source), split)
    detector = load_detector(str(model_path), device="cpu")
    t0 = time.perf_counter()
    result, _ = evaluate_detector(detector, source, indices)
    return {"images": result.n_images, "seconds": time.perf_counter() - t0, "mAP": result.mAP,
            "coco_AP": result.coco_AP}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("/work/ship/syn400"),
                   help="dataset (default: /work/ship/syn400, `synth --images 400 --seed 0`)")
    p.add_argument("--split", default="test", help="split to evaluate (default test: 100 images there)")
    p.add_argument("--model", type=Path, default=None, help="checkpoint (default: the shipped Faster R-CNN)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the window's workers use 1)")
    p.add_argument("--no-headless", dest="headless", action="store_false",
                   help="skip the headless evaluate_detector run")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    from resources.models import SHIPPED_MODEL

    model = args.model or SHIPPED_MODEL
    app = QApplication.instance() or QApplication(sys.argv[:1])
    install_gui_thread_gc(app)  # as the app does: collect cycles on the GUI thread only
    view = measure_view(Path(model), args.data, args.split, args.threads)
    print(f"evaluation view, {Path(model).name} on {args.data} split {args.split} ({view['images']} images, CPU, "
          f"{args.threads} torch thread(s)):")
    print(f"  Evaluate → results shown: {view['seconds']:.1f} s  (model run {view['model_seconds']:.1f} s, "
          f"scoring incl. COCO {view['scoring_seconds']:.2f} s, drawing the report {view['show_seconds'] * 1000:.0f} ms)")
    print(f"  re-score at another score threshold (no model run): {view['rescore_seconds'] * 1000:.0f} ms")
    print(f"  longest event-loop gap while evaluating: {view['max_gap_ms']:.0f} ms (99th percentile "
          f"{view['p99_gap_ms']:.0f} ms)")
    print(f"  mAP@0.5 {view['mAP']:.4f}, COCO AP {view['coco_AP']:.4f}")
    result = {"view": view}
    if args.headless:
        head = measure_headless(Path(model), args.data, args.split, args.threads)
        result["headless"] = head
        print(f"headless evaluate_detector, same images and threads: {head['seconds']:.1f} s, mAP@0.5 "
              f"{head['mAP']:.4f}, COCO AP {head['coco_AP']:.4f}"
              + ("  (equal)" if abs(head["mAP"] - view["mAP"]) < 1e-9 else "  (DIFFERENT!)"))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    del app
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
