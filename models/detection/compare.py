"""The three generations side by side: accuracy, test time (proposals apart from the network), training time.

A classification + localisation model (``cls-loc``, the step before R-CNN) gets a row too. Its mAP is computed
like the detectors' (one box per image, scored), so it stands in the same column; its own three figures
(classification accuracy, mean IoU of its one box, localisation accuracy) are extra columns, left blank for
the detectors, which answer with many boxes and have no single "the" box to score that way.

Why proposals are timed apart: R-CNN and Fast R-CNN spend most of their test time in Selective Search, which
runs outside the network on the CPU; Faster R-CNN's RPN is inside it. The papers' story (R-CNN's per-proposal
CNN passes, Fast R-CNN's one shared map, Faster R-CNN's free proposals) shows only when the two are separate.
By default every cache is bypassed while timing (Selective Search recomputed, R-CNN's CNN codes recomputed),
so the seconds are what a new image costs; ``cached_proposals`` reuses the proposal cache instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass
class ModelComparison:
    """One model's row. Times are per image; ``train_seconds`` (wall) is None for checkpoints written before it
    was recorded. ``train_cpu_seconds`` is the training process's CPU time: on a shared machine the wall
    clock also counts waits for a core, so the CPU time is what a quiet machine's one-thread run would take."""

    path: str
    generation: str
    backbone: str
    images: int
    mAP: float
    coco_AP: float | None
    seconds_per_image: float  # everything predict() took
    proposal_seconds_per_image: float  # of which external proposals (0 for Faster R-CNN)
    network_seconds_per_image: float  # the rest
    train_seconds: float | None
    train_cpu_seconds: float | None = None
    # classification + localisation only (None for the detectors): models.detection.cls_loc_evaluation
    accuracy: float | None = None
    mean_iou: float | None = None
    localisation_accuracy: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Timed:
    """A detector whose ``predict`` adds up its own wall time (what ``evaluate_detector`` calls)."""

    def __init__(self, detector: Any) -> None:
        self.detector = detector
        self.class_names = list(detector.class_names)
        self.seconds = 0.0

    def predict(self, images: list[np.ndarray], score_threshold: float = 0.05) -> list:
        t0 = time.perf_counter()
        out = self.detector.predict(images, score_threshold=score_threshold)
        self.seconds += time.perf_counter() - t0
        return out


def compare_checkpoints(paths: Sequence[str], source: Any, indices: Sequence[int], *, score_threshold: float = 0.05,
                        device: str = "auto", cached_proposals: bool = False, coco: bool = True,
                        progress: Callable[[str], None] | None = None) -> tuple[list[ModelComparison], list[str]]:
    """Evaluate each checkpoint on ``source.entries[indices]``; rows in the order given, plus user messages.
    A checkpoint that cannot be loaded raises :class:`models.detection.checkpoints.CheckpointError`."""
    from models.detection.checkpoints import load_checkpoint, load_detector, model_parts
    from models.detection.evaluation import evaluate_detector
    from models.proposals.cache import ProposalCache
    from models.proposals.selective_search import warm_up

    warm_up()  # numba compilation is not a per-image cost
    rows: list[ModelComparison] = []
    problems: list[str] = []
    for path in paths:
        payload = load_checkpoint(path)
        detector = load_detector(path, device)
        if hasattr(detector, "proposal_cache") and not cached_proposals:
            detector.proposal_cache = ProposalCache(enabled=False)
        if hasattr(detector, "use_feature_cache"):
            detector.use_feature_cache = False
        if progress is not None:
            progress(f"{path}: {detector.generation} on {len(indices)} images")
        timed = _Timed(detector)
        before = float(getattr(detector, "proposal_seconds", 0.0))
        result, msgs = evaluate_detector(timed, source, list(indices), None, score_threshold, coco=coco)
        problems += [f"{path}: {m}" for m in msgs]
        n = max(result.n_images, 1)
        proposal = float(getattr(detector, "proposal_seconds", 0.0)) - before
        one_box = None
        if detector.generation == "cls-loc":  # its own figures, not timed (the row's times come from above)
            from models.detection.cls_loc_evaluation import evaluate_cls_loc_model

            one_box, _ = evaluate_cls_loc_model(detector, source, list(indices))
        extra = payload.get("extra") or {}
        train_s = extra.get("train_seconds")
        train_cpu = extra.get("train_cpu_seconds")
        rows.append(ModelComparison(
            path=str(path), generation=str(payload["generation"]),
            backbone=model_parts(payload).backbone.name, images=int(result.n_images),
            mAP=float(result.mAP), coco_AP=None if result.coco_AP is None else float(result.coco_AP),
            seconds_per_image=timed.seconds / n, proposal_seconds_per_image=proposal / n,
            network_seconds_per_image=(timed.seconds - proposal) / n,
            train_seconds=None if train_s is None else float(train_s),
            train_cpu_seconds=None if train_cpu is None else float(train_cpu),
            accuracy=None if one_box is None else float(one_box.accuracy),
            mean_iou=None if one_box is None else float(one_box.mean_iou),
            localisation_accuracy=None if one_box is None else float(one_box.localisation_accuracy)))
    return rows, problems


def format_comparison(rows: Sequence[ModelComparison]) -> str:
    """A fixed-width table, one row per model. The classification + localisation columns appear only when a
    row has them, blank for the detectors."""
    head = ["model", "generation", "backbone", "images", "mAP@0.5", "COCO AP", "s/image", "proposals s",
            "network s", "train time", "train CPU"]
    one_box = any(r.accuracy is not None for r in rows)
    if one_box:
        head += ["cls acc", "mean IoU", "loc acc"]
    table = [head]
    for r in rows:
        train = "n/a" if r.train_seconds is None else f"{r.train_seconds / 60:.1f} min"
        train_cpu = "n/a" if r.train_cpu_seconds is None else f"{r.train_cpu_seconds / 60:.1f} min"
        row = [r.path, r.generation, r.backbone, str(r.images), f"{r.mAP:.4f}",
               "n/a" if r.coco_AP is None else f"{r.coco_AP:.4f}", f"{r.seconds_per_image:.3f}",
               f"{r.proposal_seconds_per_image:.3f}", f"{r.network_seconds_per_image:.3f}", train, train_cpu]
        if one_box:
            row += ["" if v is None else f"{v:.3f}" for v in (r.accuracy, r.mean_iou, r.localisation_accuracy)]
        table.append(row)
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths,
                                                                                                  strict=True)))
                     for row in table)


__all__ = ["ModelComparison", "compare_checkpoints", "format_comparison"]
