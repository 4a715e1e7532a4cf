"""What the training panel offers and how its choices become a :class:`TrainConfig` — no Qt here.

Kept apart from the widgets so the rules (which generation can train on this dataset and why not, which devices
exist, where a run's files go, how a preset and the user's overrides make the config) are plain functions a
test calls directly. Presets come from :mod:`models.detection.presets`; "Settings from the data" (a Faster
R-CNN's default) are what ``train`` without ``--preset`` chooses (:mod:`models.detection.auto_settings`, the
same function), and the paper's settings remain an entry of their own; all overridable one by one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.data.datasets import DatasetSource

#: Part name of the settings that belong to the training loop (lr, epochs…) when no preset module says.
TRAINING_PART = "training"
#: TrainConfig fields that say where and how this machine runs one run, not what is trained.
RUN_FIELDS = ("data", "out", "generation", "backbone", "epochs", "device", "resume", "images_dir", "threads",
              "max_steps", "model", "val_images", "val_split", "proposal_cache", "split", "preset")


@dataclass(frozen=True)
class DatasetSummary:
    """Counts that decide what can train: images, labelled images, boxes, the most boxes in one image."""

    images: int
    labelled_images: int
    boxes: int
    max_boxes_per_image: int
    class_names: tuple[str, ...]


def summarise_dataset(source: DatasetSource, cancelled: Any = None) -> DatasetSummary:
    """Read every annotation once (a worker's job: thousands of files on a large set)."""
    from models.data.annotations import AnnotationError
    from models.data.io import ImageError

    labelled = boxes = most = 0
    names: set[str] = set()
    for entry in source.entries:
        if cancelled is not None and cancelled():
            break
        try:
            ann = source.store.load(entry, None)
        except (AnnotationError, ImageError, OSError):
            continue
        if ann is None or not ann.objects:
            continue
        labelled += 1
        boxes += len(ann.objects)
        most = max(most, len(ann.objects))
        names.update(o.name for o in ann.objects)
    return DatasetSummary(len(source.entries), labelled, boxes, most, tuple(sorted(names)))


def generation_problem(generation: str, summary: DatasetSummary | None) -> str | None:
    """Why ``generation`` cannot train on the open dataset now, or None when it can."""
    if summary is None:
        return "open a dataset first"
    if summary.boxes == 0:
        return "the dataset has no labelled boxes yet"
    try:
        from models.detection.detectors import _builders

        builder = _builders(generation)[0]
    except (ValueError, ImportError) as exc:
        return str(exc)
    # A generation may declare what data it needs (classification + localisation: one object per image).
    if getattr(builder, "one_object_per_image", False) and summary.max_boxes_per_image > 1:
        return "it learns one object per image; some images here have several"
    if summary.labelled_images < 2:
        return "needs at least two labelled images (one to train on, one to hold out)"
    return None


def generation_choices(summary: DatasetSummary | None) -> list[tuple[str, str | None]]:
    """Every registered generation with the reason it cannot train here (None: it can)."""
    from models.detection.detectors import generations

    order = {"rcnn": 0, "fast-rcnn": 1, "faster-rcnn": 2}
    names = sorted(generations(), key=lambda g: (order.get(g, -1), g))
    return [(g, generation_problem(g, summary)) for g in names]


#: What a user should know about a generation before training it (shown under the generation list).
GENERATION_NOTES: dict[str, str] = {
    "cls-loc": ("One class + one box per image. Loss = alpha·cross-entropy + (1 − alpha)·box MSE: the terms differ "
                "in scale (ln 3 ≈ 1.1 vs ≈ 0.03), so alpha balances them."),
}

#: The longer why, as the note's tooltip.
GENERATION_DETAILS: dict[str, str] = {
    "cls-loc": (
        "Classification + localisation, the step before R-CNN: one class and one box per image (images with "
        "several objects keep their largest). Loss = alpha · cross-entropy + (1 − alpha) · mean squared error "
        "of the box (x, y, w, h divided by the image's width and height). The two terms live on different "
        "scales: cross-entropy starts at ln K (1.1 for 3 classes), the box error near 0.03, and their "
        "gradients differ as much. alpha (cls_loc_head → alpha in the settings) balances them: near 1 the box "
        "is barely learnt, near 0 the class is."),
}


def generation_note(generation: str) -> tuple[str, str]:
    """The note on ``generation`` and its longer explanation ("" for none)."""
    return GENERATION_NOTES.get(generation, ""), GENERATION_DETAILS.get(generation, "")


def backbone_choices() -> list[tuple[str, str, bool]]:
    """(name, one-line description for the list, usable now) per registered backbone."""
    from models.detection.backbones import backbone_infos

    out = []
    for info in backbone_infos():
        if info.pretrained_on is None:
            text = f"{info.name} — from scratch"
        elif info.available:
            text = f"{info.name} — pretrained on {info.pretrained_on}"
        else:
            text = f"{info.name} — {info.pretrained_on} weights not installed ({info.when_missing})"
        out.append((info.name, text, True))
    return out


def backbone_tooltip(name: str) -> str:
    from models.detection.backbones import backbone_infos

    for info in backbone_infos():
        if info.name == name:
            return (f"{info.description}\nweights: {info.weights_source}\nstrides: "
                    f"{', '.join(str(s) for s in info.strides)}; channels {info.out_channels}")
    return ""


def device_choices() -> list[str]:
    """auto first, then the accelerators present, then cpu."""
    import torch

    out = ["auto"]
    if torch.cuda.is_available():
        out.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    out.append("cpu")
    return out


def resolves_to_cpu(device: str) -> bool:
    return device == "cpu" or (device == "auto" and device_choices() == ["auto", "cpu"])


def runs_dir() -> Path:
    from app.settings import data_dir

    return data_dir() / "runs"


def new_run_path(generation: str, now: float | None = None) -> Path:
    """``<data dir>/runs/<timestamp>-<generation>/model.pt`` (a suffix when two runs start in one second)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    base = runs_dir()
    folder = base / f"{stamp}-{generation}"
    n = 2
    while folder.exists():
        folder = base / f"{stamp}-{generation}-{n}"
        n += 1
    return folder / "model.pt"


# ------------------------------------------------------------------------------------------------- presets

#: Settings the panel has its own widget for (or that describe one run, not a recipe): not in the table.
HIDDEN_SETTINGS = {TRAINING_PART: ("generation", "epochs", "max_steps", "val_images", "val_split", "resume"),
                   # name: the Backbone list's; pretrained: set when the network is built, not a choice
                   "backbone": ("name", "pretrained")}

#: Settings whose empty value is not "none" to a reader, and the word the table shows for it. An empty
#: ``backbone.weights`` is the backbone's pretrained weights, while the word ``none`` is train's ``--weights
#: none``: random. The table showed "none" for both, so the fine-tune preset read as starting random, and
#: typing "none" into the cell meant the opposite of the command's flag.
EMPTY_WORDS: dict[tuple[str, str], str] = {("backbone", "weights"): "default"}
#: The words a setting takes besides a path, read whatever their case ("None" is ``none``, not a file).
SETTING_WORDS: dict[tuple[str, str], tuple[str, ...]] = {("backbone", "weights"): ("none", "scratch", "imagenet")}


def preset_names(generation: str | None = None) -> list[str]:
    """Registered presets, those of ``generation`` only when given (a preset is one generation's recipe)."""
    from models.detection import presets

    names = presets.preset_names()
    if generation is None:
        return list(names)
    return [n for n in names if presets.get_preset(n).generation == generation]


def preset_generation(name: str) -> str:
    from models.detection import presets

    return presets.get_preset(name).generation


def describe_settings(preset: str | None, generation: str = "faster-rcnn",
                      auto: Any = None) -> dict[str, dict[str, Any]]:
    """The settings a run would use, by part: the preset's in full; without one, those chosen from the data
    (``auto``, an :class:`~models.detection.auto_settings.AutoSettings`), else the generation's paper
    settings."""
    from models.detection import presets

    if preset:
        described = presets.describe_preset(preset)
    else:
        config = presets.default_train_config("", "", generation, auto.overrides() if auto is not None else None)
        described = config.detector_config().to_dict()
        training = config.to_dict()
        skip = set(presets.MIRRORED) | set(RUN_FIELDS) | {"num_workers"}
        described[TRAINING_PART] = {k: v for k, v in training.items() if k not in skip}
    return {part: {k: v for k, v in values.items() if k not in HIDDEN_SETTINGS.get(part, ())}
            for part, values in described.items()}


#: Which settings each of ``AutoSettings.reasons`` explains (its keys are the words ``train`` prints).
AUTO_REASON_SETTINGS: dict[str, tuple[tuple[str, str], ...]] = {
    "training size": (("input", "min_size"), ("input", "max_size")),
    "stride": (("backbone", "small_stride"), ("backbone", "small_context")),
    "anchor sizes": (("rpn", "anchor_sizes"),),
    "anchor ratios": (("rpn", "anchor_ratios"),),
    "epochs": ((TRAINING_PART, "time_budget_s"),),
    "optimiser": ((TRAINING_PART, "optimizer"), (TRAINING_PART, "lr"), (TRAINING_PART, "weight_decay"),
                  (TRAINING_PART, "batch_size")),
    "head": (("roi_head", "representation_size"), ("roi_head", "pooling"), ("backbone", "small_width")),
    "quarter turns": ((TRAINING_PART, "rotate90"),),
    "bfloat16": ((TRAINING_PART, "cpu_bf16"),),
}


def auto_reasons(auto: Any) -> dict[tuple[str, str], str]:
    """``{(part, field): why}`` for the settings chosen from the data (the panel's tooltips)."""
    out: dict[tuple[str, str], str] = {}
    for key, why in auto.reasons.items():
        for place in AUTO_REASON_SETTINGS.get(key, ()):
            out[place] = f"{key}: {why}"
    return out


def preset_epochs(preset: str | None) -> int | None:
    if not preset:
        return None
    from models.detection import presets

    return int(presets.get_preset(preset).training.epochs)


def preset_backbone(preset: str | None) -> str | None:
    if not preset:
        return None
    from models.detection import presets

    return str(presets.get_preset(preset).model.backbone.name)


def parse_value(text: str, like: Any, place: tuple[str, str] | None = None) -> Any:
    """A table cell's text as the kind of value it replaces: JSON when it reads as JSON, else the text;
    "none"/empty for a field that may be empty (the word of :data:`EMPTY_WORDS` for the setting at ``place``,
    ``(part, field)``, where "none" is a value of its own)."""
    stripped = text.strip()
    word = stripped.lower()
    empty = (EMPTY_WORDS[place],) if place in EMPTY_WORDS else ("none", "null")
    if word in ("", *empty):
        return None
    if word in SETTING_WORDS.get(place, ()):
        return word
    if isinstance(like, bool):
        if word in ("true", "yes", "1", "on"):
            return True
        if word in ("false", "no", "0", "off"):
            return False
        raise ValueError(f"expected true or false, got {text!r}")
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError:
        if isinstance(like, (list, tuple)):
            parts = [p for p in stripped.replace(" ", "").split(",") if p]
            try:
                return [json.loads(p) for p in parts]
            except json.JSONDecodeError:
                return parts
        if isinstance(like, (int, float)):
            raise ValueError(f"expected a number, got {text!r}") from None
        return stripped
    if isinstance(like, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def format_value(value: Any, place: tuple[str, str] | None = None) -> str:
    """How the settings table shows ``value`` of the setting at ``place`` (``(part, field)``)."""
    if value is None:
        return EMPTY_WORDS.get(place, "none")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


@dataclass
class RunChoices:
    """What the panel holds when the user presses Train."""

    data: str
    generation: str
    backbone: str
    preset: str | None
    epochs: int
    device: str
    overrides: dict[str, dict[str, Any]]
    processes: int = 1
    threads: int | None = None
    val_images: int = 0
    max_steps: int | None = None
    #: The settings chosen from the data (``AutoSettings``) when no preset is named and the data decides;
    #: None with no preset: the generation's paper settings.
    auto: Any = None


def flat_overrides(overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The table's ``{part: {field: value}}`` as the override keys presets take: training fields by name,
    detector settings as ``part.field``."""
    return {(name if part == TRAINING_PART else f"{part}.{name}"): value
            for part, values in overrides.items() for name, value in values.items()}


def build_config(choices: RunChoices, out: str | os.PathLike, resume: str | None = None) -> Any:
    """The :class:`TrainConfig` of a run: the preset (or the settings chosen from the data, as ``train`` with
    no preset lays them over the paper's, or the generation's paper settings), the user's overrides, then the
    panel's own fields (backbone, epochs, device...), which win. A setting that does not
    exist or does not parse raises ``ValueError`` naming it."""
    from models.detection import presets

    flat = flat_overrides(choices.overrides)
    flat["backbone"] = choices.backbone
    if choices.preset:
        if preset_generation(choices.preset) != choices.generation:
            raise ValueError(f"preset {choices.preset} is for {preset_generation(choices.preset)}, "
                             f"not {choices.generation}")
        config = presets.train_config_from_preset(choices.preset, choices.data, str(out), flat)
    else:
        chosen = choices.auto.overrides() if choices.auto is not None else {}
        config = presets.default_train_config(choices.data, str(out), choices.generation, {**chosen, **flat})
    return dataclasses.replace(config, epochs=int(choices.epochs), device=choices.device, threads=choices.threads,
                               val_images=int(choices.val_images), max_steps=choices.max_steps, resume=resume)
