"""Benchmark: CNN codes (EfficientNet-Lite0, ImageNet) + a linear classifier, against the same classifier on
raw pixels, classifying coco_tiny's labelled boxes of its five most frequent classes.

The boxes (``iscrowd`` skipped) of the five classes with the most boxes are split by IMAGE (a seeded 70/30
permutation of the images that hold such boxes, so no object's neighbour in the same photo leaks into the test
set): :func:`models.detection.code_classifier.split_by_image`, the CNN codes dock's own split, so that the dock
and this benchmark report the same test sets for the same seed. Each box is
warped to a square: 224 px with 16 px of context for the codes (R-CNN's warp), 32×32 RGB with the same
share of context for the pixels (3,072 numbers, standardised). Both get the same classifier: softmax
regression with class-balanced weights, its L2 strength chosen by 3-fold cross-validation over the TRAINING
images only (grid 1e-4 … 1e2). Score: balanced accuracy (mean per-class recall) on the test images, because
person has about as many boxes as the other four together. Several seeds give the spread.

Codes go through the product's CNN-code cache (``--cache``, default the product's), so a second run only
pays for the classifiers.

    python bench/cnn_codes.py [--data ../shared/data/coco_tiny] [--seeds 0,1,2,3,4] [--cache FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.detection.code_classifier import choose_l2, split_by_image  # noqa: E402
from models.detection.features import FeatureCache, cnn_codes, efficientnet_extractor, image_key, warp_crops  # noqa: E402
from models.detection.linear_classifier import balanced_accuracy, fit_softmax  # noqa: E402


def load_boxes(data: Path, n_classes: int = 5,
               min_side: float = 1.0) -> tuple[list[str], list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """The ``n_classes`` most frequent classes and, per image, (pixels, boxes [N,4], labels [N]) of them
    (boxes with a shorter side under ``min_side`` pixels left out; the classes are counted before that)."""
    from models.data.datasets import open_dataset
    from models.data.io import read_image

    json_path = data / "annotations" / "instances_val2017.json"
    source = open_dataset(json_path if json_path.is_file() else data)
    per_image = []
    for entry in source.entries:
        ann = source.store.load(entry)
        objects = [o for o in (ann.objects if ann else []) if not o.crowd]
        per_image.append((entry, objects))
    counts = Counter(o.name for _, objs in per_image for o in objs)
    classes = [name for name, _ in counts.most_common(n_classes)]
    out = []
    for entry, objects in per_image:
        keep = [o for o in objects if o.name in classes and min(o.width, o.height) >= min_side]
        pixels = read_image(entry.path, max_pixels=None).pixels
        boxes = np.array([o.box for o in keep], np.float32).reshape(-1, 4)
        labels = np.array([classes.index(o.name) for o in keep], np.int64)
        out.append((pixels, boxes, labels))
    return classes, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "coco_tiny")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--test-fraction", type=float, default=0.3)
    ap.add_argument("--cache", default=None, help="CNN-code cache file (default: the product's cache)")
    ap.add_argument("--pixels", type=int, default=32, help="side of the raw-pixel baseline's crops")
    ap.add_argument("--min-side", type=float, default=1.0,
                    help="leave out boxes whose shorter side is below this many pixels (default: keep all)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.data.exists():
        print(f"no data at {args.data}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    classes, images = load_boxes(args.data, min_side=args.min_side)
    n_boxes = sum(len(b) for _, b, _ in images)
    print(f"{len(images)} images, {n_boxes} boxes (shorter side >= {args.min_side:g} px) of {', '.join(classes)}: "
          f"{np.bincount(np.concatenate([lab for _, _, lab in images]), minlength=5).tolist()}")

    context = 16
    extractor = efficientnet_extractor(context=context, input_size=224)
    codes, pixels, labels, groups = [], [], [], []
    hits = 0
    with FeatureCache(args.cache) as cache:
        t1 = time.perf_counter()
        for i, (image, boxes, labs) in enumerate(images):
            if not len(boxes):
                continue
            result = cnn_codes(image, boxes, extractor, cache, image_id=image_key(image))
            hits += int(result.cached.sum())
            codes.append(result.codes)
            side = args.pixels
            raw = warp_crops(image, boxes, side, context=max(1, round(side * context / 224)))
            pixels.append(raw.reshape(len(boxes), -1).numpy())
            labels.append(labs)
            groups.append(np.full(len(boxes), i))
        code_s = time.perf_counter() - t1
        print(f"codes: {n_boxes} boxes, {hits} from the cache {cache.path}, {code_s:.1f} s")
    x_codes, x_pix = np.concatenate(codes), np.concatenate(pixels)
    y, g = np.concatenate(labels), np.concatenate(groups)

    rows = []
    for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
        test = split_by_image(g, args.test_fraction, seed)
        row = {"seed": seed, "train": int((~test).sum()), "test": int(test.sum())}
        for name, x in (("codes", x_codes), ("pixels", x_pix)):
            l2 = choose_l2(x[~test], y[~test], g[~test], seed)
            model = fit_softmax(x[~test], y[~test], l2=l2)
            pred = model.predict(x[test])
            row[name] = balanced_accuracy(y[test], pred)
            row[name + "_acc"] = float(np.mean(pred == y[test]))
            row[name + "_l2"] = l2
        rows.append(row)
        print(f"seed {seed}: train {row['train']} / test {row['test']} boxes | balanced accuracy: CNN codes "
              f"{row['codes']:.3f} (l2 {row['codes_l2']:g}, plain acc {row['codes_acc']:.3f}), raw {args.pixels}²"
              f" pixels {row['pixels']:.3f} (l2 {row['pixels_l2']:g}, plain acc {row['pixels_acc']:.3f})")
    c = np.array([r["codes"] for r in rows])
    p = np.array([r["pixels"] for r in rows])
    print(f"\nbalanced accuracy over {len(rows)} seeds (chance {1 / len(classes):.2f}): CNN codes {c.mean():.3f} ± "
          f"{c.std():.3f} (min {c.min():.3f}), raw pixels {p.mean():.3f} ± {p.std():.3f} (max {p.max():.3f})")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
