"""Felzenszwalb–Huttenlocher graph segmentation (IJCV 2004): the starting regions of Selective Search.

The algorithm: smooth each channel with a Gaussian (sigma), connect every pixel to its 8 neighbours with an
edge weighted by the Euclidean colour difference, sort the edges, and merge two components when the edge
between them is no heavier than either component's internal difference plus ``k / size``; finally merge
components smaller than ``min_size`` into a neighbour. Larger k → larger regions.

Why our own implementation: scikit-image's ``felzenszwalb`` (kept as the reference, see
``reference_felzenszwalb``) takes ~170 ms on a 500-px image and Selective Search's ``fast`` mode needs four
segmentations per image. This one is the same algorithm compiled with numba (``cache=True``; the first call
in a fresh checkout compiles for a few seconds, ``warm_up()`` does that ahead of any timing) with a counting
sort of the edge weights (quantised to 1/1024 of a grey level) instead of a comparison sort. Tests check it
against scikit-image's output: similar segment counts and boundaries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np
from numba import njit

from models.proposals.color_spaces import COLOR_SPACES, as_rgb8, convert

#: Edge weights are bucketed at this many steps per grey level for the counting sort. 1024 keeps boundaries
#: within a pixel of scikit-image's for 99 % of pixels on coco_tiny (64 steps: 90 %) for ~10 % more time.
_WEIGHT_STEPS = 1024.0


@dataclass(frozen=True)
class SegmentationParams:
    k: float = 100.0  # the paper's k (scikit-image's ``scale``): larger → larger regions
    sigma: float = 0.8  # Gaussian pre-smoothing, in pixels
    min_size: int = 100  # regions smaller than this are merged into a neighbour
    color_space: str = "rgb"


@dataclass
class Segmentation:
    """A label map and what the GUI needs to draw it without touching pixels again.

    ``labels`` are numbered 0..n_regions-1 in raster order of each region's first pixel (deterministic).
    ``boxes`` are float32 [x1, y1, x2, y2] (x2/y2 exclusive) in label-map pixels; ``scale`` maps the original
    image onto the label map (label pixel = original pixel × scale; below 1 when the image was reduced).
    """

    labels: np.ndarray  # H×W int32
    n_regions: int
    params: SegmentationParams
    sizes: np.ndarray  # [n] int64 pixel counts
    boxes: np.ndarray  # [n, 4] float32
    mean_colors: np.ndarray  # [n, 3] uint8 RGB mean of each region in the input image
    scale: float = 1.0
    seconds: float = 0.0

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.labels.shape[0]), int(self.labels.shape[1])

    def boundaries(self) -> np.ndarray:
        """H×W bool: True on a pixel whose right or lower neighbour belongs to another region."""
        return boundary_mask(self.labels)

    def random_colors(self, seed: int = 0) -> np.ndarray:
        """[n, 3] uint8 colours for a "regions filled with random colours" view, stable for a seed."""
        return np.random.default_rng(seed).integers(40, 256, (self.n_regions, 3), dtype=np.uint8)

    def boxes_in_original(self) -> np.ndarray:
        """Region boxes in the original image's pixels."""
        return (self.boxes / np.float32(self.scale)).astype(np.float32) if self.scale != 1.0 else self.boxes


def boundary_mask(labels: np.ndarray) -> np.ndarray:
    """Pixels on the edge between two regions (one pixel thick, on the upper/left side)."""
    m = np.zeros(labels.shape, bool)
    m[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    m[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return m


# ----------------------------------------------------------------------------------------------- kernels


@njit(cache=True, nogil=True, inline="always")
def _find(parent: np.ndarray, x: int) -> int:
    while parent[x] != x:  # path halving: as good as full compression, one pass
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@njit(cache=True, nogil=True, inline="always")
def _edge_weight(img: np.ndarray, y: int, x: int, d: int) -> float:
    """Colour distance from (y, x) to its neighbour in direction d (right, down, down-right, up-right);
    -1 when that neighbour is outside the image."""
    h, w, c = img.shape
    if d == 0:
        yy, xx = y, x + 1
    elif d == 1:
        yy, xx = y + 1, x
    elif d == 2:
        yy, xx = y + 1, x + 1
    else:
        yy, xx = y - 1, x + 1
    if yy < 0 or yy >= h or xx >= w:
        return -1.0
    s = 0.0
    for ch in range(c):
        diff = img[y, x, ch] - img[yy, xx, ch]
        s += diff * diff
    return np.float32(np.sqrt(s))


@njit(cache=True, nogil=True)
def _sorted_edges(img: np.ndarray, steps: float = _WEIGHT_STEPS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """img: H×W×C float32 (already smoothed) → the 8-neighbour edges (a, b, weight) in ascending weight.

    Apart from the merging because the edges do not depend on k: Selective Search segments one smoothed
    image at several k, and sorting once per colour space instead of once per k saves about half of each
    further segmentation's time.
    """
    h, w, c = img.shape
    # Counting sort on the quantised weight (O(edges), stable: ties keep raster order; ~15x faster than
    # argsort here). Weights are computed twice, once to count and once to place, rather than stored
    # unsorted: that halves the memory (9 bytes per edge) on large images.
    wmax = np.float32(np.sqrt(c) * 256.0)
    nb = int(wmax * steps) + 2
    counts = np.zeros(nb + 1, np.int64)
    m = 0
    for y in range(h):
        for x in range(w):
            for d in range(4):
                wgt = _edge_weight(img, y, x, d)
                if wgt >= 0:
                    counts[min(int(wgt * steps), nb - 1) + 1] += 1
                    m += 1
    for b in range(1, nb + 1):
        counts[b] += counts[b - 1]
    sa = np.empty(m, np.int32)
    sb = np.empty(m, np.int32)
    sw = np.empty(m, np.float32)
    for y in range(h):
        for x in range(w):
            for d in range(4):
                wgt = _edge_weight(img, y, x, d)
                if wgt >= 0:
                    q = min(int(wgt * steps), nb - 1)
                    p = counts[q]
                    counts[q] += 1
                    sa[p] = y * w + x
                    if d == 0:
                        sb[p] = y * w + x + 1
                    elif d == 1:
                        sb[p] = (y + 1) * w + x
                    elif d == 2:
                        sb[p] = (y + 1) * w + x + 1
                    else:
                        sb[p] = (y - 1) * w + x + 1
                    sw[p] = wgt
    return sa, sb, sw


@njit(cache=True, nogil=True)
def _fh_merge(sa: np.ndarray, sb: np.ndarray, sw: np.ndarray, h: int, w: int, k: float, min_size: int
              ) -> tuple[np.ndarray, int]:
    """The graph segmentation's merging over edges sorted by ``_sorted_edges``: (labels H×W int32, n)."""
    n = h * w
    m = sa.shape[0]
    parent = np.arange(n).astype(np.int32)
    size = np.ones(n, np.int32)
    thresh = np.full(n, k, np.float32)  # internal difference (0) + k / |C|
    for t in range(m):
        a = _find(parent, sa[t])
        b = _find(parent, sb[t])
        if a == b:
            continue
        wgt = sw[t]
        if wgt <= thresh[a] and wgt <= thresh[b]:
            if size[a] < size[b]:  # union by size; the partition does not depend on which root wins
                a, b = b, a
            parent[b] = a
            size[a] += size[b]
            thresh[a] = wgt + k / size[a]
    if min_size > 1:
        for t in range(m):
            a = _find(parent, sa[t])
            b = _find(parent, sb[t])
            if a != b and (size[a] < min_size or size[b] < min_size):
                if size[a] < size[b]:
                    a, b = b, a
                parent[b] = a
                size[a] += size[b]
    label_of = np.full(n, -1, np.int32)
    labels = np.empty((h, w), np.int32)
    count = 0
    for y in range(h):
        for x in range(w):
            r = _find(parent, y * w + x)
            if label_of[r] < 0:
                label_of[r] = count
                count += 1
            labels[y, x] = label_of[r]
    return labels, count


@njit(cache=True, nogil=True)
def _region_stats(labels: np.ndarray, n: int, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, w = labels.shape
    sizes = np.zeros(n, np.int64)
    boxes = np.empty((n, 4), np.int32)
    for r in range(n):
        boxes[r, 0] = w
        boxes[r, 1] = h
        boxes[r, 2] = -1
        boxes[r, 3] = -1
    sums = np.zeros((n, 3), np.float64)
    for y in range(h):
        for x in range(w):
            r = labels[y, x]
            sizes[r] += 1
            if x < boxes[r, 0]:
                boxes[r, 0] = x
            if x > boxes[r, 2]:
                boxes[r, 2] = x
            if y < boxes[r, 1]:
                boxes[r, 1] = y
            if y > boxes[r, 3]:
                boxes[r, 3] = y
            for ch in range(3):
                sums[r, ch] += rgb[y, x, ch]
    means = np.empty((n, 3), np.uint8)
    for r in range(n):
        for ch in range(3):
            means[r, ch] = np.uint8(min(255.0, sums[r, ch] / max(sizes[r], 1) + 0.5))
    return sizes, boxes, means


# ------------------------------------------------------------------------------------------- public API


def smooth(channels: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian pre-smoothing as scikit-image does it (float, reflect border, kernel radius 4·sigma)."""
    img = np.ascontiguousarray(channels, dtype=np.float32)
    if img.ndim == 2:
        img = img[:, :, None]
    if sigma <= 0:
        return img
    radius = int(4.0 * sigma + 0.5)
    ksize = 2 * radius + 1
    out = np.empty_like(img)
    for start in range(0, img.shape[2], 4):  # cv2 filters at most 4 channels at a time
        part = np.ascontiguousarray(img[:, :, start:start + 4])
        blurred = cv2.GaussianBlur(part, (ksize, ksize), sigmaX=sigma, sigmaY=sigma,
                                   borderType=cv2.BORDER_REFLECT)
        out[:, :, start:start + 4] = blurred.reshape(part.shape)
    return out


@dataclass(frozen=True)
class SortedEdges:
    """The pixel graph of one smoothed image, edges sorted by weight: what every k's segmentation starts from.

    Make it once with ``sorted_edges`` and pass it to ``felzenszwalb(edges=...)`` for each k of a colour space
    (Selective Search's modes segment the same image at 2–4 k)."""

    a: np.ndarray  # [m] int32 flat pixel index
    b: np.ndarray  # [m] int32
    weight: np.ndarray  # [m] float32, ascending
    shape: tuple[int, int]  # (height, width)
    sigma: float


def sorted_edges(channels: np.ndarray, sigma: float = 0.8) -> SortedEdges:
    """Smooth an H×W×C image (0..255 per channel) and sort its 8-neighbour edges by colour distance."""
    if channels.ndim == 2:
        channels = channels[:, :, None]
    if channels.shape[0] == 0 or channels.shape[1] == 0:
        raise ValueError("cannot segment an empty image")
    sa, sb, sw = _sorted_edges(smooth(channels, sigma))
    return SortedEdges(sa, sb, sw, (int(channels.shape[0]), int(channels.shape[1])), float(sigma))


def segment_edges(edges: SortedEdges, k: float, min_size: int = 100) -> tuple[np.ndarray, int]:
    """Label map from sorted edges at one k; (labels, n). The same as ``segment_channels`` on their image."""
    h, w = edges.shape
    return _fh_merge(edges.a, edges.b, edges.weight, h, w, float(k), int(min_size))


def segment_channels(channels: np.ndarray, k: float, sigma: float = 0.8, min_size: int = 100
                     ) -> tuple[np.ndarray, int]:
    """Label map of an H×W×C image in whatever space it is given (0..255 per channel); (labels, n)."""
    return segment_edges(sorted_edges(channels, sigma), k, min_size)


def felzenszwalb(image: np.ndarray, k: float = 100.0, sigma: float = 0.8, min_size: int | None = None,
                 color_space: str = "rgb", channels: np.ndarray | None = None, scale: float = 1.0,
                 edges: SortedEdges | None = None) -> Segmentation:
    """Segment an RGB (or grey) image in ``color_space``; ``min_size`` defaults to k as in Selective Search.

    ``channels`` lets a caller that already converted the image to ``color_space`` skip the conversion;
    ``edges`` (``sorted_edges`` of those channels at this ``sigma``) skips the smoothing and sorting too.
    """
    t0 = time.perf_counter()
    rgb = as_rgb8(image)
    if min_size is None:
        min_size = max(1, int(round(k)))
    if edges is None:
        if channels is None:
            channels = convert(rgb, color_space)
        edges = sorted_edges(channels, sigma)
    elif edges.shape != rgb.shape[:2] or edges.sigma != float(sigma):
        raise ValueError(f"edges of a {edges.shape} image at sigma {edges.sigma} given for a {rgb.shape[:2]} "
                         f"image at sigma {sigma}")
    labels, n = segment_edges(edges, k, min_size)
    sizes, boxes, means = _region_stats(labels, n, rgb)
    fboxes = boxes.astype(np.float32)
    fboxes[:, 2:] += 1.0  # exclusive corners
    params = SegmentationParams(float(k), float(sigma), int(min_size), color_space)
    return Segmentation(labels, int(n), params, sizes, fboxes, means, float(scale), time.perf_counter() - t0)


def reference_felzenszwalb(image: np.ndarray, k: float = 100.0, sigma: float = 0.8, min_size: int | None = None,
                           color_space: str = "rgb") -> np.ndarray:
    """scikit-image's implementation on the same colour-space channels: the yardstick for tests and bench."""
    from skimage.segmentation import felzenszwalb as sk_felzenszwalb

    if min_size is None:
        min_size = max(1, int(round(k)))
    channels = convert(as_rgb8(image), color_space)
    if channels.shape[2] == 1:
        return sk_felzenszwalb(channels[:, :, 0], scale=k, sigma=sigma, min_size=min_size, channel_axis=None)
    return sk_felzenszwalb(channels, scale=k, sigma=sigma, min_size=min_size, channel_axis=-1)


def warm_up() -> float:
    """Compile (or load from cache) the numba kernels; returns the seconds it took, to report separately."""
    t0 = time.perf_counter()
    felzenszwalb(np.zeros((4, 5, 3), np.uint8), k=10)
    return time.perf_counter() - t0


__all__ = ["COLOR_SPACES", "Segmentation", "SegmentationParams", "SortedEdges", "boundary_mask", "felzenszwalb",
           "reference_felzenszwalb", "segment_channels", "segment_edges", "smooth", "sorted_edges", "warm_up"]
