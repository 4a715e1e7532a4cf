"""Named presets: recipes we have measured (or the papers' settings), each a complete set of part objects.

A :class:`Preset` is a generation, a :class:`~models.detection.config.DetectorConfig` (backbone, input, RPN /
proposals, RoI head ...) and the training part, a :class:`~models.detection.training.TrainConfig` without
data or output. ``python main.py train --preset NAME`` and the training panel start from one and override it
field by field (:func:`train_config_from_preset`); with no preset, :func:`default_train_config` gives the
generation's paper settings.

Adding a preset is one entry: append a :func:`preset` call to :data:`BUILTIN` below, or call
:func:`register_preset` from anywhere (e.g. a plug-in) before the preset list is read.

Override keys (:func:`apply_overrides`): a training field (``"epochs"``, ``"lr"``, also as
``"training.epochs"``), a detector setting as ``"part.field"`` (``"rpn.anchor_sizes"``) or by its flat name
(``"anchor_sizes"``, ``"small_width"``). ``backbone``, ``weights``, ``min_size`` and ``max_size`` are both
training fields and part settings (``backbone.name``, ``backbone.weights``, ``input.min_size``,
``input.max_size``); either spelling changes both.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_type_hints

from models.detection.config import DetectorConfig, resolve_name
from models.detection.config_fields import ConfigError, coerce_value, type_text
from models.detection.training import TrainConfig


class UnknownPreset(ValueError):
    """A preset name that is not registered; the message lists the ones that are."""


@dataclass(frozen=True)
class Preset:
    """A named recipe. ``training`` holds every training field (its ``data``/``out`` are empty, its
    ``backbone``/``weights`` mirror ``model`` and its ``min_size``/``max_size`` are None: the model's input
    part says); ``model`` every detector part."""

    name: str
    description: str
    generation: str
    model: DetectorConfig
    training: TrainConfig


#: Training fields that mirror a detector setting: changing either changes both.
MIRRORED: dict[str, str] = {"backbone": "backbone.name", "weights": "backbone.weights",
                            "min_size": "input.min_size", "max_size": "input.max_size"}
#: Training fields that say where and how this machine runs, not what is trained: not part of a recipe's
#: description (still overridable).
_ENVIRONMENT = ("data", "out", "model", "resume", "images_dir", "proposal_cache", "device", "threads",
                "num_workers", "train_indices", "preset")
#: Per generation, training settings of the no-preset path that differ from TrainConfig's defaults.
GENERATION_TRAINING: dict[str, dict[str, Any]] = {
    "faster-rcnn": {},
    "fast-rcnn": {"batch_size": 2},  # the paper's 2 images × 64 RoIs
    "rcnn": {"batch_size": 2},
}


#: One line per training field, for the panel's tooltips (the detector parts carry theirs: ``Part.help``).
TRAINING_HELP: dict[str, str] = {
    "generation": "detector generation: rcnn, fast-rcnn or faster-rcnn",
    "epochs": "passes over the training images",
    "batch_size": "images per optimiser step",
    "lr": "peak learning rate (after the warm-up)",
    "optimizer": "sgd (momentum, the papers) or adamw (faster from scratch)",
    "momentum": "SGD momentum",
    "weight_decay": "L2 penalty on the weights",
    "warmup_iters": "steps of linear learning-rate warm-up from lr/1000",
    "lr_schedule": "cosine, step (×0.1 for the last third, the papers) or constant",
    "split": "the dataset split to train on",
    "seed": "seed of the data order, augmentation and initialisation",
    "flip_prob": "probability of a horizontal flip per image",
    "rotate90": "random quarter turns too (only for data with no 'up')",
    "train_sizes": "multi-scale training: shorter sides to draw from (empty: the input size)",
    "crop_prob": "share of images shown as a random crop that keeps an object's centre ('zoom in'; 0: off)",
    "crop_min_side": "a random crop's sides are each at least this share of the image's",
    "zoom_out_prob": "share of images placed on a larger mean-coloured canvas, objects smaller ('zoom out'; 0: off)",
    "zoom_out_max": "a zoom-out canvas's side is up to this many times the image's (1-4)",
    "mosaic_prob": "share of images shown as a mosaic of four training images at half size (YOLOv4's; 0: off)",
    "copy_paste_prob": "share of images given objects cut out of another training image along their outlines "
                       "(Ghiasi et al.'s copy-paste; needs COCO or YOLO polygons; 0: off)",
    "colour_jitter": "brightness, contrast and saturation scaled by random factors in 1 ± this (0: off)",
    "amp": "float16 mixed precision on CUDA",
    "cpu_bf16": "bfloat16 autocast on CPUs with AVX512-BF16 or AMX",
    "grad_clip": "clip the gradient norm to this (empty: no clipping)",
    "max_steps": "stop after this many steps in all (keeps the schedule of all epochs)",
    "time_budget_s": "fit the run into this many seconds of training (CPU time on a CPU); epochs become a cap",
    "classes": "train on these classes only (others left out; images without them stay as negatives)",
    "train_indices": "train on exactly these images (indices into the dataset), e.g. a cross-validation fold",
    "backbone_lr_scale": "the backbone's learning rate as a fraction of lr (0.1: fine-tuning a pretrained one)",
    "val_images": "validation mAP@0.5 after each epoch on at most this many images (0: off)",
    "val_split": "the split the per-epoch validation reads",
}


def setting_help(part: str, name: str) -> str:
    """The one-line help of a setting shown by :func:`describe_preset` (``part`` "training" or a part)."""
    if part == "training":
        return TRAINING_HELP.get(name, "")
    from models.detection.config import PART_TYPES

    if part not in PART_TYPES:
        raise ConfigError(f"no part {part!r}")
    return PART_TYPES[part].help(name)


def _train_hints() -> dict[str, str]:
    import models.detection.training_config as module
    return {k: type_text(v) for k, v in get_type_hints(TrainConfig, vars(module)).items()}


def parse_key_values(items: Sequence[str], flag: str, form: str = "KEY=VALUE") -> dict[str, Any]:
    """Command-line ``KEY=VALUE`` items (``train --model-arg``, ``bench/finetune_cv.py --set``) as overrides
    for :func:`apply_overrides`: a value is read as JSON where it parses (``24``, ``[448, 512]``, ``true``),
    else kept as text (``per_object``). A malformed item is a ValueError naming ``flag`` and ``form``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} expects {form}, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def apply_overrides(config: TrainConfig, overrides: Mapping[str, Any] | None) -> TrainConfig:
    """``config`` with training fields and detector settings changed (keys: see the module docstring).
    ``config.model`` becomes a full :class:`DetectorConfig`; values are converted to each field's type
    ("0.5" → 0.5, "16,32" → [16.0, 32.0]) or a :class:`ConfigError` names the field."""
    model = config.detector_config()
    training: dict[str, Any] = {}
    detector: dict[str, Any] = {}
    hints = _train_hints()
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"model"}
    for key, value in (overrides or {}).items():
        name = key[len("training."):] if key.startswith("training.") else key
        if name == "generation" and value != config.generation:
            raise ConfigError(f"these settings are for {config.generation}; a {value} needs its own preset "
                              "(or none)")
        if name in MIRRORED or key in MIRRORED.values():
            part_key = MIRRORED.get(name, key)
            detector[part_key] = value
            if part_key in ("input.min_size", "input.max_size"):  # also the run's size (it wins on --resume)
                field_name = part_key.split(".")[1]
                training[field_name] = coerce_value("training", field_name, "int", value)
        elif name in fields:
            training[name] = coerce_value("training", name, hints[name], value)
        elif key.startswith("training."):
            raise ConfigError(f"training has no setting {name!r}; its settings are: {', '.join(sorted(fields))}")
        else:
            detector[".".join(resolve_name(key))] = value
    model = model.with_overrides(detector)
    return _synced(dataclasses.replace(config, **training), model)


def _synced(config: TrainConfig, model: DetectorConfig) -> TrainConfig:
    """``config`` carrying ``model``, its backbone fields set from it. ``min_size``/``max_size`` stay None
    unless overridden: None means "the model's" (the preset's, or on ``--resume`` the checkpoint's)."""
    return dataclasses.replace(config, model=model, backbone=model.backbone.name, weights=model.backbone.weights)


def preset(name: str, description: str, generation: str, model: Mapping[str, Any] | None = None,
           training: Mapping[str, Any] | None = None) -> Preset:
    """A preset from overrides of the generation's paper settings: ``model`` detector settings (dotted or
    flat names), ``training`` training fields."""
    base = TrainConfig(data="", out="", generation=generation, model=DetectorConfig.default(generation))
    config = apply_overrides(base, {**GENERATION_TRAINING.get(generation, {}), **dict(training or {}),
                                    **dict(model or {})})
    assert isinstance(config.model, DetectorConfig)
    # the sizes live in the input part; None in the training part lets --resume keep a checkpoint's
    return Preset(name, description, generation, config.model,
                  dataclasses.replace(config, min_size=None, max_size=None))


_SHAPES_BACKBONE = {"backbone.name": "small", "backbone.small_width": 24, "backbone.small_stride": 8,
                    "backbone.small_context": True, "input.min_size": 512, "input.max_size": 768,
                    "roi_head.pooling": "align", "roi_head.representation_size": 256}
_SHAPES_TRAINING = {"batch_size": 2, "optimizer": "adamw", "lr": 0.001, "rotate90": True, "cpu_bf16": True,
                    "seed": 0}
#: The Selective Search settings the shipped Fast R-CNN and R-CNN were trained with (fast mode's defaults
#: until 2026-11-30; the library's are now its own 13-grouping plan at 0.93): a recipe reproduces what was
#: measured. ``groupings`` empty: every colour space × these k, as they ran.
_SHIPPED_PROPOSALS = {"proposals.ks": [75.0, 150.0, 300.0], "proposals.near_duplicates": 0.9, "proposals.groupings": []}
_PAPER_TRAINING = {"optimizer": "sgd", "lr": 0.001, "momentum": 0.9, "weight_decay": 5e-4, "lr_schedule": "step",
                   "rotate90": False, "flip_prob": 0.5, "amp": True}
_PAPER_MODEL = {"backbone.name": "vgg16", "backbone.weights": "imagenet", "input.min_size": 600,
                "input.max_size": 1000, "roi_head.representation_size": 4096}

#: The built-in presets, in the order a list shows them. One entry per preset.
BUILTIN: list[Preset] = [
    preset("shapes-cpu",
           "Faster R-CNN from scratch on the synthetic shapes, on a 2-core CPU (bench/README.md, run I: test "
           "mAP@0.5 0.78-0.83 at one size after ~14 min). Small CNN width 24 at stride 8 with a context stage, "
           "RoIAlign, 512 px, anchors 32-256, AdamW.",
           "faster-rcnn",
           model={**_SHAPES_BACKBONE, "rpn.anchor_sizes": [32, 64, 128, 256], "rpn.pre_nms_train": 2000,
                  "rpn.post_nms_train": 512, "roi_head.positive_sampling": "per_object"},
           training={**_SHAPES_TRAINING, "epochs": 18}),
    preset("fast-rcnn-shapes-cpu",
           "Fast R-CNN on the synthetic shapes on a CPU (README: test mAP@0.5 0.720 after 9.6 min plus ~2 min of "
           "Selective Search): the shapes-cpu backbone and head on Selective Search 'fast' proposals.",
           "fast-rcnn", model={**_SHAPES_BACKBONE, **_SHIPPED_PROPOSALS}, training={**_SHAPES_TRAINING, "epochs": 12}),
    preset("rcnn-shapes-cpu",
           "R-CNN on the synthetic shapes on a CPU (README: resources/models/rcnn_shapes.pt): small CNN width 24 "
           "fine-tuned 12 epochs on 96-px warped proposals with 7 px of context (32 crops per image), then SVMs "
           "and box regressors on its fc7 codes of the 500 best proposals per training image; 2,000 proposals per "
           "test image. 17 CPU-min on one thread (syn400 test mAP@0.5 0.801). 96 px, not 64: at 64 px R-CNN's "
           "CNN per crop is too cheap against Fast R-CNN's 7x7 head for the papers' order of magnitude "
           "(bench/generations.py: 6.8x at 64 px, 12x at 96 px).",
           "rcnn", model={"backbone.name": "small", "backbone.small_width": 24, "proposals.test": 2000,
                          "warp.size": 96, "warp.context": 7, **_SHIPPED_PROPOSALS},
           training={"batch_size": 2, "optimizer": "adamw", "lr": 0.001, "rotate90": True, "cpu_bf16": True,
                     "epochs": 12, "seed": 0}),
    preset("cls-loc-shapes-cpu",
           "Classification + localisation from scratch on one-shape synthetic images (synth --single-object), on "
           "a CPU: the small CNN width 24 in its shallow pooled form (four conv + batch norm + ReLU + 2x2 "
           "max-pool layers, the last without its pool: an 8x8 map of a 64-px warp) and the spatial head (every "
           "cell proposes the box relative to itself, a softmax over the cells weighs them; the class is read "
           "where it looks), random crops holding the object (60-100% of each side) on half of the images, "
           "flips and quarter turns, the colour channels in a random order, alpha 0.1, AdamW 2e-3, batch 8, "
           "100 epochs (7-10 CPU-min on 400 images); at test time the class and box are averaged over the 8 "
           "flips and quarter turns it was trained with (cls_loc_head.test_turns), and the answer is a second "
           "look at a window around the first box, which fills 55% of its side (cls_loc_head.test_glimpse: "
           "a small object gets a few times the pixels). bench/README.md: 0.97 accuracy, 0.84 mean IoU on 100 "
           "seed-1 images after 432-463 CPU-s of training (seed 2 → 3: 0.96 / 0.82 after 546-610 CPU-s; the issue asks "
           "0.95 / 0.70).",
           "cls-loc", model={"backbone.name": "small", "backbone.small_width": 24, "backbone.small_norm": "batch",
                             "backbone.options": {"pool": True, "shallow": True, "last_pool": False},
                             "cls_loc_head.input_size": 64, "cls_loc_head.layout": "spatial",
                             "cls_loc_head.hidden": 128, "cls_loc_head.train_crop": 0.6,
                             "cls_loc_head.train_crop_share": 0.5, "cls_loc_head.test_turns": True,
                             "cls_loc_head.test_glimpse": 0.55, "cls_loc_head.train_colour_shuffle": True},
           training={"batch_size": 8, "optimizer": "adamw", "lr": 0.002, "rotate90": True, "epochs": 100,
                     "warmup_iters": 30, "seed": 0}),
    preset("finetune-photos-cpu",
           "Fine-tune on my photos: Faster R-CNN from the ImageNet EfficientNet-Lite0 on a few dozen labelled "
           "photographs, on a CPU (bench/finetune_cv.py, person of coco_tiny, 5-fold CV, figures in "
           "bench/README.md, 'Crowd regions scored as COCO scores them': held-out AP@0.5 0.321 ± 0.107 over "
           "three repetitions of the 5-fold split (0.361, 0.312 and 0.291 per repetition; 0.312 without "
           "copy-paste; pycocotools' AP@0.5 0.325), after 14-16 CPU-min of training each; the same recipe "
           "from random weights 0.032 ± 0.012 on seed 0's folds, stopped at 20 CPU-min: 11.2× less). "
           "512 px (longer side ≤ 853; training draws the shorter side from 448-576), anchors 32-512 × 1:2, 1:1, "
           "2:1 also across the border, backbone batch norm and first three stages frozen, the rest at a tenth "
           "of the learning rate, RoIAlign and two 512-wide layers, detections' NMS at IoU 0.5 (COCO's; "
           "people in groups overlap: 0.3 gave 0.209 on folds 0-3), AdamW 1e-3 for 24 epochs "
           "with a cosine decay, flips, a four-image mosaic at half size on half the items (YOLOv4's: four "
           "photos' persons and backgrounds per step) and zoom-out on half the others (a mean-coloured canvas up "
           "to 2× the side: smaller persons), and copy-paste on half the non-mosaic items (persons cut out "
           "of another training photo along their polygons; none where the data has no outlines). Tests at 512 and 640 px, each also mirrored, the four passes' detections "
           "merged by averaging (input.test_merge 'average': what the passes agree on ranks first): the "
           "flips it was trained with, and a larger size for the small persons; 4 passes cost ~5.5× the "
           "inference time of one (1.7 against 0.3 CPU-s a photo, one thread; input.test_sizes [] and "
           "test_flip false for one pass). Then each detection's score is calibrated by DeFRCN's prototypes "
           "(roi_head.calibration 'prototype'): mixed half and half with the ImageNet EfficientNet-Lite0's "
           "cosine between the box and the mean of its class's training boxes, which training computes at "
           "its end; one Lite0 pass per detection, ~0.4-1.2 CPU-s a photo ('none' leaves it out).",
           "faster-rcnn",
           model={"backbone.name": "efficientnet_lite0", "backbone.options": {"stride": 16},
                  "input.min_size": 512, "input.max_size": 853, "rpn.anchor_sizes": [32, 64, 128, 256, 512],
                  "rpn.anchor_ratios": [0.5, 1.0, 2.0], "rpn.pre_nms_train": 2000, "rpn.post_nms_train": 1000,
                  "rpn.pre_nms_test": 1000, "rpn.post_nms_test": 300, "rpn.ignore_cross_boundary": False,
                  "roi_head.pooling": "align", "roi_head.representation_size": 512, "roi_head.nms": 0.5,
                  # Test-time augmentation, chosen by principle before its folds were scored: the training's
                  # own flips, and 640 (above the 448-576 jitter) so that persons of 25-40 px at 512 reach
                  # the sizes the 32-px anchors at stride 16 find; merged by averaging over the passes (the
                  # union's NMS adds each pass's false positives: 182 → 340 detections on fold 0).
                  "input.test_sizes": [512, 640], "input.test_flip": True, "input.test_merge": "average",
                  # DeFRCN's prototype calibration with its own settings (alpha 0.5, scores 0.05-1.0), adopted by
                  # a rule fixed before it was scored: on the fifteen folds' checkpoints AP@0.5 0.263 -> 0.267,
                  # higher on 9 of 15 (bench/README.md, "Prototype calibration").
                  "roi_head.calibration": "prototype"},
           # 24 epochs (2026-12-01; 16 before): the 16-epoch model still scored only 0.71-0.75 AP on its own
           # training images, zoom-out adds variety to learn, and 16 used half the 20-min budget for no reason
           # about the fine-tuned model; 24 × 64 steps take 13-16 CPU-min. Earlier: 6 underfitted (AP 0.49 on
           # its own training images); 16 × 64 steps of ~0.6 CPU-s is
           # ~10 CPU-min, half the 20-min budget, leaving room for the slower from-scratch run of the same
           # recipe (~0.85 s a step). Shorter sides 448-576 (mean area that of 512): scale jitter, the usual
           # augmentation of few-shot detection, shows each of the few persons at several sizes.
           training={"epochs": 24, "lr": 1e-3, "optimizer": "adamw", "weight_decay": 1e-4, "warmup_iters": 50,
                     "lr_schedule": "cosine", "train_sizes": [448, 480, 512, 544, 576],
                     "backbone_lr_scale": 0.1, "batch_size": 1, "flip_prob": 0.5, "rotate90": False, "seed": 0,
                     # Zoom-out on half the images, canvas up to 2× the side (SSD's expand, whose probability
                     # it keeps; 2 rather than SSD's 4 at 300 px: one octave, the step between anchor sizes),
                     # chosen before its folds were scored: the missed persons are the small ones, and random
                     # crops, which enlarge them, hurt (bench/README.md, "Probes, 2026-11-30 19:05-20:25").
                     "zoom_out_prob": 0.5, "zoom_out_max": 2.0,
                     # Mosaic (YOLOv4's) on half the items, the others as above (so 25 % plain, 25 % zoomed
                     # out): four training images at half size per step, each person beside other photos'
                     # backgrounds, for one image's cost. Adopted by a rule fixed before its folds were
                     # trained (bench/README.md, "Two models merged, and mosaic").
                     "mosaic_prob": 0.5,
                     # Copy-paste (Ghiasi et al. 2021) on half the items that are no mosaic: persons cut out of
                     # another training photo along their outlines, new person/background pairs from the same
                     # labels (the preset was variance-limited). Adopted by a rule fixed before its folds were
                     # trained: 0.292 against 0.287, higher on 8 of 15 (bench/README.md, "Copy-paste on half
                     # the items"; with crowds scored as COCO does, 0.321 against 0.312, 8 of 15 again). A
                     # dataset without outlines pastes nothing, and the run's log says so.
                     "copy_paste_prob": 0.5}),
    preset("paper-gpu",
           "Faster R-CNN as the paper (Ren et al. 2015) on a GPU: ImageNet VGG16, 600/1000 px, anchors "
           "128/256/512 × 1:2, 1:1, 2:1, 4096-wide head, SGD lr 0.001 momentum 0.9, one image per step, "
           "the learning rate ÷10 for the last third.",
           "faster-rcnn", model=_PAPER_MODEL, training={**_PAPER_TRAINING, "batch_size": 1, "epochs": 16}),
    preset("fast-rcnn-paper-gpu",
           "Fast R-CNN as the paper (Girshick 2015) on a GPU: ImageNet VGG16, 600/1000 px, 2 images × 64 RoIs "
           "from 2000 Selective Search proposals, 25% foreground, SGD lr 0.001.",
           "fast-rcnn", model={**_PAPER_MODEL, "proposals.train": 2000, "proposals.test": 2000},
           training={**_PAPER_TRAINING, "batch_size": 2, "epochs": 16}),
    preset("rcnn-paper-gpu",
           "R-CNN as the paper (Girshick et al. 2014) on a GPU, with VGG16 (the paper's 'O-Net'): 2000 "
           "proposals, 16 px of context, 4096-wide fc6/fc7 with dropout, 128 crops per step (2 images × 64, "
           "25% foreground), fine-tuned with SGD lr 0.001, then SVMs (C 0.001) and ridge box regressors. Crops "
           "are 112 px so that fc6 sees the 7×7 map of the paper's network.",
           "rcnn", model={**_PAPER_MODEL, "proposals.train": 2000, "proposals.test": 2000, "warp.size": 112,
                          "warp.context": 8, "roi_head.dropout": 0.5, "roi_head.batch_size": 64},
           training={**_PAPER_TRAINING, "batch_size": 2, "epochs": 4}),
]

_REGISTRY: dict[str, Preset] = {}


def register_preset(item: Preset, replace: bool = False) -> Preset:
    """Add a preset (``replace`` to change one that exists; otherwise a name clash is an error)."""
    if item.name in _REGISTRY and not replace:
        raise ValueError(f"a preset named {item.name!r} exists already")
    if item.model.generation != item.generation or item.training.generation != item.generation:
        raise ConfigError(f"preset {item.name!r}: its parts are not all for {item.generation}")
    _REGISTRY[item.name] = item
    return item


for _item in BUILTIN:
    register_preset(_item)


def preset_names() -> list[str]:
    return list(_REGISTRY)


def get_preset(name: str) -> Preset:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownPreset(f"no preset named {name!r}; the presets are: {', '.join(_REGISTRY)}") from None


def describe_preset(name: str) -> dict[str, dict[str, Any]]:
    """Part name → field → value, every detector part of the preset's generation and then ``training`` (the
    recipe's training fields; the mirrored ones appear under their parts)."""
    item = get_preset(name)
    out = item.model.to_dict()
    training = item.training.to_dict()
    out["training"] = {k: v for k, v in training.items() if k not in _ENVIRONMENT and k not in MIRRORED}
    return out


def train_config_from_preset(name: str, data: str, out: str, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The preset's training config for ``data`` → ``out``, with ``overrides`` applied field by field."""
    item = get_preset(name)
    return apply_overrides(dataclasses.replace(item.training, data=str(data), out=str(out), preset=item.name),
                           overrides)


#: Fields of a saved run that say how the machine it ran on ran it, or bound one invocation: a resumed run
#: takes them from where it runs now (the step cap would otherwise stop it at once: progressive resizing's
#: first phase ends there; a time budget is per run, given again to bound the next).
_RUN_MACHINE = ("device", "threads", "num_workers", "max_steps", "time_budget_s")
#: The detector settings a resumed run may change: its size (progressive resizing). The rest is the
#: checkpoint's, as the loop rebuilds the model from it.
_RESUMABLE_DETECTOR = {"min_size", "max_size", "input.min_size", "input.max_size"}


def _same_path(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    try:
        return Path(str(a)).resolve() == Path(str(b)).resolve()
    except OSError:
        return str(a) == str(b)


def resumed_train_config(saved: Mapping[str, Any], checkpoint: str, data: str, out: str,
                         overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """The run whose training config is ``saved`` (a checkpoint's ``config``) continued from ``checkpoint`` on
    ``data`` into ``out``: its recipe as it was saved (optimiser, schedule, augmentation, classes, images), this
    machine's defaults for how it runs, then ``overrides``. Without this a resumed run fell back to the paper's
    settings for every field not given again (a fine-tuned run resumed with SGD at 0.01 and no augmentation).
    A config that is not one of ours, or an override of the detector itself (its generation, backbone, anchors,
    head: the checkpoint's weights fix them; only the size may change), raises :class:`ConfigError`."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    generation = str(saved.get("generation", "faster-rcnn"))
    for key, value in (overrides or {}).items():
        name = key[len("training."):] if key.startswith("training.") else key
        if name == "generation" and str(value) != generation:
            raise ConfigError(f"{checkpoint} holds a {generation} model; a {value} is a new run (no --resume)")
        if name != "generation" and (name not in known or name in MIRRORED) and key not in _RESUMABLE_DETECTOR:
            raise ConfigError(f"{checkpoint}: a resumed run keeps the detector it was saved with ({key} cannot "
                              "change); the training settings and the size (--min-size, --max-size) can")
    fields = {k: v for k, v in dict(saved).items() if k in known and k not in _RUN_MACHINE}
    if not _same_path(data, saved.get("data")):  # another copy of the data: its images are where it says
        fields.pop("images_dir", None)
    fields.update(data=str(data), out=str(out), resume=str(checkpoint))
    try:
        base = TrainConfig(**fields)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{checkpoint}: its saved training settings cannot be read ({exc})") from exc
    return apply_overrides(base, overrides)


def default_train_config(data: str, out: str, generation: str = "faster-rcnn",
                         overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The training config when no preset is named: the generation's paper settings, then ``overrides``."""
    base = TrainConfig(data=str(data), out=str(out), generation=generation, model=DetectorConfig.default(generation))
    return apply_overrides(base, {**GENERATION_TRAINING.get(generation, {}), **dict(overrides or {})})


__all__ = ["BUILTIN", "Preset", "UnknownPreset", "apply_overrides", "default_train_config", "describe_preset",
           "get_preset", "preset", "preset_names", "register_preset", "resumed_train_config", "setting_help",
           "train_config_from_preset"]
