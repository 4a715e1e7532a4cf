"""Statistics of a dataset's ground-truth boxes: counts per class, sizes, shapes, anchor fit and problem boxes.

Why: a detector's anchors, training size and schedule should follow the data it learns from. A user sees
here when most objects are smaller than the smallest anchor, when no anchor shape fits elongated objects,
or when an annotation has a zero-size, doubled or out-of-image box — before spending minutes of training on
it. ``models.detection.auto_settings`` chooses training settings from the same numbers.

Boxes are read as stored (displayed-image pixels, xyxy, x2/y2 exclusive), never clipped, so problem boxes
show as they are. Size figures (√area, width, height, aspect ratio h/w) cover the well-formed boxes only.

``anchor_coverage`` reuses :mod:`models.detection.anchors` (the grid the RPN uses) and
:func:`models.boxes.box_iou`: a box counts as covered when some anchor of its image's grid, at the size the
model trains at, overlaps it with IoU ≥ 0.7 — the RPN's positive threshold. A box no anchor covers is only
learned through the "best anchor of a GT box" rule, with a weaker regression start.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from models.boxes import box_iou
from models.boxes_numpy import box_iou_numpy
from models.data.annotations import AnnotationError
from models.data.datasets import DatasetSource
from models.data.io import ImageError, read_image_info
from models.data.training_data import resize_scale
from models.detection.anchor_labels import feature_size_for, input_geometry
from models.detection.anchors import AnchorGenerator

#: Same class and at least this IoU: the second box is listed as a duplicate of the first.
DUPLICATE_IOU = 0.95
#: A box edge further than this outside the image (pixels) makes it an out-of-image box.
OUTSIDE_TOLERANCE = 1e-3
#: The RPN's positive IoU (Faster R-CNN section 3.1.2): the coverage threshold.
COVERAGE_IOU = 0.7

ProgressFn = Callable[[float, str], None]


class StatsCancelled(Exception):
    """Raised by :func:`compute_box_stats` when ``cancelled()`` turns true."""


@dataclass(frozen=True)
class ProblemBox:
    """One box worth a look: ``kind`` is "degenerate", "duplicate" or "out_of_image"."""

    kind: str
    image_index: int  # into source.entries
    image_name: str
    box_index: int  # into the image's annotation objects; -1 for a box the reader does not show
    class_name: str
    box: tuple[float, float, float, float]
    detail: str  # in words, e.g. "width 0", "IoU 1.00 with box 2"


@dataclass
class BoxStats:
    """Everything measured; arrays are per well-formed box (same order), lists per image.

    ``image_of`` / ``box_index`` say where each box comes from (for click-through); ``labels`` index
    ``class_names``. ``image_sizes`` [M, 2] holds (width, height) of every image whose size is known.
    """

    class_names: list[str]
    n_images: int = 0
    n_annotated: int = 0  # images with at least one box
    images_per_class: dict[str, int] = field(default_factory=dict)
    boxes_per_class: dict[str, int] = field(default_factory=dict)
    difficult_per_class: dict[str, int] = field(default_factory=dict)
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    image_of: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    box_index: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    box_image_size: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))  # (w, h) per box
    image_sizes: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    problems: list[ProblemBox] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # "name: why", images or annotations skipped

    @property
    def n_boxes(self) -> int:
        return int(sum(self.boxes_per_class.values()))

    @property
    def widths(self) -> np.ndarray:
        return self.boxes[:, 2] - self.boxes[:, 0]

    @property
    def heights(self) -> np.ndarray:
        return self.boxes[:, 3] - self.boxes[:, 1]

    @property
    def sqrt_areas(self) -> np.ndarray:
        """√(w·h): the "size" anchors are given in."""
        return np.sqrt(self.widths * self.heights)

    @property
    def ratios(self) -> np.ndarray:
        """Aspect ratio h / w, the convention of the anchors' ``ratios``."""
        return self.heights / self.widths

    def training_scales(self, min_size: int, max_size: int) -> np.ndarray:
        """Per box: the factor the training resize (shorter side ``min_size``, longer ≤ ``max_size``) applies."""
        out = np.ones(len(self.boxes), np.float32)
        for i, (w, h) in enumerate(self.box_image_size):
            if w > 0 and h > 0:
                out[i] = resize_scale(int(h), int(w), min_size, max_size)
        return out

    def problems_of(self, kind: str) -> list[ProblemBox]:
        return [p for p in self.problems if p.kind == kind]


def _box_problems(boxes: np.ndarray, names: list[str], width: float, height: float) -> list[tuple[str, int, str]]:
    """(kind, box index, detail) for one image's boxes (raw, as stored)."""
    out: list[tuple[str, int, str]] = []
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    degenerate = (w <= 0) | (h <= 0) | ~np.isfinite(boxes).all(axis=1)
    for i in np.where(degenerate)[0]:
        what = []
        if w[i] <= 0:
            what.append(f"width {w[i]:g}")
        if h[i] <= 0:
            what.append(f"height {h[i]:g}")
        out.append(("degenerate", int(i), ", ".join(what) or "not a finite box"))
    if width > 0 and height > 0:
        t = OUTSIDE_TOLERANCE
        outside = ((boxes[:, 0] < -t) | (boxes[:, 1] < -t) | (boxes[:, 2] > width + t)
                   | (boxes[:, 3] > height + t)) & ~degenerate
        for i in np.where(outside)[0]:
            out.append(("out_of_image", int(i), f"image is {width:g}×{height:g}"))
    good = np.where(~degenerate)[0]
    if len(good) > 1:
        iou = box_iou_numpy(boxes[good], boxes[good])
        for a in range(len(good)):
            for b in range(a + 1, len(good)):
                ia, ib = int(good[a]), int(good[b])
                same = bool(np.array_equal(boxes[ia], boxes[ib]))
                if names[ia] == names[ib] and (same or iou[a, b] >= DUPLICATE_IOU):
                    out.append(("duplicate", ib, f"IoU {iou[a, b]:.2f} with box {ia + 1} of the same class"))
                    break
    return out


_SIZE_ERROR = re.compile(r"(negative|zero)[^:]*size")
_OBJECT_NUMBER = re.compile(r"object (\d+)")


def _skipped_coco_boxes(source: DatasetSource, wanted: set[int]) -> list[ProblemBox]:
    """Zero-size boxes of a COCO file: its reader skips them (they are never shown), so list them from the file."""
    dataset = getattr(source.store, "dataset", None)
    raw = getattr(dataset, "raw", None)
    if not isinstance(raw, dict) or not isinstance(raw.get("annotations"), list):
        return []
    index_of = {e.coco_id: i for i, e in enumerate(source.entries) if e.coco_id is not None}
    names = dict(zip(dataset.category_ids, dataset.class_names, strict=False))
    out = []
    for k, a in enumerate(raw["annotations"]):
        try:
            x, y, w, h = (float(v) for v in a["bbox"])
            i = index_of[a["image_id"]]
        except (KeyError, TypeError, ValueError):
            continue
        if (w <= 0 or h <= 0) and i in wanted:
            out.append(ProblemBox("degenerate", i, source.entries[i].name, -1, names.get(a.get("category_id"), ""),
                                  (x, y, x + w, y + h), f"width {w:g}, height {h:g} (annotation {k + 1} of the "
                                                        "file; skipped when read, so not shown)"))
    return out


def compute_box_stats(source: DatasetSource, indices: Sequence[int] | None = None,
                      progress: ProgressFn | None = None, cancelled: Callable[[], bool] | None = None) -> BoxStats:
    """Read every annotation (and image header) of ``source`` (or of ``indices``) and measure its boxes.

    Unreadable images or annotations are listed in ``unreadable`` and skipped, never fatal. Reading headers
    only, so 10,000 images take seconds; ``cancelled`` is polled between images (raises StatsCancelled).
    """
    idx = list(range(len(source.entries))) if indices is None else [int(i) for i in indices]
    names_order: list[str] = list(source.class_names)
    boxes_l: list[np.ndarray] = []
    label_names: list[str] = []
    image_of: list[int] = []
    box_index: list[int] = []
    box_wh: list[tuple[float, float]] = []
    sizes: list[tuple[float, float]] = []
    images_with: dict[str, set[int]] = {}
    boxes_per: dict[str, int] = {}
    difficult_per: dict[str, int] = {}
    stats = BoxStats(class_names=[])
    for k, i in enumerate(idx):
        if cancelled is not None and cancelled():
            raise StatsCancelled()
        if progress is not None and (k % 20 == 0 or k == len(idx) - 1):
            progress(k / max(1, len(idx)), f"image {k + 1} of {len(idx)}")
        entry = source.entries[i]
        info = None
        try:
            info = read_image_info(entry.path)
        except (ImageError, OSError) as exc:
            stats.unreadable.append(f"{entry.name}: image unreadable ({exc}); its boxes are not checked "
                                    "against the image size")
        try:
            ann = source.store.load(entry, info)
        except AnnotationError as exc:
            stats.unreadable.append(f"{entry.name}: annotation unreadable ({exc})")
            if _SIZE_ERROR.search(exc.reason):  # VOC and YOLO readers refuse a file with a zero-size box
                num = _OBJECT_NUMBER.search(exc.reason)
                stats.problems.append(ProblemBox("degenerate", i, entry.name, -1, "", (math.nan,) * 4,
                                                 f"file unreadable: {exc.reason}"
                                                 + (f" (object {num.group(1)})" if num else "")))
            continue
        except (OSError, ValueError) as exc:
            stats.unreadable.append(f"{entry.name}: annotation unreadable ({exc})")
            continue
        stats.n_images += 1
        width = float(info.width) if info is not None else float(ann.width if ann is not None else 0)
        height = float(info.height) if info is not None else float(ann.height if ann is not None else 0)
        if width > 0 and height > 0:
            sizes.append((width, height))
        objects = ann.objects if ann is not None else []
        if not objects:
            continue
        stats.n_annotated += 1
        raw = np.asarray([[float(v) for v in o.box] for o in objects], np.float32).reshape(-1, 4)
        names = [o.name for o in objects]
        flagged_bad = set()
        for kind, b, detail in _box_problems(raw, names, width, height):
            stats.problems.append(ProblemBox(kind, i, entry.name, b, names[b],
                                             tuple(float(v) for v in raw[b]), detail))
            if kind == "degenerate":
                flagged_bad.add(b)
        for b, obj in enumerate(objects):
            if obj.name not in names_order:
                names_order.append(obj.name)
            boxes_per[obj.name] = boxes_per.get(obj.name, 0) + 1
            images_with.setdefault(obj.name, set()).add(i)
            if obj.difficult or obj.crowd:
                difficult_per[obj.name] = difficult_per.get(obj.name, 0) + 1
            if b in flagged_bad:
                continue
            boxes_l.append(raw[b])
            label_names.append(obj.name)
            image_of.append(i)
            box_index.append(b)
            box_wh.append((width, height))
    stats.problems.extend(_skipped_coco_boxes(source, set(idx)))
    if progress is not None:
        progress(1.0, f"{len(idx)} images read")
    stats.class_names = names_order
    lookup = {n: c for c, n in enumerate(names_order)}
    stats.boxes_per_class = {n: boxes_per.get(n, 0) for n in names_order}
    stats.images_per_class = {n: len(images_with.get(n, ())) for n in names_order}
    stats.difficult_per_class = {n: difficult_per.get(n, 0) for n in names_order}
    stats.boxes = np.asarray(boxes_l, np.float32).reshape(-1, 4)
    stats.labels = np.asarray([lookup[n] for n in label_names], np.int64)
    stats.image_of = np.asarray(image_of, np.int64)
    stats.box_index = np.asarray(box_index, np.int64)
    stats.box_image_size = np.asarray(box_wh, np.float32).reshape(-1, 2)
    stats.image_sizes = np.asarray(sizes, np.float32).reshape(-1, 2)
    return stats


@dataclass
class AnchorCoverage:
    """How well an anchor set fits the boxes, at the training size.

    ``best_iou`` [N]: per box (the order of :class:`BoxStats` arrays) the highest IoU with any anchor of its
    image's grid; ``covered`` = best_iou ≥ ``iou``.
    """

    sizes: tuple[float, ...]
    ratios: tuple[float, ...]
    stride: int
    min_size: int
    max_size: int
    iou: float
    best_iou: np.ndarray

    @property
    def covered(self) -> np.ndarray:
        return self.best_iou >= self.iou

    @property
    def unmatched_share(self) -> float:
        """Share of boxes no anchor matches at IoU ≥ ``iou`` (NaN without boxes)."""
        n = len(self.best_iou)
        return float("nan") if n == 0 else float((~self.covered).sum()) / n


def anchor_coverage(stats: BoxStats, sizes: Sequence[float], ratios: Sequence[float], stride: int,
                    min_size: int, max_size: int, iou: float = COVERAGE_IOU,
                    cancelled: Callable[[], bool] | None = None) -> AnchorCoverage:
    """Best anchor IoU of every well-formed box, each image resized as training resizes it.

    The grid is the RPN's (``models.detection.anchors``) over the network input as ``Detector.prepare`` sizes it
    (``models.detection.anchor_labels.input_geometry``): ``ceil(side / stride)`` cells per side, every anchor
    kept, including those crossing the border (the RPN ignores those in training; counting them here measures
    the anchor shapes and spacing, not the image borders). Only the anchors of the cell holding the box's
    centre are compared: the overlap of two intervals never grows as their centres move apart, so for each
    anchor shape the grid position nearest the box's centre has the highest IoU — the same answer as the
    whole grid at a few anchors per box. Boxes of images of unknown size keep scale 1 and an unbounded grid.
    """
    gen = AnchorGenerator(sizes, ratios, stride)
    cell = gen((1, 1))  # the A anchors of the first cell, centred at (stride / 2, stride / 2)
    per_cell = cell.shape[0]
    scales = stats.training_scales(min_size, max_size)
    best = np.zeros(len(stats.boxes), np.float32)
    order = np.argsort(stats.image_of, kind="stable")
    if len(order):
        splits = np.where(np.diff(stats.image_of[order]) != 0)[0] + 1
        for group in np.split(order, splits):
            if cancelled is not None and cancelled():
                raise StatsCancelled()
            w, h = stats.box_image_size[group[0]]
            gt = stats.boxes[group].astype(np.float64)
            if w > 0 and h > 0:  # the network input's rounded size, as Detector.prepare resizes
                input_size, (sy, sx) = input_geometry(int(h), int(w), min_size, max_size)
                fh, fw = feature_size_for(input_size, stride)
                gt = gt * np.asarray([sx, sy, sx, sy])
            else:
                gt = gt * float(scales[group[0]])
                fh = fw = None
            ix = np.floor((gt[:, 0] + gt[:, 2]) / 2 / stride)
            iy = np.floor((gt[:, 1] + gt[:, 3]) / 2 / stride)
            if fh is not None:
                ix = np.clip(ix, 0, fw - 1)
                iy = np.clip(iy, 0, fh - 1)
            ix, iy = np.maximum(ix, 0), np.maximum(iy, 0)
            shift = torch.from_numpy(np.stack([ix, iy, ix, iy], axis=1) * stride).float()
            anchors = (cell[None, :, :] + shift[:, None, :]).reshape(-1, 4)  # [G * A, 4]
            m = box_iou(torch.from_numpy(gt).float(), anchors).reshape(len(group), len(group), per_cell)
            own = torch.arange(len(group))
            best[group] = m[own, own].max(dim=1).values.numpy()
    return AnchorCoverage(tuple(float(v) for v in sizes), tuple(float(r) for r in ratios), int(stride),
                          int(min_size), int(max_size), float(iou), best)


def log_histogram(values: np.ndarray, per_octave: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Counts of positive ``values`` in geometric bins, ``per_octave`` bins per factor 2, edges on powers of
    2^(1/per_octave): ``(edges [B + 1], counts [B])``. Geometric because anchor sizes and ratios are
    geometric series; equal-width bins would squeeze the small objects into one bar."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    if not len(v):
        return np.asarray([1.0, 2.0]), np.zeros(1, np.int64)
    k = np.log2(v) * per_octave
    lo, hi = math.floor(k.min()), math.floor(k.max()) + 1
    edges = 2.0 ** (np.arange(lo, hi + 1) / per_octave)
    counts = np.bincount((np.floor(k) - lo).astype(np.int64), minlength=hi - lo)[: hi - lo]
    return edges, counts
