"""``python main.py calibrate MODEL``: give a trained detector prototype score calibration.

A model trained with ``roi_head.calibration prototype`` (the fine-tuning preset) fits its prototypes when
training ends; this command does it for any other trained detector, from the labelled boxes of the images it
was trained on (the checkpoint's own split) or of every labelled image of ``--data`` (``--all-images``), and
writes a new checkpoint beside it (the input is never overwritten). See
:mod:`models.detection.score_calibration`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.cli.progress import FractionBar, show_progress


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="main.py calibrate", description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("model", help="a trained checkpoint (.pt)")
    p.add_argument("--data", default=None, help="the labelled data (default: what the checkpoint was trained on)")
    p.add_argument("--images", default=None, help="image folder of a COCO json (default: the checkpoint's)")
    p.add_argument("--all-images", action="store_true",
                   help="prototypes from every labelled image of --data, not only the checkpoint's training images")
    p.add_argument("--alpha", type=float, default=0.5,
                   help="weight of the detector's own score; the rest is the ImageNet similarity (DeFRCN: 0.5)")
    p.add_argument("--out", default=None, help="the calibrated checkpoint (default: MODEL-calibrated.pt)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (the ImageNet network runs there too)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _split_mismatch(source: object, indices: list[int], files: list | None) -> str:
    """Why the checkpoint's training images are not ``source``'s images of those numbers ('' when they are):
    a number past the end, or (when the checkpoint keeps file names) another file under that number."""
    n = len(source.entries)
    if any(not 0 <= i < n for i in indices):
        return f"it has {n} images, the checkpoint names image numbers up to {max(indices)}"
    if files and len(files) == len(indices):
        for i, name in zip(indices, files, strict=True):
            if Path(str(name)).name != Path(str(source.entries[i].name)).name:
                return f"image {i} is {source.entries[i].name}, the checkpoint trained on {name}"
    return ""


def run(command: str, argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    prog = "calibrate"
    from models.data.annotations import AnnotationError
    from models.data.datasets import open_dataset
    from models.detection.checkpoints import CheckpointError, load_checkpoint, load_detector, save_checkpoint
    from models.detection.efficientnet import WeightsPackageMissing
    from models.detection.score_calibration import enable_calibration, fit_on_dataset

    src = Path(args.model)
    out = Path(args.out) if args.out else src.with_name(f"{src.stem}-calibrated.pt")
    if out.resolve() == src.resolve():
        print(f"{prog}: --out is the model itself; write the calibrated checkpoint to another file", file=sys.stderr)
        return 2
    if not 0.0 <= args.alpha <= 1.0:
        print(f"{prog}: --alpha is between 0 and 1", file=sys.stderr)
        return 2
    try:
        payload = load_checkpoint(src)
        model = load_detector(src, device=args.device)
    except (CheckpointError, RuntimeError, FileNotFoundError, OSError, ValueError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    trained_on = payload.get("config") or {}
    data = args.data or trained_on.get("data")
    if not data:
        print(f"{prog}: the checkpoint does not say what it was trained on; give --data", file=sys.stderr)
        return 2
    try:
        source = open_dataset(data, image_dir=args.images or trained_on.get("images_dir"))
    except (FileNotFoundError, NotADirectoryError, AnnotationError, OSError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    split = payload.get("split") or {}
    indices = split.get("indices")
    if args.all_images or indices is None:
        if not args.all_images:
            print(f"{prog}: the checkpoint names no training images; using every image of {data}", file=sys.stderr)
        indices = list(range(len(source.entries)))
    else:
        why = _split_mismatch(source, [int(i) for i in indices], split.get("files"))
        if why:
            print(f"{prog}: {data} is not the data the model was trained on ({why}); add --all-images to use "
                  "every image of it", file=sys.stderr)
            return 2
    try:
        enable_calibration(model, args.alpha)
        with FractionBar(prog, show_progress(args.quiet)) as bar:
            counts, problems = fit_on_dataset(model, source, indices,
                                              progress=lambda done, n: bar(done / max(1, n), f"image {done}/{n}"))
    except (ValueError, WeightsPackageMissing) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    for p in problems[:10]:
        print(f"{prog}: {p}", file=sys.stderr)
    if not any(counts.values()):
        print(f"{prog}: no labelled box of the model's classes ({', '.join(model.class_names)}) in those images; "
              "nothing written", file=sys.stderr)
        return 1
    extra = dict(payload.get("extra") or {})
    images = len(indices) - len(problems)
    extra["calibration"] = {"alpha": args.alpha, "boxes": counts, "images": images, "data": str(data),
                            "from": str(src)}
    save_checkpoint(out, model=model, config=trained_on, class_names=list(payload["class_names"]),
                    split=payload.get("split") or {}, epoch=int(payload.get("epoch", 0)), extra=extra)
    boxes = ", ".join(f"{name} {n}" for name, n in counts.items())
    print(f"prototypes from {boxes} boxes of {images} images; calibrated model: {out}")
    return 0
