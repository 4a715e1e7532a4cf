"""Benchmark: how fast the canvas paints the detector layers, and how long the window stalls during inference.

Run from the repository root (offscreen, software rendering; numbers are per frame of a 1000×800 canvas):

    QT_QPA_PLATFORM=offscreen python bench/gui.py                      # every paint case + the stall
    QT_QPA_PLATFORM=offscreen python bench/gui.py --only paint         # paint cases only
    QT_QPA_PLATFORM=offscreen python bench/gui.py --stall-threads 1,2  # stall with 1 and with 2 torch threads

Paint: the image (a 600-px shapes sample) fitted in the canvas, one layer set up by the case, then the whole
canvas rendered into an image ``--frames`` times; median and worst frame are printed (target ≤ 16 ms).

Stall: the real main window on a folder of synthetic images with the shipped model (or ``--model``); folder
inference runs in the Model stage's worker while a 5 ms QTimer records the gaps between its ticks. The
longest gap is the longest time the event loop could not react (target ≤ 50 ms). The same timer runs a few
seconds before, with nothing running, as a baseline: on a busy shared machine the load of other processes
alone causes gaps, which are not the window's doing.

Adding a paint case: write ``def my_case(canvas, rng) -> str`` that adds a layer to ``canvas`` and returns a
one-line description, and decorate it with ``@paint_case("name")``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from PySide6.QtCore import QElapsedTimer, QTimer  # noqa: E402
from PySide6.QtGui import QColor, QImage, QPainter  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.gui_gc import install_gui_thread_gc  # noqa: E402

CANVAS_SIZE = (1000, 800)
#: Seconds the stall timer runs with nothing to do first: the gaps the machine's own load causes.
IDLE_BASELINE_S = 4.0
SAMPLE = ROOT / "resources" / "samples" / "shapes" / "shapes_1.jpg"


# ------------------------------------------------------------------------------------------- paint cases


@dataclass
class PaintCase:
    name: str
    build: Callable[..., str]


PAINT_CASES: list[PaintCase] = []


def paint_case(name: str) -> Callable[[Callable[..., str]], Callable[..., str]]:
    def register(fn: Callable[..., str]) -> Callable[..., str]:
        PAINT_CASES.append(PaintCase(name, fn))
        return fn
    return register


def random_boxes(rng: np.random.Generator, n: int, width: int, height: int, min_side: float = 8,
                 max_side: float = 300) -> np.ndarray:
    w = rng.uniform(min_side, max_side, n)
    h = rng.uniform(min_side, max_side, n)
    x = rng.uniform(0, np.maximum(1, width - w))
    y = rng.uniform(0, np.maximum(1, height - h))
    return np.stack([x, y, np.minimum(x + w, width), np.minimum(y + h, height)], 1).astype(np.float32)


@paint_case("image only")
def image_only(canvas, rng) -> str:  # noqa: ANN001
    return "the decoded image, no overlay (the baseline every case includes)"


@paint_case("2,000 proposals")
def proposals_2000(canvas, rng) -> str:  # noqa: ANN001
    from app.layers.proposals import ProposalsLayer

    layer = ProposalsLayer()
    canvas.add_layer(layer)
    w, h = canvas.image_size()
    boxes = random_boxes(rng, 2000, w, h)
    layer.set_proposals(boxes, rng.uniform(0, 1, 2000))
    layer.set_top_n(0)
    layer.setVisible(True)
    return "ProposalsLayer, 2,000 boxes coloured by rank"


@paint_case("300 detections + labels")
def detections_300(canvas, rng) -> str:  # noqa: ANN001
    """Stand-in for the detections stage's layer: a BoxArrayLayer with one colour per class and a label each."""
    from app.layers.base import BoxArrayLayer, class_color

    layer = BoxArrayLayer("Detections", line_width=2.0)
    canvas.add_layer(layer)
    w, h = canvas.image_size()
    boxes = random_boxes(rng, 300, w, h, 16, 200)
    classes = ["circle", "square", "triangle"]
    names = [classes[i] for i in rng.integers(0, 3, 300)]
    scores = rng.uniform(0.05, 1.0, 300)
    colors = [class_color(n) for n in names]
    layer.set_boxes(boxes, colors, [f"{n} {s:.2f}" for n, s in zip(names, scores, strict=True)])
    return "BoxArrayLayer, 300 boxes in 3 class colours, 300 labels"


def make_canvas():  # noqa: ANN201
    from app.annotation_model import AnnotationModel
    from app.canvas import Canvas
    from models.data.io import read_image

    model = AnnotationModel()
    canvas = Canvas(model)
    canvas.resize(*CANVAS_SIZE)
    canvas.show()
    decoded = read_image(SAMPLE)
    canvas.set_image(decoded)
    canvas.fit_window()
    return canvas


def time_frames(canvas, frames: int) -> list[float]:  # noqa: ANN001
    """Render the whole canvas (viewport, every visible layer) into an image, ``frames`` times; ms each."""
    vp = canvas.viewport()
    img = QImage(vp.size(), QImage.Format.Format_ARGB32_Premultiplied)
    out = []
    for _ in range(frames):
        img.fill(QColor(0, 0, 0))
        t0 = time.perf_counter()
        painter = QPainter(img)
        canvas.render(painter)
        painter.end()
        out.append(1000 * (time.perf_counter() - t0))
    return out


def run_paint(frames: int, only: list[str] | None = None) -> None:
    print(f"paint, {CANVAS_SIZE[0]}×{CANVAS_SIZE[1]} canvas, {SAMPLE.name} fitted, {frames} frames "
          "(median / worst, ms):")
    for case in PAINT_CASES:
        if only and not any(o.lower() in case.name.lower() for o in only):
            continue
        canvas = make_canvas()
        rng = np.random.default_rng(0)
        what = case.build(canvas, rng)
        QApplication.processEvents()
        time_frames(canvas, 2)  # warm caches
        ms = time_frames(canvas, frames)
        print(f"  {case.name:<28} {statistics.median(ms):7.1f} / {max(ms):7.1f}   {what}")
        canvas.close()
        canvas.deleteLater()
        QApplication.processEvents()
    if not only or any("detection" in o.lower() for o in only):
        try:  # the Detections stage's own layer, with its outcome tags (bench/gui_detections.py, issue 11)
            sys.path.insert(0, str(ROOT / "bench"))
            from gui_detections import detections_paint_ms
        except ImportError:
            return
        r = detections_paint_ms(300, CANVAS_SIZE, frames)
        print(f"  {'300 detections, real stage':<28} {r['median_ms']:7.1f} / p90 {r['p90_ms']:5.1f}   "
              f"DetectionsStage layer (bench/gui_detections.py; uncached repaint {r['repaint_median_ms']:.1f})")


# ------------------------------------------------------------------------------------------------- stall


def make_folder(n: int, seed: int = 5) -> Path:
    from models.data.synthetic import write_synthetic

    out = Path(tempfile.mkdtemp(prefix="bench_gui_")) / "set"
    write_synthetic(out, n, seed)
    return out


def measure_stall(model_path: Path, data: Path, threads: int, timeout_s: float = 600.0) -> dict:
    """Folder inference in the real window; the longest gap between ticks of a 5 ms timer while it runs."""
    from app.main_window import MainWindow, process_events_until
    from app.settings import Settings
    from app.stages.model import ModelStage, jobs

    tmp = Path(tempfile.mkdtemp(prefix="bench_gui_settings_"))
    os.environ["RCNN_EXPLORER_DATA"] = str(tmp / "data")
    jobs.GUI_TORCH_THREADS = threads
    window = MainWindow(Settings(tmp / "s.ini"), thumbnails=False)
    window.resize(1280, 800)
    window.show()
    window.open_path(data)
    stage = next(s for s in window.stages if isinstance(s, ModelStage))
    stage.load_model(model_path, "cpu")
    if not process_events_until(lambda: window.detector_session.trace is not None, 120_000):
        raise SystemExit(f"the model did not run on the first image: {stage.panel.status.text()}")
    gaps: list[float] = []
    clock = QElapsedTimer()
    timer = QTimer()
    timer.setInterval(5)

    def tick() -> None:
        gaps.append(clock.restart())

    timer.timeout.connect(tick)
    done: list[object] = []
    stage.folderFinished.connect(done.append)
    # Baseline: the same timer for a few seconds with nothing running (what the machine's load alone costs).
    clock.start()
    timer.start()
    process_events_until(lambda: False, int(IDLE_BASELINE_S * 1000))
    idle = np.asarray(gaps[1:] or [0.0])
    gaps.clear()
    t0 = time.perf_counter()
    clock.restart()
    stage.run_folder()
    process_events_until(lambda: bool(done), int(timeout_s * 1000))
    timer.stop()
    seconds = time.perf_counter() - t0
    result = done[0] if done else None
    window.shutdown()
    window.close()
    g = np.asarray(gaps[1:] or [0.0])
    return {"threads": threads, "images": getattr(result, "n_images", 0), "seconds": seconds,
            "max_gap_ms": float(g.max()), "p99_gap_ms": float(np.percentile(g, 99)), "ticks": int(g.size),
            "idle_max_gap_ms": float(idle.max()), "idle_p99_gap_ms": float(np.percentile(idle, 99))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=("paint", "stall"), help="run only the paint cases or only the stall")
    p.add_argument("--cases", help="comma-separated substrings of paint case names to run")
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--model", type=Path, default=None, help="checkpoint for the stall (default: shipped model)")
    p.add_argument("--data", type=Path, default=None, help="dataset for the stall (default: 16 synthetic images)")
    p.add_argument("--images", type=int, default=16, help="synthetic images written when --data is not given")
    p.add_argument("--stall-threads", default="1", help="torch threads in the GUI's workers, e.g. 1,2")
    args = p.parse_args(argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    install_gui_thread_gc(app)  # as the app does: collect cycles on the GUI thread only
    if args.only != "stall":
        run_paint(args.frames, args.cases.split(",") if args.cases else None)
    if args.only != "paint":
        from resources.models import SHIPPED_MODEL

        model = args.model or SHIPPED_MODEL
        if not Path(model).is_file():
            print(f"stall: no model at {model}; pass --model")
            return 1
        data = args.data or make_folder(args.images)
        print(f"stall while folder inference runs ({model.name}, CPU, {data}):")
        for threads in (int(t) for t in args.stall_threads.split(",")):
            r = measure_stall(Path(model), data, threads)
            print(f"  torch threads {r['threads']}: {r['images']} images in {r['seconds']:.1f} s; longest "
                  f"event-loop gap {r['max_gap_ms']:.0f} ms, 99th percentile {r['p99_gap_ms']:.0f} ms "
                  f"({r['ticks']} ticks of a 5 ms timer); idle baseline: longest {r['idle_max_gap_ms']:.0f} ms, "
                  f"99th percentile {r['idle_p99_gap_ms']:.0f} ms")
    del app
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
