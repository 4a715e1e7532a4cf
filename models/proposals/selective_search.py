"""Selective Search (Uijlings et al., IJCV 2013): class-agnostic object proposals by hierarchical grouping.

Pipeline per strategy (colour space, k, similarity set):
1. Felzenszwalb–Huttenlocher regions (``models.proposals.segmentation``) in the colour space, min_size = k;
2. region features: colour histogram (25 bins per channel), texture histogram (Gaussian derivatives σ=1 in
   8 orientations × 10 bins per channel), size, bounding box;
3. greedy grouping: repeatedly merge the most similar neighbouring pair (a max-heap of similarities with lazy
   deletion), the new region's features computed by arithmetic (histograms as size-weighted means), until
   one region is left. Every region ever formed is a proposal; every merge is recorded (``Merge``) so a
   viewer can replay the grouping step by step without recomputing.

Strategies combine (diversify) several groupings; the union of their regions is ranked as the paper does:
within one hierarchy the region formed last (the whole image) gets position 1, the one before it 2, ...,
the initial regions the highest numbers; each position is multiplied by a random number in [0, 1)
(seeded), all hierarchies are sorted together ascending, and duplicate boxes keep their first place.

Why numba for the grouping and the per-pixel passes: a 500-px image has ~300–700 regions per segmentation
and ``fast`` mode runs 13 groupings; in Python the per-merge bookkeeping alone takes longer than OpenCV's whole
run. Histogram intersections over the ~300 neighbours touched per merge are cheap in compiled loops.
Compile time: ``warm_up()`` (a few seconds once per checkout, then loaded from numba's cache).

Which groupings run (the strategies, each mode's k values and plan, the near-duplicate thresholds, and why)
lives in ``models.proposals.grouping_plans``; this module re-exports those names.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np

from models.data.io import resize_to_max_side
from models.proposals.color_spaces import as_rgb8, convert
from models.proposals.grouping_plans import (  # noqa: F401 - re-exported: the library's names
    FAST_KS,
    FAST_NEAR_DUPLICATE_IOU,
    FAST_PLAN,
    KS_PLANS,
    MODES,
    NEAR_DUPLICATE_IOU,
    NEAR_DUPLICATES,
    QUALITY_KS,
    QUALITY_NEAR_DUPLICATE_IOU,
    SINGLE_KS,
    TERMS,
    KsSpec,
    Strategy,
    default_ks,
    default_near_duplicates,
    default_plan,
    ks_plan,
    near_duplicate_threshold,
    own_plan,
    strategies_for,
)
from models.proposals.segmentation import Segmentation, SortedEdges, felzenszwalb, sorted_edges
from models.proposals.segmentation import warm_up as _warm_up_segmentation
from models.proposals.selective_search_kernels import (
    COLOR_BINS,
    TEXTURE_BINS,
    TEXTURE_ORIENTATIONS,
    _adjacent_pairs,
    _group,
    _near_duplicate_keep,
    _owner_at,
    _region_features,
    _texture_codes,
)


class Cancelled(Exception):
    """Raised when the caller's ``cancelled()`` returns True between two steps of work."""


@dataclass(frozen=True)
class Merge:
    """One grouping step: regions ``a`` and ``b`` became ``new_region`` (ids index ``Hierarchy.region_boxes``)."""

    step: int
    a: int
    b: int
    new_region: int
    similarity: float  # the sum of the strategy's active terms: what the greedy choice maximised
    terms: dict[str, float]  # all four terms for this pair, active or not, for display
    box: tuple[float, float, float, float]  # the new region's box in original image pixels


@dataclass
class Hierarchy:
    """The full grouping of one strategy: initial regions 0..n-1 (the segmentation's labels), then region
    n + s formed at step s. Boxes are in original image pixels; sizes in segmentation pixels."""

    strategy: Strategy
    segmentation: Segmentation
    region_boxes: np.ndarray  # [2n-1, 4] float32 (fewer if grouping stopped early)
    region_sizes: np.ndarray  # [2n-1] int64
    merge_pairs: np.ndarray  # [steps, 2] int32
    merge_terms: np.ndarray  # [steps, 4] float32, columns as TERMS
    merge_similarity: np.ndarray  # [steps] float32
    seconds: float = 0.0

    @property
    def n_initial(self) -> int:
        return self.segmentation.n_regions

    @property
    def n_steps(self) -> int:
        return int(self.merge_pairs.shape[0])

    def merge(self, step: int) -> Merge:
        a, b = (int(v) for v in self.merge_pairs[step])
        t = self.n_initial + step
        terms = {name: float(self.merge_terms[step, i]) for i, name in enumerate(TERMS)}
        box = tuple(float(v) for v in self.region_boxes[t])
        return Merge(step, a, b, t, float(self.merge_similarity[step]), terms, box)  # type: ignore[arg-type]

    @cached_property
    def merges(self) -> list[Merge]:
        return [self.merge(s) for s in range(self.n_steps)]

    def parents(self) -> np.ndarray:
        """[regions] int32: the region each one merged into, -1 for those never merged."""
        parent = np.full(self.region_boxes.shape[0], -1, np.int32)
        steps = np.arange(self.n_steps, dtype=np.int32) + self.n_initial
        parent[self.merge_pairs[:, 0]] = steps
        parent[self.merge_pairs[:, 1]] = steps
        return parent

    def region_map_at(self, step: int) -> np.ndarray:
        """[n_initial] int32: which region each initial region belongs to before merge ``step`` happens."""
        return _owner_at(self.parents(), self.n_initial, self.n_initial + max(0, min(step, self.n_steps)))

    def labels_at(self, step: int) -> np.ndarray:
        """Label map (segmentation resolution) of the regions present before merge ``step``; ids as regions."""
        return self.region_map_at(step)[self.segmentation.labels]

    def members(self, region: int) -> np.ndarray:
        """Initial region ids that make up ``region``."""
        owner = _owner_at(self.parents(), self.n_initial, region + 1)
        return np.flatnonzero(owner == region).astype(np.int32)


@dataclass
class Proposals:
    """Ranked, deduplicated boxes plus everything that produced them.

    ``boxes`` float32 [N, 4] in original image pixels (EXIF applied), x2/y2 exclusive, best-ranked first;
    ``priority`` the randomised rank value they were sorted by (ascending); ``source`` [N, 2] int32 gives
    (hierarchy index, region id) of each box's first occurrence, linking it to ``hierarchy``.
    """

    boxes: np.ndarray
    priority: np.ndarray
    source: np.ndarray
    hierarchy: list[Hierarchy]
    image_size: tuple[int, int]  # (width, height) of the original image
    scale: float  # working (segmentation) pixels per original pixel
    mode: str
    seed: int
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def ranks(self) -> np.ndarray:
        return np.arange(len(self), dtype=np.int32)

    def top(self, n: int | None) -> np.ndarray:
        return self.boxes if n is None or n <= 0 else self.boxes[:n]


# ---------------------------------------------------------------------------------------------- features


@dataclass
class _SpaceData:
    """Per colour space, shared by every k and similarity set: converted pixels and texture bins."""

    channels: np.ndarray  # H×W×C uint8
    texture: np.ndarray  # H×W×(8C) uint8 bin codes


def _gaussian_derivatives(channels: np.ndarray, sigma: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    radius = max(1, int(4.0 * sigma + 0.5))
    xs = np.arange(-radius, radius + 1, dtype=np.float32)
    g = np.exp(-(xs ** 2) / (2.0 * sigma * sigma))
    g /= g.sum()
    dg = (-xs / (sigma * sigma) * g).astype(np.float32)
    img = np.ascontiguousarray(channels, dtype=np.float32)
    h, w, c = img.shape
    gx = np.empty_like(img)
    gy = np.empty_like(img)
    for s in range(0, c, 4):
        part = np.ascontiguousarray(img[:, :, s:s + 4])
        gx[:, :, s:s + 4] = cv2.sepFilter2D(part, cv2.CV_32F, dg, g, borderType=cv2.BORDER_REFLECT
                                            ).reshape(part.shape)
        gy[:, :, s:s + 4] = cv2.sepFilter2D(part, cv2.CV_32F, g, dg, borderType=cv2.BORDER_REFLECT
                                            ).reshape(part.shape)
    return gx, gy


def _space_data(rgb: np.ndarray, space: str) -> _SpaceData:
    channels = convert(rgb, space)
    gx, gy = _gaussian_derivatives(channels)
    return _SpaceData(channels, _texture_codes(gx, gy))


def region_histograms(labels: np.ndarray, n: int, channels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colour [n, 25·C] and texture [n, 80·C] histograms of each region, each row L1-normalised to 1.

    ``channels`` is the image in the colour space (H×W×C uint8); exposed for tests and the GUI.
    """
    if channels.ndim == 2:
        channels = channels[:, :, None]
    gx, gy = _gaussian_derivatives(channels)
    return _region_features(np.ascontiguousarray(labels, dtype=np.int32), int(n), channels,
                            _texture_codes(gx, gy))


def group(segmentation: Segmentation, channels: np.ndarray, texture: np.ndarray, strategy: Strategy
          ) -> Hierarchy:
    """Hierarchical grouping of one segmentation; boxes converted to original pixels via its ``scale``."""
    t0 = time.perf_counter()
    labels = segmentation.labels
    n = segmentation.n_regions
    h, w = labels.shape
    hc, ht = _region_features(labels, n, channels, texture)
    pairs = _adjacent_pairs(labels, n) if n > 1 else np.zeros((0, 2), np.int32)
    use_c, use_t, use_s, use_f = strategy.flags
    boxes, sizes, mpairs, mterms, msim = _group(segmentation.sizes, segmentation.boxes.astype(np.float64), hc, ht,
                                                pairs, use_c, use_t, use_s, use_f, float(h * w))
    out_boxes = (boxes / segmentation.scale).astype(np.float32)
    return Hierarchy(strategy, segmentation, out_boxes, sizes.astype(np.int64), mpairs, mterms, msim,
                     time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------- ranking


def rank_hierarchies(hierarchies: Sequence[Hierarchy], seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The paper's diversified ranking. Returns (order of concatenated regions, priority, source [N,2])."""
    rng = np.random.default_rng(seed)
    prios = []
    sources = []
    for hi, h in enumerate(hierarchies):
        r = h.region_boxes.shape[0]
        position = np.arange(r, 0, -1, dtype=np.float64)  # last formed (top) → 1, first initial → r
        prios.append(position * rng.random(r))
        sources.append(np.stack([np.full(r, hi, np.int32), np.arange(r, dtype=np.int32)], axis=1))
    if not prios:
        return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros((0, 2), np.int32)
    prio = np.concatenate(prios)
    src = np.concatenate(sources)
    order = np.argsort(prio, kind="stable")
    return order, prio[order].astype(np.float32), src[order]


def _first_unique_rows(boxes: np.ndarray) -> np.ndarray:
    """Indices of each distinct box's first occurrence, in order (boxes are whole working pixels)."""
    if boxes.shape[0] == 0:
        return np.zeros(0, np.int64)
    q = np.round(boxes).astype(np.int64)
    lo = q.min(axis=0)
    q -= lo
    span = q.max(axis=0) + 1
    if float(np.prod(span.astype(np.float64))) < 2.0 ** 62:
        key = ((q[:, 0] * span[1] + q[:, 1]) * span[2] + q[:, 2]) * span[3] + q[:, 3]
        _, first = np.unique(key, return_index=True)
    else:
        _, first = np.unique(q, axis=0, return_index=True)
    return np.sort(first)


def combine_hierarchies(hierarchies: Sequence[Hierarchy], image_size: tuple[int, int], scale: float, *,
                        seed: int = 0, near_duplicate_iou: float | str = NEAR_DUPLICATE_IOU,
                        min_box_size: float = 0.0,
                        top: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rank the regions of several groupings together, deduplicate, clip: (boxes, priority, source).

    The last step of ``selective_search``, apart so that a benchmark can rank any subset of groupings it
    computed once (e.g. every k set from one run over all k) without grouping again.
    """
    ow, oh = image_size
    near_duplicate_iou = near_duplicate_threshold(near_duplicate_iou)
    order, prio, src = rank_hierarchies(hierarchies, seed)
    all_boxes = np.concatenate([h.region_boxes for h in hierarchies]) if hierarchies else np.zeros((0, 4))
    # Deduplicate at working resolution, where regions' boxes are whole pixels.
    working = all_boxes[order] * np.float32(scale)
    keep = _first_unique_rows(working)
    boxes = all_boxes[order][keep].astype(np.float32)
    prio, src = prio[keep], src[keep]
    if near_duplicate_iou < 1.0 and boxes.shape[0] > 1:
        keep = _near_duplicate_keep(boxes.astype(np.float64), float(near_duplicate_iou))
        boxes, prio, src = boxes[keep], prio[keep], src[keep]
    np.clip(boxes[:, 0::2], 0, ow, out=boxes[:, 0::2])
    np.clip(boxes[:, 1::2], 0, oh, out=boxes[:, 1::2])
    if min_box_size > 0:
        ok = ((boxes[:, 2] - boxes[:, 0]) >= min_box_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_box_size)
        boxes, prio, src = boxes[ok], prio[ok], src[ok]
    if top is not None and top > 0:
        boxes, prio, src = boxes[:top], prio[:top], src[:top]
    return boxes, prio, src


# ----------------------------------------------------------------------------------------------- driver


def selective_search(image: np.ndarray, mode: str = "fast", *, ks: KsSpec | None = None,
                     strategies: Sequence[Strategy] | None = None, sigma: float = 0.8,
                     min_size: int | None = None, max_side: int | None = 500, seed: int = 0,
                     top: int | None = None, min_box_size: float = 0.0,
                     near_duplicate_iou: float | str | None = None,
                     progress: Callable[[float, str], None] | None = None,
                     cancelled: Callable[[], bool] | None = None) -> Proposals:
    """Object proposals for an RGB (or grey) image, in its pixels, best-ranked first.

    ``max_side`` bounds the working resolution (None: full size); boxes come back in original pixels.
    ``ks``: the mode's k values, or a per-colour-space plan (a name of ``KS_PLANS``, e.g. "split").
    ``min_size`` of the segmentation defaults to each strategy's k (the paper's setting). ``min_box_size``
    drops boxes narrower or shorter than that many original pixels. ``top`` keeps the N best-ranked.
    Exact duplicate boxes always keep only their best rank; ``near_duplicate_iou`` < 1 also drops a box
    that overlaps a better-ranked one at least that much (1.0: exact duplicates only, as the paper); a name
    of ``NEAR_DUPLICATES`` ("compact", "balanced", "budget", "localise", "exact") stands for its threshold; None: the mode's
    (``default_near_duplicates``: "budget" for fast's own plan, "localise" for single and fast with ``ks``,
    "exact" for quality).
    ``progress(fraction, message)`` and ``cancelled()`` let a GUI worker report and stop between steps.
    """
    t0 = time.perf_counter()
    if near_duplicate_iou is None:
        near_duplicate_iou = default_near_duplicates(mode, ks)
    near_duplicate_iou = near_duplicate_threshold(near_duplicate_iou)  # a bad setting fails before the work
    rgb = as_rgb8(image)
    oh, ow = rgb.shape[:2]
    if oh == 0 or ow == 0:
        raise ValueError("cannot propose boxes on an empty image")
    work, scale = resize_to_max_side(rgb, max_side)
    plan = list(strategies) if strategies is not None else strategies_for(mode, ks)
    if not plan:
        raise ValueError("no strategy to run")
    timings = {"resize": time.perf_counter() - t0, "features": 0.0, "segmentation": 0.0, "grouping": 0.0}
    spaces: dict[str, _SpaceData] = {}
    segs: dict[tuple[str, float], Segmentation] = {}
    edges: dict[str, SortedEdges] = {}  # the current colour space's sorted pixel graph, shared by its k
    hierarchies: list[Hierarchy] = []
    for i, st in enumerate(plan):
        if cancelled is not None and cancelled():
            raise Cancelled()
        if progress is not None:
            progress(i / len(plan), f"grouping {st.name}")
        t = time.perf_counter()
        if st.color_space not in spaces:
            spaces[st.color_space] = _space_data(work, st.color_space)
        data = spaces[st.color_space]
        t1 = time.perf_counter()
        key = (st.color_space, st.k)
        if key not in segs:
            if st.color_space not in edges:
                edges.clear()  # one space's edges at a time: ~12 bytes per edge, 4 edges per pixel
                edges[st.color_space] = sorted_edges(data.channels, sigma)
            ms = max(1, int(round(st.k))) if min_size is None else int(min_size)
            segs[key] = felzenszwalb(work, k=st.k, sigma=sigma, min_size=ms, color_space=st.color_space,
                                     channels=data.channels, scale=scale, edges=edges[st.color_space])
        t2 = time.perf_counter()
        hierarchies.append(group(segs[key], data.channels, data.texture, st))
        t3 = time.perf_counter()
        timings["features"] += t1 - t
        timings["segmentation"] += t2 - t1
        timings["grouping"] += t3 - t2
    t = time.perf_counter()
    boxes, prio, src = combine_hierarchies(hierarchies, (ow, oh), scale, seed=seed,
                                           near_duplicate_iou=near_duplicate_iou, min_box_size=min_box_size,
                                           top=top)
    timings["ranking"] = time.perf_counter() - t
    if progress is not None:
        progress(1.0, "done")
    return Proposals(np.ascontiguousarray(boxes), prio, src, hierarchies, (ow, oh), float(scale),
                     mode if strategies is None else "custom", int(seed), time.perf_counter() - t0, timings)


def warm_up() -> float:
    """Compile or load every numba kernel on a tiny image; returns seconds (kept out of per-image times)."""
    t0 = time.perf_counter()
    _warm_up_segmentation()
    img = np.zeros((12, 10, 3), np.uint8)
    img[3:8, 2:6] = (200, 30, 30)
    selective_search(img, "single", ks=(10,))
    return time.perf_counter() - t0


__all__ = ["COLOR_BINS", "FAST_NEAR_DUPLICATE_IOU", "FAST_PLAN", "KS_PLANS", "default_plan", "own_plan", "KsSpec", "NEAR_DUPLICATES", "NEAR_DUPLICATE_IOU", "QUALITY_NEAR_DUPLICATE_IOU",
           "Cancelled", "Hierarchy", "default_near_duplicates",
           "MODES", "Merge", "Proposals", "Strategy", "TERMS", "ks_plan", "near_duplicate_threshold",
           "TEXTURE_BINS", "TEXTURE_ORIENTATIONS", "combine_hierarchies", "group", "rank_hierarchies", "region_histograms",
           "selective_search", "strategies_for", "warm_up"]
