"""What a training run learns from: its images as it sees them (sizes and augmentation) and its class list.

Apart from the loop (:mod:`models.detection.training`) because the window's augmentation preview asks the
same two questions of a run that has not started, and must get the loop's answers.
"""

from __future__ import annotations

from typing import Any

from models.data.augmentation import ZOOM_OUT_FILL, mean_colour
from models.data.training_data import DetectionDataset, class_names_of
from models.detection.training_config import TrainConfig


def training_dataset(config: TrainConfig, source: Any, indices: list[int], names: list[str]) -> DetectionDataset:
    """The images of ``indices`` as a run of ``config`` sees them: its sizes and augmentation (flips, quarter
    turns, size jitter, crops, colour, zoom-out, mosaic, copy-paste) — the training loop's dataset, and the window's augmentation
    preview."""
    min_size, max_size = config.min_size, config.max_size
    fill = ZOOM_OUT_FILL
    if not (min_size and max_size) or config.zoom_out_prob > 0 or config.mosaic_prob > 0:  # a new run's sizes: its detector settings
        parts = config.detector_config().input
        min_size, max_size = min_size or parts.min_size, max_size or parts.max_size
        fill = mean_colour(parts.image_mean)  # the canvas: zero once normalised
    return DetectionDataset(source, indices, names, min_size=int(min_size), max_size=int(max_size),
                            flip_prob=config.flip_prob,
                            seed=config.seed, rotate90=config.rotate90, train_sizes=config.train_sizes,
                            class_filter=bool(config.classes), crop_prob=config.crop_prob,
                            crop_min_side=config.crop_min_side, colour_jitter=config.colour_jitter,
                            zoom_out_prob=config.zoom_out_prob, zoom_out_max=config.zoom_out_max,
                            zoom_out_fill=fill, mosaic_prob=config.mosaic_prob,
                            copy_paste_prob=config.copy_paste_prob)


def training_images(config: TrainConfig, source: Any) -> list[int]:
    """The images (indices into ``source.entries``) a run of ``config`` trains on: ``train_indices`` (ValueError
    naming one outside the dataset), else its split (:func:`~models.data.splits.dataset_splits`, the
    split file the loop uses; ValueError naming a missing split)."""
    from models.data.splits import dataset_splits, split_indices

    if config.train_indices is not None:
        bad = [i for i in config.train_indices if not 0 <= int(i) < len(source.entries)]
        if bad:
            raise ValueError(f"{config.data}: image index {bad[0]} is outside its {len(source.entries)} images")
        return [int(i) for i in config.train_indices]
    try:
        return list(split_indices(dataset_splits(source, seed=config.seed), config.split))
    except KeyError as exc:  # the message, as a sentence the panel shows
        raise ValueError(f"{config.data}: {exc.args[0]}") from None


def run_class_names(config: TrainConfig, source: Any) -> list[str]:
    """The classes a new run of ``config`` learns: the dataset's (:func:`class_names_of`), or those of
    ``config.classes`` in the dataset's order (stable label ids); ValueError names a class it lacks."""
    available = class_names_of(source)
    if not config.classes:
        return available
    missing = [c for c in config.classes if c not in available]
    if missing:
        raise ValueError(f"{config.data}: no class {', '.join(map(repr, missing))}; its classes are: "
                         f"{', '.join(available) or 'none'}")
    return [c for c in available if c in set(config.classes)]
