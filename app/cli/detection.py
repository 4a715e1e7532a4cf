"""Headless detection commands: ``synth`` (write a synthetic dataset), ``detect`` and ``evaluate``.

This module parses arguments, reads files and prints; every computation lives in ``models`` (drawing in
``models.synthetic``, splits and ground truth in ``models.training_data``, AP in ``models.evaluation``,
the detector behind ``models.checkpoints.load_detector``).
"""

from __future__ import annotations

import argparse
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
    p.add_argument("--force", action="store_true", help="replace an earlier synthetic set in --out")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def run_synth(argv: list[str]) -> int:
    args = _synth_parser().parse_args(argv)
    from models.synthetic import SynthParams, available_photos, write_synthetic

    if args.images < 1:
        print("synth: --images must be at least 1", file=sys.stderr)
        return 2
    if not 0.0 <= args.test_fraction <= 1.0 or not 0.0 <= args.photo_fraction <= 1.0:
        print("synth: --test-fraction and --photo-fraction must lie in [0, 1]", file=sys.stderr)
        return 2
    params = SynthParams(image_format=args.format, photo_fraction=args.photo_fraction)

    live = not args.quiet and sys.stderr.isatty()

    def progress(fraction: float, message: str) -> None:
        if live:
            print(f"\rsynth: {message}", end="\n" if fraction >= 1.0 else "", file=sys.stderr, flush=True)

    try:
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
    """Dispatch ``synth``, ``detect`` or ``evaluate``; returns the process exit code."""
    if command == "synth":
        return run_synth(argv)
    print(f"unknown command {command!r}", file=sys.stderr)
    return 2
