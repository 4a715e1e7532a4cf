"""Classification + localisation targets: one object per image, its box as four numbers the loss can compare.

The classic formulation (before R-CNN: OverFeat, the ImageNet localisation task) regresses one box per image
as the top-left corner and the size, ``(x, y, w, h)`` in pixels. Pixels make the loss depend on the image's
size (an error of 10 px weighs the same on a 200-px and a 2,000-px image), so the network predicts them
divided by the image's width or height (``x / W, y / H, w / W, h / H``, each in 0..1) and
:func:`decode_boxes` converts back for display. The same numbers hold whatever size the network's input is
resized to, which is what lets the model squash every image to one square input.

Training images may hold several labelled objects; :func:`choose_object` keeps the largest (the one a
single-object task would have labelled) and :class:`SelectionReport` counts how many were reduced or skipped,
so the user is told, not surprised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


def encode_boxes(boxes: Tensor, width: float | Tensor, height: float | Tensor) -> Tensor:
    """[N, 4] xyxy pixels → [N, 4] ``(x / W, y / H, w / W, h / H)``."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([x1 / width, y1 / height, (x2 - x1) / width, (y2 - y1) / height], dim=-1)


def decode_boxes(outputs: Tensor, width: float | Tensor, height: float | Tensor) -> Tensor:
    """The inverse of :func:`encode_boxes`: [N, 4] normalised ``(x, y, w, h)`` → xyxy pixels. Negative sizes
    (an untrained network) become empty boxes at the corner rather than inverted ones."""
    x = outputs[..., 0] * width
    y = outputs[..., 1] * height
    w = outputs[..., 2].clamp(min=0) * width
    h = outputs[..., 3].clamp(min=0) * height
    return torch.stack([x, y, x + w, y + h], dim=-1)


def cls_loc_loss(class_logits: Tensor, box_outputs: Tensor, labels: Tensor, box_targets: Tensor,
                 alpha: float) -> dict[str, Tensor]:
    """``alpha * softmax cross-entropy + (1 - alpha) * L2(box)``, L2 = mean squared error over the 4 outputs.

    Returned as the two weighted terms (their sum is the loss the optimiser sees), so a plot shows how much
    each contributes. ``labels`` are 0..K-1 (there is no background class: every image has its object)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha weighs the two terms and lies in [0, 1], got {alpha}")
    ce = torch.nn.functional.cross_entropy(class_logits, labels)
    l2 = torch.nn.functional.mse_loss(box_outputs, box_targets)
    return {"loss_classifier": alpha * ce, "loss_box_l2": (1.0 - alpha) * l2}


def choose_object(boxes: np.ndarray | Tensor, labels: np.ndarray | Tensor,
                  ignored: np.ndarray | Tensor | None = None) -> int | None:
    """Index of the object a one-object model learns from: the largest box (ties: the first) that is not
    ``ignored`` (crowd or difficult: no one object). None when the image has no such box (it cannot be trained
    on: there is no "nothing" class)."""
    b = boxes.detach().cpu().numpy() if isinstance(boxes, Tensor) else np.asarray(boxes, np.float64)
    b = b.reshape(-1, 4)
    if b.shape[0] == 0:
        return None
    area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    if ignored is not None:
        skip = ignored.detach().cpu().numpy() if isinstance(ignored, Tensor) else np.asarray(ignored)
        area = np.where(skip.reshape(-1).astype(bool), -1.0, area)
        if area.max() < 0:
            return None
    return int(np.argmax(area))


@dataclass
class SelectionReport:
    """How a dataset's images became one-object examples."""

    single: int = 0  # exactly one object: used as is
    reduced: int = 0  # several objects: the largest kept
    skipped: int = 0  # no object: left out

    def add(self, n_objects: int) -> None:
        if n_objects == 0:
            self.skipped += 1
        elif n_objects == 1:
            self.single += 1
        else:
            self.reduced += 1

    def message(self) -> str:
        parts = [f"{self.single} image(s) with one object used as they are"]
        if self.reduced:
            parts.append(f"{self.reduced} with several objects reduced to their largest (a classification + "
                         "localisation model predicts exactly one box)")
        if self.skipped:
            parts.append(f"{self.skipped} without any object skipped (there is no 'nothing here' class)")
        return "; ".join(parts)
