"""Everything the evaluation view shows, computed once: AP per class (VOC and COCO), PR curves, the confusion
matrix and the per-image errors, from a detector's run or from a detections file — and its tables as CSV.

Why one object: the view's table, curves, matrix and worst-images list must describe the same detections
under the same thresholds, and re-scoring at another IoU or score threshold must not run the network again.
So a report keeps its inputs (:class:`models.detection.evaluation.DetectorRun`: ground truth and detections
per image) and :func:`rescore` builds a new report from them.

AP is :func:`models.detection.evaluation.evaluate_detections` on exactly the inputs ``evaluate`` would score
(``evaluate_detector`` is :func:`~models.detection.evaluation.run_detector` followed by it), so the view's AP
equals the command's. COCO AP does not depend on either threshold and is carried over when re-scoring.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from models.data.annotations.atomic import atomic_write_text
from models.detection.error_analysis import ErrorAnalysis, WorstImage, analyse_errors
from models.detection.evaluation import (
    DetectorRun,
    EvaluationResult,
    ImageDetections,
    ImageGroundTruth,
    evaluate_detections,
)
from models.detection.matching import FP_REASONS, OUTCOME_TEXT

ProgressFn = Callable[[float, str], None]


@dataclass
class EvaluationReport:
    """AP (``result``), confusion matrix and per-image errors (``analysis``) of ``inputs``, with the
    thresholds used. ``description`` says what was evaluated ("frcnn_shapes.pt on split test")."""

    result: EvaluationResult
    analysis: ErrorAnalysis
    inputs: DetectorRun
    image_names: list[str]
    iou_threshold: float
    score_threshold: float
    use_11_point: bool
    description: str = ""
    #: Seconds spent scoring (not running the detector).
    scoring_seconds: float = 0.0

    @property
    def classes(self) -> list[str]:
        """Classes with a row in the tables: the evaluation's, in its order."""
        return list(self.result.AP)

    def worst_images(self, class_name: str, by: str = "errors", limit: int | None = None) -> list[WorstImage]:
        return self.analysis.errors.worst(class_name, by, limit)


def build_report(inputs: DetectorRun, image_names: Sequence[str] | None = None, iou_threshold: float = 0.5,
                 score_threshold: float = 0.5, use_11_point: bool = False, coco: bool = True,
                 description: str = "", coco_from: EvaluationResult | None = None) -> EvaluationReport:
    """Score ``inputs``: AP at ``iou_threshold`` over every detection, and the confusion matrix and per-image
    errors of the detections scoring ≥ ``score_threshold``. ``coco_from`` reuses an earlier result's COCO
    figures (they depend on neither threshold) instead of running pycocotools again."""
    t0 = time.perf_counter()
    names = list(image_names) if image_names is not None else [str(i) for i in inputs.indices]
    run_coco = coco and coco_from is None
    result = evaluate_detections(inputs.ground_truth, inputs.detections, inputs.class_names, iou_threshold,
                                 use_11_point, coco=run_coco, image_sizes=inputs.sizes)
    if coco and coco_from is not None:
        result.coco_AP, result.coco_AP50, result.coco_AP75 = coco_from.coco_AP, coco_from.coco_AP50, coco_from.coco_AP75
        result.coco_AP_per_class = dict(coco_from.coco_AP_per_class)
    analysis = analyse_errors(inputs.ground_truth, inputs.detections, list(result.AP), inputs.indices, names,
                              iou_threshold=iou_threshold, score_threshold=score_threshold)
    return EvaluationReport(result, analysis, inputs, names, float(iou_threshold), float(score_threshold),
                            bool(use_11_point), description, time.perf_counter() - t0)


def rescore(report: EvaluationReport, iou_threshold: float | None = None, score_threshold: float | None = None
            ) -> EvaluationReport:
    """The same inputs under other thresholds (no detector run; COCO figures carried over)."""
    return build_report(report.inputs, report.image_names,
                        report.iou_threshold if iou_threshold is None else iou_threshold,
                        report.score_threshold if score_threshold is None else score_threshold,
                        report.use_11_point, coco=report.result.coco_AP is not None,
                        description=report.description, coco_from=report.result)


# ------------------------------------------------------------------------------------- detections from a file


def _resolved(path: Any) -> str:
    try:
        return str(Path(path).resolve())
    except OSError:
        return str(Path(path).absolute())


def inputs_from_detections(source: Any, by_path: dict[str, Any], indices: Sequence[int] | None = None,
                           progress: ProgressFn | None = None, cancelled: Callable[[], bool] | None = None
                           ) -> DetectorRun:
    """Ground truth and detections for scoring detections read from a file (no model, no pixels needed).

    ``by_path``: resolved image path → :class:`models.detection.detectors.base.Detections`
    (:attr:`models.detection.result_files.LoadedDetections.by_path`). ``indices``: the images to score (a
    split; an image the file has no entry for has no detections, and is said so), or None for the images in
    the file — what ``evaluate --detections`` does with and without ``--split``.
    """
    from models.data.annotations import AnnotationError
    from models.data.io import ImageError
    from models.data.training_data import class_names_of, load_targets

    keys = [_resolved(e.path) for e in source.entries]
    problems: list[str] = []
    if indices is None:
        chosen = [i for i, k in enumerate(keys) if k in by_path]
    else:
        chosen = [int(i) for i in indices]
        missing = sum(1 for i in chosen if keys[i] not in by_path)
        if missing:
            problems.append(f"{missing} of the {len(chosen)} images have no entry in the detections file; "
                            "counted as having no detections")
    names = list(class_names_of(source))
    for det in by_path.values():
        for n in getattr(det, "class_names", []) or []:
            if n not in names:
                names.append(n)
    run = DetectorRun([], [], [], [], names, problems)
    for k, i in enumerate(chosen):
        if cancelled is not None and cancelled():
            run.problems.append(f"cancelled after {k} of {len(chosen)} images")
            run.cancelled = True
            break
        try:
            t, msgs = load_targets(source, i, names, need_image_info=False)
        except (AnnotationError, ImageError) as exc:
            run.problems.append(f"{source.entries[i].name}: {exc}; skipped")
            continue
        run.problems.extend(msgs)
        det = by_path.get(keys[i])
        if det is None:
            run.detections.append(ImageDetections(np.zeros((0, 4)), np.zeros(0), []))
        else:
            run.detections.append(ImageDetections(np.asarray(det.boxes, np.float64).reshape(-1, 4),
                                                  np.asarray(det.scores, np.float64).reshape(-1), list(det.names)))
        run.ground_truth.append(ImageGroundTruth(t.boxes, t.names, t.difficult, t.crowd))
        run.sizes.append((t.width, t.height))
        run.indices.append(i)
        if progress is not None and (k % 20 == 0 or k + 1 == len(chosen)):
            progress((k + 1) / max(1, len(chosen)), f"image {k + 1}/{len(chosen)}")
    return run


# ------------------------------------------------------------------------------------------------ tables


def _num(v: float | None, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{float(v):.{digits}f}"


def ap_table_rows(report: EvaluationReport) -> list[list[str]]:
    """The AP table: header, one row per class, then the mean (AP first: the number a user looks for).
    Counts at the score threshold are the matching's (what the Detections view shows); AP uses every
    detection."""
    r = report.result
    errors = report.analysis.errors
    s = f"score ≥ {report.score_threshold:g}"
    header = ["class", f"AP@{report.iou_threshold:g} ({r.interpolation})", "COCO AP@[.5:.95]", "objects",
              "difficult", "detections", f"TP ({s})", f"FP ({s})", f"missed ({s})", f"precision ({s})",
              f"recall ({s})"]
    rows: list[list[str]] = [header]
    for c in report.classes:
        t = errors.totals(c) if c in errors.classes else {"tp": 0, "fp": 0, "missed": 0}
        prec = t["tp"] / (t["tp"] + t["fp"]) if t["tp"] + t["fp"] else float("nan")
        rec = t["tp"] / r.n_ground_truth[c] if r.n_ground_truth[c] else float("nan")
        rows.append([c, _num(r.AP[c]), _num(r.coco_AP_per_class.get(c)), str(r.n_ground_truth[c]),
                     str(r.n_difficult[c]), str(r.n_detections[c]), str(t["tp"]), str(t["fp"]), str(t["missed"]),
                     _num(prec), _num(rec)])
    rows.append([f"mean over {len(r.classes_evaluated)} classes", _num(r.mAP), _num(r.coco_AP),
                 str(sum(r.n_ground_truth.values())), str(sum(r.n_difficult.values())),
                 str(sum(r.n_detections.values())), "", "", "", "", ""])
    return rows


def worst_rows(images: Sequence[WorstImage]) -> list[list[str]]:
    """A worst-images list as table rows (header first)."""
    header = ["image", "class", "false positives", "missed", "true positives", "objects",
              *(f"FP {OUTCOME_TEXT[r]}" for r in FP_REASONS)]
    return [header] + [[w.name, w.class_name, str(w.false_positives), str(w.missed), str(w.true_positives),
                        str(w.ground_truth), *(str(w.reasons.get(r, 0)) for r in FP_REASONS)] for w in images]


def pr_curve_rows(result: EvaluationResult, class_name: str) -> list[list[str]]:
    """One class's precision–recall points (score order) with the score of each."""
    rec, prec = result.curves.get(class_name, (np.zeros(0), np.zeros(0)))
    scores = result.curve_scores.get(class_name, np.full(len(rec), np.nan))
    return [["score", "recall", "precision"]] + [[_num(s, 5), _num(a), _num(b)]
                                                 for s, a, b in zip(scores, rec, prec, strict=True)]


def csv_text(rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def write_csv(path: str | Path, rows: Sequence[Sequence[Any]]) -> None:
    """Write ``rows`` as UTF-8 CSV, atomically (a crash never leaves half a table)."""
    atomic_write_text(Path(path), csv_text(rows))


def with_description(report: EvaluationReport, description: str) -> EvaluationReport:
    return replace(report, description=description)


__all__ = ["EvaluationReport", "ap_table_rows", "build_report", "csv_text", "inputs_from_detections",
           "pr_curve_rows", "rescore", "with_description", "worst_rows", "write_csv"]
