"""GPU check: one prepared script to run on a CUDA machine whenever one is available.

What it checks, in this order (the synthetic-shapes recipe of README.md, on its own small synthetic set):

1. speed: the same Faster R-CNN trained on the CPU (a fixed number of steps), on the GPU in float32 and on
   the GPU with mixed precision (float16 autocast + gradient scaling, ``TrainConfig.amp``); steps per second
   of each and the GPU's speed-up over the CPU;
2. mixed precision for every generation: a few steps of R-CNN and Fast R-CNN (Selective Search proposals on
   the CPU first) with ``amp`` on; the losses must stay finite;
3. portability: the checkpoint trained on the GPU is loaded on the GPU and on the CPU, run over the test
   split on both, and the detections compared image by image (same labels, boxes within ``--box-tol`` px,
   scores within ``--score-tol``) and the mAP@0.5 (within ``--map-tol``).

    python bench/gpu_check.py [--images 120] [--epochs 3] [--cpu-steps 30] [--out DIR] [--json FILE]

Exits 0 with "no CUDA device" and checks nothing when torch sees no CUDA GPU (so it can sit in any script);
exit 1 when a check fails, 0 when all pass. ``--smoke`` runs the whole flow on a tiny model and set on
whatever device there is (the CPU standing in for the GPU; amp is then off): for testing this script.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: The synthetic-shapes recipe of README.md (the shipped frcnn_shapes.pt), as TrainConfig fields.
RECIPE: dict[str, Any] = dict(
    backbone="small", batch_size=1, optimizer="adamw", lr=0.001, min_size=512, max_size=768, rotate90=True,
    seed=0, model={"small_width": 24, "small_stride": 8, "small_context": True, "pooling": "align",
                   "rpn_pre_nms_train": 2000, "rpn_post_nms_train": 512, "roi_positive_sampling": "per_object",
                   "anchor_sizes": [32, 64, 128, 256], "representation_size": 256})
#: The same, tiny (``--smoke``): seconds on a CPU.
SMOKE: dict[str, Any] = dict(
    backbone="small", batch_size=2, optimizer="adamw", lr=0.001, min_size=96, max_size=128, seed=0,
    warmup_iters=2, model={"small_width": 8, "anchor_sizes": [16, 32, 64], "representation_size": 32,
                           "rpn_pre_nms_train": 300, "rpn_post_nms_train": 100, "rpn_pre_nms_test": 300,
                           "rpn_post_nms_test": 50})
#: Steps not timed at the start of each run (CUDA context, cuDNN autotuning, allocator warm-up).
WARMUP_STEPS = 5


def say(text: str = "") -> None:
    print(text, flush=True)


def make_dataset(folder: Path, images: int, smoke: bool) -> Path:
    from models.data.synthetic import SynthParams, write_synthetic

    params = SynthParams(min_image_size=96, max_image_size=128, min_objects=1, max_objects=2, min_object_size=24,
                         max_object_size=56, photo_fraction=0.0, image_format="png") if smoke else SynthParams()
    write_synthetic(folder, images, seed=0, params=params)
    return folder


class StepTimer:
    """Training callback: wall time of every optimiser step (the GPU synchronised first, so the time is real)."""

    def __init__(self, device: str) -> None:
        self.sync = device.startswith("cuda")
        self.times: list[float] = []
        self.last_losses: dict[str, float] = {}

    def __call__(self, event: Any) -> None:
        if event.kind == "step":
            if self.sync:
                torch.cuda.synchronize()
            self.times.append(time.perf_counter())
            self.last_losses = dict(event.losses)

    def steps_per_second(self, warmup: int = WARMUP_STEPS) -> float:
        t = self.times[warmup:] if len(self.times) > warmup + 2 else self.times
        if len(t) < 2:
            return math.nan
        return (len(t) - 1) / (t[-1] - t[0])


def train_once(data: Path, out: Path, device: str, amp: bool, recipe: dict[str, Any], generation: str = "faster-rcnn",
               epochs: int = 1, max_steps: int | None = None, threads: int | None = None) -> dict[str, Any]:
    from models.detection.training import TrainConfig, train

    cfg = dict(recipe)
    cfg["model"] = dict(recipe["model"])
    if generation != "faster-rcnn":  # RPN settings mean nothing to the generations with external proposals
        cfg["model"] = {k: v for k, v in cfg["model"].items() if not k.startswith(("rpn_", "anchor_"))}
    timer = StepTimer(device)
    t0 = time.perf_counter()
    result = train(TrainConfig(data=str(data), out=str(out), generation=generation, device=device, amp=amp,
                               epochs=epochs, max_steps=max_steps, threads=threads, **cfg), callbacks=timer)
    return {"generation": generation, "device": device, "amp": amp, "status": result.status,
            "message": result.message, "steps": len(timer.times), "steps_per_second": timer.steps_per_second(),
            "seconds": time.perf_counter() - t0, "last_losses": timer.last_losses,
            "finite": all(math.isfinite(v) for v in timer.last_losses.values()) and bool(timer.last_losses),
            "checkpoint": result.checkpoint}


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from models.boxes_numpy import box_iou_numpy

    return box_iou_numpy(a.astype(np.float32), b.astype(np.float32))


def compare_devices(checkpoint: str, data: Path, device: str, box_tol: float, score_tol: float,
                    min_score: float = 0.05) -> dict[str, Any]:
    """Run the checkpoint over the test split on ``device`` and on the CPU; compare detections and mAP."""
    from models.data.datasets import open_dataset
    from models.data.io import read_image
    from models.detection.checkpoints import load_detector
    from models.detection.evaluation import detect_image, evaluate_detector
    from models.detection.runs import evaluation_indices

    source = open_dataset(str(data))
    indices = evaluation_indices(source, "test")
    models = {"gpu": load_detector(checkpoint, device), "cpu": load_detector(checkpoint, "cpu")}
    maps = {k: evaluate_detector(m, source, indices)[0] for k, m in models.items()}
    matched = total = 0
    worst_box = worst_score = 0.0
    for i in indices:
        img = read_image(source.entries[i].path)
        g = detect_image(models["gpu"], img.pixels, min_score, img.scale)
        c = detect_image(models["cpu"], img.pixels, min_score, img.scale)
        total += max(len(g.scores), len(c.scores))
        if len(g.scores) == 0 or len(c.scores) == 0:
            continue
        iou = _iou(g.boxes, c.boxes)
        used: set[int] = set()
        for a in np.argsort(-g.scores):
            order = [b for b in np.argsort(-iou[a]) if b not in used and c.labels[b] == g.labels[a]]
            if not order:
                continue
            b = order[0]
            box_diff = float(np.abs(g.boxes[a] - c.boxes[b]).max())
            score_diff = abs(float(g.scores[a]) - float(c.scores[b]))
            if box_diff <= box_tol and score_diff <= score_tol:
                used.add(b)
                matched += 1
                worst_box, worst_score = max(worst_box, box_diff), max(worst_score, score_diff)
    return {"images": len(indices), "detections": total, "matched": matched,
            "matched_fraction": matched / total if total else 1.0, "max_box_diff_px": worst_box,
            "max_score_diff": worst_score, "mAP_gpu": maps["gpu"].mAP, "mAP_cpu": maps["cpu"].mAP,
            "AP_gpu": maps["gpu"].AP, "AP_cpu": maps["cpu"].AP}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=120, help="synthetic images (3/4 train, 1/4 test; default 120)")
    p.add_argument("--epochs", type=int, default=3, help="GPU training epochs of each precision (default 3)")
    p.add_argument("--cpu-steps", type=int, default=30, help="CPU steps timed for the comparison (default 30)")
    p.add_argument("--generation-steps", type=int, default=20,
                   help="steps of R-CNN and Fast R-CNN with mixed precision (default 20)")
    p.add_argument("--box-tol", type=float, default=0.5, help="max box difference GPU vs CPU, px (default 0.5)")
    p.add_argument("--score-tol", type=float, default=1e-3, help="max score difference (default 0.001)")
    p.add_argument("--map-tol", type=float, default=0.002, help="max mAP difference (default 0.002)")
    p.add_argument("--min-matched", type=float, default=0.98,
                   help="share of detections that must match between GPU and CPU (default 0.98)")
    p.add_argument("--out", type=Path, default=None, help="working folder (default: a temporary one)")
    p.add_argument("--json", type=Path, default=None, help="also write the report here")
    p.add_argument("--smoke", action="store_true", help="tiny model and set, any device: tests this script")
    args = p.parse_args(argv)

    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        say(f"gpu_check: no CUDA device visible to torch {torch.__version__} (built for CUDA "
            f"{torch.version.cuda or 'none'}); nothing checked. Run it on a machine with an NVIDIA GPU.")
        return 0
    device = "cuda" if cuda else "cpu"
    recipe = SMOKE if args.smoke else RECIPE
    images = min(args.images, 12) if args.smoke else args.images
    report: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": device,
                              "gpu": torch.cuda.get_device_name(0) if cuda else None, "smoke": args.smoke,
                              "cpu_threads": torch.get_num_threads()}
    say(f"gpu_check: torch {torch.__version__}, device {device}"
        + (f" ({report['gpu']})" if cuda else " (smoke run: the CPU stands in for the GPU)"))
    work = args.out or Path(tempfile.mkdtemp(prefix="gpu_check_"))
    work.mkdir(parents=True, exist_ok=True)
    data = make_dataset(work / "synth", images, args.smoke)
    say(f"  data: {images} synthetic images in {data}")
    failures: list[str] = []

    # 1. speed
    runs = []
    # amp is CUDA's float16 autocast: on the CPU (a smoke run) it is off, and the label must not claim it
    mixed = "mixed precision" if cuda else "amp requested (off: CPU, float32)"
    cpu_steps = min(args.cpu_steps, 4) if args.smoke else args.cpu_steps
    for label, dev, amp, kw in (("CPU float32", "cpu", False, {"max_steps": cpu_steps, "epochs": 100}),
                                (f"{device.upper()} float32", device, False, {"epochs": args.epochs}),
                                (f"{device.upper()} {mixed}", device, True, {"epochs": args.epochs})):
        if args.smoke:
            kw = {"max_steps": 4, "epochs": 2}
        r = train_once(data, work / f"{label.replace(' ', '_')}.pt", dev, amp, recipe, **kw)
        r["label"] = label
        runs.append(r)
        say(f"  {label:<38} {r['steps']:>5} steps  {r['steps_per_second']:7.2f} steps/s  status {r['status']}"
            f"  last total loss {r['last_losses'].get('total', math.nan):.4f}")
        if r["status"] != "completed" or not r["finite"]:
            failures.append(f"{label}: {r['status']} ({r['message']})")
    cpu_rate = runs[0]["steps_per_second"]
    for r in runs[1:]:
        r["speedup_vs_cpu"] = r["steps_per_second"] / cpu_rate if cpu_rate else math.nan
        say(f"  {r['label']}: {r['speedup_vs_cpu']:.1f}× the CPU's steps per second")
    if runs[2]["steps_per_second"] and runs[1]["steps_per_second"]:
        say(f"  {mixed} / float32 on {device}: "
            f"{runs[2]['steps_per_second'] / runs[1]['steps_per_second']:.2f}×")
    report["training"] = runs

    # 2. mixed precision for the other generations
    gens = []
    for gen in ("fast-rcnn", "rcnn"):
        steps = 3 if args.smoke else args.generation_steps
        r = train_once(data, work / f"{gen}_amp.pt", device, True, recipe, generation=gen, epochs=100,
                       max_steps=steps)
        gens.append(r)
        say(f"  {gen:<10} {mixed}: {r['steps']} steps, status {r['status']}, losses "
            + ", ".join(f"{k} {v:.4f}" for k, v in r["last_losses"].items()))
        if r["status"] != "completed" or not r["finite"]:
            failures.append(f"{gen} with mixed precision: {r['status']} ({r['message']}), losses {r['last_losses']}")
    report["generations_amp"] = gens

    # 3. a GPU-trained checkpoint on the CPU
    ckpt = runs[2]["checkpoint"]
    if ckpt:
        cmp = compare_devices(ckpt, data, device, args.box_tol, args.score_tol)
        report["portability"] = cmp
        say(f"  checkpoint trained on {device}, run on {device} and on the CPU over {cmp['images']} test images:")
        say(f"    detections matched {cmp['matched']}/{cmp['detections']} ({cmp['matched_fraction']:.1%}), "
            f"max box difference {cmp['max_box_diff_px']:.3g} px, max score difference {cmp['max_score_diff']:.3g}")
        say(f"    mAP@0.5 {device} {cmp['mAP_gpu']:.4f}, CPU {cmp['mAP_cpu']:.4f}")
        if cmp["matched_fraction"] < args.min_matched:
            failures.append(f"only {cmp['matched_fraction']:.1%} of detections agree between {device} and CPU")
        if not (abs(cmp["mAP_gpu"] - cmp["mAP_cpu"]) <= args.map_tol
                or (math.isnan(cmp["mAP_gpu"]) and math.isnan(cmp["mAP_cpu"]))):
            failures.append(f"mAP differs: {device} {cmp['mAP_gpu']:.4f} vs CPU {cmp['mAP_cpu']:.4f}")
    else:
        failures.append("no checkpoint from the mixed-precision run")
    report["failures"] = failures
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=str))
    say("gpu_check: " + ("PASS" if not failures else "FAIL\n  " + "\n  ".join(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
