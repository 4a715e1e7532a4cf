"""A training run's AP per class on a dataset split, cached so comparing runs again is instant.

Why per-class AP is cached beside the checkpoint (``<checkpoint>.eval.json``): running a detector over a
test split takes seconds to minutes, and comparing runs means looking at the same pairs again and again. The
cache key holds the checkpoint's size and modification time, the dataset folder, the split, and a digest of
the ground truth of every image evaluated, so relabelling a box or retraining the model computes it afresh.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.detection.training_overlap import training_overlap

#: 2 since COCO crowd regions are scored by COCO's rule (models.detection.evaluation): older entries are stale.
EVAL_CACHE_VERSION = 2


@dataclass
class RunEvaluation:
    """AP per class (VOC, IoU 0.5) of one run on one split of one dataset: ``result`` is
    ``EvaluationResult.to_dict()`` (NaN AP stored as None)."""

    checkpoint: str
    data: str
    split: str
    result: dict[str, Any]
    cached: bool = False
    #: Images of the split the model was trained on (the score is then optimistic).
    overlap: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def mAP(self) -> float:
        v = self.result.get("mAP")
        return math.nan if v is None else float(v)

    @property
    def AP(self) -> dict[str, float]:
        return {c: (math.nan if v is None else float(v)) for c, v in (self.result.get("AP") or {}).items()}


def cache_path(checkpoint: str | os.PathLike) -> Path:
    return Path(str(checkpoint) + ".eval.json")


def _fallback_cache_path(checkpoint: str | os.PathLike) -> Path:
    """For a checkpoint in a read-only folder (an installed package's models): the user cache folder."""
    from models.detection.features import cache_dir

    digest = hashlib.sha1(str(Path(checkpoint).resolve()).encode("utf-8")).hexdigest()[:16]
    return cache_dir() / "run_evaluations" / f"{Path(checkpoint).name}.{digest}.eval.json"


def evaluation_key(checkpoint: str | os.PathLike, source: Any, split: str, indices: Sequence[int],
                   score_threshold: float = 0.05, iou_threshold: float = 0.5) -> str:
    """What the cached AP depends on: the checkpoint file, the dataset, the split and its ground truth."""
    from models.data.training_data import class_names_of, load_targets

    st = Path(checkpoint).stat()
    h = hashlib.sha1()
    h.update(f"{st.st_size}|{st.st_mtime_ns}|{Path(source.root).resolve()}|{split}|{score_threshold}|"
             f"{iou_threshold}".encode())
    names = class_names_of(source)
    for i in indices:
        entry = source.entries[i]
        h.update(f"|{entry.name}".encode())
        try:
            t, _ = load_targets(source, i, names, need_image_info=False)
        except Exception as exc:  # noqa: BLE001 - an unreadable annotation is part of the state too
            h.update(f"!{type(exc).__name__}".encode())
            continue
        h.update(np.ascontiguousarray(t.boxes, dtype=np.float32).tobytes())
        h.update(("|".join(map(str, t.names)) + repr(np.asarray(t.difficult).tolist())
                  + repr(np.asarray(t.crowd).tolist())).encode())
    return h.hexdigest()


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(doc, dict) or doc.get("version") != EVAL_CACHE_VERSION or not isinstance(doc.get("entries"),
                                                                                                dict):
        return {}
    return doc["entries"]


def cached_evaluation(checkpoint: str | os.PathLike, key: str) -> dict[str, Any] | None:
    """The cached entry under ``key``, beside the checkpoint or in the user cache; None when absent."""
    for path in (cache_path(checkpoint), _fallback_cache_path(checkpoint)):
        entry = _read_cache(path).get(key)
        if isinstance(entry, dict):
            return entry
    return None


def _store(checkpoint: str | os.PathLike, key: str, entry: dict[str, Any]) -> None:
    """Add ``entry`` to the cache beside the checkpoint (atomically), else to the user cache folder."""
    from models.data.annotations.atomic import atomic_write_bytes

    for path in (cache_path(checkpoint), _fallback_cache_path(checkpoint)):
        entries = _read_cache(path)
        entries[key] = entry
        data = json.dumps({"version": EVAL_CACHE_VERSION, "entries": entries}, indent=1).encode("utf-8")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, data)
            return
        except OSError:
            continue


def evaluation_indices(source: Any, split: str = "test") -> list[int]:
    """The dataset's ``split`` (its own, else the saved seeded one that ``train`` and ``evaluate`` use);
    KeyError with a readable message when there is none."""
    from models.data.splits import dataset_splits, split_indices

    return split_indices(dataset_splits(source), split)


def evaluate_run(checkpoint: str | os.PathLike, source: Any, split: str = "test", *, device: str = "auto",
                 score_threshold: float = 0.05, iou_threshold: float = 0.5,
                 progress: Callable[[float, str], None] | None = None, cancelled: Callable[[], bool] | None = None,
                 use_cache: bool = True) -> RunEvaluation:
    """AP per class of ``checkpoint`` on ``split`` of ``source``, the same numbers as ``evaluate`` (and
    :func:`models.detection.evaluation.evaluate_detector`) gives; read from the cache when nothing changed.

    Raises CheckpointError for an unusable checkpoint, KeyError when the dataset has no such split; returns
    nothing for a cancelled run (raises :class:`EvaluationCancelled`) so a partial score is never cached.
    """
    from models.detection.checkpoints import load_detector
    from models.detection.evaluation import evaluate_detector

    indices = evaluation_indices(source, split)
    key = evaluation_key(checkpoint, source, split, indices, score_threshold, iou_threshold)
    if use_cache:
        entry = cached_evaluation(checkpoint, key)
        if entry is not None:
            return RunEvaluation(str(checkpoint), str(source.root), split, dict(entry["result"]), True,
                                 int(entry.get("overlap", 0)), list(entry.get("problems", [])))
    detector = load_detector(checkpoint, device)
    overlap = training_overlap(detector.checkpoint_info, source.root, [source.entries[i] for i in indices])
    result, problems = evaluate_detector(detector, source, indices, None, score_threshold, iou_threshold,
                                         progress=progress, cancelled=cancelled)
    if cancelled is not None and cancelled():
        raise EvaluationCancelled(f"{checkpoint}: evaluation cancelled")
    doc = result.to_dict()
    _store(checkpoint, key, {"result": doc, "overlap": overlap, "problems": problems[:50], "data": str(source.root),
                             "split": split, "computed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return RunEvaluation(str(checkpoint), str(source.root), split, doc, False, overlap, problems)


class EvaluationCancelled(RuntimeError):
    """The user cancelled an evaluation; nothing was cached."""
