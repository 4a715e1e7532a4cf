"""What CNN codes capture: every labelled box of a dataset as a code, and a box's nearest neighbours among them.

A pretrained network's codes put boxes of the same kind close together, so a box's nearest neighbours are
mostly of its class even though the network was never told these classes; a network with random weights,
same architecture and layer, gives neighbours that share colour and brightness, not kind. Seeing both is the
argument for transfer learning that R-CNN rests on.

Codes come through the product's one CNN-code cache (:mod:`models.detection.features`), so indexing a
dataset a second time, or after R-CNN or the linear classifier computed the same boxes, costs no network pass.
Distances are :func:`~models.detection.features.code_distances` (Euclidean).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from models.data.datasets import DatasetSource
from models.data.io import read_image
from models.detection.features import CnnCodeExtractor, FeatureCache, cnn_codes, code_distances

ProgressFn = Callable[[float, str], None]


class IndexCancelled(RuntimeError):
    """The caller asked to stop while the dataset's codes were being computed."""


@dataclass(frozen=True)
class LabelledBox:
    """One labelled box of the dataset: which image, which object of it, its class and box (pixels)."""

    image: str
    entry_index: int
    object_index: int
    class_name: str
    box: tuple[float, float, float, float]


@dataclass
class CodeIndex:
    """The codes of every labelled box of a dataset, row ``i`` for ``boxes[i]``."""

    extractor: str  # the extractor's cache key
    description: str
    boxes: list[LabelledBox]
    codes: np.ndarray  # [N, D] float32
    from_cache: int  # how many codes needed no network pass
    problems: list[str]  # images that could not be read, with why

    def __len__(self) -> int:
        return len(self.boxes)


@dataclass(frozen=True)
class Neighbour:
    box: LabelledBox
    distance: float
    row: int


def build_code_index(source: DatasetSource, extractor: CnnCodeExtractor, cache: FeatureCache | None = None,
                     progress: ProgressFn | None = None, cancelled: Callable[[], bool] | None = None,
                     min_side: float = 2.0) -> CodeIndex:
    """Codes of every labelled box (crowd boxes and boxes thinner than ``min_side`` px left out) of
    ``source``; an unreadable image is reported in ``problems`` and skipped."""
    boxes: list[LabelledBox] = []
    rows: list[np.ndarray] = []
    from_cache = 0
    problems: list[str] = []
    n = len(source.entries)
    for i, entry in enumerate(source.entries):
        if cancelled is not None and cancelled():
            raise IndexCancelled("stopped while computing the dataset's CNN codes")
        ann = source.store.load(entry)
        objects = [(k, o) for k, o in enumerate(ann.objects if ann else [])
                   if not o.crowd and min(o.box[2] - o.box[0], o.box[3] - o.box[1]) >= min_side]
        if objects:
            try:
                pixels = read_image(entry.path, max_pixels=None).pixels
            except Exception as exc:  # noqa: BLE001 - any unreadable image is reported, the rest indexed
                problems.append(f"{entry.path}: {exc}")
                objects = []
        if objects:
            arr = np.array([o.box for _, o in objects], np.float32)
            result = cnn_codes(pixels, arr, extractor, cache)
            from_cache += int(result.cached.sum())
            rows.append(result.codes)
            boxes.extend(LabelledBox(str(entry.path), i, k, o.name, tuple(float(v) for v in o.box))
                         for k, o in objects)
        if progress is not None:
            progress((i + 1) / max(n, 1), f"CNN codes: image {i + 1}/{n}, {len(boxes)} boxes")
    codes = np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, 0), np.float32)
    return CodeIndex(extractor.key, extractor.description, boxes, codes, from_cache, problems)


def nearest(index: CodeIndex, query: np.ndarray, k: int = 8, exclude_row: int | None = None) -> list[Neighbour]:
    """The ``k`` boxes of ``index`` whose codes are nearest to ``query`` (ties: dataset order); ``exclude_row``
    leaves the query's own row out when it is one of the dataset's boxes."""
    if len(index) == 0:
        return []
    distances = code_distances(query, index.codes)
    order = np.argsort(distances, kind="stable")
    out: list[Neighbour] = []
    for row in order:
        if exclude_row is not None and int(row) == exclude_row:
            continue
        out.append(Neighbour(index.boxes[int(row)], float(distances[row]), int(row)))
        if len(out) == k:
            break
    return out


def same_class_share(index: CodeIndex, k: int = 5) -> float:
    """Over every box of ``index``: the share of its ``k`` nearest other boxes that have its class — one number
    for "do codes group boxes by kind" (pretrained: high; random weights: near the class frequencies)."""
    if len(index) < 2:
        return 0.0
    hits = total = 0
    for row, box in enumerate(index.boxes):
        for nb in nearest(index, index.codes[row], k, exclude_row=row):
            hits += nb.box.class_name == box.class_name
            total += 1
    return hits / total if total else 0.0


@dataclass
class BoxQuery:
    """A box's code and its nearest neighbours, with the crops a view shows as thumbnails."""

    code: np.ndarray  # [D]
    from_index: bool  # the code is the dataset's own (the selected box is one of the indexed boxes)
    neighbours: list[Neighbour]
    neighbour_codes: np.ndarray  # [k, D], in neighbour order
    thumbnails: list[np.ndarray]  # H×W×3 uint8 crops of the neighbours, in neighbour order
    row: int | None = None  # the box's row in the index (None: not indexed), so a view names the box it answered


def index_row(index: CodeIndex, image: str, box: tuple[float, float, float, float], tol: float = 0.5) -> int | None:
    """The row of ``index`` holding ``box`` of ``image`` (coordinates within ``tol`` px), or None (a box drawn
    or moved since the index was built)."""
    for row, b in enumerate(index.boxes):
        if b.image == image and max(abs(u - v) for u, v in zip(b.box, box, strict=True)) <= tol:
            return row
    return None


def crop_thumbnail(pixels: np.ndarray, box: tuple[float, float, float, float], side: int = 72) -> np.ndarray:
    """The box's pixels, resized so the longer side is ``side`` (aspect kept), for a neighbour list."""
    import cv2

    h, w = pixels.shape[:2]
    x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x2, y2 = min(w, max(x1 + 1, int(np.ceil(box[2])))), min(h, max(y1 + 1, int(np.ceil(box[3]))))
    crop = np.ascontiguousarray(pixels[y1:y2, x1:x2])
    scale = side / max(crop.shape[:2])
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    return cv2.resize(crop, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def query_box(index: CodeIndex, extractor: CnnCodeExtractor, image: str, pixels: np.ndarray | None,
              box: tuple[float, float, float, float], k: int = 8, cache: FeatureCache | None = None,
              pixel_scale: float = 1.0) -> BoxQuery:
    """Code and ``k`` nearest labelled boxes of ``box`` (image pixels) in ``image``. The dataset's own code is
    used when the box is indexed; otherwise it is computed from ``pixels`` (a preview reduced by
    ``pixel_scale`` maps the box with it). The query's own row never lists itself."""
    row = index_row(index, image, box)
    if row is not None:
        code = index.codes[row]
    else:
        if pixels is None:
            raise ValueError("the box is not in the index and no pixels were given to compute its code")
        scaled = np.asarray(box, np.float32).reshape(1, 4) * float(pixel_scale)
        code = cnn_codes(pixels, scaled, extractor, cache).codes[0]
    found = nearest(index, code, k, exclude_row=row)
    thumbs: list[np.ndarray] = []
    images: dict[str, np.ndarray] = {}
    for nb in found:
        if nb.box.image not in images:
            images[nb.box.image] = read_image(nb.box.image, max_pixels=None).pixels
        thumbs.append(crop_thumbnail(images[nb.box.image], nb.box.box))
    codes = index.codes[[nb.row for nb in found]] if found else np.zeros((0, index.codes.shape[1]), np.float32)
    return BoxQuery(code, row is not None, found, codes, thumbs, row)
