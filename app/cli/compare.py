"""``python main.py compare --data DATASET --models A.pt B.pt C.pt``: the generations side by side.

Per model: VOC mAP@0.5, COCO AP@[.5:.95], seconds per test image with Selective Search's share apart from
the network's, and the training time stored in the checkpoint. The work is :mod:`models.detection.compare`'s.
"""

from __future__ import annotations

import argparse
import json
import sys


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python main.py compare",
                                description="Accuracy, test time and training time of several checkpoints on "
                                            "one dataset split.")
    p.add_argument("--data", required=True, help="dataset with ground truth (VOC root, COCO JSON, YOLO, folder)")
    p.add_argument("--models", nargs="+", required=True, metavar="CHECKPOINT", help="checkpoints to compare")
    p.add_argument("--split", default="test", help="split to evaluate (default test)")
    p.add_argument("--images", dest="image_dir", help="with a COCO JSON: the folder holding its images")
    p.add_argument("--limit", type=int, default=None, help="only the first N images of the split")
    p.add_argument("--score-threshold", type=float, default=0.05)
    p.add_argument("--cached-proposals", action="store_true",
                   help="read Selective Search boxes from the proposal cache (proposal time then ~0); default: "
                        "recompute them so the time is what a new image costs")
    p.add_argument("--no-coco", dest="coco", action="store_false", help="skip COCO AP")
    p.add_argument("--seed", type=int, default=0, help="seed of the split for a dataset without one")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
    p.add_argument("--json", help="also write the rows here")
    return p


def run(command: str, argv: list[str]) -> int:
    args = parser().parse_args(argv)
    prog = command
    from models.data.annotations import AnnotationError
    from models.data.datasets import open_dataset
    from models.data.splits import dataset_splits, split_indices
    from models.detection.checkpoints import CheckpointError
    from models.detection.compare import compare_checkpoints, format_comparison

    try:
        source = open_dataset(args.data, image_dir=args.image_dir)
        indices = split_indices(dataset_splits(source, seed=args.seed), args.split)
    except (FileNotFoundError, NotADirectoryError, AnnotationError, OSError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except KeyError as exc:
        print(f"{prog}: {exc.args[0]}", file=sys.stderr)
        return 2
    if args.limit:
        indices = indices[: args.limit]
    try:
        rows, problems = compare_checkpoints(args.models, source, indices, score_threshold=args.score_threshold,
                                             device=args.device, cached_proposals=args.cached_proposals,
                                             coco=args.coco, progress=lambda m: print(f"{prog}: {m}",
                                                                                      file=sys.stderr))
    except (CheckpointError, RuntimeError, ValueError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    for p in problems[:10]:
        print(f"{prog}: {p}", file=sys.stderr)
    print(format_comparison(rows))
    if args.json:
        from pathlib import Path

        from models.data.annotations.atomic import atomic_write_text

        try:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(args.json, json.dumps({"data": args.data, "split": args.split,
                                                     "models": [r.to_dict() for r in rows]}, indent=1) + "\n")
        except OSError as exc:
            print(f"{prog}: cannot write {args.json}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    return 0
