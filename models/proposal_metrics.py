"""How good are proposals: recall at IoU thresholds and MABO against ground-truth boxes.

Definitions (as in the Selective Search paper, pooled over the dataset):
- a ground-truth box is *recalled* at threshold t when some proposal overlaps it with IoU ≥ t;
- MABO (mean average best overlap) is the mean, over ground-truth boxes, of the best IoU any proposal reaches.
``difficult`` (VOC) and ``crowd`` (COCO ``iscrowd``) objects are left out of both, as the issue specifies.
Pure NumPy on purpose: proposal code must not need torch.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from models.boxes_numpy import box_iou_numpy

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.5, 0.7)


#: The shared NumPy IoU (exclusive corners), under the name callers of this module use.
iou_matrix = box_iou_numpy


def best_overlaps(proposals: np.ndarray, gt_boxes: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """[len(gt)] float64: each ground-truth box's best IoU with any proposal (0 when there are none).

    Chunked over proposals so 10,000 proposals × 100 objects never builds one huge matrix.
    """
    gt = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    props = np.asarray(proposals, np.float64).reshape(-1, 4)
    best = np.zeros(gt.shape[0], np.float64)
    if gt.shape[0] == 0:
        return best
    for s in range(0, props.shape[0], chunk):
        best = np.maximum(best, iou_matrix(gt, props[s:s + chunk]).max(axis=1))
    return best


@dataclass
class ImageProposalScore:
    """One image: the best overlap of each counted ground-truth box, and how many proposals there were."""

    best_iou: np.ndarray  # [counted gt] float64
    n_proposals: int
    best_index: np.ndarray | None = None  # [counted gt] index of the best proposal (-1 when none)

    @property
    def n_gt(self) -> int:
        return int(self.best_iou.shape[0])

    def recall(self, threshold: float) -> float:
        return float(np.mean(self.best_iou >= threshold)) if self.n_gt else float("nan")

    @property
    def mabo(self) -> float:
        return float(np.mean(self.best_iou)) if self.n_gt else float("nan")


def score_image(proposals: np.ndarray, gt_boxes: np.ndarray, ignore: Sequence[bool] | np.ndarray | None = None,
                top: int | None = None) -> ImageProposalScore:
    """Score one image's proposals (best-ranked first; ``top`` keeps the first N) against its ground truth.

    ``ignore`` marks ground-truth boxes to leave out (difficult / crowd).
    """
    props = np.asarray(proposals, np.float64).reshape(-1, 4)
    if top is not None and top > 0:
        props = props[:top]
    gt = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    if ignore is not None:
        gt = gt[~np.asarray(ignore, bool).reshape(-1)]
    if gt.shape[0] == 0 or props.shape[0] == 0:
        return ImageProposalScore(np.zeros(gt.shape[0]), int(props.shape[0]), np.full(gt.shape[0], -1))
    iou = iou_matrix(gt, props)
    idx = iou.argmax(axis=1)
    return ImageProposalScore(iou[np.arange(gt.shape[0]), idx], int(props.shape[0]), idx)


def score_annotation(proposals: np.ndarray, annotation, top: int | None = None) -> ImageProposalScore:
    """Score against a ``models.annotations.Annotation``: difficult and crowd objects are left out."""
    boxes = np.array([o.box for o in annotation.objects], np.float64).reshape(-1, 4)
    ignore = np.array([bool(o.difficult or o.crowd) for o in annotation.objects], bool)
    return score_image(proposals, boxes, ignore, top)


@dataclass
class ProposalSummary:
    """Dataset-level figures (ground-truth boxes pooled over images)."""

    images: int
    gt_boxes: int
    boxes_per_image: float
    recall: dict[float, float]
    mabo: float

    def as_dict(self) -> dict[str, float | int]:
        out: dict[str, float | int] = {"images": self.images, "gt_boxes": self.gt_boxes,
                                       "boxes_per_image": self.boxes_per_image}
        for t, r in self.recall.items():
            out[f"recall@{t:g}"] = r
        out["mabo"] = self.mabo
        return out


def summarize(scores: Iterable[ImageProposalScore], thresholds: Sequence[float] = DEFAULT_THRESHOLDS
              ) -> ProposalSummary:
    """Pool per-image scores: recall and MABO over all counted ground-truth boxes; NaN when there are none."""
    scores = list(scores)
    best = np.concatenate([s.best_iou for s in scores]) if scores else np.zeros(0)
    n_gt = int(best.shape[0])
    recall = {float(t): (float(np.mean(best >= t)) if n_gt else float("nan")) for t in thresholds}
    mabo = float(np.mean(best)) if n_gt else float("nan")
    boxes = float(np.mean([s.n_proposals for s in scores])) if scores else 0.0
    return ProposalSummary(len(scores), n_gt, boxes, recall, mabo)


@dataclass
class DatasetProposalReport:
    """``evaluate_dataset``'s result: the pooled figures plus what was left out and why."""

    summary: ProposalSummary
    seconds_per_image: float  # median proposal time on the decoded image (decoding excluded)
    skipped: list[str] = field(default_factory=list)  # "image NAME: reason" / "annotation of NAME: reason"
    unannotated: int = 0  # images with no annotation at all: not counted

    def as_dict(self) -> dict[str, float | int | None]:
        """The figures of the ``eval-proposals --json`` file; NaN (no ground truth) becomes None."""
        d = self.summary.as_dict()
        d["seconds_per_image"] = self.seconds_per_image
        keys = ("images", "gt_boxes", "boxes_per_image", "recall@0.5", "recall@0.7", "mabo", "seconds_per_image")
        return {k: (None if isinstance(d[k], float) and d[k] != d[k] else d[k]) for k in keys}


def evaluate_dataset(source, mode: str = "fast", *, ks: Sequence[float] | None = None, max_side: int | None = 500,
                     top: int | None = None, seed: int = 0, min_box_size: float = 0.0,
                     progress: Callable[[int, int, str], None] | None = None,
                     cancelled: Callable[[], bool] | None = None) -> DatasetProposalReport:
    """Selective Search on every image of a ``models.datasets.DatasetSource``, scored against its annotations.

    Unreadable images or annotation files are recorded in ``skipped`` and left out; so are images without
    any annotation (counted in ``unannotated``). Boxes are mapped to displayed pixels when an image was
    decoded reduced. ``progress(done, total, name)`` after each image; ``cancelled()`` is checked before
    each one and inside the grouping (raises ``models.selective_search.Cancelled``).
    """
    from models.annotations import AnnotationError
    from models.io import ImageError, ImageInfo, read_image
    from models.selective_search import Cancelled, selective_search

    scores: list[ImageProposalScore] = []
    seconds: list[float] = []
    skipped = [f"dataset: {problem}" for problem in source.problems]
    unannotated = 0
    total = len(source.entries)
    for i, entry in enumerate(source.entries):
        if cancelled is not None and cancelled():
            raise Cancelled()
        try:
            dec = read_image(entry.path)
        except ImageError as exc:
            skipped.append(f"image {entry.name}: {exc}")
        else:
            info = ImageInfo(entry.path, dec.width, dec.height, dec.orientation, dec.stored_width,
                             dec.stored_height)
            try:
                ann = source.store.load(entry, info)
            except (AnnotationError, OSError, ValueError) as exc:
                skipped.append(f"annotation of {entry.name}: {exc}")
                ann = None
            else:
                if ann is None:
                    unannotated += 1
            if ann is not None:
                t0 = time.perf_counter()
                props = selective_search(dec.pixels, mode, ks=ks, max_side=max_side, seed=seed, top=top,
                                         min_box_size=min_box_size * dec.scale, cancelled=cancelled)
                seconds.append(time.perf_counter() - t0)
                boxes = props.boxes / np.float32(dec.scale) if dec.scale != 1.0 else props.boxes
                scores.append(score_annotation(boxes, ann))
        if progress is not None:
            progress(i + 1, total, entry.name)
    sec = statistics.median(seconds) if seconds else float("nan")
    return DatasetProposalReport(summarize(scores), sec, skipped, unannotated)


__all__ = ["DEFAULT_THRESHOLDS", "DatasetProposalReport", "ImageProposalScore", "ProposalSummary", "best_overlaps",
           "evaluate_dataset", "iou_matrix", "score_annotation", "score_image", "summarize"]
