"""What a training run's augmentation makes of one image, epoch by epoch: the window's preview.

Why from the training dataset itself and not a re-implementation: the preview must show exactly the pixels and
boxes a step is given (a crop that cuts an object to an ignored part, a flip that moves a box), so it asks the same
:class:`~models.data.training_data.DetectionDataset` the loop builds (:func:`training_dataset`) for the item of
each epoch and turns the tensor back into an 8-bit image.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.data.training_data import AugmentationDraws
from models.detection.run_data import run_class_names, training_dataset, training_images
from models.detection.training_config import TrainConfig


@dataclass(frozen=True)
class AugmentedView:
    """One epoch's (1-based, as the loop counts) training item: RGB uint8 pixels as the network gets them (before normalisation), the
    boxes in those pixels with their class names, and what was drawn (:class:`AugmentationDraws`)."""

    epoch: int
    pixels: np.ndarray
    boxes: np.ndarray
    names: list[str]
    draws: AugmentationDraws
    #: The original image's size (width, height), to say how much a crop kept.
    original_size: tuple[int, int]
    #: Which of ``boxes`` training ignores, [N] bool, named "(ignored)": crowd or difficult boxes, and what
    #: shows of an object a crop or a mosaic tile cut with its centre out of view.
    ignored: np.ndarray | None = None
    #: The file names of a mosaic's other three tiles (top-right, bottom-left, bottom-right); () for none.
    mosaic_partners: tuple[str, ...] = ()
    #: Copy-paste: the file the pasted objects were cut from and how many were pasted; None for none.
    pasted: tuple[str, int] | None = None

    def ignored_count(self) -> int:
        return 0 if self.ignored is None else int(np.count_nonzero(self.ignored))

    def caption(self) -> str:
        """One line: what this epoch did to the image (the preview's label)."""
        d = self.draws
        parts = [f"epoch {self.epoch}", f"{self.pixels.shape[1]}×{self.pixels.shape[0]}"]
        if d.flip:
            parts.append("mirrored")
        if d.turns:
            parts.append(f"turned {90 * d.turns}°")
        if d.window is not None:
            w, h = self.original_size
            parts.append(f"crop {100 * d.window.width / w:.0f}%×{100 * d.window.height / h:.0f}%")
        if d.zoom is not None:
            parts.append(f"zoomed out ×{d.zoom.ratio:.2f}")
        if d.mosaic is not None:
            parts.append(f"mosaic with {', '.join(self.mosaic_partners)}" if self.mosaic_partners else "mosaic")
        if self.pasted is not None:
            name, count = self.pasted
            parts.append(f"{count} object{'' if count == 1 else 's'} pasted from {name}")
        if d.jitter is not None:
            j = d.jitter
            parts.append(f"brightness {j.brightness:.2f} contrast {j.contrast:.2f} saturation {j.saturation:.2f}")
        parts.append(f"{len(self.boxes)} box" + ("" if len(self.boxes) == 1 else "es")
                     + (f" ({self.ignored_count()} ignored: crowd, difficult, centre cut away or hidden by a paste)"
                        if self.ignored_count() else ""))
        return ", ".join(parts)


def augmented_views(config: TrainConfig, source: Any, index: int, epochs: int = 6) -> list[AugmentedView]:
    """Image ``index`` of ``source`` as the first ``epochs`` epochs of a run of ``config`` show it.

    The class list is the run's (:func:`run_class_names`); a file that cannot be read, or a class the
    dataset lacks, raises its message as a ValueError. With mosaics or copy-paste on, the dataset is the run's
    training images (:func:`training_images`, plus ``index`` when it is not one of them), so a mosaic's other
    tiles and the pasted objects come from the images the loop would take them from."""
    names = run_class_names(config, source)
    index = int(index)
    pool = [index]
    if config.mosaic_prob > 0 or config.copy_paste_prob > 0:
        pool = training_images(config, source)
        pool = pool if index in pool else [*pool, index]
    dataset = training_dataset(config, source, pool, names)
    if index not in dataset.indices:  # unreadable: say why (its own messages, when the others were loaded too)
        name = source.entries[index].name
        own = [p for p in dataset.problems if len(pool) == 1 or name in p or Path(name).name in p]
        raise ValueError("; ".join(own) or f"image {index} cannot be read")
    item = dataset.indices.index(index)
    target0 = dataset.targets[item]
    views = []
    for epoch in range(1, int(epochs) + 1):  # the loop's numbering: its draws for epoch 1 come first
        dataset.set_epoch(epoch)
        image, target = dataset[item]
        pixels = (image.permute(1, 2, 0).numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
        labels = target["labels"].numpy()
        draws = dataset.draws(item)
        if draws.window is not None and target["crop"] is None:  # not applied: the file changed size since
            draws = dataclasses.replace(draws, window=None)
        ignored = target["difficult"].numpy().astype(bool)
        partners = tuple(source.entries[i].name for i in target["mosaic"][2]) if target.get("mosaic") else ()
        pasted = target.get("copy_paste")
        pasted = (source.entries[pasted[0]].name, int(pasted[1])) if pasted else None
        views.append(AugmentedView(epoch, pixels, target["boxes"].numpy().reshape(-1, 4),
                                   [names[int(k) - 1] + (" (ignored)" if skip else "")
                                    for k, skip in zip(labels, ignored, strict=True)], draws,
                                   (int(target0.width), int(target0.height)), ignored, partners, pasted))
    return views

