"""One configuration object per part of a detector, shared by the generations that use the part.

A detector is described by a :class:`DetectorConfig`: the :class:`BackboneConfig`, the :class:`InputConfig`
(image sizes, test-time augmentation, normalisation) and, by generation, the :class:`RPNConfig` (Faster R-CNN),
the :class:`ProposalConfig` (Selective Search: Fast R-CNN and R-CNN), the :class:`RoIHeadConfig` (the head on
proposals: all three) and R-CNN's :class:`WarpConfig` and :class:`SVMConfig`. Each setting is named once, as a
field here, with its paper default and a one-line help; the detectors read the parts, checkpoints store
``DetectorConfig.to_dict()`` (plain nested dicts, loadable with ``torch.load(weights_only=True)``), and named
presets (:mod:`models.detection.presets`) are instances of these objects.

Why one object per part: a Faster R-CNN constructor of 45 keyword arguments named each of them three times
(signature, saved config, call to its child), and the RoI-head settings are needed by three detectors.

The settings used to be flat keyword arguments (``rpn_pre_nms_train``, ``roi_batch_size``, ``crops_per_image``
...). Those names live on as each field's ``v1`` alias: checkpoints of format version 1 store them, and
``build_detector(..., anchor_sizes=...)`` / ``--model-arg rpn_nms=0.6`` still accept them. :func:`migrate_v1`
is the one place that maps them onto the parts.

What makes a part a part (typed coercion, the plain-dict round trip, each field's help) is in
:mod:`models.detection.config_fields`; this file is the list of settings and how the parts combine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from models.detection.config_fields import (
    ConfigError,
    Part,
    coerce_value,
    field_names,
    field_of,
    setting,
    type_text,
)

#: torchvision's ImageNet statistics; the backbones' weights expect them and the small CNN uses them too.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# -------------------------------------------------------------------------------------------------- parts


@dataclass(frozen=True)
class BackboneConfig(Part):
    """The convolutional body (:mod:`models.detection.backbones`)."""

    PART = "backbone"
    name: str = setting("small", "backbone: small (from scratch), vgg16, resnet50, mobilenet_v3, efficientnet_lite0",
                        "backbone")
    weights: str | None = setting(None, "initial weights: a .pth file, 'imagenet', or 'none' (random); empty "
                                        "(the window's 'default'): the backbone's pretrained weights, as its "
                                        "entry in the Backbone list says", "backbone_weights")
    pretrained: bool = setting(False, "the backbone has a pretrained layout (frozen batch norm); set when built",
                               "backbone_pretrained")
    small_width: int = setting(32, "small CNN: channels of its first stage (8× this at the top)", "small_width")
    small_norm: str = setting("group", "small CNN: 'group' or 'batch' normalisation", "small_norm")
    small_stride: int = setting(16, "small CNN: feature stride, 16 or 8 (top-down fusion)", "small_stride")
    small_context: bool = setting(False, "small CNN: add a stride-32 context stage", "small_context")
    options: dict = setting({}, "the backbone's own options (e.g. efficientnet_lite0's stride, frozen_stages)",
                            "backbone_options")


@dataclass(frozen=True)
class InputConfig(Part):
    """How images enter the network: resizing, test-time augmentation, normalisation."""

    PART = "input"
    min_size: int = setting(600, "shorter image side after resizing (the papers: 600)", "min_size")
    max_size: int = setting(1000, "cap on the longer side after resizing (the papers: 1000)", "max_size")
    test_sizes: list[int] = setting([], "shorter sides to test at (multi-scale testing); empty: min_size alone",
                                    "test_sizes")
    test_flip: bool = setting(False, "also test on the mirrored image and merge", "test_flip")
    test_merge: str = setting("nms", "how the test passes' detections are merged (test sizes, flip): nms (per-class "
                                     "NMS at the RoI head's IoU over all passes' detections); vote (the same "
                                     "NMS, then each kept box moved to the score-weighted mean of the boxes of "
                                     "its class it overlaps at that IoU: the passes vote on where the object "
                                     "is; scores and count as nms); average (vote, and each score the mean over "
                                     "the passes of each pass's best overlapping score, 0 where a pass saw "
                                     "nothing: what the passes agree on ranks first, as weighted box fusion)")
    test_size_range: list[float] | None = setting(
        None, "multi-scale testing: object size range [lo, hi) in input pixels each size may report (SNIP)",
        "test_size_range")
    image_mean: list[float] = setting(list(IMAGENET_MEAN), "per-channel mean subtracted (0..1 RGB)", "image_mean")
    image_std: list[float] = setting(list(IMAGENET_STD), "per-channel std divided by", "image_std")

    def validate(self) -> None:
        if self.min_size <= 0 or self.max_size <= 0:
            raise ConfigError(f"input sizes must be positive, got min_size {self.min_size}, max_size {self.max_size}")
        if self.test_size_range is not None:
            if len(self.test_size_range) != 2 or not 0 <= self.test_size_range[0] < self.test_size_range[1]:
                raise ConfigError(f"a test size range is 0 <= lo < hi, got {self.test_size_range}")
        if self.test_merge not in ("nms", "vote", "average"):
            raise ConfigError(f"input.test_merge is 'nms', 'vote' or 'average', got {self.test_merge!r}")
        if self.test_merge == "average" and self.test_size_range is not None:
            raise ConfigError("input.test_merge 'average' counts a pass that did not report an object as a vote "
                              "against it, which a test size range makes wrong: use 'nms' or 'vote' with one")
        if any(v <= 0 for v in self.test_sizes):
            raise ConfigError(f"input.test_sizes are positive, got {self.test_sizes}")
        if len(self.image_mean) != 3 or len(self.image_std) != 3:
            raise ConfigError("image_mean and image_std hold three values (R, G, B)")


@dataclass(frozen=True)
class RPNConfig(Part):
    """Anchors and the Region Proposal Network (Faster R-CNN, section 3.1)."""

    PART = "rpn"
    anchor_sizes: list[float] = setting([128.0, 256.0, 512.0], "anchor sizes in input pixels (the paper: 128-512)",
                                        "anchor_sizes")
    anchor_ratios: list[float] = setting([0.5, 1.0, 2.0], "anchor aspect ratios (height / width)", "anchor_ratios")
    mid_channels: int | None = setting(None, "channels of the 3×3 conv; empty: the backbone's", "rpn_mid_channels")
    positive_iou: float = setting(0.7, "an anchor is positive at IoU ≥ this with a box", "rpn_positive_iou")
    negative_iou: float = setting(0.3, "an anchor is negative at IoU < this with every box", "rpn_negative_iou")
    batch_size: int = setting(256, "anchors sampled per image for the loss", "rpn_batch_size")
    positive_fraction: float = setting(0.5, "at most this share of sampled anchors positive", "rpn_positive_fraction")
    pre_nms_train: int = setting(12000, "training: top-scoring proposals entering NMS", "rpn_pre_nms_train")
    post_nms_train: int = setting(2000, "training: proposals kept after NMS", "rpn_post_nms_train")
    pre_nms_test: int = setting(6000, "test: top-scoring proposals entering NMS", "rpn_pre_nms_test")
    post_nms_test: int = setting(300, "test: proposals kept after NMS (the head's RoIs)", "rpn_post_nms_test")
    nms: float = setting(0.7, "NMS IoU threshold among proposals", "rpn_nms")
    min_size: float = setting(0.0, "drop proposals smaller than this (input pixels)", "rpn_min_size")
    ignore_cross_boundary: bool = setting(True, "training ignores anchors crossing the image border (the paper)",
                                          "ignore_cross_boundary")
    backbone_gradient: float = setting(1.0, "scale of the RPN's gradient into the shared backbone: 1 the paper's "
                                       "joint training, 0 stops it (DeFRCN's gradient-decoupled layer)")

    def validate(self) -> None:
        if not self.anchor_sizes or not self.anchor_ratios:
            raise ConfigError("rpn needs at least one anchor size and one ratio")
        if any(v <= 0 for v in self.anchor_sizes + self.anchor_ratios):
            raise ConfigError(f"anchor sizes and ratios are positive, got {self.anchor_sizes}, {self.anchor_ratios}")


@dataclass(frozen=True)
class ProposalConfig(Part):
    """External Selective Search proposals (Fast R-CNN, R-CNN), computed once and cached on disk."""

    PART = "proposals"
    mode: str = setting("fast", "Selective Search mode: single, fast or quality", "proposal_mode")
    ks: list[float] | None = setting(None, "segmentation scales k; empty: the mode's (fixed when the model is "
                                           "built, so a later change of the library's default cannot change it)",
                                     "proposal_ks")
    near_duplicates: float | None = setting(None, "drop a box at IoU ≥ this with a better-ranked one (1: exact "
                                                  "duplicates only); empty: the library's, fixed at build",
                                            "proposal_near_duplicates")
    groupings: list[str] | None = setting(None, "the groupings run, as space:k:similarities (e.g. lab:200:F), in "
                                                "place of every space × k (ks is then left empty); empty: from k "
                                                "(fast mode's own plan is written here when the model is built)", "proposal_groupings")
    max_side: int | None = setting(500, "images are shrunk to this longer side for Selective Search",
                                   "proposal_max_side")
    seed: int = setting(0, "seed of Selective Search's random ranking", "proposal_seed")
    min_box_size: float = setting(4.0, "drop proposals smaller than this (pixels)", "proposal_min_box_size")
    train: int = setting(2000, "proposals per training image", "proposals_train")
    test: int = setting(2000, "proposals per test image", "proposals_test")

    def validate(self) -> None:
        from models.proposals.selective_search import Strategy

        strategies = []
        for g in self.groupings or ():
            try:
                strategies.append(Strategy.parse(g))
            except ValueError as exc:
                raise ConfigError(f"proposals.groupings: {exc}") from None
        grouping_ks = sorted({s.k for s in strategies})
        if strategies and self.ks is not None and sorted({float(k) for k in self.ks}) != grouping_ks:
            # groupings name their own k; a different ks beside them would be ignored without a word
            raise ConfigError(f"proposals.ks {list(self.ks)} is not used when proposals.groupings is set (its "
                              f"groupings run k {', '.join(f'{k:g}' for k in grouping_ks)}); leave ks empty")

    def pinned(self, legacy: bool) -> ProposalConfig:
        """This part with "the mode's" groupings, k values and near-duplicate threshold written out, so a model
        keeps the proposals it was trained on when the library's defaults change. ``legacy``: a saved model
        that left them empty gets the values of its time (no groupings, :data:`LEGACY_FAST_KS`,
        :data:`LEGACY_QUALITY_KS`, :data:`LEGACY_NEAR_DUPLICATES`); a new one the current defaults (fast: its
        own plan's groupings, and as ``ks`` the k values they run, so the saved config says what runs)."""
        from models.proposals.selective_search import Strategy, default_ks, default_near_duplicates, own_plan

        groupings = self.groupings
        if groupings is None:  # a mode's own plan (fast's since 2026-11-30 late) only where k was not given
            plan = None if legacy else own_plan(self.mode, self.ks)
            groupings = [s.token for s in plan] if plan is not None else []
        ks = self.ks
        if ks is None and groupings:
            ks = sorted({Strategy.parse(g).k for g in groupings})
        if ks is None:
            legacy_ks = {"fast": LEGACY_FAST_KS, "quality": LEGACY_QUALITY_KS}.get(self.mode) if legacy else None
            ks = list(legacy_ks) if legacy_ks is not None else list(default_ks(self.mode))
        near = self.near_duplicates
        if near is None:
            near = LEGACY_NEAR_DUPLICATES if legacy else default_near_duplicates(self.mode, self.ks)
        return self.replace(ks=ks, near_duplicates=near, groupings=groupings)


#: "The mode's" Selective Search settings when a model saved without them (``ks`` / ``near_duplicates``
#: empty) was trained: until 2026-11-30 fast mode used k 75, 150, 300 and dropped near-duplicates at IoU 0.9.
LEGACY_FAST_KS = (75.0, 150.0, 300.0)
#: Quality mode's k values until 2026-11-30 14:00 (the paper's; now 50, 75, 100, 150, 200, 300).
LEGACY_QUALITY_KS = (50.0, 100.0, 150.0, 300.0)
LEGACY_NEAR_DUPLICATES = 0.9


@dataclass(frozen=True)
class RoIHeadConfig(Part):
    """The classifier and box regressor on proposals: Fast R-CNN's head (also Faster R-CNN's) and R-CNN's
    fine-tuned fc6/fc7 with its sampling. R-CNN warps crops instead of pooling: it ignores ``pool_size``,
    ``pooling``, ``bg_iou_*`` and ``positive_sampling``."""

    PART = "roi_head"
    pool_size: int = setting(7, "RoI pooling output cells per side", "pool_size")
    pooling: str = setting("pool", "'pool' (RoI max pooling, the paper) or 'align' (RoIAlign)", "pooling")
    representation_size: int = setting(4096, "width of the two fully connected layers (VGG16: 4096)",
                                       "representation_size")
    dropout: float = setting(0.0, "dropout after each fully connected layer", "dropout")
    fg_iou: float = setting(0.5, "a RoI is foreground at IoU ≥ this with a box", "roi_fg_iou", "fg_iou")
    bg_iou_high: float = setting(0.5, "background: best IoU below this ...", "roi_bg_iou_high")
    bg_iou_low: float = setting(0.0, "... and at least this (Fast R-CNN: 0.1)", "roi_bg_iou_low")
    batch_size: int = setting(128, "RoIs (R-CNN: warped crops) sampled per image for the loss", "roi_batch_size",
                              "crops_per_image")
    positive_fraction: float = setting(0.25, "at most this share of sampled RoIs foreground",
                                       "roi_positive_fraction", "positive_fraction")
    positive_sampling: str = setting("random", "'random' (the paper) or 'per_object' (each object its share)",
                                     "roi_positive_sampling")
    score_threshold: float = setting(0.05, "detections need a class score above this", "box_score_threshold")
    nms: float = setting(0.3, "per-class NMS IoU threshold of the detections", "box_nms")
    detections_per_image: int = setting(100, "at most this many detections per image", "detections_per_image")
    calibration: str = setting("none", "scores calibrated after detection: 'none', or 'prototype' (DeFRCN: an "
                               "ImageNet EfficientNet-Lite0's cosine between the box and its class's mean "
                               "training box, mixed into the score; prototypes fitted when training ends)")
    calibration_alpha: float = setting(0.5, "prototype calibration: the weight of the detector's own score "
                                       "(DeFRCN: 0.5; the rest is the ImageNet similarity)")

    def validate(self) -> None:
        if self.calibration not in ("none", "prototype"):
            raise ConfigError("roi_head.calibration is 'none' or 'prototype'")
        if not 0.0 <= self.calibration_alpha <= 1.0:
            raise ConfigError("roi_head.calibration_alpha is between 0 and 1")
        if self.pooling not in ("pool", "align"):
            raise ConfigError("roi_head.pooling is 'pool' (RoI max pooling, the paper) or 'align'")
        if self.positive_sampling not in ("random", "per_object"):
            raise ConfigError("roi_head.positive_sampling is 'random' or 'per_object'")


@dataclass(frozen=True)
class WarpConfig(Part):
    """R-CNN's crops: each proposal with context, warped to a square for the CNN."""

    PART = "warp"
    size: int = setting(64, "side of the warped crop in pixels (the paper: 227)", "warp_size")
    context: int = setting(5, "pixels of surroundings around each box at the warped scale (the paper: 16)",
                           "context")


@dataclass(frozen=True)
class SVMConfig(Part):
    """R-CNN's last stage: per-class linear SVMs with hard-negative mining and ridge box regressors."""

    PART = "svm"
    c: float = setting(1e-3, "SVM regularisation C", "svm_c")
    positive_weight: float = setting(2.0, "weight of positive examples in the SVM loss", "svm_positive_weight")
    negative_iou: float = setting(0.3, "negatives: IoU below this with every box of the class", "svm_negative_iou")
    margin: float = setting(1.0, "hard negatives: scoring above -margin", "svm_margin")
    passes: int = setting(2, "passes of hard-negative mining over the training images", "svm_passes")
    retrain_every: int = setting(20, "retrain the SVM after this many images of mining", "svm_retrain_every")
    bbox_iou: float = setting(0.6, "box regression learns from proposals with IoU > this", "bbox_iou")
    ridge_alpha: float = setting(1000.0, "ridge regression penalty of the box regressors", "ridge_alpha")


@dataclass(frozen=True)
class ClsLocHeadConfig(Part):
    """Classification + localisation (the step before R-CNN): one class and one box per image."""

    PART = "cls_loc_head"
    input_size: int = setting(128, "each image is warped to this square before the backbone")
    grid: int = setting(4, "the feature map is averaged to grid×grid cells before the fully connected layer, "
                           "so the head still knows where things are (a global average would not)")
    layout: str = setting("grid", "grid: one fully connected layer over the grid-averaged map; spatial: every "
                                  "cell of the map proposes a box relative to itself and a softmax over the "
                                  "cells weighs them (what one cell learns holds at every position)")
    hidden: int = setting(256, "width of the fully connected layer (spatial: of the 3×3 conv on the map)")
    dropout: float = setting(0.0, "dropout after the fully connected layer")
    train_crop: float = setting(1.0, "training only: each image is cut to a random window of this fraction to "
                                     "1 of its width and height that still holds the whole object (1: no "
                                     "cropping); new scales, positions and backgrounds every epoch")
    train_crop_share: float = setting(1.0, "training only: the share of images that are cropped (the rest are "
                                           "seen whole, as at test time). Crops only zoom in, so with every "
                                           "image cropped the smallest objects of the test images are rarer in "
                                           "training than in the data")
    train_colour_shuffle: bool = setting(False, "training only: each image's red, green and blue channels are "
                                                "put in a random order (one of 6): the class is the outline's, "
                                                "never the colour's, and the few photo backgrounds look new")
    antialias: bool = setting(False, "warp the image to the square input with an antialiasing filter (each "
                                     "input pixel averages the pixels it covers) rather than bilinear samples "
                                     "of 4 pixels: shrinking a 400-px image to 64 px otherwise drops most "
                                     "pixels and a small shape's outline with them")
    test_turns: bool = setting(False, "at test time, average the class probabilities and the box over the 8 "
                                      "flips and quarter turns of the square input (each box turned back): "
                                      "for a model trained with flips and quarter turns (rotate90), whose "
                                      "answer should not depend on them; costs 8 forward passes per image")
    test_glimpse: float = setting(0.0, "at test time, a second look: the image is cut to a window around the "
                                       "first answer's box, sized so the box fills this share of each side, "
                                       "and the model answers again on it (class and box, the box mapped back "
                                       "to the image); a small object gets more input pixels. 0: one look")
    alpha: float = setting(0.1, "loss = alpha·cross-entropy + (1 − alpha)·mean squared error of the box: "
                                "cross-entropy starts near ln K ≈ 1, the box error of normalised coordinates "
                                "near 0.04, so an even split would let classification drown the box")

    def validate(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"cls_loc_head.alpha lies in [0, 1], got {self.alpha}")
        if not 0.0 < self.train_crop <= 1.0:
            raise ConfigError(f"cls_loc_head.train_crop lies in (0, 1], got {self.train_crop}")
        if not 0.0 <= self.train_crop_share <= 1.0:
            raise ConfigError(f"cls_loc_head.train_crop_share lies in [0, 1], got {self.train_crop_share}")
        if not 0.0 <= self.test_glimpse <= 1.0:
            raise ConfigError(f"cls_loc_head.test_glimpse lies in [0, 1] (0: off), got {self.test_glimpse}")
        if self.layout not in ("grid", "spatial"):
            raise ConfigError(f"cls_loc_head.layout is 'grid' or 'spatial', got {self.layout!r}")
        if self.input_size < 32 or self.grid < 1:
            raise ConfigError("cls_loc_head needs input_size ≥ 32 and grid ≥ 1")


#: Part name → class, in the order a panel shows them.
PART_TYPES: dict[str, type[Part]] = {cls.PART: cls for cls in (
    BackboneConfig, InputConfig, RPNConfig, ProposalConfig, RoIHeadConfig, WarpConfig, SVMConfig,
    ClsLocHeadConfig)}

#: The parts each generation is made of.
GENERATION_PARTS: dict[str, tuple[str, ...]] = {
    "faster-rcnn": ("backbone", "input", "rpn", "roi_head"),
    "fast-rcnn": ("backbone", "input", "proposals", "roi_head"),
    "rcnn": ("backbone", "input", "proposals", "roi_head", "warp", "svm"),
    "cls-loc": ("backbone", "input", "cls_loc_head"),
}

#: Where a generation's paper (or our CPU adaptation of it) differs from the parts' defaults.
GENERATION_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "faster-rcnn": {},
    # Fast R-CNN: 2 images × 64 RoIs, background IoU in [0.1, 0.5).
    "fast-rcnn": {"roi_head": {"bg_iou_low": 0.1, "batch_size": 64}},
    # R-CNN on a CPU (models/detection/detectors/rcnn.py): 500 proposals, 512-wide fc layers with dropout,
    # 32 crops per image.
    "rcnn": {"proposals": {"train": 500, "test": 500},
             "roi_head": {"representation_size": 512, "dropout": 0.5, "batch_size": 32}},
    # Classification + localisation warps every image to a 128-px square: loading it at 128 px (longer side
    # at most 256) costs less than at the detectors' 600 and loses nothing.
    "cls-loc": {"input": {"min_size": 128, "max_size": 256}},
}


def _aliases() -> dict[str, tuple[str, str]]:
    table: dict[str, tuple[str, str]] = {}
    for part, cls in PART_TYPES.items():
        for f in dataclasses.fields(cls):
            for alias in f.metadata.get("v1", ()):
                if alias in table and table[alias] != (part, f.name):
                    raise AssertionError(f"v1 name {alias!r} maps to two settings")
                table[alias] = (part, f.name)
    return table


#: Flat v1 setting name → (part, field). The one table :func:`migrate_v1` and flat keyword overrides use.
V1_NAMES: dict[str, tuple[str, str]] = _aliases()


# ------------------------------------------------------------------------------------------ the whole set


@dataclass(frozen=True)
class DetectorConfig:
    """All parts of one detector. Parts a generation does not use are None."""

    generation: str
    backbone: BackboneConfig
    input: InputConfig
    roi_head: RoIHeadConfig | None = None  # every generation but classification + localisation
    rpn: RPNConfig | None = None
    proposals: ProposalConfig | None = None
    warp: WarpConfig | None = None
    svm: SVMConfig | None = None
    cls_loc_head: ClsLocHeadConfig | None = None

    def __post_init__(self) -> None:
        # Checks across parts (each part validates its own fields). Classification + localisation answers one
        # box per image from one square input: the detectors' merge of test passes (per-class NMS over many
        # boxes) would let it return several, and its trace could not show them; it has its own averaging.
        if self.generation == "cls-loc" and (self.input.test_sizes or self.input.test_flip):
            raise ConfigError("classification + localisation does not take input.test_sizes or input.test_flip "
                              "(they merge several detections; it answers one box): its test-time augmentation "
                              "is cls_loc_head.test_turns, the average over the 8 flips and quarter turns "
                              "(--test-turns)")

    @classmethod
    def default(cls, generation: str) -> DetectorConfig:
        """The generation's paper settings (:data:`GENERATION_DEFAULTS` over the parts' defaults)."""
        parts = _parts_of(generation)
        changes = GENERATION_DEFAULTS.get(generation, {})
        return cls(generation, **{p: PART_TYPES[p](**changes.get(p, {})) for p in parts})

    def parts(self) -> Iterator[tuple[str, Part]]:
        """(name, part) for the parts this generation uses, in panel order."""
        for name in _parts_of(self.generation):
            yield name, getattr(self, name)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain nested dicts, part → field → value: what checkpoints store as ``model_config`` (version 2)."""
        return {name: part.to_dict() for name, part in self.parts()}

    @classmethod
    def from_dict(cls, generation: str, values: Mapping[str, Any]) -> DetectorConfig:
        """The inverse of :meth:`to_dict`; parts left out keep the generation's defaults."""
        return cls.default(generation).with_overrides(values)

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> DetectorConfig:
        """A copy with settings changed. Keys: a part name with a dict of fields (``{"rpn": {"nms": 0.6}}``),
        a dotted ``"part.field"`` (``"rpn.anchor_sizes"``) or a flat v1 name (``"anchor_sizes"``,
        ``"crops_per_image"``). A part given as an object replaces the whole part."""
        changes: dict[str, dict[str, Any]] = {}
        replaced: dict[str, Part] = {}
        for key, value in (overrides or {}).items():
            if key in PART_TYPES and isinstance(value, Part):
                replaced[key] = value
            elif key in PART_TYPES and isinstance(value, Mapping):
                for k, v in value.items():
                    changes.setdefault(key, {})[str(k)] = v
            else:
                part, name = resolve_name(key)
                changes.setdefault(part, {})[name] = value
        values: dict[str, Any] = {}
        used = set(_parts_of(self.generation))
        for part in set(changes) | set(replaced):
            if part not in used:
                keys = ", ".join(sorted(changes.get(part, {}))) or part
                raise ConfigError(f"{self.generation} has no {part} part (settings {keys}); its parts are "
                                  f"{', '.join(_parts_of(self.generation))}")
        for part, obj in replaced.items():
            values[part] = obj
        for part, fields in changes.items():
            current = values.get(part, getattr(self, part))
            unknown = sorted(set(fields) - set(field_names(type(current))))
            if unknown:
                raise ConfigError(f"{part} has no setting {', '.join(map(repr, unknown))}; its settings are: "
                                  f"{', '.join(field_names(type(current)))}")
            values[part] = dataclasses.replace(current, **fields)
        return dataclasses.replace(self, **values)

    def pinned(self, legacy: bool) -> DetectorConfig:
        """A copy with settings that mean "the library's default" written out as values (the Selective Search
        part of the generations that take external proposals: :meth:`ProposalConfig.pinned`)."""
        if self.proposals is None:
            return self
        return dataclasses.replace(self, proposals=self.proposals.pinned(legacy))

    def get(self, key: str) -> Any:
        """A setting by dotted or flat v1 name."""
        part, name = resolve_name(key)
        obj = getattr(self, part)
        if obj is None:
            raise ConfigError(f"{self.generation} has no {part} part")
        return getattr(obj, name)


def _parts_of(generation: str) -> tuple[str, ...]:
    if generation not in GENERATION_PARTS:
        raise ConfigError(f"unknown detector generation {generation!r} "
                          f"(available: {', '.join(sorted(GENERATION_PARTS))})")
    return GENERATION_PARTS[generation]


def resolve_name(key: str) -> tuple[str, str]:
    """(part, field) of a dotted ``"part.field"`` or a flat v1 name; :class:`ConfigError` when neither."""
    if "." in key:
        part, _, name = key.partition(".")
        if part not in PART_TYPES:
            raise ConfigError(f"no detector part {part!r}; parts: {', '.join(PART_TYPES)}")
        field_of(PART_TYPES[part], name)
        return part, name
    if key in V1_NAMES:
        return V1_NAMES[key]
    raise ConfigError(f"unknown detector setting {key!r}: name it as part.field (e.g. rpn.anchor_sizes, "
                      f"roi_head.representation_size) or by its flat name; parts: {', '.join(PART_TYPES)}")


def migrate_v1(generation: str, flat: Mapping[str, Any]) -> DetectorConfig:
    """The parts a checkpoint of format version 1 describes (its flat ``model_config``), the only place
    that knows the old layout; settings it lacks keep the generation's defaults, as the old constructor's."""
    return DetectorConfig.default(generation).with_overrides(dict(flat))


def detector_config(generation: str, model_config: Mapping[str, Any] | DetectorConfig | None,
                    version: int = 2) -> DetectorConfig:
    """A checkpoint's ``model_config`` (or a training config's ``model``) as a :class:`DetectorConfig`,
    whichever layout it is in: version 1 flat names, version 2 nested parts, or a mix of overrides."""
    if isinstance(model_config, DetectorConfig):
        if model_config.generation != generation:
            raise ConfigError(f"settings of a {model_config.generation} given for a {generation}")
        return model_config
    if version < 2:
        return migrate_v1(generation, model_config or {})
    return DetectorConfig.default(generation).with_overrides(model_config or {})


__all__ = ["BackboneConfig", "ConfigError", "DetectorConfig", "GENERATION_DEFAULTS", "GENERATION_PARTS",
           "IMAGENET_MEAN", "IMAGENET_STD", "InputConfig", "PART_TYPES", "Part", "ProposalConfig",
           "RPNConfig", "RoIHeadConfig", "SVMConfig", "V1_NAMES", "WarpConfig", "detector_config",
           "coerce_value", "field_names", "migrate_v1", "resolve_name", "type_text"]
