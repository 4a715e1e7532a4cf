"""Ablations of Selective Search's quality mode beside OpenCV-contrib's quality mode, from cached groupings.

OpenCV's quality mode costs ~3–11 s per image here, so it is computed once per image and cached with its
time; in the same loop (the two sides interleaved, which one runs first alternating) our quality mode with its
defaults is run and timed, and its groupings are cached. ``--extra`` adds more groupings (colour space ×
k × min_size × similarity set) to the cache, without timing against OpenCV. Every variant is then only ranked
and deduplicated from the cached region boxes (``combine_hierarchies``), so variants differ exactly in what
they change. Run with OpenCV-contrib on the path (see bench/proposals.py), e.g.

    python bench/proposals_quality.py --data coco_tiny --data samples --cache /tmp/ssq --collect
    python bench/proposals_quality.py --data coco_tiny --cache /tmp/ssq --extra "hsv,lab,rgI,H,I:75,200"
    python bench/proposals_quality.py --data coco_tiny --cache /tmp/ssq \\
        --variants "paper/0.95;paper-k50/0.95;paper+450,750@100/0.95"

A variant is ``spaces:ks:sims/IoU``, each part optional: ``spaces`` a ``+``-joined list of colour spaces
(default the paper's hsv+lab+rgI+H+I), ``ks`` a comma list of k (``k@m`` for min_size m; default min_size =
k; default the paper's 50,100,150,300), ``sims`` a ``+``-joined list of similarity sets (default
CTSF+TSF+F+S); or the name ``paper`` for all defaults. Printed per set: boxes per image, recall@0.5/0.7, MABO
and AR of all objects and of the large ones (√area ≥ ``--large`` px at max side 500), each the mean over
``--seeds`` ranking seeds, and the estimated time of the variant relative to OpenCV-quality's (sum of the
cached per-grouping and per-segmentation seconds over OpenCV's measured seconds, pooled over images). The
code after each row: A all-object R@0.7, MABO and AR at least OpenCV's, L the same for large objects.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.proposals import _resolve_data, load_images, opencv_boxes  # noqa: E402
from bench.proposals_ablation import _large, _vals  # noqa: E402 - the fast-mode search's figures

PAPER_SPACES = ("hsv", "lab", "rgI", "H", "I")
PAPER_KS = ((50.0, 50), (100.0, 100), (150.0, 150), (300.0, 300))
PAPER_SIMS = ("CTSF", "TSF", "F", "S")


def _parse_ks(text: str) -> tuple[tuple[float, int], ...]:
    out = []
    for part in text.split(","):
        k, _, m = part.partition("@")
        out.append((float(k), int(m) if m else max(1, int(round(float(k))))))
    return tuple(out)


def parse_variant(text: str) -> tuple[str, tuple[str, ...], tuple[tuple[float, int], ...], tuple[str, ...], float]:
    """``spaces:ks:sims/IoU`` (see the module doc) → (label, spaces, ((k, min_size), ...), sims, IoU)."""
    body, _, nd = text.partition("/")
    if body == "paper":
        body = ""
    parts = (body.split(":") + ["", "", ""])[:3]
    spaces = tuple(parts[0].split("+")) if parts[0] else PAPER_SPACES
    ks = _parse_ks(parts[1]) if parts[1] else PAPER_KS
    sims = tuple(parts[2].split("+")) if parts[2] else PAPER_SIMS
    return text, spaces, ks, sims, float(nd or 0.95)


def _extra_groupings(rgb: np.ndarray, spaces, ks, sims, have: dict) -> tuple[dict, dict]:
    """Region boxes and seconds of every (space, k, min_size, sim) grouping not yet in ``have``."""
    from models.proposals.segmentation import felzenszwalb
    from models.proposals.selective_search import Strategy, _space_data, group

    boxes, secs = {}, {}
    for cs in spaces:
        todo = [(k, m, s) for k, m in ks for s in sims if (cs, k, m, s) not in have]
        if not todo:
            continue
        t = time.perf_counter()
        data = _space_data(rgb, cs)
        secs[(cs, "features")] = time.perf_counter() - t
        for k, m in dict.fromkeys((k, m) for k, m, _ in todo):
            t = time.perf_counter()
            seg = felzenszwalb(rgb, k=k, sigma=0.8, min_size=m, color_space=cs, channels=data.channels)
            secs[(cs, k, m, "seg")] = time.perf_counter() - t
            for _, _, s in [x for x in todo if x[:2] == (k, m)]:
                h = group(seg, data.channels, data.texture, Strategy(cs, k, s))
                boxes[(cs, k, m, s)] = h.region_boxes
                secs[(cs, k, m, s)] = h.seconds
    return boxes, secs


def load_opencv_scores(files: list[Path]) -> list[dict]:
    """Per image, OpenCV-quality's best IoU per object, box count and seconds from ``bench/proposals.py
    --mode quality --scores-json`` files (chunks in image order), so its ~10 s per image is not paid again."""
    import json

    out = []
    for f in files:
        for key, methods in json.loads(f.read_text()).items():
            cv = methods.get("opencv quality")
            if cv is None:
                raise ValueError(f"{f}: no 'opencv quality' scores under {key!r}")
            out += [{"cv_best": np.asarray(b, np.float64), "cv_n": n, "cv_s": s}
                    for b, n, s in zip(cv["best"], cv["n"], cv["s"], strict=True)]
    return out


def collect(images, cache: Path, tag: str, extra: list[tuple] | None, have_cv: bool,
            cv_scores: list[dict] | None = None) -> list[dict]:
    """Per image: size, GT, OpenCV-quality boxes and seconds, ours-default seconds, and grouping boxes.

    With ``cv_scores`` (one per image, in order) OpenCV is not run: its scores are taken from there and our
    default quality mode is timed alone."""
    import cv2

    from models.proposals.metrics import best_overlaps
    from models.proposals.selective_search import selective_search

    recs = []
    for i, (name, rgb, gt) in enumerate(images):
        f = cache / tag / (Path(name).stem + ".pkl")
        rec = pickle.loads(f.read_bytes()) if f.exists() else {"g": {}, "secs": {}}
        changed = False
        if "cv" in rec and "cv_best" not in rec:
            rec["cv_best"] = best_overlaps(rec["cv"], gt) if len(gt) else np.zeros(0)
            rec["cv_n"] = len(rec["cv"])
            changed = True
        if cv_scores is not None and "cv_best" not in rec:
            if len(cv_scores[i]["cv_best"]) != len(gt):
                raise ValueError(f"{name}: {len(cv_scores[i]['cv_best'])} OpenCV scores for {len(gt)} objects")
            rec.update(cv_scores[i])
            changed = True
        if "ours_s" not in rec and (have_cv or cv_scores is not None):
            bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)

            def run_cv(bgr=bgr, rec=rec):
                t = time.perf_counter()
                rec["cv"] = opencv_boxes(bgr, "quality")
                rec["cv_s"] = time.perf_counter() - t

            def run_ours(rgb=rgb, rec=rec):
                t = time.perf_counter()
                p = selective_search(rgb, "quality", max_side=None)
                rec["ours_s"] = time.perf_counter() - t
                rec["ours_timings"] = dict(p.timings)
                spaces = {h.strategy.color_space for h in p.hierarchy}
                for cs in spaces:  # the conversion and texture codes, shared evenly (only their sum is timed)
                    rec["secs"][(cs, "features")] = p.timings["features"] / len(spaces)
                for h in p.hierarchy:
                    st = h.strategy
                    rec["g"][(st.color_space, st.k, int(round(st.k)), st.similarities)] = h.region_boxes
                    rec["secs"][(st.color_space, st.k, int(round(st.k)), st.similarities)] = h.seconds
                    rec["secs"][(st.color_space, st.k, int(round(st.k)), "seg")] = h.segmentation.seconds

            if "cv_s" in rec:
                run_ours()
            else:
                for fn in ((run_cv, run_ours) if i % 2 == 0 else (run_ours, run_cv)):
                    fn()
                rec["cv_best"] = best_overlaps(rec["cv"], gt) if len(gt) else np.zeros(0)
                rec["cv_n"] = len(rec["cv"])
            changed = True
        for spaces, ks, sims in extra or []:
            b, s = _extra_groupings(rgb, spaces, ks, sims, rec["g"])
            if b:
                rec["g"].update(b)
                rec["secs"].update(s)
                changed = True
        rec.update(name=name, size=(rgb.shape[1], rgb.shape[0]), gt=gt)
        if changed:
            f.parent.mkdir(parents=True, exist_ok=True)
            tmp = f.with_suffix(".tmp")
            tmp.write_bytes(pickle.dumps(rec))
            tmp.replace(f)
            print(f"  {tag} {i + 1}/{len(images)} {name}: opencv {rec.get('cv_s', float('nan')):.2f} s, "
                  f"ours {rec.get('ours_s', float('nan')):.2f} s", flush=True)
        recs.append(rec)
    return recs


def variant_boxes(rec: dict, spaces, ks, sims, nd: float, seed: int) -> np.ndarray:
    from models.proposals.selective_search import combine_hierarchies

    hs = [SimpleNamespace(region_boxes=rec["g"][(cs, k, m, s)]) for cs in spaces for k, m in ks for s in sims]
    return combine_hierarchies(hs, rec["size"], 1.0, seed=seed, near_duplicate_iou=nd)[0]


def variant_seconds(rec: dict, spaces, ks, sims) -> float:
    """Our estimated seconds: the features of each space, each segmentation, each grouping (as cached)."""
    sec = rec["secs"]
    total = 0.0
    for cs in spaces:
        total += sec.get((cs, "features"), 0.0)
        for k, m in ks:
            total += sec[(cs, k, m, "seg")] + sum(sec[(cs, k, m, s)] for s in sims)
    return total


def _is_large(gt: np.ndarray, side: float) -> np.ndarray:
    return np.sqrt(np.clip(gt[:, 2] - gt[:, 0], 0, None) * np.clip(gt[:, 3] - gt[:, 1], 0, None)) >= side


def _vals_from_best(recs: list[dict], side: float | None) -> np.ndarray:
    """OpenCV's figures from its per-object best IoUs (all objects, or the large ones)."""
    from models.proposals.metrics import average_recall, recall_at

    best = np.concatenate([r["cv_best"][_is_large(r["gt"], side)] if side else r["cv_best"] for r in recs])
    return np.array([np.mean([r["cv_n"] for r in recs]), recall_at(best, 0.5), recall_at(best, 0.7),
                     float(best.mean()), average_recall(best)])


def _parse_extra(text: str) -> list[tuple]:
    out = []
    for part in text.split(";"):
        if not part:
            continue
        sp, ks, *rest = part.split(":")
        out.append((tuple(sp.split(",")), _parse_ks(ks), tuple(rest[0].split("+")) if rest else PAPER_SIMS))
    return out


def main(argv: list[str] | None = None) -> int:
    from models.proposals.metrics import score_image, summarize
    from models.proposals.selective_search import warm_up

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", action="append", default=None, help="as bench/proposals.py (default coco_tiny)")
    ap.add_argument("--cache", type=Path, required=True, help="per-image OpenCV boxes and our groupings")
    ap.add_argument("--extra", default="", help="';'-separated 'space,space:k,k@m[:sim+sim]' groupings to add")
    ap.add_argument("--variants", default="", help="';'-separated variants (module doc); none: collect only")
    ap.add_argument("--seeds", type=int, default=1, help="average over ranking seeds 0..N-1")
    ap.add_argument("--max-side", type=int, default=500)
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--large", type=float, default=75.0, help="√area (px at max side) of a large object")
    ap.add_argument("--opencv-scores", type=Path, nargs="+", default=None,
                    help="OpenCV-quality scores from bench/proposals.py --scores-json (all images of one --data, "
                         "in order) instead of running it")
    args = ap.parse_args(argv)
    import cv2

    have_cv = hasattr(cv2, "ximgproc")
    if not have_cv:
        print("cv2.ximgproc missing: only images already cached have OpenCV's boxes")
    warm_up()
    variants = [parse_variant(v) for v in args.variants.split(";") if v]
    for name in args.data or ["coco_tiny"]:
        images = load_images(_resolve_data(name), args.max_side, args.limit, args.offset)
        cv_scores = load_opencv_scores(args.opencv_scores) if args.opencv_scores else None
        if cv_scores is not None:
            cv_scores = cv_scores[args.offset:][:len(images)]
        recs = collect(images, args.cache, f"{name}_{args.max_side}", _parse_extra(args.extra), have_cv,
                       cv_scores)
        if not variants:
            continue
        recs = [r for r in recs if "cv_best" in r]
        n_large = sum(len(_large(r["gt"], args.large)) for r in recs)
        cv_total = sum(r["cv_s"] for r in recs)
        ours_total = sum(r["ours_s"] for r in recs)
        print(f"\n== {name}: {len(recs)} images, {sum(len(r['gt']) for r in recs)} objects, {n_large} large; "
              f"OpenCV quality {cv_total / len(recs):.2f} s/img, ours default {ours_total / len(recs):.2f} "
              f"(×{ours_total / cv_total:.2f}); mean over {args.seeds} seed(s)")
        print(f"{'variant':<40} {'boxes':>6} {'×cv t':>6}  all: R@.5  R@.7  MABO   AR  | large: R@.5  R@.7  MABO   AR")
        cv_a, cv_l = _vals_from_best(recs, None), _vals_from_best(recs, args.large)

        def line(label, a, lg, t, code=""):
            print(f"{label:<40} {a[0]:>6.0f} {t:>6.2f}       {' '.join(f'{x:.3f}' for x in a[1:])} |        "
                  f"{' '.join(f'{x:.3f}' for x in lg[1:])} {code}")

        line("opencv quality", cv_a, cv_l, 1.0)
        for label, spaces, ks, sims, nd in variants:
            try:
                secs = sum(variant_seconds(r, spaces, ks, sims) for r in recs)
            except KeyError as exc:
                print(f"{label}: grouping {exc} not cached (add it with --extra)")
                continue
            a_s, l_s = [], []
            for seed in range(args.seeds):
                boxes = [variant_boxes(r, spaces, ks, sims, nd, seed) for r in recs]
                a_s.append(_vals(summarize([score_image(b, r["gt"]) for b, r in zip(boxes, recs, strict=True)])))
                l_s.append(_vals(summarize([score_image(b, _large(r["gt"], args.large))
                                            for b, r in zip(boxes, recs, strict=True)])))
            a, lg = np.mean(a_s, axis=0), np.mean(l_s, axis=0)
            code = ("A" if np.all(a[2:] >= cv_a[2:]) else "a") + ("L" if np.all(lg[2:] >= cv_l[2:]) else "l")
            line(label, a, lg, secs / cv_total, code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
