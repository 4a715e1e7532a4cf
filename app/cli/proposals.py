"""Headless proposal commands: ``superpixels``, ``propose`` and ``eval-proposals``.

Parsing, file reading and printing only: segmentation, grouping and scoring live in ``models.proposals.segmentation``,
``models.proposals.selective_search`` and ``models.proposals.metrics``. Times reported per image cover the computation
on the decoded image (resize included), never the decoding, and never numba's one-off compile/cache load,
which ``warm_up()`` pays before the first timed image.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from models.proposals.color_spaces import COLOR_SPACES


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _ks(text: str) -> tuple[float, ...] | str:
    from models.proposals.selective_search import KS_PLANS

    if text.strip() in KS_PLANS:  # a named per-colour-space plan, e.g. "split"
        return text.strip()
    try:
        ks = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"k values are numbers separated by commas, e.g. 75,150, or a plan: "
                                         f"{', '.join(KS_PLANS)}") from exc
    if not ks or any(k <= 0 for k in ks):
        raise argparse.ArgumentTypeError("k values must be positive")
    return ks


def _groupings(text: str) -> list:
    from models.proposals.selective_search import Strategy

    try:
        return [Strategy.parse(token) for token in text.split(",") if token.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _near_duplicates(text: str) -> float:
    from models.proposals.selective_search import near_duplicate_threshold

    try:
        return near_duplicate_threshold(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _add_proposal_options(p: argparse.ArgumentParser, default_mode: str) -> None:
    p.add_argument("--mode", choices=("single", "fast", "quality"), default=default_mode,
                   help=f"Selective Search strategy set (default {default_mode})")
    p.add_argument("--max-side", type=_positive_int, default=500,
                   help="process images at most this many pixels on the longer side; boxes are returned in "
                        "the image's own pixels (default 500; 0 = full size)")
    p.add_argument("--top", type=_positive_int, default=None, help="keep the N best-ranked boxes")
    p.add_argument("--seed", type=int, default=0, help="seed of the randomised ranking (default 0)")
    p.add_argument("--ks", type=_ks, default=None,
                   help="segmentation k values for every colour space, comma-separated (default: the mode's; "
                        "fast: its own plan, HSV k 100,150,300 and Lab k 100,150,200 plus a Lab k 200 fill-only "
                        "grouping; '100,150,300' is the plan before it), or 'split' (fast: HSV k 100,200,300 "
                        "with Lab k 100,150,200)")
    p.add_argument("--groupings", type=_groupings, default=None, metavar="SPACE:K:SIMS,...",
                   help="run exactly these groupings instead of the mode's colour spaces × k, e.g. "
                        "'hsv:100:CTSF,lab:200:F' (similarities: letters of C colour, T texture, S size, F fill); "
                        "a model's proposals.groupings can be measured this way; --ks is then not used")
    p.add_argument("--min-box-size", type=float, default=0.0,
                   help="drop boxes narrower or shorter than this many pixels (default 0)")
    p.add_argument("--near-duplicates", type=_near_duplicates, default=None, metavar="NAME|IOU",
                   help="drop a box overlapping a better-ranked one at least this much: compact (0.8: fewer "
                        "boxes, same recall@0.5), balanced (0.9), budget (0.93, the default of fast's own plan: "
                        "OpenCV-fast's box count), localise (0.95, the default of single and of fast with --ks: "
                        "tighter boxes), exact (1.0: exact duplicates only, as the paper; the default of quality), "
                        "or a number in (0, 1]")


def _superpixels_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python main.py superpixels",
                                description="Felzenszwalb–Huttenlocher graph segmentation of one image.")
    p.add_argument("image", help="image file")
    p.add_argument("--scale", "-k", type=float, default=100.0, help="k: larger → larger regions (default 100)")
    p.add_argument("--sigma", type=float, default=0.8, help="Gaussian pre-smoothing (default 0.8)")
    p.add_argument("--min-size", type=_positive_int, default=None,
                   help="smallest region in pixels (default: k, as Selective Search uses it)")
    p.add_argument("--color-space", choices=list(COLOR_SPACES), default="hsv",
                   help="colour space segmented (default hsv, Selective Search's single strategy)")
    p.add_argument("--max-side", type=_positive_int, default=500,
                   help="segment at most this many pixels on the longer side (default 500; 0 = full size)")
    p.add_argument("--out", default=None,
                   help="write the label map as PNG at the image's displayed size: 16-bit grey labels, or "
                        "24-bit RGB (label = R + 256·G + 65536·B) above 65,536 regions")
    return p


def _propose_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python main.py propose",
                                description="Selective Search proposals for images, written as JSON.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    _add_proposal_options(p, "fast")
    p.add_argument("--json", required=True, metavar="OUT", help="output JSON file")
    return p


def _eval_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python main.py eval-proposals",
                                description="Proposal recall at IoU 0.5 to 0.95, average recall (AR), MABO, "
                                            "and the same with the 100, 300, 1,000 and 2,000 best-ranked "
                                            "boxes, over a dataset (difficult and crowd objects left out).")
    p.add_argument("dataset", metavar="DATASET",
                   help="VOC root, COCO JSON, YOLO folder, or a folder with VOC XML beside its images")
    p.add_argument("--images", default=None, metavar="DIR", help="image folder of a COCO JSON")
    _add_proposal_options(p, "fast")
    p.add_argument("--json", default=None, metavar="OUT", help="also write the figures as JSON")
    return p


def _write_json(path: str, payload: dict, indent: int | None = 1) -> None:
    from models.data.annotations import atomic_write_text

    out = Path(path)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(payload, indent=indent) + "\n")


def _nd(args: argparse.Namespace) -> dict:
    """The near-duplicate and grouping keywords for the library when given (else its defaults apply)."""
    extra: dict = {} if args.near_duplicates is None else {"near_duplicate_iou": args.near_duplicates}
    if args.groupings:
        extra["strategies"] = args.groupings
    return extra


def _boxes_json(boxes: np.ndarray) -> list[list[float]]:
    return [[round(float(v), 2) for v in row] for row in boxes]


# -------------------------------------------------------------------------------------------- commands


def run_superpixels(argv: list[str]) -> int:
    args = _superpixels_parser().parse_args(argv)
    if args.scale <= 0 or args.sigma < 0:
        print("superpixels: --scale must be positive and --sigma 0 or more", file=sys.stderr)
        return 2
    import cv2

    from models.data.io import ImageError, read_image, resize_to_max_side
    from models.proposals.segmentation import felzenszwalb, warm_up

    try:
        dec = read_image(args.image)
    except ImageError as exc:
        print(f"superpixels: {exc}", file=sys.stderr)
        return 1
    warm_up()
    t0 = time.perf_counter()
    work, s = resize_to_max_side(dec.pixels, args.max_side or None)
    seg = felzenszwalb(work, k=args.scale, sigma=args.sigma, min_size=args.min_size,
                       color_space=args.color_space, scale=s * dec.scale)
    seconds = time.perf_counter() - t0
    p = seg.params
    print(f"{args.image}: {seg.n_regions} segments ({p.color_space}, k={p.k:g}, sigma={p.sigma:g}, "
          f"min_size={p.min_size}) at {seg.shape[1]}×{seg.shape[0]} in {seconds:.3f} s")
    if args.out:
        labels = seg.labels
        if labels.shape != (dec.height, dec.width):
            labels = cv2.resize(labels, (dec.width, dec.height), interpolation=cv2.INTER_NEAREST)
        if seg.n_regions <= 65536:
            img = labels.astype(np.uint16)
        else:
            lab = labels.astype(np.uint32)
            # OpenCV writes BGR: B holds the high byte so the file reads R + 256·G + 65536·B.
            img = np.dstack([(lab >> 16) & 255, (lab >> 8) & 255, lab & 255]).astype(np.uint8)
        ok, buf = cv2.imencode(".png", img)
        if not ok:
            print(f"superpixels: cannot encode {args.out}", file=sys.stderr)
            return 1
        from models.data.annotations import atomic_write_bytes

        try:
            atomic_write_bytes(Path(args.out), buf.tobytes())
        except OSError as exc:
            print(f"superpixels: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        print(f"labels written to {args.out} ({'16-bit' if img.ndim == 2 else 'RGB-encoded'} PNG, "
              f"{dec.width}×{dec.height})")
    return 0


def run_propose(argv: list[str]) -> int:
    args = _propose_parser().parse_args(argv)
    from models.data.io import ImageError, read_image
    from models.proposals.selective_search import selective_search, warm_up

    warm_up()
    records: list[dict] = []
    failed = 0
    for path in args.images:
        try:
            dec = read_image(path)
        except ImageError as exc:
            failed += 1
            records.append({"file": path, "error": str(exc)})
            print(f"{path}: error: {exc}", file=sys.stderr)
            continue
        t0 = time.perf_counter()
        props = selective_search(dec.pixels, args.mode, ks=args.ks, max_side=args.max_side or None,
                                 seed=args.seed, top=args.top, min_box_size=args.min_box_size * dec.scale,
                                 **_nd(args))
        seconds = time.perf_counter() - t0
        boxes = props.boxes / np.float32(dec.scale) if dec.scale != 1.0 else props.boxes
        records.append({"file": path, "width": dec.width, "height": dec.height, "boxes": _boxes_json(boxes),
                        "seconds": round(seconds, 4)})
        print(f"{path}: {len(boxes)} boxes in {seconds:.3f} s")
    try:
        _write_json(args.json, {"images": records}, indent=None)  # compact: thousands of boxes
    except OSError as exc:
        print(f"propose: cannot write {args.json}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if failed:
        print(f"propose: {failed} of {len(args.images)} images could not be read", file=sys.stderr)
        return 1
    return 0


def run_eval(argv: list[str]) -> int:
    args = _eval_parser().parse_args(argv)
    from tqdm import tqdm

    from models.data.annotations import AnnotationError
    from models.data.datasets import open_dataset
    from models.proposals.metrics import evaluate_dataset
    from models.proposals.selective_search import warm_up

    try:
        ds = open_dataset(args.dataset, image_dir=args.images)
    except (FileNotFoundError, NotADirectoryError, AnnotationError, OSError) as exc:
        print(f"eval-proposals: {exc}", file=sys.stderr)
        return 2
    if not ds.entries:
        print(f"eval-proposals: no images in {args.dataset}", file=sys.stderr)
        return 1
    warm_up()
    with tqdm(total=len(ds.entries), desc="eval-proposals", unit="img", file=sys.stderr, mininterval=0.5) as bar:
        report = evaluate_dataset(ds, args.mode, ks=args.ks, max_side=args.max_side or None, top=args.top,
                                  seed=args.seed, min_box_size=args.min_box_size, **_nd(args),
                                  progress=lambda done, total, name: bar.update(done - bar.n))
    for line in report.skipped:
        print(f"skipped {line}", file=sys.stderr)
    if report.unannotated:
        print(f"eval-proposals: {report.unannotated} images without annotations left out", file=sys.stderr)
    summary = report.summary
    print(f"images              {summary.images}")
    print(f"ground-truth boxes  {summary.gt_boxes}")
    print(f"boxes per image     {summary.boxes_per_image:.1f}")
    print(f"recall@0.5          {summary.recall[0.5]:.4f}")
    print(f"recall@0.7          {summary.recall[0.7]:.4f}")
    print(f"MABO                {summary.mabo:.4f}")
    print(f"AR (IoU .50:.05:.95) {summary.average_recall:.4f}")
    print(f"seconds per image   {report.seconds_per_image:.4f} (median)")
    print("recall at IoU       " + " ".join(f"{t:>5.2f}" for t in summary.recall))
    print("                    " + " ".join(f"{r:>5.3f}" for r in summary.recall.values()))
    if summary.budgets:
        print(f"{'best-ranked N':<14}{'boxes/img':>10}{'recall@0.5':>11}{'recall@0.7':>11}{'AR':>7}{'MABO':>7}")
        for n, f in summary.budgets.items():
            print(f"{n:<14}{f.boxes_per_image:>10.1f}{f.recall[0.5]:>11.4f}{f.recall[0.7]:>11.4f}"
                  f"{f.average_recall:>7.4f}{f.mabo:>7.4f}")
    if args.json:
        try:
            _write_json(args.json, report.as_dict())
        except OSError as exc:
            print(f"eval-proposals: cannot write {args.json}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    unreadable = [line for line in report.skipped if not line.startswith("dataset: ")]
    if unreadable:
        print(f"eval-proposals: {len(unreadable)} unreadable files skipped", file=sys.stderr)
        return 1
    return 0 if summary.images else 1


def run(command: str, argv: list[str]) -> int:
    """Entry point used by ``app.cli.main``."""
    if command == "superpixels":
        return run_superpixels(argv)
    if command == "propose":
        return run_propose(argv)
    if command == "eval-proposals":
        return run_eval(argv)
    print(f"unknown proposals command {command!r}", file=sys.stderr)
    return 2
