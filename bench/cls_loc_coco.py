"""Benchmark: classification + localisation with the pretrained EfficientNet-Lite0 on one-object crops of COCO.

The issue's pretrained figure: crops around coco_tiny's labelled boxes of its five most frequent classes, each
with a random 30-100% context margin per side (models/data/object_crops.py), split by source image (70/30);
a cls-loc model with the ImageNet EfficientNet-Lite0 backbone is trained on the train crops through the
product's training loop and evaluated on the test crops: classification accuracy, mean IoU of the one box,
localisation accuracy (IoU >= 0.5 with the right class), and the majority-class accuracy to compare with.

    flock /tmp/heavy1.lock nice -n 5 python bench/cls_loc_coco.py --threads 1 [--epochs 8] [--out DIR]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.data.datasets import open_dataset  # noqa: E402
from models.data.object_crops import most_frequent_classes, write_object_crops  # noqa: E402
from models.data.splits import dataset_splits, split_indices  # noqa: E402
from models.detection.checkpoints import load_detector  # noqa: E402
from models.detection.cls_loc_evaluation import evaluate_cls_loc_model, format_cls_loc  # noqa: E402
from models.detection.training import TrainConfig, train  # noqa: E402


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def train_on(root: Path, out: Path, args: argparse.Namespace) -> str | None:
    """Train the pretrained cls-loc model on the crops' train split; the checkpoint's path (None: failed)."""
    t_wall, t_cpu = time.perf_counter(), cpu_seconds()
    config = TrainConfig(
        data=str(root), out=str(out / "cls_loc_effnet.pt"), generation="cls-loc",
        backbone="efficientnet_lite0", epochs=args.epochs, batch_size=16, optimizer="adamw", lr=args.lr,
        weight_decay=1e-4, warmup_iters=20, backbone_lr_scale=0.1, flip_prob=0.5, threads=args.threads,
        seed=args.seed, model={"cls_loc_head.input_size": args.input_size, "input.min_size": args.input_size,
                               "input.max_size": 2 * args.input_size})
    result = train(config)
    print(f"training: {result.status}, {result.epochs_completed} epochs, {time.perf_counter() - t_wall:.0f} s "
          f"wall, {cpu_seconds() - t_cpu:.0f} s CPU (shared 2-core machine, {args.threads} thread)", flush=True)
    if result.checkpoint is None:
        print(result.message, file=sys.stderr)
    return result.checkpoint


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "coco_tiny"))
    ap.add_argument("--classes", type=int, default=5, help="the N most frequent classes")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--input-size", type=int, default=160, help="the square each crop is warped to")
    ap.add_argument("--seed", type=int, default=0, help="margins and the split by image")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="folder for the crops and the checkpoint (default: a temporary one)")
    ap.add_argument("--model", default=None, help="evaluate this checkpoint (trained on the same crops) instead of "
                                                  "training one")
    args = ap.parse_args()
    data = Path(args.data)
    coco = data / "annotations" / "instances_val2017.json"
    if not (coco.is_file() or data.is_dir()):
        print(f"{data}: no dataset there", file=sys.stderr)
        return 2
    source = open_dataset(coco if coco.is_file() else data)
    classes = most_frequent_classes(source, args.classes)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="cls_loc_coco_"))
    crops, report = write_object_crops(source, out / "crops", classes, seed=args.seed)
    print(f"crops: {report.message()} -> {out / 'crops'}", flush=True)

    checkpoint = args.model or train_on(crops.root, out, args)
    if checkpoint is None:
        return 1
    model = load_detector(checkpoint)
    test = split_indices(dataset_splits(crops), "test")
    figures, problems = evaluate_cls_loc_model(model, crops, test)
    for p in problems[:5]:
        print("problem:", p)
    counts = Counter()
    for i in test:
        ann = crops.store.load(crops.entries[i], None)
        counts.update(o.name for o in ann.objects)
    majority = max(counts.values()) / max(1, sum(counts.values()))
    print(format_cls_loc(figures))
    print(f"test crops per class: {dict(counts)}; majority-class accuracy {majority:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
