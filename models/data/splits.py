"""Train/test splits of an opened dataset: the dataset's own, else a seeded one saved beside it.

Why a module of its own: the GUI, the command line, the training loop and the evaluation all ask which
images are for training and which for testing, and must get the same answer across runs and sessions. The
dataset module (``training_data``) turns images into tensors and does not need to know where a split is kept.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from models.data.annotations.atomic import atomic_write_text
from models.data.datasets import DatasetSource
from models.data.synthetic import split_counts  # the same rounding as the synthetic sets

log = logging.getLogger(__name__)

#: Name of the split file written beside a dataset that has no splits of its own.
SPLITS_FILE = "rcnn_explorer_splits.json"


def splits_path(source: DatasetSource) -> Path:
    """Where the seeded split of a dataset without its own splits lives.

    Beside a COCO JSON it is named after the JSON, so train and val files in one folder do not clash.
    """
    if source.kind == "coco":
        json_path = getattr(getattr(source.store, "dataset", None), "path", None)
        if json_path is not None:
            return Path(json_path).with_name(f"{Path(json_path).stem}.{SPLITS_FILE}")
    return Path(source.root) / SPLITS_FILE


def _stable_fraction(seed: int, name: str) -> float:
    """A number in [0, 1) fixed by seed and file name: places images added after the split was written."""
    import hashlib

    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def _read_split_file(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("splits"), dict):
        return None
    return doc


def dataset_splits(source: DatasetSource, seed: int = 0, test_fraction: float = 0.25) -> dict[str, list[int]]:
    """Named splits (indices into ``source.entries``): the dataset's own, else a seeded, saved one.

    Why saved: the GUI and the command line must train and evaluate on the same images, and a split
    recomputed from a changed file list would silently move images between train and test. The file
    stores image names; an image added later is placed by a hash of its name (never moving the others).
    When the folder is read-only the split is computed without writing and a note goes to
    ``source.problems``.
    """
    if source.splits:
        return {k: list(v) for k, v in source.splits.items()}
    names = [e.name for e in source.entries]
    index_of = {n: i for i, n in enumerate(names)}
    path = splits_path(source)
    doc = _read_split_file(path) if path.is_file() else None
    if doc is not None:
        seed = int(doc.get("seed", seed))
        test_fraction = float(doc.get("test_fraction", test_fraction))
        result: dict[str, list[int]] = {}
        placed: set[int] = set()
        for split, members in doc["splits"].items():
            if not isinstance(members, list):
                continue
            idx = [index_of[n] for n in members if isinstance(n, str) and n in index_of]
            result[str(split)] = idx
            placed.update(idx)
        new = [i for i in range(len(names)) if i not in placed]
        if not new:
            return {k: sorted(v) for k, v in result.items()}
        result.setdefault("train", [])
        result.setdefault("test", [])
        for i in new:
            result["test" if _stable_fraction(seed, names[i]) < test_fraction else "train"].append(i)
        result = {k: sorted(v) for k, v in result.items()}
    else:
        _, n_test = split_counts(len(names), test_fraction) if names else (0, 0)
        order = np.random.default_rng(int(seed)).permutation(len(names))
        result = {"train": sorted(int(i) for i in order[n_test:]), "test": sorted(int(i) for i in order[:n_test])}
    _write_splits(source, path, result, seed, test_fraction)
    return result


def _write_splits(source: DatasetSource, path: Path, splits: dict[str, list[int]], seed: int,
                  test_fraction: float) -> None:
    if source.kind == "image":  # a single image: nothing worth a file in the user's folder
        return
    doc = {"about": "train/test split written by R-CNN Explorer so the app and the commands use the same images",
           "version": 1, "seed": int(seed), "test_fraction": float(test_fraction),
           "splits": {k: [source.entries[i].name for i in v] for k, v in splits.items()}}
    try:
        atomic_write_text(path, json.dumps(doc, indent=1) + "\n")
    except OSError as exc:
        msg = (f"{path}: split could not be saved ({exc.strerror or exc}); using a split computed from "
               f"seed {seed}, which changes if images are added")
        log.warning(msg)
        source.problems.append(msg)


def split_indices(splits: dict[str, list[int]], name: str) -> list[int]:
    """The split called ``name``; ``test`` falls back to ``val`` and ``train`` to ``trainval`` (YOLO, VOC)."""
    if name in splits:
        return list(splits[name])
    fallback = {"test": ("val", "valid", "validation"), "val": ("test",), "train": ("trainval",)}
    for alt in fallback.get(name, ()):
        if alt in splits:
            return list(splits[alt])
    raise KeyError(f"no split named '{name}'; the dataset has: {', '.join(sorted(splits)) or 'none'}")
