"""Benchmark: time from clicking a RoI on the canvas to its pooling grid and pooled output drawn.

Run offscreen from the repository root:

    QT_QPA_PLATFORM=offscreen python bench/gui_roi.py                       # a tiny untrained model
    QT_QPA_PLATFORM=offscreen python bench/gui_roi.py --model resources/model.pt --image some.jpg
    QT_QPA_PLATFORM=offscreen python bench/gui_roi.py --screenshots /tmp/roi   # also saves PNGs

What is measured, per click (``--clicks`` RoIs, picked at the centre of random proposals): a real mouse click
on the canvas's viewport (QTest) → the stage picks the RoI → the explanation is computed in its worker → the
result reaches the GUI thread, the layer and the panel update → the pending paint events are delivered (as
the event loop delivers them: only what changed). The clock stops when the canvas viewport and both heat maps
have been painted. Median and maximum are printed. :func:`click_to_drawn_ms` is the entry point the
window-wide ``bench/gui.py`` can call with its own canvas and stage.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PySide6.QtCore import QEvent, QEventLoop, QObject, Qt, QTimer  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication, QHBoxLayout, QWidget  # noqa: E402

from app.gui_gc import install_gui_thread_gc  # noqa: E402

#: (click → explanation handed to the GUI thread, the paints that follow, CPU time of this process over the
#: whole click) in ms of the last click. On a machine shared with other work the CPU time is the steadier figure.
LAST_SPLIT: list[float] = []


class _PaintCounter(QObject):
    """Counts paint events of the widgets it filters (to check the drawing really happened)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Paint:
            self.count += 1
        return False


def click_to_drawn_ms(canvas, stage, scene_x: float, scene_y: float, timeout_s: float = 5.0) -> float:  # noqa: ANN001
    """Milliseconds from a left click at scene point (x, y) to the RoI grid stage's grid and pooled output
    painted. ``stage`` is an :class:`app.stages.roi_grid.stage.RoiGridStage` whose layer is visible.

    After the result reaches the GUI thread, the pending paint events are delivered as the event loop would
    deliver them (only the regions that changed); the clock stops when the canvas viewport and both heat maps
    have been painted."""
    loop = QEventLoop()
    done: list[float] = []
    cpu: list[float] = []
    counter = _PaintCounter()
    watched = (canvas.viewport(), stage.panel.feature_map, stage.panel.pooled_map)

    def shown(_e: object) -> None:
        done.append(time.perf_counter())
        cpu.append(time.process_time())
        for w in watched:
            w.installEventFilter(counter)
        QApplication.processEvents()
        if counter.count < len(watched):  # a platform that defers paints: force them
            for w in watched:
                w.repaint()
        done.append(time.perf_counter())
        cpu.append(time.process_time())
        for w in watched:
            w.removeEventFilter(counter)
        loop.quit()

    stage.explanationShown.connect(shown)
    try:
        QTimer.singleShot(int(timeout_s * 1000), loop.quit)
        pos = canvas.mapFromScene(scene_x, scene_y)
        t0, c0 = time.perf_counter(), time.process_time()
        QTest.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos)
        if not done:
            loop.exec()
    finally:
        stage.explanationShown.disconnect(shown)
    if len(done) < 2:
        raise TimeoutError("the RoI grid was not drawn in time")
    LAST_SPLIT[:] = [(done[0] - t0) * 1000.0, (done[1] - done[0]) * 1000.0, (cpu[1] - c0) * 1000.0]
    return (done[1] - t0) * 1000.0


def _tiny_model(pooling: str):  # noqa: ANN202
    import torch

    from models.detection.detectors import build_detector

    torch.manual_seed(0)
    return build_detector("faster-rcnn", ["circle", "square", "triangle"], backbone="small", small_width=16,
                          pooling=pooling).eval()


def _image(path: str | None) -> np.ndarray:
    if path:
        from models.data.io import read_image

        return read_image(path).pixels
    rng = np.random.default_rng(0)
    img = rng.integers(90, 140, (480, 640, 3), dtype=np.uint8)
    img[80:260, 100:300] = (220, 50, 40)
    img[250:420, 380:560] = (40, 180, 70)
    return img


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="checkpoint (default: an untrained small Faster R-CNN)")
    ap.add_argument("--pooling", default="align", choices=("pool", "align"), help="for the untrained model")
    ap.add_argument("--image", help="image file (default: a drawn 640×480 image)")
    ap.add_argument("--clicks", type=int, default=30)
    ap.add_argument("--screenshots", help="save <prefix>_canvas.png, <prefix>_panel.png, <prefix>_window.png")
    ap.add_argument("--roi", type=int, default=-1, help="RoI to show in the screenshots (default: the last one "
                                                        "clicked)")
    ap.add_argument("--zoom-roi", action="store_true", help="zoom the canvas onto the RoI for the screenshots")
    args = ap.parse_args()

    app = QApplication.instance() or QApplication(sys.argv)
    install_gui_thread_gc(app)  # as the app does: collect cycles on the GUI thread only
    import torch

    from app.annotation_model import AnnotationModel
    from app.canvas import Canvas
    from app.stages.detector_session import DetectorSession
    from app.stages.roi_grid.stage import RoiGridStage
    from models.data.io import DecodedImage

    torch.set_num_threads(1)
    if args.model:
        from models.detection.checkpoints import load_detector

        model = load_detector(args.model, "cpu")
    else:
        model = _tiny_model(args.pooling)
    pixels = _image(args.image)
    h, w = pixels.shape[:2]
    host = QWidget()
    lay = QHBoxLayout(host)
    canvas = Canvas(AnnotationModel())
    canvas.set_image(DecodedImage(pixels, w, h, 1, w, h))
    session = DetectorSession(canvas)
    session.set_model(model)
    stage = RoiGridStage(canvas, session, host)
    lay.addWidget(canvas, 3)
    lay.addWidget(stage.panel, 2)
    host.resize(1400, 800)
    host.show()
    app.processEvents()
    t0 = time.perf_counter()
    trace = model.trace(pixels)
    print(f"model: {args.model or 'untrained small, pooling=' + args.pooling} · trace {time.perf_counter() - t0:.2f} s"
          f" · {len(trace.proposals)} RoIs · features {tuple(trace.features.shape)}")
    session.set_trace(trace)
    stage.panel.show_box.setChecked(True)
    k = stage.scene_factors
    rng = np.random.default_rng(1)
    picks = rng.choice(len(trace.proposals), size=min(args.clicks, len(trace.proposals)), replace=False)
    times: list[float] = []
    splits: list[list[float]] = []
    for i in picks:
        b = trace.proposals[i] * k
        times.append(click_to_drawn_ms(canvas, stage, float(b[0] + b[2]) / 2, float(b[1] + b[3]) / 2))
        splits.append(list(LAST_SPLIT))
        app.processEvents()
    print(f"click → grid and pooled output drawn: median {statistics.median(times):.1f} ms, "
          f"max {max(times):.1f} ms over {len(times)} clicks (first {times[0]:.1f} ms); of which "
          f"click → result in the GUI thread median {statistics.median(s[0] for s in splits):.1f} ms, "
          f"painting median {statistics.median(s[1] for s in splits):.1f} ms; CPU time of this process per click "
          f"median {statistics.median(s[2] for s in splits):.1f} ms, max {max(s[2] for s in splits):.1f} ms")
    if args.screenshots:
        if args.roi >= 0:
            loop = QEventLoop()
            stage.explanationShown.connect(lambda _e: loop.quit())
            stage.select(args.roi)
            loop.exec()
        if stage.explanation is not None and args.zoom_roi:
            from PySide6.QtCore import QRectF

            x1, y1, x2, y2 = (float(v) for v in stage.layer.drawing.roi)
            m = 1.5 * max(x2 - x1, y2 - y1)
            canvas.fitInView(QRectF(x1 - m, y1 - m, x2 - x1 + 2 * m, y2 - y1 + 2 * m), Qt.AspectRatioMode.KeepAspectRatio)
        app.processEvents()
        canvas.grab().save(f"{args.screenshots}_canvas.png")
        stage.panel.grab().save(f"{args.screenshots}_panel.png")
        host.grab().save(f"{args.screenshots}_window.png")
        print("saved", f"{args.screenshots}_{{canvas,panel,window}}.png")
    stage.shutdown()


if __name__ == "__main__":
    main()
