"""``python main.py synth``: write a synthetic shapes dataset (circle, square, triangle) as a Pascal VOC root
with train and test splits — data that trains on a CPU in minutes, generated on any machine, so no test or
tutorial depends on a download. The drawing is models/data/synthetic.py's.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys


def _synth_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python main.py synth",
                                description="Write a synthetic shapes dataset (circle, square, triangle) as "
                                            "a Pascal VOC root with train and test splits.")
    p.add_argument("--out", required=True, help="output folder (new or empty; or an earlier set with --force)")
    p.add_argument("--images", type=int, default=400, help="number of images (default 400: 300 train/100 test)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes identical files")
    p.add_argument("--test-fraction", type=float, default=0.25, help="share of images in the test split")
    p.add_argument("--format", choices=("jpg", "png"), default="jpg", help="image file format (default jpg)")
    p.add_argument("--photo-fraction", type=float, default=0.5,
                   help="share of images drawn on photo crops rather than noise (default 0.5)")
    p.add_argument("--single-object", action="store_true",
                   help="exactly one shape per image, its side 15-60%% of the image's shorter side "
                        "(for classification + localisation: train --generation cls-loc)")
    p.add_argument("--object-sizes", type=_int_pair, default=None, metavar="LO,HI",
                   help="longer side of the shapes in pixels (default 20,200): another set to check that "
                        "settings chosen from the data are not fitted to one")
    p.add_argument("--image-sizes", type=_int_pair, default=None, metavar="LO,HI",
                   help="image sides in pixels (default 320,480)")
    p.add_argument("--force", action="store_true", help="replace an earlier synthetic set in --out")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def _int_pair(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in text.replace(" ", "").split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected LO,HI (two whole numbers), got {text!r}") from exc
    if not 0 < lo <= hi:
        raise argparse.ArgumentTypeError(f"expected 0 < LO <= HI, got {text!r}")
    return lo, hi


def run_synth(argv: list[str]) -> int:
    args = _synth_parser().parse_args(argv)
    from app.cli.progress import FractionBar, show_progress
    from models.data.synthetic import SynthParams, available_photos, single_object_params, write_synthetic

    if args.images < 1:
        print("synth: --images must be at least 1", file=sys.stderr)
        return 2
    if not 0.0 <= args.test_fraction <= 1.0 or not 0.0 <= args.photo_fraction <= 1.0:
        print("synth: --test-fraction and --photo-fraction must lie in [0, 1]", file=sys.stderr)
        return 2
    if args.single_object:
        params = single_object_params(image_format=args.format, photo_fraction=args.photo_fraction)
    else:
        params = SynthParams(image_format=args.format, photo_fraction=args.photo_fraction)
    if args.object_sizes:
        params = dataclasses.replace(params, min_object_size=args.object_sizes[0],
                                     max_object_size=args.object_sizes[1])
    if args.image_sizes:
        params = dataclasses.replace(params, min_image_size=args.image_sizes[0], max_image_size=args.image_sizes[1])

    try:
        with FractionBar("synth", show_progress(args.quiet)) as progress:
            ds = write_synthetic(args.out, args.images, args.seed, args.test_fraction, params=params,
                                 overwrite=args.force, progress=progress)
    except (FileExistsError, NotADirectoryError, ValueError) as exc:
        print(f"synth: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"synth: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if not available_photos():
        print("synth: no bundled photographs could be loaded; all backgrounds are noise", file=sys.stderr)
    counts = {k: len(v) for k, v in ds.splits.items()}
    print(f"wrote {len(ds.entries)} images to {ds.root} (train {counts.get('train', 0)}, "
          f"test {counts.get('test', 0)}; seed {args.seed})")
    return 0


def run(command: str, argv: list[str]) -> int:
    """``synth`` (the command table's entry point); returns the process exit code."""
    return run_synth(argv)
