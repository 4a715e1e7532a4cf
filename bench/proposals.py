"""Benchmark: our Selective Search ``fast`` mode beside OpenCV-contrib's, and our segmentation beside scikit-image's.

Set-up (once; OpenCV-contrib lives in its own venv so it can never clash with the app's opencv-python-headless):

    python3 -m venv .venv-bench
    .venv-bench/bin/pip install --no-deps -e .
    .venv-bench/bin/pip install numpy scipy scikit-image numba Pillow defusedxml PyYAML tqdm \
        opencv-contrib-python-headless

Run (from the repository root; started with the app's .venv it re-runs itself under .venv-bench when that
exists, otherwise it measures our side only):

    .venv-bench/bin/python bench/proposals.py                 # 80 coco_tiny images, max side 500
    .venv-bench/bin/python bench/proposals.py --limit 20      # quicker
    .venv-bench/bin/python bench/proposals.py --sweep "50,100;100,200;150,300"   # our fast mode per k set
    .venv-bench/bin/python bench/proposals.py --data coco_tiny --data samples --mode fast,quality \
        --curves-json /tmp/curves.json      # then: .venv/bin/python bench/plot_curves.py /tmp/curves.json

What is measured, per image, in one process, both sides interleaved (which side runs first alternates) so
that load from other processes on a shared machine hits both alike: wall time of the proposal computation on
the already decoded and resized image (max side 500), number of boxes, and against the COCO ground truth
(crowd objects left out; boxes scaled with the image) recall at IoU 0.5 / 0.7 and MABO. Numba compile time is
spent in a warm-up before the loop and printed on its own line. "ours fast @opencv N" keeps, per image, only
as many of our best-ranked boxes as OpenCV returned, to compare at equal box counts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

_COCO_TINY = Path("shared") / "data" / "coco_tiny" / "annotations" / "instances_val2017.json"
#: ../shared beside the checkout; a worktree one level deeper (wt/<name>) finds it two levels up.
DEFAULT_DATA = next((p / _COCO_TINY for p in ROOT.parents if (p / _COCO_TINY).exists()), ROOT.parent / _COCO_TINY)
SAMPLES = ROOT / "resources" / "samples"
#: Hand-labelled boxes (VOC XML) for photographs that ship inside scikit-image (not copied here).
SKIMAGE_PHOTOS = ROOT / "bench" / "data" / "skimage_photos"
#: Hand-labelled photographs that ship inside other Python packages, copied here with their licences.
PACKAGE_PHOTOS = ROOT / "bench" / "data" / "package_photos"
NAMED_SETS = ("coco_tiny", "samples", "skimage_photos", "package_photos")
BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"


def _maybe_reexec() -> None:
    """Without ximgproc here, re-run under the benchmark venv when it exists (``make bench`` uses .venv)."""
    if hasattr(cv2, "ximgproc") or os.environ.get("RCNN_BENCH_REEXEC"):
        return
    # Compare environments, not interpreters: both venvs' python may link to the same system binary.
    if BENCH_PYTHON.exists() and Path(sys.prefix).resolve() != BENCH_PYTHON.parents[1].resolve():
        os.environ["RCNN_BENCH_REEXEC"] = "1"
        os.execv(str(BENCH_PYTHON), [str(BENCH_PYTHON), __file__, *sys.argv[1:]])


def opencv_boxes(bgr: np.ndarray, mode: str = "fast") -> np.ndarray:
    """OpenCV-contrib ximgproc Selective Search in its fast or quality mode with its defaults; xyxy float32."""
    ss = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    ss.setBaseImage(bgr)
    if mode == "quality":
        ss.switchToSelectiveSearchQuality()
    else:
        ss.switchToSelectiveSearchFast()
    rects = np.asarray(ss.process(), np.float32).reshape(-1, 4)
    rects[:, 2:] += rects[:, :2]
    return rects


def opencv_fast(bgr: np.ndarray) -> np.ndarray:
    return opencv_boxes(bgr, "fast")


def boundary_agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(precision, recall) of a's region boundaries against b's, within one pixel."""
    from scipy import ndimage as ndi

    from models.proposals.segmentation import boundary_mask

    ba, bb = boundary_mask(a), boundary_mask(b)
    da, db = ndi.binary_dilation(ba), ndi.binary_dilation(bb)
    return float((ba & db).sum() / max(ba.sum(), 1)), float((bb & da).sum() / max(bb.sum(), 1))


def load_images(data: Path, max_side: int, limit: int | None,
                offset: int = 0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, RGB resized, GT boxes resized with crowd/difficult removed) for each readable image.

    ``offset`` skips the first images and ``limit`` keeps the next N, so a long run can be split in chunks
    (``--scores-json`` each, then ``--combine``)."""
    from models.data.datasets import open_dataset
    from models.data.io import ImageError, read_image, resize_to_max_side

    ds = open_dataset(data)
    out = []
    entries = ds.entries[offset:]
    for entry in entries[:limit] if limit else entries:
        try:
            dec = read_image(entry.path)
        except ImageError as exc:
            print(f"skipped {exc}", file=sys.stderr)
            continue
        ann = ds.store.load(entry)
        rgb, s = resize_to_max_side(dec.pixels, max_side)
        objs = [o for o in (ann.objects if ann else []) if not (o.difficult or o.crowd)]
        gt = np.array([o.box for o in objs], np.float32).reshape(-1, 4) * np.float32(s)
        out.append((entry.name, rgb, gt))
    return out


def _row(name: str, secs: list[float], counts: list[int], scores: list, budgets=None) -> dict:
    from models.proposals.metrics import DEFAULT_BUDGETS, curve_points, summarize

    summ = summarize(scores, budgets=DEFAULT_BUDGETS if budgets is None else budgets)
    return {"name": name, "s": statistics.median(secs) if secs else float("nan"),
            "mean_s": statistics.fmean(secs) if secs else float("nan"),
            "boxes": float(np.mean(counts)) if counts else 0.0,
            "r5": summ.recall[0.5], "r7": summ.recall[0.7], "mabo": summ.mabo, "ar": summ.average_recall,
            "curves": curve_points(summ)}


def _print_rows(rows: list[dict]) -> None:
    print(f"{'method':<34} {'s/img med':>9} {'s/img mean':>10} {'boxes/img':>9} {'R@0.5':>6} {'R@0.7':>6} "
          f"{'MABO':>6} {'AR':>6}")
    for r in rows:
        print(f"{r['name']:<34} {r['s']:>9.3f} {r['mean_s']:>10.3f} {r['boxes']:>9.0f} {r['r5']:>6.3f} "
              f"{r['r7']:>6.3f} {r['mabo']:>6.3f} {r['ar']:>6.3f}")


def run_sweep(images, sweep: str, mode: str, seed: int, min_size: int | None = None,
              tops: tuple[int, ...] = (500, 1000, 1400)) -> None:
    """Our mode for each k set: all boxes, then the best-ranked ``tops`` (the recall-for-boxes trade)."""
    from models.proposals.metrics import score_image
    from models.proposals.selective_search import selective_search

    rows = []
    for ks_text in sweep.split(";"):
        ks = tuple(float(v) for v in ks_text.split(","))
        secs, results = [], []
        for _, rgb, gt in images:
            t = time.perf_counter()
            p = selective_search(rgb, mode, ks=ks, max_side=None, seed=seed, min_size=min_size)
            secs.append(time.perf_counter() - t)
            results.append((p.boxes, gt))
        label = f"ours {mode} k={ks_text}" + (f" min={min_size}" if min_size else "")
        rows.append(_row(label, secs, [len(b) for b, _ in results],
                         [score_image(b, g) for b, g in results]))
        for top in tops:
            rows.append(_row(f"  top {top}", secs, [min(len(b), top) for b, _ in results],
                             [score_image(b, g, top=top) for b, g in results]))
    _print_rows(rows)


def _raw(secs: list[float], counts: list[int], scores: list) -> dict:
    """Per-image figures of one method as plain lists, so chunks of a long run can be pooled exactly later."""
    return {"s": list(secs), "n": list(counts),
            "best": [s.best_iou.tolist() for s in scores], "n_props": [s.n_proposals for s in scores],
            "budget_best": [{str(k): v.tolist() for k, v in s.budget_best.items()} for s in scores]}


def _unraw(raw: dict) -> tuple[list[float], list[int], list]:
    from models.proposals.metrics import ImageProposalScore

    scores = [ImageProposalScore(np.asarray(b, np.float64), n, None,
                                 {int(k): np.asarray(v, np.float64) for k, v in bb.items()})
              for b, n, bb in zip(raw["best"], raw["n_props"], raw["budget_best"], strict=True)]
    return raw["s"], raw["n"], scores


def combine(files: list[Path]) -> int:
    """Pool the ``--scores-json`` files of several chunks (same set, same methods) into one table."""
    from models.proposals.metrics import CURVE_BUDGETS

    merged: dict[str, dict[str, dict]] = {}
    for f in files:
        for block, methods in json.loads(Path(f).read_text()).items():
            for name, raw in methods.items():
                into = merged.setdefault(block, {}).setdefault(name, {k: [] for k in raw})
                for k, v in raw.items():
                    into[k].extend(v)
    for block, methods in merged.items():
        first = next(iter(methods.values()))
        print(f"\n{block}: {len(first['s'])} images pooled from {len(files)} file(s)")
        rows = [_row(name, *_unraw(raw), CURVE_BUDGETS) for name, raw in methods.items()]
        _print_rows(rows)
        cv = next((m for n, m in methods.items() if n.startswith("opencv")), None)
        ours = next((m for n, m in methods.items() if n.startswith("ours")), None)
        if cv and ours:
            ratios = [a / b for a, b in zip(ours["s"], cv["s"], strict=True)]
            print(f"time ratio ours/opencv: median of per-image ratios {statistics.median(ratios):.3f}, "
                  f"ratio of totals {sum(ours['s']) / sum(cv['s']):.3f}")
    return 0


def compare(images, mode: str, ks, seed: int, min_size, near_duplicate_iou, have_cv: bool,
            raw: dict | None = None) -> list[dict]:
    """Our ``mode`` beside OpenCV's same-named mode on ``images``, interleaved; rows for the table and curves.

    ``raw``, when given, receives each method's per-image figures (see ``_raw``)."""
    from models.proposals.metrics import CURVE_BUDGETS, score_image
    from models.proposals.selective_search import default_near_duplicates, selective_search

    nd = default_near_duplicates(mode) if near_duplicate_iou is None else near_duplicate_iou
    ours_s, ours_n, ours_sc, ours_eq, cv_s, cv_n, cv_sc, ratios = [], [], [], [], [], [], [], []
    cpu = {"cv": 0.0, "ours": 0.0}
    for i, (_, rgb, gt) in enumerate(images):
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        res = {}
        for side in (("cv", "ours") if i % 2 == 0 else ("ours", "cv")):
            if side == "cv" and not have_cv:
                continue
            t, c = time.perf_counter(), time.process_time()
            boxes = opencv_boxes(bgr, mode) if side == "cv" else selective_search(
                rgb, mode, ks=ks, max_side=None, seed=seed, min_size=min_size, near_duplicate_iou=nd).boxes
            res[side] = (time.perf_counter() - t, boxes)
            cpu[side] += time.process_time() - c  # all of the process's threads: robust to a shared machine
        t_o, b_o = res["ours"]
        ours_s.append(t_o)
        ours_n.append(len(b_o))
        ours_sc.append(score_image(b_o, gt, budgets=CURVE_BUDGETS))
        if have_cv:
            t_c, b_c = res["cv"]
            cv_s.append(t_c)
            cv_n.append(len(b_c))
            cv_sc.append(score_image(b_c, gt, budgets=CURVE_BUDGETS))
            ours_eq.append(score_image(b_o, gt, top=len(b_c), budgets=CURVE_BUDGETS))
            ratios.append(t_o / t_c)
    rows = []
    if raw is not None:
        if have_cv:
            raw[f"opencv {mode}"] = _raw(cv_s, cv_n, cv_sc)
        raw[f"ours {mode}"] = _raw(ours_s, ours_n, ours_sc)
        if have_cv:
            raw[f"ours {mode} @opencv's N"] = _raw(ours_s, [min(a, b) for a, b in zip(ours_n, cv_n, strict=True)],
                                                   ours_eq)
    if have_cv:
        rows.append(_row(f"opencv {mode}", cv_s, cv_n, cv_sc, CURVE_BUDGETS))
    ks_label = ks if isinstance(ks, str) else ",".join(f"{k:g}" for k in ks or ())
    label = f"ours {mode}" + (f" k={ks_label}" if ks else "") + \
        (f" near-dup {near_duplicate_iou}" if near_duplicate_iou is not None else "")
    rows.append(_row(label, ours_s, ours_n, ours_sc, CURVE_BUDGETS))
    if have_cv:
        rows.append(_row("  ours @opencv's N per image", ours_s,
                         [min(a, b) for a, b in zip(ours_n, cv_n, strict=True)], ours_eq, CURVE_BUDGETS))
    _print_rows(rows)
    if have_cv:
        print(f"time ratio ours/opencv ({mode}): median of per-image ratios {statistics.median(ratios):.3f}, "
              f"ratio of medians {statistics.median(ours_s) / statistics.median(cv_s):.3f}, "
              f"ratio of totals {sum(ours_s) / sum(cv_s):.3f}")
        print(f"process CPU time per image: opencv {cpu['cv'] / len(cv_s):.3f} s, ours {cpu['ours'] / len(ours_s):.3f} "
              f"s, ratio {cpu['ours'] / max(cpu['cv'], 1e-9):.3f}")
    return rows


def _sample_photos(source: Path = SAMPLES) -> Path:
    """A folder with the photographs of ``source`` and their VOC XML only (not the synthetic shapes, READMEs)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix=source.name + "_"))
    for f in sorted(source.iterdir()):
        if f.suffix in (".png", ".jpg", ".xml"):
            (folder / f.name).symlink_to(f)
    return folder


def _skimage_photos() -> Path:
    """A folder linking scikit-image's own copies of the photographs to our boxes in bench/data/skimage_photos."""
    import tempfile

    import skimage

    source = Path(skimage.__file__).parent / "data"
    folder = Path(tempfile.mkdtemp(prefix="skimage_photos_"))
    for xml in sorted(SKIMAGE_PHOTOS.glob("*.xml")):
        image = next((source / (xml.stem + ext) for ext in (".png", ".jpg") if (source / (xml.stem + ext)).exists()),
                     None)
        if image is None:
            print(f"{xml.stem}: not in {source}; skipped", file=sys.stderr)
            continue
        (folder / image.name).symlink_to(image)
        (folder / xml.name).symlink_to(xml)
    return folder


def _resolve_data(text: str) -> Path:
    if text == "samples":
        return _sample_photos()
    if text == "skimage_photos":
        return _skimage_photos()
    if text == "package_photos":
        return _sample_photos(PACKAGE_PHOTOS)
    return {"coco_tiny": DEFAULT_DATA}.get(text, Path(text))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", action="append", default=None,
                    help="dataset (COCO JSON, VOC folder...; 'coco_tiny', 'samples', 'skimage_photos' and "
                         "'package_photos' name the four we have); "
                         "repeat for several (default: coco_tiny)")
    ap.add_argument("--max-side", type=int, default=500)
    ap.add_argument("--limit", type=int, default=None, help="first N images only")
    ap.add_argument("--offset", type=int, default=0, help="skip the first N images (to split a long run)")
    ap.add_argument("--scores-json", type=Path, default=None,
                    help="write every method's per-image figures here, to pool chunks with --combine")
    ap.add_argument("--combine", type=Path, nargs="+", default=None,
                    help="print the pooled table of several --scores-json files and exit")
    ap.add_argument("--mode", default="fast", help="comma-separated modes to compare, e.g. fast,quality")
    ap.add_argument("--ks", default=None,
                    help="comma-separated k values for our mode (default: the mode's), or a plan of KS_PLANS: split")
    ap.add_argument("--near-duplicates", dest="near_duplicate_iou", default=None,
                    help="our near-duplicate setting: compact, localise, exact or an IoU (default: the library's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sweep", default=None, help='k sets to compare, e.g. "50,100;100,200" (our side only)')
    ap.add_argument("--min-size", type=int, default=None, help="segmentation min_size (default: k)")
    ap.add_argument("--no-segmentation", action="store_true", help="skip the segmentation comparison")
    ap.add_argument("--curves-json", type=Path, default=None,
                    help="write every method's curve points here (bench/plot_curves.py draws them)")
    args = ap.parse_args(argv)
    if args.combine:
        return combine(args.combine)  # pooling needs no OpenCV-contrib: never re-run under .venv-bench
    _maybe_reexec()

    names = args.data or ["coco_tiny"]
    datasets = [_resolve_data(d) for d in names]
    for data in datasets:
        if not data.exists():
            print(f"{data}: not found (coco_tiny lives in ../shared/data)", file=sys.stderr)
            return 2
    from models.proposals.segmentation import felzenszwalb, reference_felzenszwalb
    from models.proposals.selective_search import warm_up

    print(f"numba warm-up (compile or cache load, not in the figures): {warm_up():.2f} s")
    print(f"python {sys.executable}; OpenCV {cv2.__version__}, threads {cv2.getNumThreads()}; "
          f"cores {os.cpu_count()}")
    from models.proposals.selective_search import KS_PLANS

    ks = (args.ks if args.ks in KS_PLANS else tuple(float(v) for v in args.ks.split(","))) if args.ks else None
    have_cv = hasattr(cv2, "ximgproc")
    if not have_cv:
        print("cv2.ximgproc missing: create .venv-bench as described at the top of this file; "
              "measuring our side only")
    curves: dict[str, dict] = {}
    raw_all: dict[str, dict] = {}
    images = []
    for name, data in zip(names, datasets, strict=True):
        images = load_images(data, args.max_side, args.limit, args.offset)
        print(f"\n{len(images)} images from {data}, max side {args.max_side}, "
              f"{sum(len(g) for _, _, g in images)} GT boxes (crowd/difficult excluded)")
        if args.sweep:
            run_sweep(images, args.sweep, args.mode, args.seed, args.min_size)
            continue
        for mode in args.mode.split(","):
            label = name if name in NAMED_SETS else data.stem
            rows = compare(images, mode, ks, args.seed, args.min_size, args.near_duplicate_iou, have_cv,
                           raw_all.setdefault(f"{label} {mode}", {}))
            for r in rows:
                curves[f"{label} · {r['name'].strip()}"] = r["curves"]
    if args.scores_json:
        args.scores_json.write_text(json.dumps(raw_all))
        print(f"per-image figures written to {args.scores_json}")
    if args.curves_json:
        args.curves_json.write_text(json.dumps(curves, indent=1))
        print(f"curve points written to {args.curves_json}")

    if not args.no_segmentation and not args.sweep:
        print("\nsegmentation (hsv, k=100, sigma=0.8, min_size=100), interleaved per image:")
        ts, tr, ns, nr, bp, br, sratios = [], [], [], [], [], [], []
        for i, (_, rgb, _) in enumerate(images):
            res = {}
            for side in (("ours", "sk") if i % 2 == 0 else ("sk", "ours")):
                t = time.perf_counter()
                if side == "ours":
                    lab = felzenszwalb(rgb, k=100, sigma=0.8, min_size=100, color_space="hsv").labels
                else:
                    lab = reference_felzenszwalb(rgb, k=100, sigma=0.8, min_size=100, color_space="hsv")
                res[side] = (time.perf_counter() - t, lab)
            ts.append(res["ours"][0])
            tr.append(res["sk"][0])
            sratios.append(ts[-1] / tr[-1])
            ns.append(int(res["ours"][1].max()) + 1)
            nr.append(int(res["sk"][1].max()) + 1)
            p, r = boundary_agreement(res["ours"][1], res["sk"][1])
            bp.append(p)
            br.append(r)
        print(f"{'method':<28} {'s/img med':>9} {'segments/img':>12}")
        print(f"{'scikit-image felzenszwalb':<28} {statistics.median(tr):>9.4f} {np.mean(nr):>12.1f}")
        print(f"{'ours (numba)':<28} {statistics.median(ts):>9.4f} {np.mean(ns):>12.1f}")
        print(f"time ratio ours/scikit-image: median {statistics.median(sratios):.3f}; boundary agreement "
              f"(1 px): precision {np.mean(bp):.3f}, recall {np.mean(br):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
