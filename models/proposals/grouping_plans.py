"""Which groupings Selective Search runs: the strategies (colour space, k, similarity set), each mode's k
values and plan, and the near-duplicate thresholds, with why each default is what it is.

Apart from the grouping algorithm (``models.proposals.selective_search``) because these are its settings, not
its steps: a detector pins them (``ProposalConfig.pinned``), the proposal cache keys on them
(``models.proposals.cache``) and the command line and the window name them. ``selective_search`` re-exports
every name here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from models.proposals.color_spaces import COLOR_SPACES

#: Similarity terms in the order they are recorded in ``Merge.terms`` / ``Hierarchy.merge_terms``.
TERMS = ("colour", "texture", "size", "fill")
_TERM_LETTERS = {"C": 0, "T": 1, "S": 2, "F": 3}

#: Default k values per mode. ``single`` is the paper's. For ``fast`` the paper used {50, 100}; ``FAST_KS`` was
#: fast mode's default (both colour spaces) until ``FAST_PLAN`` below, which keeps its HSV ladder and smallest
#: rung; it is still ``default_ks("fast")``, the k that given-k fast mode starts from. We use
#: {100, 150, 300} (bench/README.md: coco_tiny, the bundled samples and scikit-image's
#: photographs at max side 500, each against OpenCV-contrib's fast mode). Why not smaller: min_size is k, and
#: below ~100 px (0.05 % of a 500-px image) the starting regions are fragments whose groupings box large
#: objects loosely (coco_tiny's large objects: recall@0.7 0.72 with k 75 as the smallest, 0.76 with k 100)
#: and spend ~25 % more boxes; OpenCV's fast mode also never goes below min_size 100. Why not fewer or
#: coarser: dropping k 150 or using 100/200/300 loses MABO on every set. ``--ks 75,150,300`` (the previous
#: default before 2026-11-30) buys recall of small objects with more boxes than OpenCV-fast spends.
SINGLE_KS: tuple[float, ...] = (100.0,)
FAST_KS: tuple[float, ...] = (100.0, 150.0, 300.0)
#: ``quality`` spans the paper's range (k 50 to 300) with no step above 1.5×: the paper's {50, 100, 150, 300}
#: has two 2× gaps, and the objects it missed against OpenCV-quality were formed only inside them (the
#: `camera` tower only at k 75, a person behind railings in `ascent` only at k 200; bench/README.md, "Quality
#: mode, searched"). Closing both gaps costs 50 % more groupings but, with the sorted edges shared by a
#: colour space's k, ~25 % more time, and keeps quality mode under half of OpenCV-quality's time.
QUALITY_KS: tuple[float, ...] = (50.0, 75.0, 100.0, 150.0, 200.0, 300.0)

#: Named k plans with a ladder per colour space, passed as ``ks="split"`` (CLI ``--ks split``). At one k the
#: HSV segmentation is ~1.5x finer than Lab's (coco_tiny at max side 500: 255 vs 163 regions at k 100), so
#: the same ladder in both spaces repeats granularities; "split" gives HSV the coarser and Lab the finer
#: rungs. It was the first plan bench/README.md found at or above OpenCV-fast on every labelled set including
#: package_photos, where ``FAST_KS`` is below; it costs coco_tiny's large objects ~4 of 252 at IoU 0.7 against
#: ``FAST_PLAN`` (fast's default), so it is an option ("A fourth labelled set" in bench/README.md).
KS_PLANS: dict[str, dict[str, tuple[float, ...]]] = {
    "split": {"hsv": (100.0, 200.0, 300.0), "lab": (100.0, 150.0, 200.0)},
}

#: What ``ks`` may be: k values for every colour space of the mode, {colour space: k values}, or a name of
#: ``KS_PLANS``.
KsSpec = Sequence[float] | Mapping[str, Sequence[float]] | str
MODES = ("single", "fast", "quality")
#: Named near-duplicate settings: a box overlapping a better-ranked one at least this much is dropped.
#: The trade (bench/README.md): the groupings of a mode find many boxes a few pixels apart. "compact" (0.8)
#: drops them all: ~30 % fewer boxes for the same recall@0.5, i.e. more distinct objects per box. But those
#: shifted boxes are what tight localisation (recall@0.7, MABO, AR) is made of: "balanced" (0.9) keeps the
#: ones that differ by more than a few pixels, "budget" (0.93, fast's own plan's default) all but those a
#: pixel or two apart, "localise" (0.95, the default of single and of fast with given k) all but the nearly
#: identical ones, "exact" (1.0, quality's default) is the paper's exact deduplication only (~15 % more boxes
#: than "localise" for +0.002 MABO).
NEAR_DUPLICATES: dict[str, float] = {"compact": 0.8, "balanced": 0.9, "budget": 0.93, "localise": 0.95,
                                     "exact": 1.0}
#: The default of ``single`` and of ``fast`` with given k values: used under a box budget (a detector's 2,000),
#: where each near-duplicate pushes a distinct box out.
NEAR_DUPLICATE_IOU = NEAR_DUPLICATES["localise"]
#: The default of ``fast`` with its own plan (``FAST_PLAN``), "budget" (0.93): the threshold at which the plan's
#: 13 groupings stay within OpenCV-fast's box count on every labelled set (at 0.95 they spend up to 5 % more).
FAST_NEAR_DUPLICATE_IOU = NEAR_DUPLICATES["budget"]
#: The default of ``quality``: the paper's exact deduplication. Quality mode is the exhaustive one, used whole;
#: at 0.95 it dropped exactly the boxes that count at AR's strictest thresholds (bench/README.md, "Quality
#: mode, searched": +0.004-0.011 MABO and AR on every labelled set for ~20 % more boxes).
QUALITY_NEAR_DUPLICATE_IOU = NEAR_DUPLICATES["exact"]


def default_near_duplicates(mode: str, ks: KsSpec | None = None) -> float:
    """The near-duplicate threshold a mode uses when none is given (read at call time). A plan comes with its
    threshold: fast mode's own (``ks`` None) "budget", fast with given k values "localise" as before the plan."""
    if mode == "quality":
        return QUALITY_NEAR_DUPLICATE_IOU
    return FAST_NEAR_DUPLICATE_IOU if own_plan(mode, ks) is not None else NEAR_DUPLICATE_IOU


def near_duplicate_threshold(value: float | str) -> float:
    """A threshold from a number in (0, 1] or a name of ``NEAR_DUPLICATES``; ValueError otherwise."""
    if isinstance(value, str):
        if value in NEAR_DUPLICATES:
            return NEAR_DUPLICATES[value]
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"near-duplicate setting must be a number in (0, 1] or one of "
                             f"{', '.join(NEAR_DUPLICATES)}; got {value!r}") from None
    if not 0.0 < float(value) <= 1.0:
        raise ValueError(f"near-duplicate IoU must be in (0, 1], got {value}")
    return float(value)


@dataclass(frozen=True)
class Strategy:
    """One hierarchical grouping: starting regions from (colour space, k), merging by ``similarities``.

    ``similarities`` is a string of term letters: C colour, T texture, S size, F fill (e.g. "CTSF", "TSF").
    """

    color_space: str
    k: float
    similarities: str = "CTSF"

    def __post_init__(self) -> None:
        if not math.isfinite(self.k) or self.k <= 0:
            raise ValueError(f"k must be a positive number, got {self.k!r}")
        if self.color_space not in COLOR_SPACES:
            raise ValueError(f"unknown colour space {self.color_space!r}")
        if not self.similarities or any(ch not in _TERM_LETTERS for ch in self.similarities):
            raise ValueError(f"similarities must be letters from 'CTSF', got {self.similarities!r}")

    @property
    def flags(self) -> tuple[bool, bool, bool, bool]:
        return tuple(letter in self.similarities for letter in "CTSF")  # type: ignore[return-value]

    @property
    def name(self) -> str:
        return f"{self.color_space} k={self.k:g} {self.similarities}"

    @property
    def token(self) -> str:
        """The name without spaces, "lab:200:F": how a saved model and a command line list groupings."""
        return f"{self.color_space}:{self.k:.15g}:{self.similarities}"

    @classmethod
    def parse(cls, text: str) -> Strategy:
        """The strategy of a ``token`` ("lab:200:F") or ``name`` ("lab k=200 F"); ValueError for anything else."""
        text = str(text).strip()
        parts = text.split(":") if ":" in text else text.split()
        if len(parts) == 3 and ":" not in text:
            parts[1] = parts[1][2:] if parts[1].startswith("k=") else "?"
        if len(parts) != 3:
            raise ValueError(f"a grouping is written 'space:k:similarities', e.g. 'lab:200:F'; got {text!r}")
        try:
            k = float(parts[1])
        except ValueError:
            raise ValueError(f"bad k in grouping {text!r}") from None
        if not math.isfinite(k) or k <= 0:
            raise ValueError(f"k must be a positive number in grouping {text!r}")
        return cls(parts[0], k, parts[2])


#: Fast mode's groupings (issue 15, bench/README.md "Fast mode: a Lab ladder one rung finer, and a fill
#: rung"): HSV at k 100, 150, 300 and Lab at k 100, 150, 200, each with the paper's two similarity sets
#: (CTSF, TSF), plus one Lab grouping at k 200 merged by fill alone (F). Two reasons, both measured:
#: (1) at one k Lab's segmentation is ~1.5x coarser than HSV's (coco_tiny at k 300: 39 regions against 69),
#: so Lab at k 300 was the coarsest segmentation of all, whose boxes every hierarchy's last merges already
#: give; at k 200 it works at HSV 300's granularity with Lab's colour distance, and it is the only one that
#: forms a person behind railings in `ascent` (IoU 0.33 -> 0.63; also in quality mode) and Grace Hopper's
#: flag (0.88 -> 0.93). (2) Fill-only merging grows regions that fill their box: the cup in `coffee` (0.83 ->
#: 0.97) and the cameraman (0.87 -> 0.95), which CTSF/TSF box loosely. 13 groupings on
#: 6 segmentations (was 12 on 6), ~5 % more time; near-duplicates at ``FAST_NEAR_DUPLICATE_IOU``.
FAST_PLAN: tuple[Strategy, ...] = tuple(
    [Strategy("hsv", k, sim) for k in (100.0, 150.0, 300.0) for sim in ("CTSF", "TSF")]
    + [Strategy("lab", k, sim) for k in (100.0, 150.0, 200.0) for sim in ("CTSF", "TSF")]
    + [Strategy("lab", 200.0, "F")])


def default_ks(mode: str) -> tuple[float, ...]:
    """The k values a mode uses when none are given."""
    table = {"single": SINGLE_KS[:1], "fast": FAST_KS, "quality": QUALITY_KS}
    if mode not in table:
        raise ValueError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    return table[mode]


def ks_plan(ks: KsSpec) -> dict[str, tuple[float, ...]]:
    """A per-colour-space k plan from a mapping or a name of ``KS_PLANS``; ValueError for anything else."""
    if isinstance(ks, str):
        if ks not in KS_PLANS:
            raise ValueError(f"unknown k plan {ks!r}; choose from {', '.join(KS_PLANS)} or give k values")
        return dict(KS_PLANS[ks])
    if not isinstance(ks, Mapping):
        raise ValueError(f"a k plan is a name or {{colour space: k values}}, got {ks!r}")
    plan = {}
    for space, values in ks.items():
        if space not in COLOR_SPACES:
            raise ValueError(f"unknown colour space {space!r} in the k plan")
        plan[space] = tuple(float(k) for k in values)
        if not plan[space] or any(k <= 0 for k in plan[space]):
            raise ValueError(f"the k values of {space!r} must be positive, got {values!r}")
    return plan


def default_plan(mode: str) -> tuple[Strategy, ...] | None:
    """A mode's own groupings when they are not "every colour space × every k × every similarity set" of
    ``default_ks`` (fast: ``FAST_PLAN``); None where they are (single, quality)."""
    return FAST_PLAN if mode == "fast" else None


def own_plan(mode: str, ks: KsSpec | None) -> tuple[Strategy, ...] | None:
    """The groupings a mode runs on its own plan, None where it runs every colour space × k × similarity set.

    The one rule for "which plan": a mode's own plan applies only when no k values are given (with ``ks`` =
    ``FAST_KS`` fast mode runs the plan before it, as detectors pinned to it do). The groupings, the
    near-duplicate default, a model's pinned settings and the proposal cache key all follow it.
    """
    return default_plan(mode) if ks is None else None


def strategies_for(mode: str, ks: KsSpec | None = None) -> list[Strategy]:
    """The paper's diversification sets (section 5.2): single, fast, quality.

    ``ks``: the k values of every colour space of the mode (default the mode's), or a per-colour-space plan
    (``{"hsv": (...), "lab": (...)}`` or a name of ``KS_PLANS``), whose colour spaces replace the mode's.
    Without ``ks`` fast mode runs ``FAST_PLAN``; with ``ks`` = ``FAST_KS`` it runs the plan before it (both
    colour spaces at k 100, 150, 300), as detectors pinned to it do."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    plan = own_plan(mode, ks)
    if plan is not None:
        return list(plan)
    sims = {"single": ("CTSF",), "fast": ("CTSF", "TSF"), "quality": ("CTSF", "TSF", "F", "S")}[mode]
    if ks is not None and (isinstance(ks, str) or isinstance(ks, Mapping)):
        plan = ks_plan(ks)
        if mode == "single":
            space, values = next(iter(plan.items()))
            return [Strategy(space, values[0], "CTSF")]
        return [Strategy(cs, k, sim) for cs, values in plan.items() for k in values for sim in sims]
    if mode == "single":
        return [Strategy("hsv", float(k), "CTSF") for k in (ks or SINGLE_KS)[:1]]
    if mode == "fast":
        spaces, ks = ("hsv", "lab"), (ks or FAST_KS)
    else:
        spaces, ks = ("hsv", "lab", "rgI", "H", "I"), (ks or QUALITY_KS)
    return [Strategy(cs, float(k), sim) for cs in spaces for k in ks for sim in sims]
