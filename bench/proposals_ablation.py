"""Ablations of Selective Search's fast mode: k sets × near-duplicate thresholds × seeds, beside OpenCV-fast.

Every grouping that any variant needs (HSV and Lab × each k × {CTSF, TSF}) is computed once per image, with
OpenCV-contrib's fast-mode boxes beside it; each variant is then only ranked and deduplicated from those
groupings (``combine_hierarchies``), so variants differ exactly in what they change and a sweep over many of
them costs one grouping pass. Run with OpenCV-contrib on the path (see bench/proposals.py), e.g.

    python bench/proposals_ablation.py --data coco_tiny --data samples --data skimage_photos \\
        --variants "75,150,300/0.9;100,150,300/0.95" --seeds 5 --cache /tmp/ss_ablation

A variant is ``k,k,.../near-duplicate IoU`` (min_size = k as in the library), or ``hsv ks|lab ks/IoU`` (e.g.
``100,200,300|100,150,200/0.95``) to give the two colour spaces different k ladders; ``+k,...`` before the ``/``
adds Lab groupings by fill alone at those k (fast mode's fill rung; the library's default plan is
``100,150,300|100,150,200+200/0.93``). ``--hue`` changes only how
the HSV *segmentation* sees hue (the grouping's colour and texture histograms stay the library's): ``full``
(the library: hue 0..255 like S and V), ``h180`` (OpenCV's 8-bit hue 0..180), ``cart`` (the HSV cylinder in
Cartesian form, 128 + S/2·(cos H, sin H) and V: a hue difference counts in proportion to saturation, no wrap
at red), ``cone`` (the same with chroma S·V instead of S), ``arc`` (``cart`` scaled so that at full saturation
a small hue step costs what it does in ``full``). Printed per set: boxes per
image, recall@0.5/0.7, MABO and AR of all objects, of the large ones (√area ≥ ``--large`` px at max side
500: the VOC-like regime) and of all objects with each image cut to OpenCV's box count ("@cvN"), each the
mean over ``--seeds`` ranking seeds. A trailing code says which targets hold: N no more boxes than OpenCV,
A all-object R@0.7, MABO and AR at least OpenCV's, L the same for large objects, E the same at OpenCV's N
(upper case: holds).
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.proposals import _resolve_data, load_images, opencv_boxes  # noqa: E402

HUES = ("full", "h180", "cart", "cone", "arc")


def hsv_segmentation_channels(rgb: np.ndarray, hue: str) -> np.ndarray:
    """The H×W×3 uint8 image the HSV segmentation runs on, for each ``--hue`` variant (see the module doc)."""
    import cv2

    full = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL)
    if hue == "full":
        return full
    if hue == "h180":
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    theta = full[:, :, 0].astype(np.float32) * np.float32(2.0 * np.pi / 256.0)
    sat, val = full[:, :, 1].astype(np.float32), full[:, :, 2].astype(np.float32)
    radius = {"cart": sat / 2.0, "cone": sat * val / (2.0 * 255.0), "arc": sat * (128.0 / np.pi) / 255.0}[hue]
    out = np.stack([128.0 + radius * np.cos(theta), 128.0 + radius * np.sin(theta), val], axis=2)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _groupings(rgb: np.ndarray, todo: list[tuple[str, float, str]], hue: str = "full"
               ) -> list[tuple[str, float, str, np.ndarray]]:
    """The region boxes of each (colour space, k, similarity set) in ``todo``, one segmentation per space and k."""
    from models.proposals.segmentation import felzenszwalb
    from models.proposals.selective_search import Strategy, _space_data, group

    out = []
    for cs in ("hsv", "lab"):
        if not any(t[0] == cs for t in todo):
            continue
        data = _space_data(rgb, cs)
        seg_channels = hsv_segmentation_channels(rgb, hue) if cs == "hsv" else data.channels
        for k in sorted({t[1] for t in todo if t[0] == cs}):
            seg = felzenszwalb(rgb, k=k, sigma=0.8, min_size=max(1, int(round(k))), color_space=cs,
                               channels=seg_channels)
            for sim in [t[2] for t in todo if t[0] == cs and t[1] == k]:
                out.append((cs, k, sim, group(seg, data.channels, data.texture, Strategy(cs, k, sim)).region_boxes))
    return out


def collect(images, ks: list[float], cache: Path | None, tag: str, have_cv: bool, hue: str = "full",
            fill_ks: Sequence[float] = ()) -> list[dict]:
    """Per image: its size, GT, OpenCV-fast boxes and the region boxes of every grouping over ``ks`` (HSV and
    Lab × CTSF and TSF) and of the Lab fill-only groupings at ``fill_ks``; the cache keeps what it has."""
    need = [(cs, k, sim) for cs in ("hsv", "lab") for k in ks for sim in ("CTSF", "TSF")]
    need += [("lab", k, "F") for k in fill_ks]
    recs = []
    for name, rgb, gt in images:
        f = cache / tag / (Path(name).stem + ".pkl") if cache else None
        rec = pickle.loads(f.read_bytes()) if f and f.exists() else {"groups": []}
        have = {(g[0], g[1], g[2]) for g in rec["groups"]}
        todo = [t for t in need if t not in have]
        if todo:
            rec["groups"] += _groupings(rgb, todo, hue)
        if "cv" not in rec and have_cv:
            import cv2

            rec["cv"] = opencv_boxes(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), "fast")
        rec.update(name=name, size=(rgb.shape[1], rgb.shape[0]), gt=gt)
        if f and (todo or not f.exists()):
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(pickle.dumps(rec))
        recs.append(rec)
    return recs


def variant_boxes(rec: dict, ks: tuple[float, ...], nd: float, seed: int,
                  lab_ks: tuple[float, ...] | None = None, fill_ks: tuple[float, ...] = ()) -> np.ndarray:
    """The ranked, deduplicated boxes of one variant: HSV at ``ks``, Lab at ``lab_ks`` (default the same), each
    CTSF then TSF, then Lab by fill alone at ``fill_ks``: the library's order, so a seed ranks as it does."""
    from models.proposals.selective_search import combine_hierarchies

    lab_ks = ks if lab_ks is None else lab_ks
    by_key = {(g[0], g[1], g[2]): g[3] for g in rec["groups"]}
    keys = [("hsv", k, sim) for k in ks for sim in ("CTSF", "TSF")]
    keys += [("lab", k, sim) for k in lab_ks for sim in ("CTSF", "TSF")] + [("lab", k, "F") for k in fill_ks]
    hs = [SimpleNamespace(region_boxes=by_key[key]) for key in keys]
    return combine_hierarchies(hs, rec["size"], 1.0, seed=seed, near_duplicate_iou=nd)[0]


def _large(gt: np.ndarray, side: float) -> np.ndarray:
    return gt[np.sqrt(np.clip(gt[:, 2] - gt[:, 0], 0, None) * np.clip(gt[:, 3] - gt[:, 1], 0, None)) >= side]


def _vals(summary) -> np.ndarray:
    return np.array([summary.boxes_per_image, summary.recall[0.5], summary.recall[0.7], summary.mabo,
                     summary.average_recall])


def main(argv: list[str] | None = None) -> int:
    from models.proposals.metrics import CURVE_BUDGETS, curve_points, score_image, summarize
    from models.proposals.selective_search import warm_up

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", action="append", default=None, help="as bench/proposals.py (default coco_tiny)")
    ap.add_argument("--variants", default="100,150,300/0.95", help="';'-separated 'k,k,.../IoU' variants")
    ap.add_argument("--seeds", type=int, default=1, help="average over ranking seeds 0..N-1")
    ap.add_argument("--max-side", type=int, default=500)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--large", type=float, default=75.0, help="√area (px at max side) of a large object")
    ap.add_argument("--hue", choices=HUES, default="full", help="how the HSV segmentation sees hue (module doc)")
    ap.add_argument("--cache", type=Path, default=None, help="keep per-image groupings here between runs")
    ap.add_argument("--curves-json", type=Path, default=None, help="seed-0 curve points of every variant")
    args = ap.parse_args(argv)
    import cv2

    have_cv = hasattr(cv2, "ximgproc")
    if not have_cv:
        print("cv2.ximgproc missing: our side only (see bench/proposals.py for OpenCV-contrib)")
    variants = []
    for v in args.variants.split(";"):
        ks_text, _, nd = v.partition("/")
        ks_text, _, fill_text = ks_text.partition("+")
        hsv_text, _, lab_text = ks_text.partition("|")
        hsv_ks = tuple(float(k) for k in hsv_text.split(","))
        variants.append((v, hsv_ks, tuple(float(k) for k in lab_text.split(",")) if lab_text else hsv_ks,
                         float(nd or 0.95), tuple(float(k) for k in fill_text.split(",")) if fill_text else ()))
    all_ks = sorted({k for _, hks, lks, _, _ in variants for k in hks + lks})
    all_fill = sorted({k for *_, fks in variants for k in fks})
    warm_up()
    curves: dict[str, dict] = {}
    for name in args.data or ["coco_tiny"]:
        images = load_images(_resolve_data(name), args.max_side, args.limit)
        tag = f"{name}_{args.max_side}" + ("" if args.hue == "full" else f"_{args.hue}")
        recs = collect(images, all_ks, args.cache, tag, have_cv, args.hue, all_fill)
        n_large = sum(len(_large(r["gt"], args.large)) for r in recs)
        print(f"\n== {name}: {len(recs)} images, {sum(len(r['gt']) for r in recs)} objects, {n_large} large "
              f"(√area ≥ {args.large:g} px); mean over {args.seeds} seed(s)")
        print(f"{'variant':<24} {'boxes':>6}  all: R@.5  R@.7  MABO   AR  | large: R@.5  R@.7  MABO   AR  "
              f"| @cvN: R@.5  R@.7  MABO   AR")

        def line(label: str, a: np.ndarray, lg: np.ndarray, e: np.ndarray | None, code: str = "") -> None:
            fmt = " ".join(f"{x:.3f}" for x in a[1:])
            lfmt = " ".join(f"{x:.3f}" for x in lg[1:])
            efmt = " ".join(f"{x:.3f}" for x in e[1:]) if e is not None else " " * 23
            print(f"{label:<24} {a[0]:>6.0f}       {fmt} |        {lfmt} |       {efmt} {code}")

        cv_a = cv_l = None
        if have_cv:
            cv_sc = [score_image(r["cv"], r["gt"], budgets=CURVE_BUDGETS) for r in recs]
            cv_a = _vals(summarize(cv_sc, budgets=CURVE_BUDGETS))
            cv_l = _vals(summarize([score_image(r["cv"], _large(r["gt"], args.large)) for r in recs]))
            curves[f"{name} · opencv fast"] = curve_points(summarize(cv_sc, budgets=CURVE_BUDGETS))
            line("opencv fast", cv_a, cv_l, None)
        for label, ks, lab_ks, nd, fill_ks in variants:
            a_s, l_s, e_s = [], [], []
            for seed in range(args.seeds):
                boxes = [variant_boxes(r, ks, nd, seed, lab_ks, fill_ks) for r in recs]
                sc = [score_image(b, r["gt"], budgets=CURVE_BUDGETS) for b, r in zip(boxes, recs, strict=True)]
                a_s.append(_vals(summarize(sc, budgets=CURVE_BUDGETS)))
                l_s.append(_vals(summarize([score_image(b, _large(r["gt"], args.large))
                                            for b, r in zip(boxes, recs, strict=True)])))
                if have_cv:
                    e_s.append(_vals(summarize([score_image(b, r["gt"], top=len(r["cv"]))
                                                for b, r in zip(boxes, recs, strict=True)])))
                if seed == 0:
                    curves[f"{name} · ours {label}"] = curve_points(summarize(sc, budgets=CURVE_BUDGETS))
            a, lg = np.mean(a_s, axis=0), np.mean(l_s, axis=0)
            e = np.mean(e_s, axis=0) if e_s else None
            code = ""
            if have_cv:
                code = ("N" if a[0] <= cv_a[0] else "n") + ("A" if np.all(a[2:] >= cv_a[2:]) else "a") + \
                    ("L" if np.all(lg[2:] >= cv_l[2:]) else "l") + ("E" if np.all(e[2:] >= cv_a[2:]) else "e")
            line(label, a, lg, e, code)
    if args.curves_json:
        args.curves_json.write_text(json.dumps(curves, indent=1))
        print(f"curve points written to {args.curves_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
