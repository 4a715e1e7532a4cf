"""Detection quality: PASCAL VOC AP at IoU 0.5 per class and mAP, with COCO AP@[.5:.95] beside it.

VOC AP follows the VOC devkit (``VOCevalcls``/``voc_eval.py``) exactly, because that is the number papers
report and users compare against:

* detections of a class, over all images, are sorted by score (ties keep input order);
* each is matched to the ground-truth box of that class in its image with the highest IoU; it is a true
  positive when that IoU exceeds the threshold (strictly, as the devkit) and the box is not taken yet, a
  false positive when the box is taken (a duplicate) or the IoU is too low;
* a detection whose best match is a ``difficult`` box is ignored: such objects are neither misses nor false
  positives;
* a COCO crowd region (``iscrowd``: many objects in one box, none of them boxed) is scored as COCO scores it,
  since the devkit has no such thing: it takes no part in the matching, it is never missed, and a detection
  that would be a false positive is ignored when at least ``iou_threshold`` of its own area lies inside a
  crowd region of its class (COCO's intersection over the detection's area). A detection of one person in a
  crowd is not wrong, only unscored; scoring crowds as VOC's difficult objects (a match needs IoU with the
  whole region) counted such detections as false positives: 0.03-0.07 of AP@0.5 on coco_tiny's folds with
  crowds, the whole gap to pycocotools' AP@0.5 there (bench/README.md, "Crowd regions scored as COCO scores
  them");
* AP is the area under the interpolated precision/recall curve: all points (VOC 2010+) by default, or the
  11-point average of VOC 2007 as an option;
* mAP is the mean over classes with at least one non-difficult ground-truth object.

COCO AP comes from pycocotools on the same inputs (difficult objects become ``iscrowd`` there, which is
how COCO ignores regions), so the two can be read side by side.

Boxes are float ``[x1, y1, x2, y2]`` with x2/y2 exclusive, so a box's area is ``(x2-x1)·(y2-y1)`` with no
``+1`` (the devkit adds 1 because its corners are inclusive; both describe the same pixels).
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.boxes_numpy import box_ioa_numpy, box_iou_numpy

ProgressFn = Callable[[float, str], None]


@dataclass
class ImageGroundTruth:
    """One image's ground truth: boxes [N, 4], labels (class names or ids 1..K), difficult flags, and which boxes
    are COCO crowd regions (scored by COCO's rule, whatever their difficult flag says)."""

    boxes: np.ndarray
    labels: Sequence[Any]
    difficult: np.ndarray | None = None
    crowd: np.ndarray | None = None


@dataclass
class ImageDetections:
    """One image's detections: boxes [M, 4], scores [M], labels (class names or ids 1..K)."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: Sequence[Any]


@dataclass
class EvaluationResult:
    """The numbers a user reads: mAP, AP per class, COCO AP, and the counts behind them."""

    mAP: float
    #: AP per class at ``iou_threshold``; NaN for a class without non-difficult ground truth.
    AP: dict[str, float]
    #: COCO AP@[.5:.95] (None when pycocotools was not run or there is no ground truth).
    coco_AP: float | None
    coco_AP50: float | None
    coco_AP75: float | None
    n_images: int
    #: Non-difficult ground-truth objects per class (the recall denominator).
    n_ground_truth: dict[str, int]
    #: Difficult objects and crowd regions per class (neither counted nor missed).
    n_difficult: dict[str, int]
    n_detections: dict[str, int]
    true_positives: dict[str, int]
    false_positives: dict[str, int]
    iou_threshold: float = 0.5
    interpolation: str = "all-point"
    #: (recall, precision) per class, in score order: for plotting PR curves.
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)
    #: The detection score at each point of ``curves`` (same length): where a score threshold sits on the curve.
    curve_scores: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    #: COCO AP@[.5:.95] per class (NaN for a class without ground truth); empty when COCO AP was not run.
    coco_AP_per_class: dict[str, float] = field(default_factory=dict)
    #: COCO AP@0.5 per class (its 101-point interpolation, crowd boxes as ``iscrowd``); as above.
    coco_AP50_per_class: dict[str, float] = field(default_factory=dict)

    @property
    def classes_evaluated(self) -> list[str]:
        return [c for c, n in self.n_ground_truth.items() if n > 0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"mAP", "AP": {class: AP}, "coco_AP", ...}``; NaN becomes null."""

        def num(v: float | None) -> float | None:
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 6)

        return {
            "mAP": num(self.mAP),
            "AP": {c: num(v) for c, v in self.AP.items()},
            "coco_AP": num(self.coco_AP),
            "coco_AP50": num(self.coco_AP50),
            "coco_AP75": num(self.coco_AP75),
            "iou_threshold": self.iou_threshold,
            "interpolation": self.interpolation,
            "images": self.n_images,
            "ground_truth": dict(self.n_ground_truth),
            "difficult": dict(self.n_difficult),
            "detections": dict(self.n_detections),
            "true_positives": dict(self.true_positives),
            "false_positives": dict(self.false_positives),
        }


def _get(obj: Any, name: str) -> Any:
    """Read a field from a dataclass, any object with attributes (e.g. a detector's Detections) or a dict."""
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _label_names(labels: Any, class_names: Sequence[str], n: int) -> list[str]:
    if labels is None:
        return []
    out: list[str] = []
    for lab in list(np.asarray(labels).tolist() if isinstance(labels, np.ndarray) else labels)[:n]:
        if isinstance(lab, str):
            out.append(lab)
        else:
            k = int(lab)
            if not 1 <= k <= len(class_names):
                raise ValueError(f"label id {k} is outside 1..{len(class_names)} (ids count from 1; 0 is background)")
            out.append(class_names[k - 1])
    return out


def _boxes(b: Any) -> np.ndarray:
    if b is None:
        return np.zeros((0, 4), np.float64)
    if hasattr(b, "detach"):
        b = b.detach().cpu().numpy()
    return np.asarray(b, np.float64).reshape(-1, 4)


def _vector(v: Any, n: int, dtype: Any, default: Any) -> np.ndarray:
    if v is None:
        return np.full(n, default, dtype)
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    arr = np.asarray(v, dtype).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"expected {n} values, got {arr.shape[0]}")
    return arr


#: The shared NumPy IoU (exclusive corners); the name this module has always exported.
iou_matrix = box_iou_numpy


def voc_ap(recall: np.ndarray, precision: np.ndarray, use_11_point: bool = False) -> float:
    """Area under the PR curve with precision made monotone (devkit ``VOCap``), or the VOC07 11-point mean."""
    rec = np.asarray(recall, np.float64)
    prec = np.asarray(precision, np.float64)
    if use_11_point:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            p = float(prec[rec >= t].max()) if np.any(rec >= t) else 0.0
            ap += p / 11.0
        return float(ap)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


@dataclass
class _Prepared:
    gt_boxes: list[np.ndarray]
    gt_names: list[list[str]]
    gt_difficult: list[np.ndarray]  # difficult or crowd: not counted, never missed
    gt_crowd: list[np.ndarray]  # crowd regions (COCO's rule)
    det_boxes: list[np.ndarray]
    det_scores: list[np.ndarray]
    det_names: list[list[str]]
    classes: list[str]


def _prepare(ground_truth: Sequence[Any], detections: Sequence[Any], class_names: Sequence[str]) -> _Prepared:
    if len(ground_truth) != len(detections):
        raise ValueError(f"{len(ground_truth)} ground-truth images but {len(detections)} detection lists; "
                         "pass one (possibly empty) entry per image, in the same order")
    classes = list(class_names)
    p = _Prepared([], [], [], [], [], [], [], classes)
    for gt, det in zip(ground_truth, detections, strict=True):
        gb = _boxes(_get(gt, "boxes"))
        p.gt_boxes.append(gb)
        p.gt_names.append(_label_names(_get(gt, "labels"), class_names, gb.shape[0]))
        if len(p.gt_names[-1]) != gb.shape[0]:
            raise ValueError(f"{gb.shape[0]} ground-truth boxes but {len(p.gt_names[-1])} labels")
        crowd = _vector(_get(gt, "crowd"), gb.shape[0], bool, False)
        p.gt_crowd.append(crowd)
        p.gt_difficult.append(_vector(_get(gt, "difficult"), gb.shape[0], bool, False) | crowd)
        db = _boxes(_get(det, "boxes") if det is not None else None)
        p.det_boxes.append(db)
        p.det_scores.append(_vector(_get(det, "scores") if det is not None else None, db.shape[0], np.float64, 1.0))
        p.det_names.append(_label_names(_get(det, "labels") if det is not None else None, class_names, db.shape[0]))
        if len(p.det_names[-1]) != db.shape[0]:
            raise ValueError(f"{db.shape[0]} detected boxes but {len(p.det_names[-1])} labels")
        for name in p.gt_names[-1] + p.det_names[-1]:
            if name not in classes:
                classes.append(name)
    return p


def _evaluate_class(p: _Prepared, cls: str, iou_threshold: float
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """(scores, tp, fp) of the class's detections in score order, the non-difficult count, the difficult count
    (crowd regions included)."""
    scores_all: list[np.ndarray] = []
    image_of: list[np.ndarray] = []
    best_gt: list[np.ndarray] = []
    best_iou: list[np.ndarray] = []
    in_crowd: list[np.ndarray] = []
    gt_diff: list[np.ndarray] = []
    npos = ndiff = 0
    for i in range(len(p.gt_boxes)):
        gsel = np.array([n == cls for n in p.gt_names[i]], bool)
        dsel = np.array([n == cls for n in p.det_names[i]], bool)
        g = p.gt_boxes[i][gsel] if gsel.size else np.zeros((0, 4))
        diff = p.gt_difficult[i][gsel] if gsel.size else np.zeros(0, bool)
        crowd = p.gt_crowd[i][gsel] if gsel.size else np.zeros(0, bool)
        npos += int((~diff).sum())
        ndiff += int(diff.sum())
        gt_diff.append(diff)
        d = p.det_boxes[i][dsel] if dsel.size else np.zeros((0, 4))
        if d.shape[0] == 0:
            continue
        ious = np.where(crowd[None, :], -np.inf, iou_matrix(d, g))  # a crowd region matches nothing
        if g.shape[0]:
            best_gt.append(ious.argmax(axis=1))
            best_iou.append(ious.max(axis=1))
        else:
            best_gt.append(np.full(d.shape[0], -1))
            best_iou.append(np.full(d.shape[0], -np.inf))
        in_crowd.append(crowd_covers(d, g[crowd], iou_threshold))
        scores_all.append(p.det_scores[i][dsel])
        image_of.append(np.full(d.shape[0], i))
    if not scores_all:
        return np.zeros(0), np.zeros(0), np.zeros(0), npos, ndiff
    scores = np.concatenate(scores_all)
    images = np.concatenate(image_of)
    gts = np.concatenate(best_gt)
    ovs = np.concatenate(best_iou)
    inside = np.concatenate(in_crowd)
    order = np.argsort(-scores, kind="stable")
    taken = [np.zeros(d.shape[0], bool) for d in gt_diff]
    tp = np.zeros(order.size)
    fp = np.zeros(order.size)
    for rank, k in enumerate(order):
        img, j, ov = images[k], gts[k], ovs[k]
        if ov > iou_threshold and gt_diff[img][j]:
            continue  # matches a difficult object: neither right nor wrong
        if ov > iou_threshold and not taken[img][j]:
            tp[rank] = 1.0
            taken[img][j] = True
        elif not inside[k]:
            fp[rank] = 1.0  # a duplicate of an object already found, or no match
        # else: a would-be false positive inside a crowd region: unscored, as COCO scores it
    keep = (tp + fp) > 0
    return scores[order][keep], tp[keep], fp[keep], npos, ndiff


def crowd_covers(detections: np.ndarray, crowds: np.ndarray, threshold: float) -> np.ndarray:
    """[N] bool: at least ``threshold`` of each detection's area lies inside one of the ``crowds`` boxes (COCO's
    overlap of a detection with a crowd region; the region is not matched, so ≥ as COCO compares)."""
    d = np.asarray(detections, np.float64).reshape(-1, 4)
    if d.shape[0] == 0 or np.asarray(crowds).size == 0:
        return np.zeros(d.shape[0], bool)
    return box_ioa_numpy(d, crowds).max(axis=1) >= threshold


def evaluate_detections(ground_truth: Sequence[Any], detections: Sequence[Any], class_names: Sequence[str],
                        iou_threshold: float = 0.5, use_11_point: bool = False, coco: bool = True,
                        image_sizes: Sequence[tuple[int, int]] | None = None) -> EvaluationResult:
    """VOC AP per class and mAP, plus COCO AP, for one list of ground truths and detections per image.

    ``ground_truth[i]`` and ``detections[i]`` belong to the same image; each is an ImageGroundTruth /
    ImageDetections, a dict with the same keys, or any object with those attributes (a detector's
    ``Detections``). Labels are class names or ids 1..K into ``class_names``; names not in
    ``class_names`` are appended (a detector's class the data lacks gets NaN AP and stays out of mAP).
    ``image_sizes`` ((w, h) per image) only fill in COCO's image records.
    """
    p = _prepare(ground_truth, detections, class_names)
    ap: dict[str, float] = {}
    n_gt: dict[str, int] = {}
    n_diff: dict[str, int] = {}
    n_det: dict[str, int] = {}
    tps: dict[str, int] = {}
    fps: dict[str, int] = {}
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    curve_scores: dict[str, np.ndarray] = {}
    for cls in p.classes:
        scores, tp, fp, npos, ndiff = _evaluate_class(p, cls, iou_threshold)
        n_gt[cls], n_diff[cls] = npos, ndiff
        n_det[cls] = int(sum(n == cls for names in p.det_names for n in names))
        tps[cls], fps[cls] = int(tp.sum()), int(fp.sum())
        if npos == 0:
            ap[cls] = float("nan")
            continue
        ctp, cfp = np.cumsum(tp), np.cumsum(fp)
        rec = ctp / npos
        prec = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
        curves[cls] = (rec, prec)
        curve_scores[cls] = scores
        ap[cls] = voc_ap(rec, prec, use_11_point) if tp.size else 0.0
    valid = [v for c, v in ap.items() if n_gt[c] > 0]
    m_ap = float(np.mean(valid)) if valid else float("nan")
    coco_per_class: dict[str, float] = {}
    coco_per_class50: dict[str, float] = {}
    coco_stats = _coco_eval(p, image_sizes, coco_per_class, coco_per_class50) if coco else None
    return EvaluationResult(
        mAP=m_ap, AP=ap,
        coco_AP=coco_stats[0] if coco_stats else None,
        coco_AP50=coco_stats[1] if coco_stats else None,
        coco_AP75=coco_stats[2] if coco_stats else None,
        n_images=len(p.gt_boxes), n_ground_truth=n_gt, n_difficult=n_diff, n_detections=n_det,
        true_positives=tps, false_positives=fps, iou_threshold=iou_threshold,
        interpolation="11-point" if use_11_point else "all-point", curves=curves, curve_scores=curve_scores,
        coco_AP_per_class=coco_per_class, coco_AP50_per_class=coco_per_class50)


def coco_ap(p: _Prepared, image_sizes: Sequence[tuple[int, int]] | None = None
            ) -> tuple[float, float, float] | None:
    """(AP@[.5:.95], AP@.5, AP@.75) from pycocotools; None without ground truth or without pycocotools."""
    return _coco_eval(p, image_sizes, None)


def _coco_eval(p: _Prepared, image_sizes: Sequence[tuple[int, int]] | None,
               per_class: dict[str, float] | None,
               per_class50: dict[str, float] | None = None) -> tuple[float, float, float] | None:
    """:func:`coco_ap`, also filling ``per_class`` (class → AP@[.5:.95]) and ``per_class50`` (class → AP@0.5)
    when given.

    Per-class AP is the mean of COCOeval's precision array over IoU thresholds and recall points for that
    category (all areas, 100 detections), the same average its ``stats[0]`` takes over every category.
    """
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        return None
    cat_id = {c: k + 1 for k, c in enumerate(p.classes)}
    images, anns, results = [], [], []
    for i, gb in enumerate(p.gt_boxes):
        w, h = image_sizes[i] if image_sizes is not None else (0, 0)
        images.append({"id": i + 1, "width": int(w), "height": int(h)})
        for b, name, diff in zip(gb, p.gt_names[i], p.gt_difficult[i], strict=True):
            bw, bh = float(b[2] - b[0]), float(b[3] - b[1])
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": cat_id[name],
                         "bbox": [float(b[0]), float(b[1]), bw, bh], "area": bw * bh, "iscrowd": int(bool(diff))})
        for b, s, name in zip(p.det_boxes[i], p.det_scores[i], p.det_names[i], strict=True):
            results.append({"image_id": i + 1, "category_id": cat_id[name],
                            "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                            "score": float(s)})
    if not any(not a["iscrowd"] for a in anns):
        return None
    if not results:
        empty = {c: 0.0 if any(not a["iscrowd"] and a["category_id"] == k for a in anns) else float("nan")
                 for c, k in cat_id.items()}
        for target in (per_class, per_class50):
            if target is not None:
                target.update(empty)
        return 0.0, 0.0, 0.0
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and its table
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns,
                      "categories": [{"id": k, "name": c} for c, k in cat_id.items()]}
        gt.createIndex()
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = [max(float(v), 0.0) for v in ev.stats[:3]]  # -1 means "no data" there; we return None above
    precision = ev.eval["precision"]  # [IoU thresholds, recall points, categories, areas, max dets]
    order = list(ev.params.catIds)
    for target, thresholds in ((per_class, slice(None)), (per_class50, slice(0, 1))):  # all IoUs; 0.5 alone
        if target is None:
            continue
        for c, cid in cat_id.items():
            pr = precision[thresholds, :, order.index(cid), 0, -1]
            valid = pr[pr > -1]
            target[c] = float(valid.mean()) if valid.size else float("nan")
    return stats[0], stats[1], stats[2]


# ----------------------------------------------------------------------------------- running detectors


def detect_image(detector: Any, pixels: np.ndarray, score_threshold: float = 0.05, pixel_scale: float = 1.0
                 ) -> ImageDetections:
    """Run ``detector.predict`` on one RGB image; boxes back in displayed full-resolution pixels, labels as names.

    ``pixel_scale`` is ``DecodedImage.scale`` (below 1 when a huge image was decoded reduced).
    """
    det = detector.predict([pixels], score_threshold=score_threshold)[0]
    names = _get(det, "class_names") or getattr(detector, "class_names", None) or []
    boxes = _boxes(_get(det, "boxes"))
    if pixel_scale and pixel_scale != 1.0:
        boxes = boxes / pixel_scale
    scores = _vector(_get(det, "scores"), boxes.shape[0], np.float64, 1.0)
    labels = _label_names(_get(det, "labels"), list(names), boxes.shape[0])
    return ImageDetections(boxes, scores, labels)


@dataclass
class DetectorRun:
    """A detector's detections on dataset images with their ground truth, one entry per image that was read.

    Kept apart from the scoring so that the evaluation view can re-score (another IoU, another score
    threshold, a confusion matrix) without running the network again, and so that the view and ``evaluate``
    score exactly the same inputs.
    """

    #: ``source.entries`` index of each image (skipped images are absent).
    indices: list[int]
    ground_truth: list[ImageGroundTruth]
    detections: list[ImageDetections]
    #: (width, height) per image (COCO's image records).
    sizes: list[tuple[int, int]]
    #: The detector's classes, then any extra ones in the data.
    class_names: list[str]
    #: Messages for the user (unreadable images, dropped objects).
    problems: list[str]
    #: True when ``cancelled`` stopped the run before every image was seen.
    cancelled: bool = False


def run_detector(detector: Any, source: Any, indices: Sequence[int], class_names: Sequence[str] | None = None,
                 score_threshold: float = 0.05, progress: ProgressFn | None = None,
                 cancelled: Callable[[], bool] | None = None,
                 class_map: Mapping[str, str] | None = None) -> DetectorRun:
    """Run a detector over ``source.entries[indices]`` and load their ground truth (see :class:`DetectorRun`).

    Classes are the detector's (then any extra ones in the data). ``class_map`` (model class name → dataset
    class name) renames the detector's classes first: a model that calls the dataset's "person"
    "pedestrian" is scored against the persons, not given AP 0 for a class the data lacks. Images that
    cannot be read are skipped and reported; ``cancelled`` is polled between images.
    """
    from models.data.annotations import AnnotationError
    from models.data.io import ImageError, read_image
    from models.data.training_data import class_names_of, load_targets

    mapping = {str(k): str(v) for k, v in (class_map or {}).items() if v}
    names = list(dict.fromkeys(mapping.get(n, n) for n in (class_names or getattr(detector, "class_names", [])
                                                           or [])))
    all_names = names + [n for n in class_names_of(source) if n not in names]
    run = DetectorRun([], [], [], [], names, [])
    for k, idx in enumerate(indices):
        if cancelled is not None and cancelled():
            run.problems.append(f"cancelled after {k} of {len(indices)} images")
            run.cancelled = True
            break
        entry = source.entries[idx]
        try:
            t, msgs = load_targets(source, idx, all_names)
            img = read_image(entry.path)
        except (AnnotationError, ImageError) as exc:
            run.problems.append(f"{entry.name}: {exc}; skipped")
            continue
        run.problems.extend(msgs)
        found = detect_image(detector, img.pixels, score_threshold, img.scale)
        if mapping:
            found.labels = [mapping.get(lab, lab) if isinstance(lab, str) else lab for lab in found.labels]
        run.detections.append(found)
        run.ground_truth.append(ImageGroundTruth(t.boxes, t.names, t.difficult, t.crowd))
        run.sizes.append((img.width, img.height))
        run.indices.append(int(idx))
        if progress is not None:
            progress((k + 1) / max(1, len(indices)), f"image {k + 1}/{len(indices)}")
    return run


def evaluate_detector(detector: Any, source: Any, indices: Sequence[int], class_names: Sequence[str] | None = None,
                      score_threshold: float = 0.05, iou_threshold: float = 0.5, use_11_point: bool = False,
                      progress: ProgressFn | None = None, cancelled: Callable[[], bool] | None = None,
                      coco: bool = True) -> tuple[EvaluationResult, list[str]]:
    """Run a detector over ``source.entries[indices]`` and score it; returns the result and user messages.

    :func:`run_detector` then :func:`evaluate_detections`; a cancelled run scores the images seen so far.
    """
    run = run_detector(detector, source, indices, class_names, score_threshold, progress, cancelled)
    result = evaluate_detections(run.ground_truth, run.detections, run.class_names, iou_threshold, use_11_point,
                                 coco=coco, image_sizes=run.sizes)
    return result, run.problems
