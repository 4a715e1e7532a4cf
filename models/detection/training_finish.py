"""The steps of a training run after its epochs, on the trained model and the training set.

R-CNN fits its per-class linear SVMs and box regressors on the fine-tuned network's CNN codes (the paper's
third stage), and a model with prototype score calibration keeps the mean ImageNet code of each class's
training boxes (:mod:`models.detection.score_calibration`). Both read the training images once more, unflipped
and unresized, and report "proposals"-kind progress events (named in ``message``) as the window and the
command line show them; :func:`models.detection.training.train` calls them when the epochs completed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from models.detection.training_config import TrainEvent
from models.detection.training_distributed import DistInfo


def fit_classifiers(model: torch.nn.Module, dataset: Any, emit: Callable[[TrainEvent], None]) -> None:
    """R-CNN's last stage after fine-tuning: SVMs and box regressors on the CNN codes of the training set
    (unflipped images, their cached proposals); "proposals"-style progress events named in ``message``."""
    from models.boxes import box_iou
    from models.data.io import read_image
    from models.detection.ignore_regions import ignore_near

    def loader(t):  # noqa: ANN001, ANN202 - ImageTargets
        def load():  # noqa: ANN202
            dec = read_image(t.path)
            s = np.float32(dec.scale)
            # Crowd and difficult boxes are no SVM positives, and a proposal that would be a negative but lies
            # in one is none either (models/detection/ignore_regions.py): such proposals are left out.
            ordinary = ~np.asarray(t.difficult, bool)
            props = dataset.proposals[t.index]
            if not ordinary.all() and len(props):
                boxes = torch.from_numpy(np.asarray(t.boxes, np.float32).reshape(-1, 4))
                candidates = torch.from_numpy(np.asarray(props, np.float32).reshape(-1, 4))
                best = box_iou(boxes[ordinary], candidates).max(dim=0).values if ordinary.any() else \
                    torch.zeros(len(candidates))
                labels = (best >= model.svm_negative_iou).to(torch.int8)  # 0: would be a negative
                labels = ignore_near(labels, candidates, boxes[~ordinary], model.svm_negative_iou)
                props = props[(labels >= 0).numpy()]
            return dec.pixels, t.boxes[ordinary] * s, t.labels[ordinary], props * s
        return load

    model.eval()
    t = time.monotonic()
    emit(TrainEvent("message", message=f"SVMs and box regressors on the CNN codes of {len(dataset)} images"))
    stats = model.fit_classifiers([loader(t) for t in dataset.targets], lambda stage, done, count: emit(
        TrainEvent("proposals", step=done, total_steps=count, message=stage)))
    text = ", ".join(f"{k} {v:g}" for k, v in stats.items())
    emit(TrainEvent("message", message=f"SVMs trained in {time.monotonic() - t:.1f} s ({text})"))
    emit(TrainEvent("classifiers", metrics={k: float(v) for k, v in stats.items()},
                    message=f"SVMs trained in {time.monotonic() - t:.1f} s"))


def fit_calibration(model: torch.nn.Module, dataset: Any, emit: Callable[[TrainEvent], None],
                    cancel: threading.Event | None, dist_info: DistInfo | None = None) -> None:
    """Prototype score calibration's step after training (``roi_head.calibration`` "prototype"): the mean
    ImageNet code of each class's training boxes, crowd and difficult ones left out, unflipped images
    (:mod:`models.detection.score_calibration`); "proposals"-style progress events, as the SVM stage's.

    Every rank of a data-parallel run takes its share of the images (every ``world_size``-th) and the code
    sums and counts are added up across ranks, so the prototypes are the mean over all boxes, fitted in
    1/world of the time, and no rank waits alone at a barrier while another reads the whole set (a large set
    could outlast the process group's timeout). A cancel on any rank stops all of them
    (InterruptedError everywhere); rank 0 reports every rank's skipped images (:func:`problems_of_all_ranks`)."""
    from models.detection.features import FeatureCache
    from models.detection.score_calibration import target_loaders

    dist_info = dist_info or DistInfo()
    t = time.monotonic()
    emit(TrainEvent("message", message=f"score calibration: ImageNet prototypes of the boxes of {len(dataset)} "
                                       "training images"))
    problems: list[str] = []
    shard = dataset.targets[dist_info.rank::dist_info.world_size]
    stopped, failure = False, None
    k = model.calibrator.prototypes.shape[0]
    sums, counts = np.zeros((k, model.calibrator.prototypes.shape[1]), np.float64), np.zeros(k, np.int64)
    try:
        with FeatureCache() as cache:
            sums, counts = model.calibrator.accumulate(
                target_loaders(shard), cancelled=None if cancel is None else cancel.is_set,
                progress=lambda done, count: emit(TrainEvent("proposals", step=done, total_steps=count,
                                                             message="calibration prototypes")), cache=cache,
                problems=problems)
    except InterruptedError:
        stopped = True
    except Exception as exc:  # noqa: BLE001 - re-raised below, after the other ranks have heard of it
        if not dist_info.enabled:
            raise
        failure = exc  # a rank that left now would leave the others waiting in the all_reduce for ever
    sums, counts, flags = _summed_over_ranks(sums, counts, (stopped, failure is not None), dist_info,
                                             model.calibrator.prototypes.device)
    if failure is not None:
        raise failure
    if flags[1]:
        raise RuntimeError("score calibration failed on another process of the run; its error is in that "
                           "process's output")
    if flags[0]:
        raise InterruptedError("calibration stopped")
    counts = model.calibrator.set_prototypes(sums, counts)
    skipped, shown = problems_of_all_ranks(problems, dist_info)
    for p in shown:
        emit(TrainEvent("message", message=f"score calibration: {p}"))
    if skipped > len(shown):
        emit(TrainEvent("message", message=f"score calibration: {skipped} images skipped in all (the first "
                                           f"{len(shown)} shown)"))
    names = model.class_names
    text = ", ".join(f"{names[int(k) - 1]} {n}" for k, n in counts.items())
    emit(TrainEvent("message", message=f"score calibration: prototypes from {text} boxes in "
                                       f"{time.monotonic() - t:.1f} s"))


def problems_of_all_ranks(problems: list[str], dist_info: DistInfo, keep: int = 10) -> tuple[int, list[str]]:
    """How many messages all ranks have, and up to ``keep`` of them taken in turn from each rank (rank 0's
    first): only rank 0 reports to the user, and an image that only another rank read would otherwise be
    skipped without a word. Every rank of a data-parallel run must call it (a collective)."""
    if not dist_info.enabled:
        return len(problems), list(problems[:keep])
    import torch.distributed as dist

    gathered: list[tuple[int, list[str]] | None] = [None] * dist_info.world_size
    dist.all_gather_object(gathered, (len(problems), list(problems[:keep])))
    parts = [part for part in gathered if part is not None]
    shown: list[str] = []
    for turn in range(keep):  # in turn, so that one rank's many messages do not hide another's
        shown.extend(messages[turn] for _, messages in parts if turn < len(messages))
    return sum(n for n, _ in parts), shown[:keep]


def _summed_over_ranks(sums: np.ndarray, counts: np.ndarray, flags: tuple[bool, ...], dist_info: DistInfo,
                       device: torch.device) -> tuple[np.ndarray, np.ndarray, tuple[bool, ...]]:
    """Each rank's code sums and box counts added up over the ranks (as they are for one process), and each
    flag ("stopped", "failed") true where it is true on any rank. The tensors live on the model's device,
    which the process group's backend serves (gloo: CPU, NCCL: CUDA)."""
    if not dist_info.enabled:
        return sums, counts, tuple(flags)
    import torch.distributed as dist

    s = torch.from_numpy(np.ascontiguousarray(sums, np.float64)).to(device)
    c = torch.from_numpy(np.ascontiguousarray(counts, np.float64)).to(device)
    raised = torch.tensor([1.0 if f else 0.0 for f in flags], dtype=torch.float64, device=device)
    for t in (s, c, raised):
        dist.all_reduce(t)
    return (s.cpu().numpy(), np.rint(c.cpu().numpy()).astype(np.int64),
            tuple(bool(v > 0) for v in raised.cpu().tolist()))
