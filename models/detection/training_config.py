"""What a training run is given and what it reports: :class:`TrainConfig` (saved in every checkpoint), the
:class:`TrainEvent` its subscribers receive (the terminal's progress bar, the window's plots) and the
:class:`TrainResult` it ends with. Apart from the loop (models/detection/training.py) because the window, the
command line and the presets build and read these without importing the loop's torch machinery.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from models.detection.config import DetectorConfig, detector_config


@dataclass
class TrainConfig:
    """Everything a run depends on (the training part of the configuration); saved in every checkpoint.

    ``model``: the detector's settings — a :class:`~models.detection.config.DetectorConfig` (what a preset
    gives), or a plain dict of overrides over the generation's paper settings: part dicts
    (``{"rpn": {"anchor_sizes": [32, 64]}}``), dotted names (``{"rpn.anchor_sizes": [32, 64]}``) or the flat
    names (``{"anchor_sizes": [32, 64, 128], "representation_size": 512}``). ``backbone``, ``weights``,
    ``min_size`` and ``max_size`` here win over the same settings in ``model`` (see :meth:`detector_config`).
    """

    data: str
    out: str
    generation: str = "faster-rcnn"
    backbone: str = "small"
    weights: str | None = None
    epochs: int = 12
    batch_size: int = 1
    lr: float = 0.01
    optimizer: str = "sgd"  # "sgd" (the papers: momentum 0.9) or "adamw" (converges faster from scratch)
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 200
    lr_schedule: str = "cosine"  # one of LR_SCHEDULES: "cosine", "step" (×0.1 at 2/3, as the papers), "constant"
    #: Shorter side / longer-side cap of training images. None: a resumed run keeps its checkpoint's, a new
    #: one uses 600 / 1000 (the papers). A resumed run given other sizes switches to them — progressive
    #: resizing: most epochs cheap at a small size, the last ones at the size the model will be tested at.
    min_size: int | None = None
    max_size: int | None = None
    split: str = "train"
    device: str = "auto"
    seed: int = 0
    resume: str | None = None
    images_dir: str | None = None
    flip_prob: float = 0.5
    #: Random quarter turns as well as flips: only for data with no "up" (aerial, microscopy, synthetic shapes).
    rotate90: bool = False
    #: Multi-scale training: each image's shorter side drawn from this list (None: always ``min_size``).
    train_sizes: list[int] | None = None
    #: Random crops ("zoom in", SSD's augmentation): the share of images shown, each epoch, as a random window
    #: whose sides are each at least ``crop_min_side`` of the image's and which keeps at least one object's
    #: centre (objects whose centre it holds are clipped to it; what shows of the others is an ignore region,
    #: not background). 0: whole images only.
    crop_prob: float = 0.0
    crop_min_side: float = 0.5
    #: Brightness, contrast and saturation each scaled by a random factor in 1 ± this (0: off): a few dozen
    #: photos show each object in one light only.
    colour_jitter: float = 0.0
    #: Zoom out (SSD's "expand"): the share of images placed, each epoch, on a mean-coloured canvas a random
    #: 1 to ``zoom_out_max`` times their side, so every object comes out smaller (0: off).
    zoom_out_prob: float = 0.0
    zoom_out_max: float = 2.0
    #: Mosaic (YOLOv4's): the share of images shown, each epoch, as the top-left tile of a four-image mosaic,
    #: each image at half the training size around a random centre, three other training images beside it
    #: (:mod:`models.data.mosaic`); such an item gets no crop or zoom-out (0: off).
    mosaic_prob: float = 0.0
    #: Copy-paste (Ghiasi et al. 2021): the share of images that get, each epoch, outlined objects of another
    #: training image pasted onto them (:mod:`models.data.copy_paste`); needs outlines (COCO or YOLO polygons), and
    #: mosaics get none (0: off).
    copy_paste_prob: float = 0.0
    amp: bool = True  # float16 autocast + gradient scaling on CUDA
    #: bfloat16 autocast on the CPU: about 30% faster training where the CPU has AVX512-BF16 or AMX (checked
    #: at start; ignored with a message elsewhere). Weights, losses and optimiser stay float32.
    cpu_bf16: bool = False
    grad_clip: float | None = 10.0
    num_workers: int = 0
    max_steps: int | None = None  # stop after this many optimiser steps in total (tests, quick looks)
    #: Seconds of training this run may take: process CPU time per torch thread on a CPU (a machine shared
    #: with other jobs inflates the wall clock, not this), wall time on a GPU. None: no budget, ``epochs`` decides. With a
    #: budget, ``epochs`` is a cap: after the first steps (and again every ``BUDGET_REPLAN`` steps) the run's
    #: length is set to the steps the remaining budget buys at the cost measured so far, and the learning-rate
    #: schedule is stretched over that length — a run cut short by a hard stop would skip the low-rate end,
    #: where most of the accuracy is made.
    time_budget_s: float | None = None
    #: CPU threads for torch (None: torch's default, one per core). On a CPU shared with other jobs, 1 thread
    #: is often several times faster than 2: OpenMP threads waiting on a descheduled sibling spin for nothing.
    threads: int | None = None
    model: dict[str, Any] | DetectorConfig = field(default_factory=dict)
    #: Folder of the Selective Search proposal cache (generations with external proposals); None: the user
    #: cache folder (models.proposals.cache.cache_dir).
    proposal_cache: str | None = None
    #: Train on these classes only (e.g. ``["person"]`` of COCO's 80): objects of the others are left out and
    #: images without any of them stay in, as negatives. None: every class of the dataset.
    classes: list[str] | None = None
    #: Train on exactly these images (indices into the opened dataset's entries, e.g. a cross-validation
    #: fold) instead of the named ``split``; ``split`` then only names them in the checkpoint.
    train_indices: list[int] | None = None
    #: The backbone's learning rate as a fraction of ``lr``. Fine-tuning a pretrained backbone wants it lower
    #: (0.1) than the randomly initialised RPN and head: large steps would wash out the ImageNet features
    #: before the head has learnt to use them.
    backbone_lr_scale: float = 1.0
    #: Validation mAP@0.5 after every epoch on at most this many images of ``val_split`` (0: off). Small on
    #: purpose: a live curve to watch in the window, not the final figure (``evaluate`` gives that). One test
    #: pass per image at the model's own size: the model's test-time augmentation (test sizes, flip) is left
    #: for ``evaluate``, as it would multiply the validation's CPU on every epoch.
    val_images: int = 0
    val_split: str = "test"
    #: The preset these settings started from (None: none named). A label for the runs list; it changes
    #: nothing in training (the preset's values are the fields above, overrides included).
    preset: str | None = None

    def __post_init__(self) -> None:
        # The augmentation's ranges, checked when the config is made (the panel's Train and Preview, the
        # command line) rather than when the dataset is built, after the checkpoint and images are opened.
        from models.data.augmentation import check_settings

        check_settings(self.crop_prob, self.crop_min_side, self.colour_jitter, self.zoom_out_prob, self.zoom_out_max,
                       self.mosaic_prob, self.copy_paste_prob)

    def detector_config(self) -> DetectorConfig:
        """The detector this run builds: ``model`` over the generation's paper settings, then this config's own
        ``backbone``, ``weights``, ``min_size`` and ``max_size`` (each where set)."""
        base = self.model if isinstance(self.model, DetectorConfig) else None
        parts = detector_config(self.generation, base) if base is not None else \
            DetectorConfig.default(self.generation).with_overrides(self.model)
        top: dict[str, Any] = {"backbone.name": self.backbone}
        if self.weights is not None:
            top["backbone.weights"] = self.weights
        if self.min_size:
            top["input.min_size"] = self.min_size
        if self.max_size:
            top["input.max_size"] = self.max_size
        return parts.with_overrides(top)

    def to_dict(self) -> dict:
        """Plain data (the detector settings as part → field → value when ``model`` is a DetectorConfig)."""
        out = dataclasses.asdict(self)
        out["model"] = self.model.to_dict() if isinstance(self.model, DetectorConfig) else dict(self.model)
        return out


@dataclass
class TrainEvent:
    """What subscribers receive. ``kind``: start, step, epoch, checkpoint, message, end, proposals
    (``step`` of ``total_steps`` images given their Selective Search boxes, before "start"), validation
    (``metrics``: mAP and AP per class of the epoch just finished) and classifiers (R-CNN: ``metrics`` of the
    SVM stage)."""

    kind: str
    epoch: int = 0  # 1-based epoch being run (or just finished for "epoch")
    epochs: int = 0
    step: int = 0  # step within the epoch, 1-based
    steps_per_epoch: int = 0
    global_step: int = 0
    total_steps: int = 0
    losses: dict[str, float] = field(default_factory=dict)
    lr: float = 0.0
    elapsed_s: float = 0.0
    eta_s: float | None = None
    message: str = ""
    checkpoint: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainResult:
    status: str  # "completed", "cancelled", "diverged"
    epochs_completed: int
    checkpoint: str | None
    message: str
    elapsed_s: float
    history: list[dict[str, float]] = field(default_factory=list)  # mean losses per epoch


Callback = Callable[[TrainEvent], None]
