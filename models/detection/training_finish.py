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
                    cancel: threading.Event | None) -> None:
    """Prototype score calibration's step after training (``roi_head.calibration`` "prototype"): the mean
    ImageNet code of each class's training boxes, crowd and difficult ones left out, unflipped images
    (:mod:`models.detection.score_calibration`); "proposals"-style progress events, as the SVM stage's."""
    from models.detection.features import FeatureCache
    from models.detection.score_calibration import target_loaders

    t = time.monotonic()
    emit(TrainEvent("message", message=f"score calibration: ImageNet prototypes of the boxes of {len(dataset)} "
                                       "training images"))
    problems: list[str] = []
    with FeatureCache() as cache:
        counts = model.calibrator.fit(
            target_loaders(dataset.targets), cancelled=None if cancel is None else cancel.is_set,
            progress=lambda done, count: emit(TrainEvent("proposals", step=done, total_steps=count,
                                                         message="calibration prototypes")), cache=cache,
            problems=problems)
    for p in problems[:10]:
        emit(TrainEvent("message", message=f"score calibration: {p}"))
    names = model.class_names
    text = ", ".join(f"{names[int(k) - 1]} {n}" for k, n in counts.items())
    emit(TrainEvent("message", message=f"score calibration: prototypes from {text} boxes in "
                                       f"{time.monotonic() - t:.1f} s"))
