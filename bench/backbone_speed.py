"""Benchmark: inference time of Faster R-CNN on the EfficientNet-Lite0 backbone against the small CNN's.

Same CPU, one process, the same photograph (scikit-image's ``coffee``, 400×600, run at the papers' test
scale: shorter side 600, so the network sees 600×900), the same detector settings apart from the backbone
(FasterRCNN's defaults: anchors 128/256/512, 6000 → 300 proposals, 4096-wide FC head). Heads are untrained
(time does not depend on the weights; ``box_score_threshold=0`` so the last NMS works on a full set).
The models are run alternately, ``--repeats`` times each after a warm-up, and the median is reported, with the
backbone's own share (its forward pass alone) beside the whole ``predict``. Times are the process's CPU seconds
(``time.process_time``): on a shared machine wall time measures the other jobs as much as this one; with one
thread (``--threads 1``) CPU time is the work done. Wall seconds are printed beside them.

    python bench/backbone_speed.py [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.detection.detectors.faster_rcnn import FasterRCNN  # noqa: E402

CLASSES = ["person", "cup", "chair", "bottle", "apple"]
SETTINGS = dict(min_size=600, max_size=1000, box_score_threshold=0.0)


def _models() -> dict[str, FasterRCNN]:
    torch.manual_seed(0)
    return {
        "small (width 32, stride 16)": FasterRCNN.build(CLASSES, "small", **SETTINGS).eval(),
        "efficientnet_lite0 (stride 16)": FasterRCNN.build(CLASSES, "efficientnet_lite0", **SETTINGS).eval(),
        "efficientnet_lite0 (stride 8)": FasterRCNN.build(CLASSES, "efficientnet_lite0",
                                                    backbone_options={"stride": 8}, **SETTINGS).eval(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: CPU seconds then measure the work, not idle threads spinning)")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    from skimage import data

    image = data.coffee()
    models = _models()
    total: dict[str, list[float]] = {k: [] for k in models}
    wall: dict[str, list[float]] = {k: [] for k in models}
    body: dict[str, list[float]] = {k: [] for k in models}
    x = torch.rand(1, 3, 600, 900)
    with torch.no_grad():
        for m in models.values():  # warm-up: allocator, first-call overheads
            m.predict([image])
        for _ in range(args.repeats):
            for name, m in models.items():
                t, c = time.perf_counter(), time.process_time()
                m.predict([image])
                total[name].append(time.process_time() - c)
                wall[name].append(time.perf_counter() - t)
                c = time.process_time()
                m.backbone(x)
                body[name].append(time.process_time() - c)
    print(f"photograph {image.shape[1]}×{image.shape[0]} run at 600×900, {torch.get_num_threads()} thread(s), "
          f"median of {args.repeats}, CPU seconds")
    print(f"{'backbone':34s} {'predict':>8s} {'backbone':>9s} {'(predict wall)':>14s} {'params M':>9s}")
    for name, m in models.items():
        params = sum(p.numel() for p in m.parameters()) / 1e6
        print(f"{name:34s} {statistics.median(total[name]):8.3f} {statistics.median(body[name]):9.3f} "
              f"{statistics.median(wall[name]):14.2f} {params:9.1f}")
    base = statistics.median(total[next(iter(models))])
    for name in list(models)[1:]:
        print(f"{name} / small: {statistics.median(total[name]) / base:.2f}×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
