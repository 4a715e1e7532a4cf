"""The evaluation view's background work: run the model (or read a detections file) over the chosen images and
score them; re-score at other thresholds. Plain ``fn(job, ...)`` functions for :class:`app.workers.WorkerPool`
that only call ``models`` (the view computes nothing itself).

The model runs with one torch thread, like every model job of the window (see ``app.stages.model.jobs``): the
GUI keeps a core and stays responsive while a split is evaluated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.stages.model.jobs import LOW_SCORE_THRESHOLD, is_out_of_memory, limit_torch_threads, oom_error
from app.workers import Job

#: Choices of what to evaluate.
FROM_MODEL = "model"
FROM_FILE = "file"
#: The "images" choice meaning every image (for a file: every image the file has an entry for).
ALL_IMAGES = ""


@dataclass
class EvaluationRequest:
    """What to evaluate and how (built on the GUI thread, read in the worker)."""

    mode: str  # FROM_MODEL or FROM_FILE
    source: Any  # models.data.datasets.DatasetSource
    split: str = "test"  # a split name, or ALL_IMAGES
    model: Any = None
    model_name: str = ""
    file_path: str = ""
    iou_threshold: float = 0.5
    score_threshold: float = 0.5
    use_11_point: bool = False
    coco: bool = True
    seed: int = 0
    #: Model class name → dataset class name (the Model stage's mapping; FROM_MODEL only).
    class_map: dict[str, str] = field(default_factory=dict)
    #: Images whose ground truth comes from the window's unsaved edits (already in ``source``): said in the
    #: view's status, so the figure is not mistaken for one of the files on disk.
    unsaved_images: int = 0


@dataclass
class EvaluationOutcome:
    """The report, the file's detections (FROM_FILE; stored in the session so the Detections view shows
    them), and where the time went."""

    report: Any  # models.detection.evaluation_report.EvaluationReport
    loaded: Any = None  # models.detection.result_files.LoadedDetections
    seconds: float = 0.0
    detector_seconds: float = 0.0
    #: What the user should know about the inputs (unsaved edits used, classes mapped).
    notes: list[str] = field(default_factory=list)


def images_of(source: Any, split: str, seed: int = 0) -> list[int] | None:
    """``source.entries`` indices of ``split`` (saved or seeded split, as training uses), or None for
    ALL_IMAGES. Raises KeyError with a message naming the splits there are."""
    from models.data.splits import dataset_splits, split_indices

    if split == ALL_IMAGES:
        return None
    return split_indices(dataset_splits(source, seed=seed), split)


def evaluation_job(job: Job, req: EvaluationRequest) -> EvaluationOutcome:
    """Collect detections and ground truth of the chosen images, then build the report."""
    from models.detection.evaluation import run_detector
    from models.detection.evaluation_report import build_report, inputs_from_detections
    from models.detection.result_files import load_detections

    t0 = time.perf_counter()
    source = req.source
    indices = images_of(source, req.split, req.seed)
    where = f"split {req.split}" if req.split != ALL_IMAGES else "all images"
    loaded = None
    job.progress(0.0, "starting")
    if req.mode == FROM_MODEL:
        if req.model is None:
            raise RuntimeError("no model is loaded: load one in the Model panel, or evaluate a detections file")
        limit_torch_threads()
        chosen = list(range(len(source.entries))) if indices is None else indices
        if not chosen:
            raise RuntimeError(f"{where} holds no image")
        try:
            run = run_detector(req.model, source, chosen, None, LOW_SCORE_THRESHOLD,
                               progress=lambda f, m: job.progress(0.97 * f, m),
                               cancelled=lambda: job.cancelled, class_map=req.class_map)
        except Exception as exc:
            if is_out_of_memory(exc):
                raise oom_error(str(getattr(req.model, "device", "?")), "evaluating the model") from exc
            raise
        what = f"{req.model_name or 'the model'} on {where}"
    else:
        job.progress(0.0, f"reading {Path(req.file_path).name}")
        loaded = load_detections(req.file_path, source)
        job.check()
        run = inputs_from_detections(source, loaded.by_path, indices,
                                     progress=lambda f, m: job.progress(0.9 * f, m),
                                     cancelled=lambda: job.cancelled)
        run.problems[:0] = list(loaded.problems)
        what = f"{Path(req.file_path).name} on {where}"
    job.check()
    detector_seconds = time.perf_counter() - t0
    if not run.indices:
        raise RuntimeError(f"no image of {where} could be evaluated"
                           + (f": {run.problems[0]}" if run.problems else ""))
    job.progress(0.97, "scoring")
    names = [source.entries[i].name for i in run.indices]
    report = build_report(run, names, req.iou_threshold, req.score_threshold, req.use_11_point, req.coco,
                          description=f"{what} ({len(run.indices)} images)")
    job.progress(1.0, "done")
    return EvaluationOutcome(report, loaded, time.perf_counter() - t0, detector_seconds, input_notes(req))


def input_notes(req: EvaluationRequest) -> list[str]:
    """Sentences for the status line about where the ground truth and the class names came from."""
    notes = []
    if req.unsaved_images:
        notes.append(f"Ground truth includes your unsaved edits of {req.unsaved_images} image"
                     f"{'s' if req.unsaved_images != 1 else ''}.")
    pairs = [f"{m} → {d}" for m, d in req.class_map.items() if d and d != m] if req.mode == FROM_MODEL else []
    if pairs:
        notes.append("Model classes scored as the dataset's: " + ", ".join(pairs) + ".")
    return notes


def rescore_job(job: Job, report: Any, iou_threshold: float, score_threshold: float) -> Any:
    """The same detections under other thresholds (no model run)."""
    from models.detection.evaluation_report import rescore

    job.check()
    return rescore(report, iou_threshold, score_threshold)


__all__ = ["ALL_IMAGES", "FROM_FILE", "FROM_MODEL", "EvaluationOutcome", "EvaluationRequest", "evaluation_job",
           "images_of", "rescore_job"]
