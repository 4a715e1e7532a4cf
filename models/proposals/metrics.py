"""How good are proposals: recall at IoU thresholds, average recall and MABO against ground-truth boxes.

Definitions (as in the Selective Search paper and Hosang et al. 2015, pooled over the dataset):
- a ground-truth box is *recalled* at threshold t when some proposal overlaps it with IoU ≥ t;
- MABO (mean average best overlap) is the mean, over ground-truth boxes, of the best IoU any proposal reaches;
- AR (average recall) is recall averaged over COCO's IoU thresholds 0.50:0.05:0.95. Hosang et al. showed it
  tracks a detector's mAP better than recall at any single threshold, because it rewards tight boxes.
  Each ground-truth box counts its own best proposal (one proposal may cover two objects), as proposal
  papers do; COCO's detection AR matches one-to-one, which only matters for near-identical objects.
- *budget* figures use only the N best-ranked boxes of each image (fewer when an image has fewer): the
  recall-for-boxes trade that decides how many proposals a detector must look at.
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

#: The two thresholds of the headline read-outs (the paper's and a stricter one).
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.5, 0.7)
#: COCO's IoU thresholds 0.50:0.05:0.95, rounded so that 0.9 is 0.9 and not 0.8999…
AR_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
#: Budgets reported by ``eval-proposals``: figures with only the N best-ranked boxes of each image.
DEFAULT_BUDGETS: tuple[int, ...] = (100, 300, 1000, 2000)
#: Budgets of a recall-vs-number-of-proposals curve (the dialog's plot).
CURVE_BUDGETS: tuple[int, ...] = (10, 20, 50, 100, 200, 300, 500, 1000, 1500, 2000, 3000, 5000, 10000)


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


def recall_at(best_iou: np.ndarray, threshold: float) -> float:
    """Fraction of ground-truth boxes whose best overlap is ≥ ``threshold``; NaN without ground truth."""
    best = np.asarray(best_iou, np.float64).reshape(-1)
    return float(np.mean(best >= threshold)) if best.shape[0] else float("nan")


def average_recall(best_iou: np.ndarray, thresholds: Sequence[float] = AR_THRESHOLDS) -> float:
    """Recall averaged over ``thresholds`` (COCO's 0.50:0.05:0.95 by default); NaN without ground truth."""
    best = np.asarray(best_iou, np.float64).reshape(-1)
    if best.shape[0] == 0:
        return float("nan")
    return float(np.mean([np.mean(best >= t) for t in thresholds]))


@dataclass
class ImageProposalScore:
    """One image: the best overlap of each counted ground-truth box, and how many proposals there were.

    ``budget_best[n]`` is each counted box's best overlap among the ``n`` best-ranked proposals only.
    """

    best_iou: np.ndarray  # [counted gt] float64
    n_proposals: int
    best_index: np.ndarray | None = None  # [counted gt] index of the best proposal (-1 when none)
    budget_best: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def n_gt(self) -> int:
        return int(self.best_iou.shape[0])

    def recall(self, threshold: float) -> float:
        return recall_at(self.best_iou, threshold)

    @property
    def mabo(self) -> float:
        return float(np.mean(self.best_iou)) if self.n_gt else float("nan")

    @property
    def average_recall(self) -> float:
        return average_recall(self.best_iou)

    def at_budget(self, n: int) -> np.ndarray:
        """Best overlaps among the ``n`` best-ranked proposals (``n`` must be one of the scored budgets)."""
        if n >= self.n_proposals:
            return self.best_iou
        return self.budget_best[n]


def score_image(proposals: np.ndarray, gt_boxes: np.ndarray, ignore: Sequence[bool] | np.ndarray | None = None,
                top: int | None = None, budgets: Sequence[int] = DEFAULT_BUDGETS) -> ImageProposalScore:
    """Score one image's proposals (best-ranked first; ``top`` keeps the first N) against its ground truth.

    ``ignore`` marks ground-truth boxes to leave out (difficult / crowd). ``budgets`` adds the best overlaps
    among the first N proposals for each N (one running maximum over the ranks, so many budgets cost one).
    """
    props = np.asarray(proposals, np.float64).reshape(-1, 4)
    if top is not None and top > 0:
        props = props[:top]
    gt = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    if ignore is not None:
        gt = gt[~np.asarray(ignore, bool).reshape(-1)]
    n_props = int(props.shape[0])
    wanted = sorted({int(b) for b in budgets if int(b) > 0})
    if gt.shape[0] == 0 or n_props == 0:
        zeros = np.zeros(gt.shape[0])
        return ImageProposalScore(zeros, n_props, np.full(gt.shape[0], -1),
                                  {b: zeros for b in wanted if b < n_props})
    iou = iou_matrix(gt, props)
    idx = iou.argmax(axis=1)
    by_budget: dict[int, np.ndarray] = {}
    running = np.zeros(gt.shape[0], np.float64)
    done = 0
    for b in wanted:
        if b >= n_props:
            break
        running = np.maximum(running, iou[:, done:b].max(axis=1))
        done = b
        by_budget[b] = running.copy()
    return ImageProposalScore(iou[np.arange(gt.shape[0]), idx], n_props, idx, by_budget)


def score_annotation(proposals: np.ndarray, annotation, top: int | None = None,
                     budgets: Sequence[int] = DEFAULT_BUDGETS) -> ImageProposalScore:
    """Score against a ``models.data.annotations.Annotation``: difficult and crowd objects are left out."""
    boxes = np.array([o.box for o in annotation.objects], np.float64).reshape(-1, 4)
    ignore = np.array([bool(o.difficult or o.crowd) for o in annotation.objects], bool)
    return score_image(proposals, boxes, ignore, top, budgets)


@dataclass
class BudgetFigures:
    """Pooled figures with at most ``budget`` best-ranked boxes per image."""

    budget: int
    boxes_per_image: float  # mean of min(budget, boxes of the image)
    recall: dict[float, float]
    average_recall: float
    mabo: float


@dataclass
class ProposalSummary:
    """Dataset-level figures (ground-truth boxes pooled over images).

    ``recall`` has every threshold summarised (by default COCO's ten, which include 0.5 and 0.7);
    ``budgets`` the same figures with only the N best-ranked boxes per image, keyed by N.
    """

    images: int
    gt_boxes: int
    boxes_per_image: float
    recall: dict[float, float]
    mabo: float
    average_recall: float = float("nan")
    budgets: dict[int, BudgetFigures] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float | int]:
        """Flat keys: ``recall@T`` per threshold, ``ar``, ``mabo``, and per budget N ``recall@0.5@N``,
        ``recall@0.7@N``, ``ar@N``, ``mabo@N``, ``boxes_per_image@N``."""
        out: dict[str, float | int] = {"images": self.images, "gt_boxes": self.gt_boxes,
                                       "boxes_per_image": self.boxes_per_image}
        for t, r in self.recall.items():
            out[f"recall@{t:g}"] = r
        out["mabo"] = self.mabo
        out["ar"] = self.average_recall
        for n, f in self.budgets.items():
            out[f"boxes_per_image@{n}"] = f.boxes_per_image
            for t in DEFAULT_THRESHOLDS:
                if t in f.recall:
                    out[f"recall@{t:g}@{n}"] = f.recall[t]
            out[f"ar@{n}"] = f.average_recall
            out[f"mabo@{n}"] = f.mabo
        return out


def _pooled(best: np.ndarray, thresholds: Sequence[float]) -> tuple[dict[float, float], float, float]:
    recall = {float(t): recall_at(best, t) for t in thresholds}
    mabo = float(np.mean(best)) if best.shape[0] else float("nan")
    return recall, average_recall(best), mabo


def summarize(scores: Iterable[ImageProposalScore], thresholds: Sequence[float] = AR_THRESHOLDS,
              budgets: Sequence[int] = DEFAULT_BUDGETS) -> ProposalSummary:
    """Pool per-image scores: recall, AR and MABO over all counted ground-truth boxes; NaN when there are none.

    ``budgets`` adds the figures at each box budget (the scores must have been computed with them). AR is
    always over COCO's thresholds, whatever ``thresholds`` lists.
    """
    scores = list(scores)
    best = np.concatenate([s.best_iou for s in scores]) if scores else np.zeros(0)
    recall, ar, mabo = _pooled(best, thresholds)
    boxes = float(np.mean([s.n_proposals for s in scores])) if scores else 0.0
    figures: dict[int, BudgetFigures] = {}
    for n in sorted({int(b) for b in budgets}):
        if any(n < s.n_proposals and n not in s.budget_best for s in scores):
            raise ValueError(f"budget {n} was not scored; pass it to score_image(budgets=...)")
        at = np.concatenate([s.at_budget(n) for s in scores]) if scores else np.zeros(0)
        r, a, m = _pooled(at, thresholds)
        used = float(np.mean([min(n, s.n_proposals) for s in scores])) if scores else 0.0
        figures[n] = BudgetFigures(n, used, r, a, m)
    return ProposalSummary(len(scores), int(best.shape[0]), boxes, recall, mabo, ar, figures)


def curve_points(summary: ProposalSummary) -> dict[str, list[float]]:
    """The two curves of a summary as plain lists (JSON-ready): recall per IoU threshold (all boxes), and per
    budget the mean boxes used with recall@0.5, recall@0.7, AR and MABO at that budget."""
    budgets = list(summary.budgets.values())
    return {"iou": list(summary.recall.keys()), "recall": list(summary.recall.values()),
            "budget": [float(f.budget) for f in budgets], "boxes": [f.boxes_per_image for f in budgets],
            "ar": [f.average_recall for f in budgets], "recall@0.5": [f.recall.get(0.5, float("nan")) for f in budgets],
            "recall@0.7": [f.recall.get(0.7, float("nan")) for f in budgets], "mabo": [f.mabo for f in budgets]}


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
        first = ("images", "gt_boxes", "boxes_per_image", "recall@0.5", "recall@0.7", "mabo", "seconds_per_image")
        keys = [*first, *(k for k in d if k not in first)]  # the keys of old files first, in their order
        return {k: (None if isinstance(d[k], float) and d[k] != d[k] else d[k]) for k in keys}


def evaluate_dataset(source, mode: str = "fast", *, ks: Sequence[float] | str | None = None,
                     max_side: int | None = 500, top: int | None = None, seed: int = 0, min_box_size: float = 0.0,
                     near_duplicate_iou: float | str | None = None, budgets: Sequence[int] = DEFAULT_BUDGETS,
                     strategies: Sequence | None = None,
                     progress: Callable[[int, int, str], None] | None = None,
                     cancelled: Callable[[], bool] | None = None) -> DatasetProposalReport:
    """Selective Search on every image of a ``models.data.datasets.DatasetSource``, scored against its annotations.

    Unreadable images or annotation files are recorded in ``skipped`` and left out; so are images without
    any annotation (counted in ``unannotated``). Boxes are mapped to displayed pixels when an image was
    decoded reduced. ``progress(done, total, name)`` after each image; ``cancelled()`` is checked before
    each one and inside the grouping (raises ``models.proposals.selective_search.Cancelled``).
    """
    from models.data.annotations import AnnotationError
    from models.data.io import ImageError, ImageInfo, read_image
    from models.proposals.selective_search import Cancelled, selective_search

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
                extra: dict = {} if near_duplicate_iou is None else {"near_duplicate_iou": near_duplicate_iou}
                if strategies is not None:  # groupings of one's own (a model's), in place of mode × ks
                    extra["strategies"] = strategies
                props = selective_search(dec.pixels, mode, ks=ks, max_side=max_side, seed=seed, top=top,
                                         min_box_size=min_box_size * dec.scale, cancelled=cancelled, **extra)
                seconds.append(time.perf_counter() - t0)
                boxes = props.boxes / np.float32(dec.scale) if dec.scale != 1.0 else props.boxes
                scores.append(score_annotation(boxes, ann, budgets=budgets))
        if progress is not None:
            progress(i + 1, total, entry.name)
    sec = statistics.median(seconds) if seconds else float("nan")
    return DatasetProposalReport(summarize(scores, budgets=budgets), sec, skipped, unannotated)


__all__ = ["AR_THRESHOLDS", "CURVE_BUDGETS", "DEFAULT_BUDGETS", "DEFAULT_THRESHOLDS", "BudgetFigures",
           "DatasetProposalReport", "ImageProposalScore", "ProposalSummary", "average_recall", "best_overlaps",
           "curve_points",
           "evaluate_dataset", "iou_matrix", "recall_at", "score_annotation", "score_image", "summarize"]
