"""Benchmark: do CNN codes put boxes of the same kind together? For every labelled box of a dataset, the share
of its k nearest other boxes (Euclidean distance of the codes, as the CNN codes dock lists them) that have its
class, with EfficientNet-Lite0's ImageNet weights and with random (He-initialised) weights of the same network,
against chance (the same share for neighbours drawn at random). Codes go through the product's cache.

    python bench/cnn_code_neighbours.py [--data ../shared/data/coco_tiny] [--k 5] [--cache FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from models.data.datasets import open_dataset  # noqa: E402
from models.detection.code_neighbours import build_code_index, same_class_share  # noqa: E402
from models.detection.features import (  # noqa: E402
    FeatureCache,
    efficientnet_extractor,
    random_efficientnet_extractor,
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "coco_tiny"))
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--cache", default=None, help="CNN-code cache file (default: the product's)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = Path(args.data)
    coco = data / "annotations" / "instances_val2017.json"
    source = open_dataset(coco if coco.is_file() else data)
    with FeatureCache(args.cache) as cache:
        for name, extractor in (("imagenet", efficientnet_extractor(context=16)),
                                ("random", random_efficientnet_extractor(context=16))):
            t0 = time.perf_counter()
            index = build_code_index(source, extractor, cache, min_side=8)
            counts = Counter(b.class_name for b in index.boxes)
            n = len(index)
            chance = sum((c / n) * ((c - 1) / (n - 1)) for c in counts.values()) if n > 1 else 0.0
            share = same_class_share(index, args.k)
            print(f"{name:9s} {n} boxes ({index.from_cache} from the cache, {time.perf_counter() - t0:.0f} s): "
                  f"same-class share of the {args.k} nearest {share:.3f}, chance {chance:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
