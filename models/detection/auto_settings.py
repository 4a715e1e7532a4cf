"""Training settings chosen from the data, each with the reason in words (used when no preset is named).

Why: the papers' settings (600 px, anchors 128–512 at three ratios, SGD, a 4096-wide head) were made for
PASCAL photos on a GPU; on small objects or a CPU they waste most anchors and most of the time budget. Here
every setting follows from a measured property of the dataset (``models.data.box_stats``) or of the CPU
recipe measured in ``bench/README.md`` ("Faster R-CNN from scratch on the synthetic shapes"):

- **Training size**: the smallest objects (5th percentile of √area) should reach ``SMALL_OBJECT_PX`` pixels
  at the training size — below that the RPN found only 77% of the shapes in the bench runs — so the
  median image's shorter side is scaled by ``SMALL_OBJECT_PX / q5``, within ``[MIN_SIDE, MAX_SIDE]``
  (a CPU cannot afford more); the longer side follows the images' widest aspect.
- **Stride**: 8 when the small objects would cover fewer than ~8 × 8 cells of a stride-16 map, else 16.
  **Context stage** (stride 32) when the large objects (95th percentile) exceed the ~120-px receptive field
  of the small backbone's body (the bench's "large shapes need context").
- **Anchor sizes**: a geometric series with step √2 from the 2nd to the 98th percentile of √area at the
  training size. Why √2: a square box halfway (geometrically) between two anchor sizes ``a`` and ``a·f`` has
  IoU ``1/f`` with either, so ``f ≤ 1/0.7 ≈ 1.43`` keeps every box in range matchable at the RPN's 0.7.
  When that gives more than ``MAX_ANCHORS_PER_CELL`` anchors per cell (objects over a 30× range of sizes and
  several shapes), every second size is dropped: the papers' step of 2.
- **Anchor ratios**: powers of two (h / w = …, 0.5, 1, 2, …) spanning the 5th–95th percentile of the boxes'
  aspect ratio, each ratio covering a factor √2 around it: square-ish data gets one ratio, not three.
- **Epochs and time budget**: the run gets ``TRAIN_BUDGET_S`` seconds of training (15 minutes of one
  core for the whole command, less start-up and checkpoints), measured by the trainer as CPU time per
  thread (``TrainConfig.time_budget_s``): after its first steps it sets the run's length to the steps the
  budget buys at the cost it measures, and stretches the learning-rate schedule over them. The epochs
  printed are the estimate from the dataset's size — images × (a fixed cost per image + a cost per
  megapixel at the chosen size, measured on this CPU: the fixed part, RPN NMS, sampling, the head on 512 RoIs
  and Python, is about a third of a step at 512 px and most of it at 256 px) — and, with ``EPOCH_HEADROOM``,
  the cap a quieter or faster CPU may reach. Fewer than ``MIN_EPOCHS`` (the RPN needs a few passes) in the
  budget: ``MIN_EPOCHS`` and no budget, with the estimated time said.
- **Optimiser and head**: AdamW at lr 1e-3, weight decay 1e-4, 2 images per step, a 256-wide head, RoIAlign,
  per-object positive sampling, bfloat16 autocast where the CPU has it: the recipe that trains from scratch
  on a CPU (SGD at lr 0.01 needs ~3× the epochs there; a 4096-wide head is 60× the FC weights).
- **Quarter turns**: only for data that says it has no "up" (the synthetic shapes' ``synthetic.json``);
  photographs have one.

``choose_settings`` is pure (statistics in, settings out); ``auto_settings`` reads a dataset first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.data.box_stats import BoxStats, anchor_coverage, compute_box_stats
from models.data.datasets import DatasetSource
from models.data.synthetic import is_synthetic_root
from models.data.training_data import resize_scale
from models.detection.config import DetectorConfig

#: √area (training pixels) the smallest objects should reach: in the bench runs the RPN found 77% of the
#: shapes under 32 px at 512 and ≥ 98% above.
SMALL_OBJECT_PX = 32.0
#: Bounds on the chosen shorter side: below 256 the small backbone's stride-32 stage has almost no cells;
#: above 800 a CPU epoch costs minutes per hundred images.
MIN_SIDE, MAX_SIDE = 256, 800
#: Cap on longer / shorter side of the training size (panoramas would otherwise blow up the cost).
MAX_ASPECT = 2.0
#: Receptive field of the small backbone's stride-16 body, pixels (bench/README: "about 120 px").
BODY_RECEPTIVE_FIELD = 120.0
#: Anchor size step: ≤ 1/0.7 keeps a box between two sizes at IoU ≥ 0.7 with one of them.
SIZE_STEP = math.sqrt(2.0)
#: Seconds of training (CPU time per thread) for a run with no preset: the issue's 15 minutes of this CPU for
#: the whole command, less ~50 s of start-up, data preparation and per-epoch checkpoints.
TRAIN_BUDGET_S = 850.0
#: Cost of one training image on one thread with bfloat16 autocast (this project's CPU, small backbone width
#: 24 at stride 8 with the context stage, 2 images per step): a fixed part and a part per megapixel at the
#: training size. Measured 2026-11-30 (bench/README.md, "train with settings chosen from the data"): 0.256 s
#: per image at 0.34 MP (syn400 at 544 px) and 0.131 s at 0.07 MP (the 64–320-px set at 256 px).
COST_PER_IMAGE_S = 0.10
COST_PER_MP_S = 0.46
#: The epoch cap over the estimate: room for a CPU faster than the one measured (the budget still decides).
EPOCH_HEADROOM = 1.25
MIN_EPOCHS, MAX_EPOCHS = 8, 100
#: Anchors per feature cell above which the size step widens from √2 to 2: the RPN head's outputs, the anchor
#: matching and the proposal NMS grow with it (the papers use 9).
MAX_ANCHORS_PER_CELL = 16


@dataclass
class AutoSettings:
    """The chosen values (TrainConfig fields and detector arguments) with a reason for each."""

    min_size: int
    max_size: int
    epochs: int
    batch_size: int
    optimizer: str
    lr: float
    weight_decay: float
    rotate90: bool
    cpu_bf16: bool
    model: dict
    #: Seconds of training (CPU time per thread); None when ``MIN_EPOCHS`` do not fit and the epochs decide.
    time_budget_s: float | None = None
    reasons: dict[str, str] = field(default_factory=dict)
    #: Share of training boxes no chosen anchor matches at IoU ≥ 0.7, and the same for the papers' anchors.
    unmatched_share: float = float("nan")
    paper_unmatched_share: float = float("nan")

    @property
    def anchor_sizes(self) -> list[float]:
        return list(self.model["anchor_sizes"])

    @property
    def anchor_ratios(self) -> list[float]:
        return list(self.model["anchor_ratios"])

    def detector_config(self, generation: str = "faster-rcnn") -> DetectorConfig:
        """The chosen model settings as the per-part configuration objects (what a preset is)."""
        return DetectorConfig.default(generation).with_overrides(
            {**self.model, "min_size": self.min_size, "max_size": self.max_size})

    def config_fields(self) -> dict:
        """The TrainConfig fields this sets (``model`` merged by the caller with explicit ``--model-arg``)."""
        return {"min_size": self.min_size, "max_size": self.max_size, "epochs": self.epochs,
                "batch_size": self.batch_size, "optimizer": self.optimizer, "lr": self.lr,
                "weight_decay": self.weight_decay, "rotate90": self.rotate90, "cpu_bf16": self.cpu_bf16,
                "time_budget_s": self.time_budget_s}

    def overrides(self) -> dict:
        """Everything chosen as the override keys of ``presets.default_train_config`` (training fields and flat
        detector names): the one set both the ``train`` command and the window's "Settings from the data" lay
        their explicit choices over, so the two train the same thing."""
        return {**self.config_fields(), **self.model}

    def lines(self) -> list[str]:
        """One line per setting: ``name = value  (reason)``, in the order a reader needs them."""
        values = {"training size": f"shorter side {self.min_size}, longer ≤ {self.max_size}",
                  "stride": f"{self.model['small_stride']}, context stage {'on' if self.model['small_context'] else 'off'}",
                  "anchor sizes": ", ".join(f"{v:g}" for v in self.anchor_sizes),
                  "anchor ratios": ", ".join(f"{v:g}" for v in self.anchor_ratios),
                  "epochs": (f"at most {self.epochs}, within {self.time_budget_s:.0f} s of training"
                             if self.time_budget_s else str(self.epochs)),
                  "optimiser": f"{self.optimizer}, lr {self.lr:g}, weight decay {self.weight_decay:g}, "
                               f"{self.batch_size} images per step",
                  "head": f"{self.model['representation_size']}-wide FC, {self.model['pooling']} pooling, "
                          f"backbone width {self.model['small_width']}",
                  "quarter turns": "on" if self.rotate90 else "off",
                  "bfloat16": "on where the CPU has it" if self.cpu_bf16 else "off"}
        return [f"{k}: {v}  ({self.reasons.get(k, '')})" for k, v in values.items()]


def _q(values: np.ndarray, p: float, default: float) -> float:
    return float(np.percentile(values, p)) if len(values) else default


def _round_to(value: float, step: int) -> int:
    return int(step * round(value / step))


def _anchor_sizes(lo: float, hi: float) -> list[float]:
    """Sizes 32·√2^k (k integer) from the one nearest ``lo`` to the one nearest ``hi`` (geometric rounding)."""
    k_lo = round(math.log(max(lo, 1.0) / 32.0, SIZE_STEP))
    k_hi = max(k_lo, round(math.log(max(hi, 1.0) / 32.0, SIZE_STEP)))
    return [float(round(32.0 * SIZE_STEP ** k)) for k in range(k_lo, k_hi + 1)]


def _anchor_ratios(lo: float, hi: float) -> list[float]:
    """Powers of two from the one nearest ``lo`` to the one nearest ``hi`` (log2 rounding), 1 included."""
    k_lo = min(0, round(math.log2(max(lo, 1e-3))))
    k_hi = max(0, round(math.log2(max(hi, 1e-3))))
    return [float(2.0 ** k) for k in range(k_lo, k_hi + 1)]


def choose_settings(stats: BoxStats, *, synthetic: bool = False, coverage: bool = True,
                    processes: int = 1) -> AutoSettings:
    """Settings for a Faster R-CNN with the small backbone trained from scratch on a CPU, from ``stats``.

    ``stats`` should describe the training images. ``synthetic``: the data has no "up" (quarter turns allowed).
    ``coverage``: also measure the chosen anchors' coverage against the papers' (a second pass over boxes).
    ``processes``: data-parallel processes (``torchrun``): each gets the budget (one core each) and a share of
    every epoch's images, and one image per step of the recipe's two.
    """
    reasons: dict[str, str] = {}
    n_train = max(1, stats.n_images)
    sizes = stats.image_sizes if len(stats.image_sizes) else np.asarray([[600.0, 600.0]], np.float32)
    short = np.minimum(sizes[:, 0], sizes[:, 1])
    long_ = np.maximum(sizes[:, 0], sizes[:, 1])
    med_short = float(np.median(short))
    sq = stats.sqrt_areas
    q5_orig = _q(sq, 5, med_short / 8)

    # Training size: the small objects reach SMALL_OBJECT_PX.
    wanted = med_short * SMALL_OBJECT_PX / max(q5_orig, 1.0)
    min_size = int(min(MAX_SIDE, max(MIN_SIDE, _round_to(wanted, 32))))
    aspect = float(min(MAX_ASPECT, max(1.0, np.percentile(long_ / short, 95))))
    max_size = int(math.ceil(min_size * aspect / 32.0 - 1e-6) * 32)  # float32 sizes: 4/3 must not round up
    bound = " (bounded)" if min_size != _round_to(wanted, 32) else ""
    reasons["training size"] = (f"median shorter image side {med_short:.0f} px × {SMALL_OBJECT_PX:.0f} / "
                                f"{q5_orig:.1f} px (5th percentile of box √area) so small objects reach "
                                f"{SMALL_OBJECT_PX:.0f} px{bound}; longer side from the images' aspect "
                                f"(95th percentile, {aspect:.2f})")

    # Box sizes at that training size.
    scale = stats.training_scales(min_size, max_size)
    sq_t = sq * scale
    q2, q5, q95, q98 = (_q(sq_t, p, d) for p, d in ((2, 32.0), (5, 32.0), (95, 256.0), (98, 256.0)))
    stride = 8 if q5 < 8 * 16 else 16
    reasons["stride"] = (f"5th percentile of √area at training size is {q5:.0f} px: "
                         + ("under 8 cells of a stride-16 map, so stride 8" if stride == 8
                            else "8+ cells at stride 16"))
    context = bool(q95 > BODY_RECEPTIVE_FIELD)
    reasons["stride"] += (f"; 95th percentile {q95:.0f} px {'exceeds' if context else 'is within'} the body's "
                          f"~{BODY_RECEPTIVE_FIELD:.0f}-px receptive field, so context stage "
                          f"{'on' if context else 'off'}")
    ratios = stats.ratios
    r5, r95 = _q(ratios, 5, 1.0), _q(ratios, 95, 1.0)
    anchor_ratios = _anchor_ratios(r5, r95)
    reasons["anchor ratios"] = (f"powers of two spanning the 5th–95th percentile of h/w, {r5:.2f}–{r95:.2f}")
    anchor_sizes = _anchor_sizes(q2, q98)
    reasons["anchor sizes"] = (f"step √2 (IoU ≥ 0.7 between neighbours) from the 2nd to the 98th percentile "
                               f"of √area at training size, {q2:.0f}–{q98:.0f} px")
    if len(anchor_sizes) * len(anchor_ratios) > MAX_ANCHORS_PER_CELL:
        anchor_sizes = anchor_sizes[::2]
        reasons["anchor sizes"] = (f"step 2 (the papers'; √2 would give more than {MAX_ANCHORS_PER_CELL} anchors "
                                   f"per cell with {len(anchor_ratios)} ratios) over the 2nd to the 98th "
                                   f"percentile of √area at training size, {q2:.0f}–{q98:.0f} px")

    # Epochs: what the time budget buys at the estimated cost of an epoch of this dataset at this size.
    pixels = [(h * resize_scale(int(h), int(w), min_size, max_size)) * (w * resize_scale(int(h), int(w),
              min_size, max_size)) for w, h in sizes]
    mp = float(np.mean(pixels)) / 1e6
    image_cost = COST_PER_IMAGE_S + COST_PER_MP_S * mp
    processes = max(1, int(processes))
    per_process = math.ceil(n_train / processes)
    raw_epochs = TRAIN_BUDGET_S / (per_process * image_cost)
    cost_text = (f"{n_train} training images of {mp:.2f} MP at this size, ~{image_cost:.2f} s each on one thread "
                 f"of this CPU" + (f", {per_process} per epoch on each of {processes} processes" if processes > 1
                                   else ""))
    time_budget: float | None = TRAIN_BUDGET_S
    if raw_epochs < MIN_EPOCHS:
        epochs, time_budget = MIN_EPOCHS, None
        reasons["epochs"] = (f"{cost_text}: the {TRAIN_BUDGET_S:.0f}-s budget buys only {raw_epochs:.1f} epochs, "
                             f"fewer than the {MIN_EPOCHS} the RPN needs, so {MIN_EPOCHS} epochs, about "
                             f"{MIN_EPOCHS * per_process * image_cost / 60:.0f} min of one core"
                             + (" per process" if processes > 1 else ""))
    else:
        epochs = int(min(MAX_EPOCHS, math.ceil(raw_epochs * EPOCH_HEADROOM)))
        reasons["epochs"] = (f"{cost_text}: about {raw_epochs:.1f} epochs in {TRAIN_BUDGET_S:.0f} s of CPU time "
                             f"per thread; the trainer measures the real cost and fits the run and its "
                             f"learning-rate schedule to the budget (cap {epochs} for a faster CPU)")
    reasons["optimiser"] = "AdamW trains from scratch in a CPU budget; SGD at 0.01 needs ~3× the epochs"
    reasons["head"] = "a 256-wide head and 24-wide backbone: the measured CPU recipe (a 4096 head is 60× the weights)"
    reasons["quarter turns"] = ("the dataset says it has no 'up' (synthetic.json)" if synthetic
                                else "photographs have an 'up'; only flips")
    reasons["bfloat16"] = "about 30% faster steps on CPUs with AVX512-BF16/AMX; ignored with a message elsewhere"
    model = {"anchor_sizes": anchor_sizes, "anchor_ratios": anchor_ratios, "small_width": 24,
             "small_stride": stride, "small_context": context, "pooling": "align", "representation_size": 256,
             "rpn_pre_nms_train": 2000, "rpn_post_nms_train": 512, "roi_positive_sampling": "per_object"}
    batch = max(1, 2 // processes)  # the recipe's 2 images per step, over all processes
    if processes > 1:
        reasons["optimiser"] += f"; {batch} image per step on each of {processes} processes"
    out = AutoSettings(min_size=min_size, max_size=max_size, epochs=epochs, batch_size=batch, optimizer="adamw",
                       lr=1e-3, weight_decay=1e-4, rotate90=bool(synthetic), cpu_bf16=True, model=model,
                       time_budget_s=time_budget, reasons=reasons)
    if coverage and len(stats.boxes):
        out.unmatched_share = anchor_coverage(stats, anchor_sizes, anchor_ratios, stride, min_size,
                                              max_size).unmatched_share
        out.paper_unmatched_share = anchor_coverage(stats, (128, 256, 512), (0.5, 1.0, 2.0), 16, 600,
                                                    1000).unmatched_share
        reasons["anchor sizes"] += (f"; {out.unmatched_share:.0%} of training boxes have no anchor at IoU ≥ 0.7 "
                                    f"(the papers' 128–512 at 600 px: {out.paper_unmatched_share:.0%})")
    return out


def auto_settings(source: DatasetSource, indices: list[int] | None = None,
                  processes: int = 1, stats: BoxStats | None = None) -> tuple[AutoSettings, BoxStats]:
    """Measure ``source`` (the training ``indices``) and choose (``processes``: see :func:`choose_settings`);
    ``stats``: those images' statistics measured before (for another process count), not read again. Raises
    ValueError when there are no boxes."""
    if stats is None:
        stats = compute_box_stats(source, indices)
    if not len(stats.boxes):
        raise ValueError(f"{source.root}: no usable boxes in the training images, nothing to choose settings from")
    return choose_settings(stats, synthetic=is_synthetic_root(Path(source.root)), processes=processes), stats


def split_auto_settings(source: DatasetSource, split: str = "train", seed: int = 0,
                        processes: int = 1, stats: BoxStats | None = None) -> tuple[AutoSettings, BoxStats]:
    """:func:`auto_settings` on the images of ``split`` of the dataset's saved split (made with ``seed`` when it
    has none), the images the run will train on; the ``train`` command and the window both call this.
    ``stats`` from an earlier call for the same split skips reading the split and its boxes."""
    from models.data.splits import dataset_splits, split_indices

    if stats is not None:
        return auto_settings(source, processes=processes, stats=stats)
    return auto_settings(source, split_indices(dataset_splits(source, seed=seed), split), processes=processes)
