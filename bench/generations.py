"""Benchmark: per-image test time of R-CNN, Fast R-CNN and Faster R-CNN on the same images, in one run.

What the three papers claim, in time: R-CNN runs the CNN once per proposal (~2,000 warped crops an image),
Fast R-CNN once per image and pools the proposals from the shared map, Faster R-CNN also computes its own
proposals inside the network, so it needs no Selective Search at all. To see that and nothing else:

- the SAME backbone (the small CNN, width 24, stride 16) and the same fc size (512) in every generation,
  the same input scale (shorter side 600, the papers'), random weights seeded alike (the network's time does
  not depend on what the weights learnt; the score threshold is set so that no random box reaches NMS);
- the SAME Selective Search boxes for R-CNN and Fast R-CNN, the same count (``--proposals``, 2,000 as both
  papers test with): computed once per image, timed on their own ("proposals" column), and served to both
  from one proposal cache, so the detector columns are the network's time only (R-CNN's CNN-code cache is
  off: every crop goes through the CNN, as for a new image);
- images run one at a time, the models interleaved image by image so that load from other processes on a
  shared CPU hits all of them alike.

R-CNN is timed at several warp sizes: 64 px is what the shipped small R-CNN uses on the CPU, 224 px with
16 px of context is the paper's (227). Its cost is proposals × warp² (every crop is a full CNN pass).

    python bench/generations.py [--images 5] [--proposals 2000] [--warps 64,96,224] [--threads 1]
                                [--data DIR] [--json OUT]

Prints seconds per image for each model (network only; Selective Search apart), the share spent in the
backbone (the rest: R-CNN's warping, fc6/fc7 and SVMs; Fast R-CNN's RoI pooling and its fc6/fc7 per RoI,
which at 2,000 RoIs is most of its time — why the paper compressed fc6/fc7 with a truncated SVD), and each
model's time over Fast R-CNN's.
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
from models.proposals.cache import ProposalCache, compute_proposals  # noqa: E402

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
        models[f"R-CNN (warp {warp} px)"] = m
    torch.manual_seed(0)
    models["Fast R-CNN"] = build_detector("fast-rcnn", CLASSES, **BACKBONE, proposals_test=proposals,
                                          representation_size=512, pooling="align")
    torch.manual_seed(0)
    models["Faster R-CNN"] = build_detector("faster-rcnn", CLASSES, **BACKBONE, representation_size=512,
                                            pooling="align", anchor_sizes=(32, 64, 128, 256))
    for m in models.values():
        m.eval()
        if hasattr(m, "proposal_cache"):
            m.proposal_cache = cache
    return models


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


def _topped_up(boxes: np.ndarray, n: int, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """``boxes`` followed by random boxes (at least 8 px a side) up to ``n``."""
    h, w = size
    missing = max(0, n - len(boxes))
    x1, y1 = rng.uniform(0, w - 8, missing), rng.uniform(0, h - 8, missing)
    x2, y2 = x1 + rng.uniform(8, w, missing), y1 + rng.uniform(8, h, missing)
    extra = np.stack([x1, y1, np.minimum(x2, w), np.minimum(y2, h)], 1).astype(np.float32)
    return np.concatenate([boxes[:n], extra]).astype(np.float32)


def run(images: list[np.ndarray], proposals: int, warps: list[int]) -> dict:
    from models.proposals.selective_search import warm_up

    warm_up()
    with tempfile.TemporaryDirectory() as tmp:
        cache = ProposalCache(tmp)
        models = build_models(proposals, warps, cache)
        params = next(m.proposal_params for m in models.values() if hasattr(m, "proposal_params"))
        seconds = {name: 0.0 for name in models}
        clocks = {name: _BackboneClock(m.backbone) for name, m in models.items()}
        proposal_s = 0.0
        counts = []
        rng = np.random.default_rng(0)
        for m in models.values():  # one untimed pass: lazy initialisation is not a per-image cost
            m.predict([images[0]])
        for clock in clocks.values():
            clock.seconds = 0.0
        for image in images:
            t0 = time.perf_counter()
            boxes = compute_proposals(image, params.search_params())
            proposal_s += time.perf_counter() - t0
            counts.append(min(len(boxes), proposals))
            # Selective Search finds only a few hundred boxes in a simple image; both papers test with 2,000.
            # Each box costs the same wherever it lies (R-CNN: one CNN pass; Fast R-CNN: one RoI through the
            # head), so random boxes top the list up to the asked count.
            boxes = _topped_up(boxes, proposals, image.shape[:2], rng)
            # Stored where both detectors read them (one key for both generations).
            cache.compute = lambda _image, _params, b=boxes: b
            cache.get(image, params)
            for name, m in models.items():
                before = float(getattr(m, "proposal_seconds", 0.0))
                t0 = time.perf_counter()
                m.predict([image])
                spent = time.perf_counter() - t0
                seconds[name] += spent - (float(getattr(m, "proposal_seconds", 0.0)) - before)  # cache reads out
        n = len(images)
        per = {name: s / n for name, s in seconds.items()}
        fast = per["Fast R-CNN"]
        rows = [{"model": name, "seconds_per_image": round(s, 4),
                 "backbone_seconds_per_image": round(clocks[name].seconds / n, 4),
                 "external_proposals": name != "Faster R-CNN",
                 "times_fast_rcnn": round(s / fast, 2)} for name, s in per.items()]
        return {"images": n, "selective_search_boxes_per_image": float(np.mean(counts)),
                "proposals_per_image": proposals,
                "selective_search_seconds_per_image": round(proposal_s / n, 4), "threads": torch.get_num_threads(),
                "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=5)
    ap.add_argument("--proposals", type=int, default=2000)
    ap.add_argument("--warps", default="64,96,224", help="R-CNN warp sizes to time (comma-separated)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", type=Path, default=None, help="a VOC folder (default: drawn synthetic shapes)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    report = run(_images(args.images, args.data), args.proposals, [int(w) for w in args.warps.split(",") if w])
    print(f"{report['images']} images, {report['proposals_per_image']} proposals each to R-CNN and Fast R-CNN "
          f"(Selective Search's {report['selective_search_boxes_per_image']:.0f} topped up with random boxes), "
          f"{report['threads']} thread(s)")
    print(f"Selective Search (fast mode), outside every network: {report['selective_search_seconds_per_image']:.3f}"
          " s/image (R-CNN and Fast R-CNN add it; Faster R-CNN does not)")
    width = max(len(r["model"]) for r in report["rows"])
    print(f"{'model'.ljust(width)}  network s/image  of which backbone  × Fast R-CNN")
    for r in report["rows"]:
        print(f"{r['model'].ljust(width)}  {r['seconds_per_image']:15.3f}  {r['backbone_seconds_per_image']:17.3f}"
              f"  {r['times_fast_rcnn']:11.1f}")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
