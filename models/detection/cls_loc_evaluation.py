"""How good is one box per image: classification accuracy, mean IoU, localisation accuracy.

A classification + localisation model answers "which class, and where" once per image, so detection's mAP
(which ranks many scored boxes) does not fit it. The classic measures do: the share of images whose class is
right, the mean IoU of the predicted box with the object's box, and the share of images that are right on
both counts (right class and IoU ≥ 0.5, the ImageNet localisation criterion). The object of an image with
several is the one the model was trained on (:func:`~models.detection.cls_loc_targets.choose_object`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.boxes_numpy import box_iou_numpy
from models.detection.cls_loc_targets import SelectionReport, choose_object

#: IoU a box needs to count as localised (the ImageNet localisation task).
LOCALISED_IOU = 0.5


@dataclass
class ImageOutcome:
    """One image: the object it was judged on and the model's answer (labels 1..K)."""

    true_label: int
    true_box: np.ndarray
    predicted_label: int
    predicted_box: np.ndarray
    score: float
    iou: float

    @property
    def correct(self) -> bool:
        return self.true_label == self.predicted_label

    @property
    def localised(self) -> bool:
        return self.correct and self.iou >= LOCALISED_IOU


@dataclass
class ClsLocResult:
    """The three figures, per-class accuracy and the per-image outcomes behind them."""

    accuracy: float
    mean_iou: float
    localisation_accuracy: float
    per_class_accuracy: dict[str, float]
    images: int
    selection: SelectionReport
    outcomes: list[ImageOutcome] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"classification_accuracy": self.accuracy, "mean_iou": self.mean_iou,
                "localisation_accuracy": self.localisation_accuracy, "per_class_accuracy": self.per_class_accuracy,
                "images": self.images, "single": self.selection.single, "reduced": self.selection.reduced,
                "skipped": self.selection.skipped}


def evaluate_cls_loc(pairs: Iterable[tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]],
                     class_names: list[str]) -> ClsLocResult:
    """``pairs``: per image ``((gt_boxes [G, 4], gt_labels [G] 1..K), (pred_boxes, pred_scores, pred_labels))``
    — the prediction's first (highest-scoring) box is the model's answer; an image with no prediction counts
    as wrong with IoU 0."""
    report = SelectionReport()
    outcomes: list[ImageOutcome] = []
    for (gt_boxes, gt_labels), (boxes, scores, labels) in pairs:
        gt_boxes = np.asarray(gt_boxes, np.float32).reshape(-1, 4)
        report.add(len(gt_boxes))
        k = choose_object(gt_boxes, np.asarray(gt_labels))
        if k is None:
            continue
        true_box = gt_boxes[k]
        if len(boxes) == 0:
            outcomes.append(ImageOutcome(int(gt_labels[k]), true_box, 0, np.zeros(4, np.float32), 0.0, 0.0))
            continue
        best = int(np.argmax(scores))
        box = np.asarray(boxes[best], np.float32)
        iou = float(box_iou_numpy(box[None], true_box[None])[0, 0])
        outcomes.append(ImageOutcome(int(gt_labels[k]), true_box, int(labels[best]), box, float(scores[best]), iou))
    n = len(outcomes)
    per_class: dict[str, float] = {}
    for i, name in enumerate(class_names, start=1):
        of_class = [o for o in outcomes if o.true_label == i]
        if of_class:
            per_class[name] = sum(o.correct for o in of_class) / len(of_class)
    return ClsLocResult(
        accuracy=sum(o.correct for o in outcomes) / n if n else 0.0,
        mean_iou=float(np.mean([o.iou for o in outcomes])) if n else 0.0,
        localisation_accuracy=sum(o.localised for o in outcomes) / n if n else 0.0,
        per_class_accuracy=per_class, images=n, selection=report, outcomes=outcomes)


def evaluate_cls_loc_model(model: Any, source: Any, indices: Sequence[int],
                           progress: Callable[[float, str], None] | None = None) -> tuple[ClsLocResult, list[str]]:
    """Run a one-box model over ``source.entries[indices]`` and compute the three figures; unreadable images
    are reported and skipped. Objects of classes the model does not know are left out of the ground truth."""
    from models.data.annotations import AnnotationError
    from models.data.io import ImageError, read_image
    from models.data.training_data import load_targets

    names = list(model.class_names)
    pairs = []
    problems: list[str] = []
    for k, idx in enumerate(indices):
        entry = source.entries[idx]
        try:
            t, msgs = load_targets(source, idx, names)
            img = read_image(entry.path)
        except (AnnotationError, ImageError) as exc:
            problems.append(f"{entry.name}: {exc}; skipped")
            continue
        problems.extend(msgs)
        det = model.predict([img.pixels], score_threshold=0.0)[0]
        boxes = det.boxes / img.scale if img.scale != 1.0 else det.boxes
        ordinary = ~np.asarray(t.difficult, bool)  # a crowd or difficult box is not "the object" to find
        pairs.append(((t.boxes[ordinary], t.labels[ordinary]), (boxes, det.scores, det.labels)))
        if progress is not None:
            progress((k + 1) / max(1, len(indices)), f"image {k + 1}/{len(indices)}")
    return evaluate_cls_loc(pairs, names), problems


def format_cls_loc(result: ClsLocResult) -> str:
    """The figures as a few lines for the terminal."""
    lines = [f"classification accuracy  {result.accuracy:.3f}",
             f"mean IoU of the box      {result.mean_iou:.3f}",
             f"localisation accuracy    {result.localisation_accuracy:.3f}  (right class and IoU ≥ {LOCALISED_IOU})",
             f"images                   {result.images}  ({result.selection.message()})"]
    lines += [f"  {name:<22} accuracy {acc:.3f}" for name, acc in result.per_class_accuracy.items()]
    return "\n".join(lines)
