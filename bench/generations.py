"""Benchmark: per-image test time of R-CNN, Fast R-CNN and Faster R-CNN on the same images, in one run.

What the three papers claim, in time: R-CNN runs the CNN once per proposal (~2,000 warped crops an image),
Fast R-CNN once per image and pools the proposals from the shared map, Faster R-CNN also computes its own
proposals inside the network, so it needs no Selective Search at all. To see that and nothing else:

- the SAME backbone (the small CNN, width 24, stride 16) and the same fc size (512) in every generation,
  the same input scale (shorter side 600, the papers'), random weights seeded alike (the network's time does
  not depend on what the weights learnt; the score threshold is set so that no random box reaches NMS);
- the SAME Selective Search boxes for R-CNN and Fast R-CNN, the same count (``--proposals``, 2,000 as both
  papers test with): computed once per image before any detector runs, timed on their own ("proposals"), and
  served to both from one proposal cache whose reads are timed and taken out of the detector columns, so those
  are the network's time only (R-CNN's CNN-code cache is off: every crop goes through the CNN, as for a new
  image); a hook counts the regions each network really received, so "the same number" is checked, not assumed;
- images run one at a time, the models interleaved image by image so that load from other processes on a
  shared CPU hits all of them alike; each time is read on two clocks, the process's CPU seconds (one thread: its
  work, what a quiet machine's wall clock shows) and wall seconds (on a shared CPU also the waits for a core),
  beside the FLOPs of its convolutions and fully connected layers (torch's counter).

R-CNN is timed at several warp sizes: 96 px is what the shipped small R-CNN uses on the CPU (its row is marked
"shipped", read from resources/models/rcnn_shapes.pt), 64 px the smaller warp it used before, 224 px with 16 px
of context the paper's (227). Its cost is proposals × warp² (every crop is a full CNN pass).

    python bench/generations.py [--images 5] [--proposals 2000] [--warps 64,96,224] [--threads 1]
                                [--data DIR] [--json OUT] [--profile]

Prints, per model, CPU and wall seconds per image (network only; Selective Search apart), the backbone's share,
the regions it received, GFLOP, each ratio over Fast R-CNN's, then one line per claim of the papers ("R-CNN more
than an order of magnitude slower at the same proposals", "Fast R-CNN well below R-CNN", "Faster R-CNN without
external proposals") saying whether this run shows it; ``--profile`` adds seconds by op family (warping/RoI
pooling, conv, norm, fc, NMS, the rest) of one more pass per model.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.detection.detectors import build_detector  # noqa: E402
from models.proposals.cache import ProposalCache, ProposalParams, compute_proposals  # noqa: E402

CLASSES = ["circle", "square", "triangle"]
#: Random heads give every class ~1/(K+1) everywhere: with the usual 0.05 threshold thousands of boxes would
#: reach per-class NMS, a cost no trained model pays. 0.5 lets none through, in every generation alike.
BACKBONE = dict(backbone="small", small_width=24, small_stride=16, min_size=600, max_size=1000,
                box_score_threshold=0.5)


def _images(n: int, data: Path | None) -> list[np.ndarray]:
    """``n`` test images of a VOC folder (its JPEGImages), else freshly drawn synthetic shapes."""
    from models.data.io import read_image

    if data is not None:
        paths = sorted((data / "JPEGImages").glob("*.jpg")) or sorted(data.glob("*.jpg"))
        return [read_image(p).pixels for p in paths[-n:]]  # the last ones: the test end of a synth set
    from models.data.synthetic import draw_image

    return [draw_image(1, i).pixels for i in range(n)]


def build_models(proposals: int, warps: list[int], cache: ProposalCache) -> dict[str, torch.nn.Module]:
    models: dict[str, torch.nn.Module] = {}
    for warp in warps:
        torch.manual_seed(0)
        context = 16 if warp >= 200 else max(1, round(16 * warp / 227))  # the paper's 16 of 227
        m = build_detector("rcnn", CLASSES, **BACKBONE, proposals_test=proposals, warp_size=warp, context=context,
                           representation_size=512)
        m.use_feature_cache = False
        shipped = ", shipped" if warp == shipped_rcnn_warp() else ""
        models[f"R-CNN (warp {warp} px{shipped})"] = m
    torch.manual_seed(0)
    models["Fast R-CNN"] = build_detector("fast-rcnn", CLASSES, **BACKBONE, proposals_test=proposals,
                                          representation_size=512, pooling="align")
    torch.manual_seed(0)
    models["Faster R-CNN"] = build_detector("faster-rcnn", CLASSES, **BACKBONE, representation_size=512,
                                            pooling="align", anchor_sizes=(32, 64, 128, 256))
    for m in models.values():
        m.eval()
        if hasattr(m, "proposal_cache"):
            m.proposal_cache = _TimedReads(cache)
    return models


def shipped_rcnn_warp() -> int | None:
    """The warp size of the R-CNN shipped in resources/models (None when it is not there)."""
    from models.detection.checkpoints import load_checkpoint, model_parts
    from resources.models import SHIPPED_RCNN

    if not SHIPPED_RCNN.is_file():
        return None
    warp = model_parts(load_checkpoint(SHIPPED_RCNN)).warp
    return warp.size if warp is not None else None


class _TimedReads:
    """One detector's door to the shared proposal cache: adds up the wall and CPU seconds its reads take, so
    they leave the network's columns whichever clock is read."""

    def __init__(self, cache: ProposalCache) -> None:
        self.cache = cache
        self.wall = 0.0
        self.cpu = 0.0

    def get(self, image: np.ndarray, params: ProposalParams) -> np.ndarray:
        w0, c0 = time.perf_counter(), time.process_time()
        try:
            return self.cache.get(image, params)
        finally:
            self.wall += time.perf_counter() - w0
            self.cpu += time.process_time() - c0


class _BackboneClock:
    """Adds up the wall time spent inside a module's forward (forward pre/post hooks), to say what dominates."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.seconds = 0.0
        self._t0 = 0.0
        module.register_forward_pre_hook(self._pre)
        module.register_forward_hook(self._post)

    def _pre(self, *_: object) -> None:
        self._t0 = time.perf_counter()

    def _post(self, *_: object) -> None:
        self.seconds += time.perf_counter() - self._t0


class _RoiCounter:
    """Counts the regions a detector's per-region network really received (the first dimension of its input):
    R-CNN's warped crops into its CNN, Fast / Faster R-CNN's pooled RoIs into fc6. It checks that R-CNN and Fast
    R-CNN were fed the same number of proposals rather than trusting the settings."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.count = 0
        module.register_forward_pre_hook(self._pre)

    def _pre(self, _module: torch.nn.Module, args: tuple) -> None:
        self.count += int(args[0].shape[0])


def region_network(model: torch.nn.Module) -> torch.nn.Module:
    """The module each region goes through: R-CNN's whole CNN (one pass per crop), else the RoI head's fc6/fc7."""
    return model.cnn if hasattr(model, "cnn") else model.roi_heads.box_head


def _topped_up(boxes: np.ndarray, n: int, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """``boxes`` followed by random boxes (at least 8 px a side) up to ``n``."""
    h, w = size
    missing = max(0, n - len(boxes))
    x1, y1 = rng.uniform(0, w - 8, missing), rng.uniform(0, h - 8, missing)
    x2, y2 = x1 + rng.uniform(8, w, missing), y1 + rng.uniform(8, h, missing)
    extra = np.stack([x1, y1, np.minimum(x2, w), np.minimum(y2, h)], 1).astype(np.float32)
    return np.concatenate([boxes[:n], extra]).astype(np.float32)


def store_proposals(images: list[np.ndarray], params: ProposalParams, proposals: int,
                    cache: ProposalCache) -> tuple[float, list[int]]:
    """Selective Search on every image (timed: the seconds returned), topped up with random boxes to
    ``proposals`` and written to ``cache`` BEFORE any detector runs, so every pass, the untimed first one
    included, reads the same ``proposals`` boxes (an earlier version let the warm-up pass cache the first
    image's bare Selective Search boxes, ~430, so that image was timed with a fifth of the proposals).
    Returns the seconds and Selective Search's own box count per image."""
    rng = np.random.default_rng(0)
    seconds, found = 0.0, []
    for image in images:
        t0 = time.perf_counter()
        boxes = compute_proposals(image, params.search_params())
        seconds += time.perf_counter() - t0
        found.append(min(len(boxes), proposals))
        # Selective Search finds only a few hundred boxes in a simple image; both papers test with 2,000.
        # Each box costs the same wherever it lies (R-CNN: one CNN pass; Fast R-CNN: one RoI through the
        # head), so random boxes top the list up to the asked count.
        topped = _topped_up(boxes, proposals, image.shape[:2], rng)
        cache.compute = lambda _image, _params, b=topped: b
        cache.get(image, params)
    cache.compute = _refuse
    return seconds, found


def _refuse(_image: np.ndarray, _params: ProposalParams) -> np.ndarray:
    raise RuntimeError("bench: a detector asked for proposals of an image that store_proposals did not prepare")


def _flops(model: torch.nn.Module, image: np.ndarray) -> float:
    """Multiply-adds ×2 of the convolutions and fully connected layers in one ``predict`` (torch's counter:
    RoI pooling, R-CNN's warping and NMS are not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        model.predict([image])
    return float(counter.get_total_flops())


def run(images: list[np.ndarray], proposals: int, warps: list[int], profile: bool = False) -> dict:
    """Times every model on every image (see the module's docstring); ``profile``: also a per-op-family
    :func:`breakdown` of one more pass on the first image."""
    from models.proposals.selective_search import warm_up

    warm_up()
    with tempfile.TemporaryDirectory() as tmp:
        cache = ProposalCache(tmp)
        models = build_models(proposals, warps, cache)
        params = next(m.proposal_params for m in models.values() if hasattr(m, "proposal_params"))
        proposal_s, counts = store_proposals(images, params, proposals, cache)
        wall = {name: 0.0 for name in models}
        cpu = {name: 0.0 for name in models}
        clocks = {name: _BackboneClock(m.backbone) for name, m in models.items()}
        # One untimed pass each, on the first image with its full proposal list: lazy initialisation is not a
        # per-image cost; the same pass counts the network's FLOPs.
        flops = {name: _flops(m, images[0]) for name, m in models.items()}
        regions = {name: _RoiCounter(region_network(m)) for name, m in models.items()}
        for clock in clocks.values():
            clock.seconds = 0.0
        reads = {name: m.proposal_cache for name, m in models.items() if hasattr(m, "proposal_cache")}
        for r in reads.values():
            r.wall = r.cpu = 0.0
        for image in images:
            for name, m in models.items():
                w0, c0 = time.perf_counter(), time.process_time()
                m.predict([image])
                wall[name] += time.perf_counter() - w0
                cpu[name] += time.process_time() - c0
        for name, r in reads.items():  # the cache reads (hashing the image, loading the boxes) are not the network
            wall[name] -= r.wall
            cpu[name] -= r.cpu
        n = len(images)
        rows = [{"model": name, "seconds_per_image": round(wall[name] / n, 4),
                 "cpu_seconds_per_image": round(cpu[name] / n, 4),
                 "backbone_seconds_per_image": round(clocks[name].seconds / n, 4),
                 "regions_per_image": regions[name].count / n,
                 "gflop_first_image": round(flops[name] / 1e9, 2),
                 "external_proposals": name != "Faster R-CNN",
                 "times_fast_rcnn": round(wall[name] / wall["Fast R-CNN"], 2),
                 "cpu_times_fast_rcnn": round(cpu[name] / cpu["Fast R-CNN"], 2),
                 "flops_times_fast_rcnn": round(flops[name] / flops["Fast R-CNN"], 2)} for name in models]
        report = {"images": n, "selective_search_boxes_per_image": float(np.mean(counts)),
                  "proposals_per_image": proposals,
                  "selective_search_seconds_per_image": round(proposal_s / n, 4), "threads": torch.get_num_threads(),
                  "rows": rows}
        if profile:
            report["breakdown"] = breakdown(models, images[0])
        return report


def verdicts(report: dict) -> list[str]:
    """The papers' three claims about test time, each checked against this run, in plain words. "Order of
    magnitude" is read on both clocks: CPU seconds (the work of the one-thread process, what a quiet machine's
    wall clock would show) and wall seconds (which on a shared CPU also hold time spent waiting for a core)."""
    rows = {r["model"]: r for r in report["rows"]}
    fast = rows["Fast R-CNN"]
    lines = []
    for name, r in rows.items():
        if not name.startswith("R-CNN"):
            continue
        same = r["regions_per_image"] == fast["regions_per_image"]
        above = [r["cpu_times_fast_rcnn"] > 10, r["times_fast_rcnn"] > 10]
        verdict = ("proposal counts differ: no verdict" if not same else
                   "more than an order of magnitude: holds" if all(above) else
                   "NOT more than an order of magnitude (under 10× on both clocks)" if not any(above) else
                   "over 10× on one clock only")
        lines.append(f"{name} / Fast R-CNN: {r['cpu_times_fast_rcnn']:.1f}× CPU time, {r['times_fast_rcnn']:.1f}× "
                     f"wall time, {r['flops_times_fast_rcnn']:.1f}× FLOPs, {r['regions_per_image']:.0f} vs "
                     f"{fast['regions_per_image']:.0f} regions per image: {verdict}")
    rcnn = [r["cpu_seconds_per_image"] for n, r in rows.items() if n.startswith("R-CNN")]
    if rcnn:
        least = min(rcnn)
        lines.append(f"Fast R-CNN without proposals {fast['cpu_seconds_per_image']:.3f} CPU s vs R-CNN's least "
                     f"{least:.3f}: " + ("well below (under half): holds" if fast["cpu_seconds_per_image"] < least / 2
                                         else "does not hold"))
    if "Faster R-CNN" in rows:
        lines.append(f"Faster R-CNN: no external proposals (its RPN is inside its "
                     f"{rows['Faster R-CNN']['cpu_seconds_per_image']:.3f} CPU s), vs "
                     f"{report['selective_search_seconds_per_image']:.3f} s of Selective Search the others add")
    return lines


#: Op families of :func:`breakdown` (torch.profiler names; each family's ops never nest inside another's).
FAMILIES = {
    "warp/pool": ("torchvision::roi_align", "torchvision::roi_pool"),
    "conv": ("aten::convolution",),
    "norm+relu": ("aten::group_norm", "aten::batch_norm", "aten::relu", "aten::relu_"),
    "fc": ("aten::linear", "aten::einsum"),
    "nms": ("torchvision::nms",),
}


def breakdown(models: dict[str, torch.nn.Module], image: np.ndarray) -> dict[str, dict[str, float]]:
    """Where one ``predict`` of each model spends its time, in seconds per op family (torch.profiler, one
    extra untimed pass on ``image``); "other" is the rest of the pass (Python, box decoding, copies)."""
    from torch.profiler import ProfilerActivity, profile

    out = {}
    for name, m in models.items():
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            m.predict([image])
            total = time.perf_counter() - t0
        spent = {e.key: e.cpu_time_total / 1e6 for e in prof.key_averages()}
        row = {family: sum(spent.get(op, 0.0) for op in ops) for family, ops in FAMILIES.items()}
        row["other"] = max(0.0, total - sum(row.values()))
        row["total"] = total
        out[name] = {k: round(v, 4) for k, v in row.items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=5)
    ap.add_argument("--proposals", type=int, default=2000)
    ap.add_argument("--warps", default="64,96,224", help="R-CNN warp sizes to time (comma-separated)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", type=Path, default=None, help="a VOC folder (default: drawn synthetic shapes)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--profile", action="store_true",
                    help="also one profiled pass per model: seconds in warping/RoI pooling, conv, fc, NMS, the rest")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    report = run(_images(args.images, args.data), args.proposals, [int(w) for w in args.warps.split(",") if w],
                 profile=args.profile)
    print(f"{report['images']} images, {report['proposals_per_image']} proposals each to R-CNN and Fast R-CNN "
          f"(Selective Search's {report['selective_search_boxes_per_image']:.0f} topped up with random boxes), "
          f"{report['threads']} thread(s)")
    print(f"Selective Search (fast mode), outside every network: {report['selective_search_seconds_per_image']:.3f}"
          " s/image (R-CNN and Fast R-CNN add it; Faster R-CNN does not)")
    width = max(len(r["model"]) for r in report["rows"])
    print("network only (proposals apart), per image; × Fast: over Fast R-CNN's, by CPU time, wall time, FLOPs")
    print(f"{'model'.ljust(width)}  CPU s  wall s  backbone wall s  regions  GFLOP  × Fast CPU  × Fast wall"
          "  × Fast FLOPs")
    for r in report["rows"]:
        print(f"{r['model'].ljust(width)}  {r['cpu_seconds_per_image']:5.2f}  {r['seconds_per_image']:6.2f}"
              f"  {r['backbone_seconds_per_image']:15.2f}  {r['regions_per_image']:7.0f}  {r['gflop_first_image']:5.0f}"
              f"  {r['cpu_times_fast_rcnn']:10.1f}  {r['times_fast_rcnn']:11.1f}  {r['flops_times_fast_rcnn']:12.1f}")
    for line in verdicts(report):
        print(line)
    if "breakdown" in report:
        families = [*FAMILIES, "other", "total"]
        print(f"one pass on the first image, seconds by op family (torch.profiler)\n{'model'.ljust(width)}  "
              + "  ".join(f.rjust(9) for f in families))
        for name, row in report["breakdown"].items():
            print(f"{name.ljust(width)}  " + "  ".join(f"{row[f]:9.3f}" for f in families))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
