"""Benchmark: per-frame paint time of the anchor, objectness and RPN-proposal layers (offscreen, software).

Run from the repository root:

    QT_QPA_PLATFORM=offscreen python bench/gui_anchors.py            # 30 frames per case
    QT_QPA_PLATFORM=offscreen python bench/gui_anchors.py --frames 60

A 1000×800 canvas shows a 600×800 image (shorter side 600, the models' input size, so network-input pixels
are image pixels) with five GT boxes. Cases: every cell centre of a stride-16 and a stride-8 map as dots
(~1,900 and 7,500 centres), the 17,100 anchors of the 38×50 stride-16 map (3 sizes × 3 ratios) as boxes,
the objectness heat map of that map, and 2,000 RPN proposals before NMS with 300 after.

"frame" = one full repaint of the canvas viewport (``viewport().grab()``, image layer included) with the
view unchanged: what a hover, a crosshair move or another layer's change costs. "first" = a frame right
after the layer's content changed (or the view zoomed/panned): the cached layers re-render their image
then. Target: frame ≤ 16 ms. :func:`run` returns the figures so ``bench/gui.py`` can print them too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.annotation_model import AnnotationModel  # noqa: E402
from app.canvas import Canvas  # noqa: E402
from app.gui_gc import install_gui_thread_gc  # noqa: E402
from app.layers.anchors import MODE_BOXES, MODE_DOTS, AnchorLayer  # noqa: E402
from app.layers.box_groups import BoxGroup, BoxGroupsLayer  # noqa: E402
from app.layers.heatmap import HeatmapLayer  # noqa: E402
from models.data.io import DecodedImage  # noqa: E402
from models.detection.anchor_labels import AnchorSpec, label_anchor_grid  # noqa: E402

W, H = 800, 600
GT = np.array([[60, 80, 260, 300], [300, 100, 380, 180], [420, 250, 700, 560], [100, 400, 160, 470],
               [500, 40, 560, 90]], np.float32)


def _canvas() -> Canvas:
    canvas = Canvas(AnnotationModel())
    canvas.resize(1000, 800)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    canvas.set_image(DecodedImage(pixels, W, H, 1, W, H, 1.0))
    canvas.show()
    QApplication.processEvents()
    canvas.fit_window()
    return canvas


def _frames(canvas: Canvas, n: int, before=None) -> list[float]:  # noqa: ANN001 - a callable or None
    out = []
    for _ in range(n):
        if before is not None:
            before()
        t = time.perf_counter()
        canvas.viewport().grab()
        out.append(1000 * (time.perf_counter() - t))
    return out


def _anchor_layer(canvas: Canvas, stride: int, mode: str) -> AnchorLayer:
    sizes = (128.0, 256.0, 512.0) if stride == 16 else (32.0, 64.0, 128.0)
    lab = label_anchor_grid(AnchorSpec(stride, sizes, (0.5, 1.0, 2.0)), (H, W), GT)
    layer = AnchorLayer()
    canvas.add_layer(layer)
    layer.set_anchors(lab.boxes, lab.kinds, lab.centres(), lab.cell_kinds(), lab.best_anchor, lab.best_iou,
                      (*lab.feature_size, lab.per_cell))
    layer.set_mode(mode)
    layer.setVisible(True)
    return layer


def run(frames: int = 30) -> list[tuple[str, int, float, float, float, float]]:
    """(case, items, median frame ms, min frame ms, max frame ms, median first-frame ms) per case. The minimum
    is the best guess of the cost on an idle machine when other work shares the CPU."""
    app = QApplication.instance() or QApplication([])
    install_gui_thread_gc(app)  # as the app does: collect cycles on the GUI thread only
    assert app is not None
    rows = []
    canvas = _canvas()
    base = _frames(canvas, frames)
    rows.append(("image + GT only", 0, statistics.median(base), min(base), max(base), statistics.median(base)))

    cases = [("anchor centres, stride 16 (dots)", 16, MODE_DOTS), ("anchor centres, stride 8 (dots)", 8, MODE_DOTS),
             ("anchors 38×50×9, stride 16 (boxes)", 16, MODE_BOXES)]
    for name, stride, mode in cases:
        layer = _anchor_layer(canvas, stride, mode)
        warm = _frames(canvas, frames)
        cold = _frames(canvas, max(3, frames // 5), before=layer.invalidate)
        items = layer.boxes.shape[0] if mode == MODE_BOXES else int(layer.boxes.shape[0] / 9)
        rows.append((name, items, statistics.median(warm), min(warm), max(warm), statistics.median(cold)))
        canvas.remove_layer(layer)

    heat = HeatmapLayer("RPN objectness")
    canvas.add_layer(heat)
    heat.set_map(np.random.default_rng(1).random((38, 50)).astype(np.float32), (0, 0, 50 * 16, 38 * 16))
    heat.setVisible(True)
    warm = _frames(canvas, frames)
    cold = _frames(canvas, max(3, frames // 5), before=heat.invalidate)
    rows.append(("objectness heat map 38×50", 38 * 50, statistics.median(warm), min(warm), max(warm),
                 statistics.median(cold)))
    canvas.remove_layer(heat)

    rng = np.random.default_rng(2)
    xy = rng.uniform(0, 700, (2000, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(20, 300, (2000, 2))], 1).astype(np.float32)
    from PySide6.QtGui import QColor

    props = BoxGroupsLayer("RPN proposals")
    canvas.add_layer(props)
    props.set_groups([BoxGroup(boxes, QColor(120, 170, 255), 1.0), BoxGroup(boxes[:300], QColor(255, 140, 0), 2.0)])
    props.setVisible(True)
    warm = _frames(canvas, frames)
    cold = _frames(canvas, max(3, frames // 5), before=props.invalidate)
    rows.append(("RPN proposals 2000 + 300", 2300, statistics.median(warm), min(warm), max(warm),
                 statistics.median(cold)))
    canvas.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=30)
    args = ap.parse_args()
    rows = run(args.frames)
    print(f"{'case':40s} {'items':>6s} {'frame med':>10s} {'frame min':>10s} {'frame max':>10s} {'first med':>10s}"
          "   (ms)")
    for name, items, med, mn, mx, first in rows:
        print(f"{name:40s} {items:6d} {med:10.2f} {mn:10.2f} {mx:10.2f} {first:10.2f}")


if __name__ == "__main__":
    main()
