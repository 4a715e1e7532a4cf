"""Anchors as the explorer shows them: a grid from editable parameters, labelled against the ground truth.

:mod:`models.detection.anchors` holds the training machinery (grid, :func:`~models.detection.anchors.label_anchors`); this module
wraps it into one result object a layer can draw and a panel can count: the label *kind* of every anchor
(positive, negative, ignored, or ignored because it crosses the image border), the best anchor of each GT box
(the rule that guarantees every GT box one positive, paper section 3.1.2), and the cell bookkeeping that maps
a point on the image to the ``len(sizes) * len(ratios)`` anchors centred in that feature-map cell.

Everything here is in the pixels of the *network input* (the resized image the RPN sees): anchor sizes are
meant in those pixels. :func:`input_geometry` gives that size and the factors from the image, exactly as
:meth:`models.detection.detectors.base.Detector.prepare` resizes it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from models.boxes import box_iou
from models.detection.anchors import (
    IGNORED,
    NEGATIVE,
    POSITIVE,
    AnchorSet,
    base_anchors,
    grid_anchors,
    inside_image,
    label_anchors,
)
from models.detection.detectors.base import resize_scale

#: A fourth kind beside the training labels: ignored *because* it crosses the image border (paper 3.3).
CROSS_BOUNDARY = 2
#: Kinds in the order panels list them.
KINDS = (POSITIVE, NEGATIVE, IGNORED, CROSS_BOUNDARY)
KIND_NAMES = {POSITIVE: "positive", NEGATIVE: "negative", IGNORED: "ignored", CROSS_BOUNDARY: "cross-boundary"}
#: Which kind a cell's centre dot shows when its anchors differ: the most informative one.
_CELL_PRIORITY = {POSITIVE: 3, IGNORED: 2, NEGATIVE: 1, CROSS_BOUNDARY: 0}

#: More anchors than this are refused: a tiny stride on a big image would take minutes and gigabytes.
_MAX_ANCHORS = 2_000_000


@dataclass(frozen=True)
class AnchorSpec:
    """The anchor parameters a user edits: stride (pixels per feature cell), sizes (√area), ratios (h / w),
    and the thresholds that label them (the RPN's)."""

    stride: int = 16
    sizes: tuple[float, ...] = (128.0, 256.0, 512.0)
    ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    positive_iou: float = 0.7
    negative_iou: float = 0.3
    ignore_cross_boundary: bool = True

    @property
    def per_cell(self) -> int:
        return len(self.sizes) * len(self.ratios)

    def check(self) -> None:
        """ValueError with a message a user understands when the parameters make no anchors."""
        if int(self.stride) < 1:
            raise ValueError(f"stride must be at least 1 pixel, got {self.stride}")
        if not self.sizes:
            raise ValueError("give at least one anchor size")
        if not self.ratios:
            raise ValueError("give at least one aspect ratio")
        if any(not math.isfinite(s) or s <= 0 for s in self.sizes):
            raise ValueError("anchor sizes must be positive numbers")
        if any(not math.isfinite(r) or r <= 0 for r in self.ratios):
            raise ValueError("aspect ratios must be positive numbers")
        if not 0.0 <= self.negative_iou <= self.positive_iou <= 1.0:
            raise ValueError(f"need 0 ≤ negative IoU ({self.negative_iou:g}) ≤ positive IoU "
                             f"({self.positive_iou:g}) ≤ 1")


def spec_from_model(model: object) -> AnchorSpec | None:
    """The anchor parameters a loaded detector uses (a model with ``rpn.anchor_generator``), else None."""
    rpn = getattr(model, "rpn", None)
    gen = getattr(rpn, "anchor_generator", None)
    if gen is None:
        return None
    return AnchorSpec(int(gen.stride), tuple(float(s) for s in gen.sizes), tuple(float(r) for r in gen.ratios),
                      float(rpn.positive_iou), float(rpn.negative_iou), bool(rpn.ignore_cross_boundary))


def input_geometry(height: int, width: int, min_size: int, max_size: int) -> tuple[tuple[int, int],
                                                                                   tuple[float, float]]:
    """Network-input size ``(h, w)`` and factors ``(sy, sx)`` image → input, rounded as ``Detector.prepare``."""
    s = resize_scale(int(height), int(width), int(min_size), int(max_size))
    nh, nw = max(1, int(round(height * s))), max(1, int(round(width * s)))
    return (nh, nw), (nh / float(height), nw / float(width))


def feature_size_for(input_size: tuple[int, int], stride: int) -> tuple[int, int]:
    """Cells of a stride-``stride`` map over an input of ``(h, w)`` pixels: ``ceil(h / stride)`` as the
    padded stride-2 convolutions of the small backbone give (a trace's own ``feature_size`` is exact)."""
    return (max(1, math.ceil(input_size[0] / stride)), max(1, math.ceil(input_size[1] / stride)))


@dataclass
class AnchorLabelling:
    """Every anchor of one image with how training sees it, plus what the explorer draws from it."""

    spec: AnchorSpec
    image_size: tuple[int, int]  # network-input (h, w) the anchors were labelled in
    anchors: AnchorSet  # boxes [N, 4] in input pixels; labels/matched/max_iou as label_anchors gives them
    kinds: np.ndarray  # [N] int8: POSITIVE, NEGATIVE, IGNORED, CROSS_BOUNDARY
    crosses: np.ndarray  # [N] bool: crosses the image border (whether or not that makes it ignored)
    forced: np.ndarray  # [N] bool: positive only through the best-anchor rule (IoU below positive_iou)
    best_anchor: np.ndarray  # [G] int64: each GT box's best anchor (-1: no anchor overlaps it)
    best_iou: np.ndarray  # [G] float32

    @property
    def feature_size(self) -> tuple[int, int]:
        return self.anchors.feature_size

    @property
    def per_cell(self) -> int:
        return self.anchors.per_cell

    @property
    def boxes(self) -> np.ndarray:
        return self.anchors.boxes.cpu().numpy()

    @property
    def max_iou(self) -> np.ndarray:
        assert self.anchors.max_iou is not None
        return self.anchors.max_iou.cpu().numpy()

    @property
    def matched(self) -> np.ndarray:
        assert self.anchors.matched is not None
        return self.anchors.matched.cpu().numpy()

    def counts(self) -> dict[int, int]:
        """Anchors per kind (every kind present as a key)."""
        return {k: int(np.count_nonzero(self.kinds == k)) for k in KINDS}

    def centres(self) -> np.ndarray:
        """[fh * fw, 2] cell centres (x, y) in input pixels, row-major."""
        fh, fw = self.feature_size
        s = self.spec.stride
        cy, cx = np.meshgrid((np.arange(fh) + 0.5) * s, (np.arange(fw) + 0.5) * s, indexing="ij")
        return np.stack([cx.ravel(), cy.ravel()], axis=1).astype(np.float32)

    def cell_kinds(self) -> np.ndarray:
        """[fh * fw] the most informative kind among each cell's anchors (positive > ignored > negative >
        cross-boundary): what a centre dot shows."""
        # kinds -1..2 → priority; the lookup tables are _CELL_PRIORITY as arrays (no per-anchor Python).
        pri_of = np.array([_CELL_PRIORITY[k] for k in (IGNORED, NEGATIVE, POSITIVE, CROSS_BOUNDARY)], np.int8)
        kind_of = np.array(sorted(KINDS, key=_CELL_PRIORITY.__getitem__), np.int8)
        if self.kinds.size == 0:
            return np.zeros(0, np.int8)
        best = pri_of[self.kinds.astype(np.int64) + 1].reshape(-1, self.per_cell).max(axis=1)
        return kind_of[best]

    def cell_at(self, x: float, y: float) -> tuple[int, int] | None:
        """(row, column) of the cell holding input point (x, y), None outside the map."""
        fh, fw = self.feature_size
        col, row = math.floor(x / self.spec.stride), math.floor(y / self.spec.stride)
        if 0 <= row < fh and 0 <= col < fw:
            return int(row), int(col)
        return None

    def cell_indices(self, row: int, col: int) -> np.ndarray:
        """Indices of the anchors of cell (row, col), in the model's order (size-major, then ratio)."""
        a = self.per_cell
        start = (int(row) * self.feature_size[1] + int(col)) * a
        return np.arange(start, start + a, dtype=np.int64)

    def describe(self, index: int) -> tuple[float, float]:
        """(size, ratio) of anchor ``index``."""
        k = int(index) % self.per_cell
        nr = len(self.spec.ratios)
        return float(self.spec.sizes[k // nr]), float(self.spec.ratios[k % nr])


def make_anchor_set(spec: AnchorSpec, feature_size: tuple[int, int]) -> AnchorSet:
    """The grid of ``spec`` over ``feature_size`` cells (the model's order: cell-major, then anchor)."""
    spec.check()
    base = base_anchors(spec.sizes, spec.ratios)
    boxes = grid_anchors(base, (int(feature_size[0]), int(feature_size[1])), int(spec.stride))
    return AnchorSet(boxes, int(spec.stride), tuple(spec.sizes), tuple(spec.ratios),
                     (int(feature_size[0]), int(feature_size[1])))


def label_anchor_grid(spec: AnchorSpec, image_size: tuple[int, int], gt_boxes: np.ndarray,
                      feature_size: tuple[int, int] | None = None,
                      ignore_regions: np.ndarray | None = None) -> AnchorLabelling:
    """Anchors of ``spec`` over an input of ``image_size`` (h, w), labelled against ``gt_boxes`` ([G, 4]
    input pixels) by :func:`models.detection.anchors.label_anchors` exactly as the RPN's training does,
    ``ignore_regions`` (crowd or difficult boxes, input pixels) included.

    ``feature_size`` defaults to :func:`feature_size_for`. Raises ValueError for unusable parameters or an
    anchor count too large to label.
    """
    spec.check()
    h, w = int(image_size[0]), int(image_size[1])
    fs = feature_size_for((h, w), spec.stride) if feature_size is None else (int(feature_size[0]),
                                                                              int(feature_size[1]))
    if fs[0] * fs[1] * spec.per_cell > _MAX_ANCHORS:
        raise ValueError(f"{fs[0]}×{fs[1]} cells × {spec.per_cell} anchors is too many to label; "
                         f"raise the stride or use fewer sizes/ratios")
    aset = make_anchor_set(spec, fs)
    gt = torch.as_tensor(np.asarray(gt_boxes, np.float32).reshape(-1, 4))
    regions = None if ignore_regions is None else torch.as_tensor(np.asarray(ignore_regions, np.float32).reshape(-1, 4))
    label_anchors(aset, gt, positive_iou=spec.positive_iou, negative_iou=spec.negative_iou,
                  image_size=(h, w) if spec.ignore_cross_boundary else None, ignore_regions=regions)
    assert aset.labels is not None and aset.max_iou is not None
    boxes = aset.boxes
    inside = inside_image(boxes, h, w)
    crosses = (~inside).numpy()
    kinds = aset.labels.numpy().astype(np.int8).copy()
    if spec.ignore_cross_boundary:
        kinds[crosses] = CROSS_BOUNDARY
    # The best anchor of each GT among the anchors training considers (the same set label_anchors matched).
    considered = torch.where(inside)[0] if spec.ignore_cross_boundary else torch.arange(boxes.shape[0])
    g = gt.shape[0]
    best_anchor = np.full(g, -1, np.int64)
    best_iou = np.zeros(g, np.float32)
    if g and considered.numel():
        iou = box_iou(gt, boxes[considered])
        val, arg = iou.max(dim=1)
        ok = (val > 0).numpy()
        best_anchor[ok] = considered[arg].numpy()[ok]
        best_iou[:] = val.numpy()
    forced = (kinds == POSITIVE) & (aset.max_iou.numpy() < spec.positive_iou)
    return AnchorLabelling(spec, (h, w), aset, kinds, crosses, forced, best_anchor, best_iou)


def parse_numbers(text: str, what: str) -> tuple[float, ...]:
    """``"128, 256 512"`` → (128.0, 256.0, 512.0); ValueError naming ``what`` for anything else."""
    parts = [p for p in text.replace(",", " ").replace(";", " ").split() if p]
    if not parts:
        raise ValueError(f"give at least one {what}")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise ValueError(f"{what}s must be numbers separated by commas, got {text!r}") from None
    if any(not math.isfinite(v) or v <= 0 for v in values):
        raise ValueError(f"{what}s must be positive numbers")
    return values


def format_numbers(values: Sequence[float]) -> str:
    return ", ".join(f"{v:g}" for v in values)


__all__ = ["CROSS_BOUNDARY", "KINDS", "KIND_NAMES", "AnchorLabelling", "AnchorSpec", "feature_size_for",
           "format_numbers", "input_geometry", "label_anchor_grid", "make_anchor_set", "parse_numbers",
           "spec_from_model"]
