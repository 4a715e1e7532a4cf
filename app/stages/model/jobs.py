"""The Model stage's background jobs: load a checkpoint, trace the model on one image, run it on a folder.

Each is a plain ``fn(job, ...)`` for :class:`app.workers.WorkerPool` (a QThread each) that only calls ``models``.

Why QThreads with ONE torch thread, not a worker process: torch releases the GIL inside its kernels, so a
QThread leaves the event loop free as long as the CPU has a core for it. With torch's default (one thread per
core) the kernels take every core and the window stalls (measured in issue 11: up to 185 ms with two threads
on two cores); with one intra-op thread the GUI keeps a core, and ``bench/gui.py`` measures the stall. A
process would avoid the GIL entirely but must import torch (seconds), reload the model and ship each trace
(megabytes of pooled features) back by pickling, and the other detector stages need the model in this
process anyway (they decode deltas and pool features with it). ``torch.set_num_threads`` is process-wide,
so every job calls :func:`limit_torch_threads` first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.stages.model.summary import ModelSummary, summarize
from app.workers import Job

#: Score threshold of the trace and of folder inference: the model's own default and the mAP evaluation's, low
#: enough that the detections stage's score slider re-filters without running the network again.
LOW_SCORE_THRESHOLD = 0.05

#: Intra-op threads torch may use inside the window's workers (see the module docstring).
GUI_TORCH_THREADS = 1


def limit_torch_threads(n: int | None = None) -> None:
    """Set torch's intra-op threads to ``n`` (default: GUI_TORCH_THREADS, read at call time so bench/gui.py
    can compare settings)."""
    import torch

    n = GUI_TORCH_THREADS if n is None else int(n)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA/MPS/CPU allocation failures: MemoryError, CUDA's OutOfMemoryError, or a RuntimeError saying so."""
    if isinstance(exc, MemoryError):
        return True
    import torch

    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class ModelRunError(RuntimeError):
    """A failure worth one plain sentence in the window (out of memory, device gone)."""


def oom_error(device: str, what: str) -> ModelRunError:
    """The sentence for an out-of-memory failure (after freeing what CUDA cached)."""
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001 - freeing memory is best effort
        pass
    return ModelRunError(f"out of memory on {device} while {what}; choose the CPU in the Model panel or "
                         "use smaller images")


# ----------------------------------------------------------------------------------------------- loading


@dataclass
class LoadedModel:
    model: Any  # a models.detection.detectors.base.Detector, eval mode, on ``device``
    path: str
    device: str
    summary: ModelSummary


def load_model_job(job: Job, path: str, device: str) -> LoadedModel:
    """Read ``path`` with ``weights_only=True`` (via models.detection.checkpoints), rebuild the detector, move it to
    ``device``. CheckpointError / RuntimeError messages say what is wrong with the file or the device."""
    from models.detection.checkpoints import detector_from_payload, load_checkpoint, resolve_device

    limit_torch_threads()
    job.progress(0.1, "reading")
    payload = load_checkpoint(path)
    job.check()
    job.progress(0.5, "building")
    model = detector_from_payload(payload, path)
    model.checkpoint_info = {k: payload.get(k) for k in ("epoch", "split", "config", "extra")}
    target = resolve_device(device)
    job.check()
    try:
        model = model.to(target).eval()
    except Exception as exc:
        if is_out_of_memory(exc):
            raise oom_error(str(target), "moving the model there") from exc
        raise
    job.progress(1.0, "loaded")
    return LoadedModel(model, str(Path(path)), str(target), summarize(payload, path))


# ------------------------------------------------------------------------------------------------ tracing


@dataclass
class TraceResult:
    token: object  # what the request was for (image, model): stale results are dropped by the caller
    trace: Any
    seconds: float


def trace_job(job: Job, token: object, model: Any, pixels: np.ndarray, pixel_scale: float,
              gt_boxes: np.ndarray | None, score_threshold: float = LOW_SCORE_THRESHOLD,
              gt_ignored: np.ndarray | None = None) -> TraceResult:
    """``model.trace`` on one image with its ground truth (anchor labels need it; ``gt_ignored`` marks the
    crowd and difficult boxes, which label the anchors as regions to ignore, as training does).

    ``pixels`` may be a reduced preview (``pixel_scale`` = its pixels per displayed pixel, as
    ``DecodedImage.scale``); ``gt_boxes`` are in displayed pixels and are brought to the preview's. The trace
    is the model's own: in the preview's pixels (``factors`` map them to the network input), as the
    detector stages expect (``app.stages.scene_boxes`` converts to the scene).
    """
    limit_torch_threads()
    job.check()
    scale = float(pixel_scale) if pixel_scale and pixel_scale > 0 else 1.0
    gt = ignore = None
    if gt_boxes is not None and len(gt_boxes):
        gt = np.asarray(gt_boxes, np.float32).reshape(-1, 4) * np.float32(scale)
        ignored = np.zeros(len(gt), bool) if gt_ignored is None else np.asarray(gt_ignored, bool).reshape(-1)
        if ignored.shape == (len(gt),) and ignored.any():
            gt, ignore = gt[~ignored], gt[ignored]
    t0 = time.perf_counter()
    try:
        trace = model.trace(pixels, gt_boxes=gt, score_threshold=score_threshold, ignore_regions=ignore)
    except Exception as exc:
        if is_out_of_memory(exc):
            raise oom_error(str(getattr(model, "device", "?")), "running the model") from exc
        raise
    job.check()
    return TraceResult(token, trace, time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------- folder inference


@dataclass
class FolderResult:
    """Detections of every image that could be read, keyed by resolved path, plus ``detect`` JSON records."""

    by_path: dict[str, Any] = field(default_factory=dict)  # resolved path → Detections (displayed pixels)
    records: list[dict] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    n_images: int = 0
    n_boxes: int = 0
    seconds: float = 0.0


def folder_job(job: Job, model: Any, paths: list[tuple[str, str]],
               score_threshold: float = LOW_SCORE_THRESHOLD) -> FolderResult:
    """Run ``model.predict`` on each (path, dataset name) in turn; progress after each, cancel between them."""
    from models.data.io import ImageError, read_image
    from models.detection.detection_files import detection_record
    from models.detection.detectors.base import Detections
    from models.detection.evaluation import ImageDetections

    limit_torch_threads()
    out = FolderResult(n_images=len(paths))
    t0 = time.perf_counter()
    device = str(getattr(model, "device", "?"))
    for k, (path, name) in enumerate(paths):
        job.check()
        try:
            img = read_image(path)
        except (ImageError, OSError) as exc:
            out.failed.append(f"{name}: {exc}")
            out.records.append({"file": str(path), "name": name, "error": str(exc)})
            job.progress((k + 1) / max(1, len(paths)), f"{k + 1}/{len(paths)}")
            continue
        try:
            det = model.predict([img.pixels], score_threshold=score_threshold)[0]
        except Exception as exc:
            if is_out_of_memory(exc):
                raise oom_error(device, f"running the model on {name}") from exc
            raise
        if img.scale and img.scale != 1.0:
            det = Detections((det.boxes / np.float32(img.scale)).astype(np.float32), det.scores, det.labels,
                             list(det.class_names))
        out.by_path[str(Path(path).resolve())] = det
        out.n_boxes += len(det)
        out.records.append(detection_record(str(path), img.width, img.height,
                                            ImageDetections(det.boxes, det.scores, det.names), name=name))
        job.progress((k + 1) / max(1, len(paths)), f"{k + 1}/{len(paths)}")
    out.seconds = time.perf_counter() - t0
    return out


def dataset_classes_job(job: Job, source: Any) -> list[str]:
    """The open dataset's class names (reads every annotation of a folder/VOC set: hence a worker)."""
    from models.data.training_data import class_names_of

    job.check()
    return class_names_of(source)


__all__ = ["GUI_TORCH_THREADS", "LOW_SCORE_THRESHOLD", "FolderResult", "LoadedModel", "ModelRunError",
           "TraceResult", "dataset_classes_job", "folder_job", "is_out_of_memory", "limit_torch_threads",
           "load_model_job", "oom_error", "trace_job"]
