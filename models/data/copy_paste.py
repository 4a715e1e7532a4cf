"""Copy-paste augmentation (Ghiasi et al. 2021, "Simple Copy-Paste is a Strong Data Augmentation Method for
Instance Segmentation"): objects cut out of another training photo along their outlines and pasted onto this
one.

Why: a detector fine-tuned on a few dozen photos sees each person once, in one scene, and what it cannot learn
from so few is what a person is *apart from* the scenes it stood in. Pasting the run's own objects into its
other photos (the person-free ones included) makes new object/background pairs from the same labels; Ghiasi et
al. report it worth most where data is scarce (up to 2× data-efficiency on 10% of COCO) and additive with scale
jitter. What it needs: outlines, not boxes (a pasted rectangle would carry its background with it and teach the
detector a sharp-edged patch). COCO's polygon ``segmentation`` and YOLO's segmentation lines give them;
objects without one are never pasted.

The recipe, as the paper's simple form: one other photo of the run (never the item itself; photos with no
outlined object are never drawn), a random subset of its outlined objects (each with probability 1/2, at least
one), the photo at the size it has as a training item of its own times a factor of the standard scale jitter
(0.8-1.25), mirrored at random, placed at a random spot (pasted objects may be cut by the border), and pasted
without blending (the paper finds Gaussian blending unnecessary). The labels follow what shows:

* an object of the photo that the pasted pixels hide by more than half of its box, or a pasted object hidden by
  more than half by the objects pasted after it, becomes an ignore region (``difficult``, as crowd boxes are):
  the detector should neither find it nor be punished for finding it;
* a pasted object whose centre falls off the canvas is an ignore region where part of it shows (the crop rule,
  :func:`~models.data.augmentation.cut_objects`);
* a pasted object's box is the tight box of what shows of it.

Pure NumPy/scikit-image functions of a generator the dataset seeds from (seed, epoch, image), so a run repeats
exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from skimage.draw import polygon as draw_polygon

#: The pasted photo's size as a factor of its size as a training item of its own: the paper's standard scale
#: jitter, so the pasted objects keep the sizes test photos show them at (zoom-out and mosaics make small ones).
SCALE_RANGE = (0.8, 1.25)
#: Each outlined object of the other photo is pasted with this probability (at least one is).
OBJECT_PROB = 0.5
#: An object hidden by more than this share (of its box for the photo's own objects, of its pixels for pasted
#: ones) becomes an ignore region.
HIDDEN_LIMIT = 0.5


@dataclass(frozen=True)
class Paste:
    """One item's copy-paste: ``partner`` (a position in the dataset's order) and which of its outlined objects
    (``chosen``, positions among them), the partner's size factor, mirrored or not, and where it goes: shares in
    [0, 1] of the range of offsets that keep the canvas and the placed photo overlapping as much as they can."""

    partner: int
    chosen: tuple[int, ...]
    scale: float
    flip: bool
    offset_x: float
    offset_y: float


def draw_paste(rng: np.random.Generator, outlined: Sequence[int], flip_prob: float = 0.5,
               item: int | None = None) -> Paste | None:
    """A copy-paste for dataset item ``item``: ``outlined[i]`` is how many outlined objects item ``i`` has. The
    partner is uniform over the other items that have some; None when none has (nothing can be pasted)."""
    candidates = [i for i, n in enumerate(outlined) if n > 0 and i != item]
    if not candidates:
        return None
    partner = candidates[int(rng.integers(len(candidates)))]
    n = int(outlined[partner])
    picked = rng.random(n) < OBJECT_PROB
    if not picked.any():
        picked[int(rng.integers(n))] = True
    scale = float(rng.uniform(*SCALE_RANGE))
    flip = bool(rng.random() < flip_prob)
    ox, oy = rng.random(2)
    return Paste(partner, tuple(int(v) for v in np.nonzero(picked)[0]), scale, flip, float(ox), float(oy))


def placement(canvas_w: int, canvas_h: int, photo_w: int, photo_h: int, paste: Paste) -> tuple[int, int]:
    """Top-left corner of a ``photo_w`` × ``photo_h`` photo on the canvas: uniform (by ``paste``'s shares) over
    the positions inside the canvas when it fits, over those that fill the canvas's side when it does not."""
    lo_x, hi_x = sorted((0, canvas_w - photo_w))
    lo_y, hi_y = sorted((0, canvas_h - photo_h))
    return int(round(lo_x + paste.offset_x * (hi_x - lo_x))), int(round(lo_y + paste.offset_y * (hi_y - lo_y)))


@dataclass
class Pasted:
    """The canvas after a paste, its objects (the item's own first, then the pasted ones), and ``shown``: the
    canvas pixels the pasted objects cover, [H, W] bool."""

    pixels: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray
    shown: np.ndarray
    pasted: int


def paste_objects(pixels: np.ndarray, boxes: np.ndarray, labels: np.ndarray, difficult: np.ndarray,
                  photo: np.ndarray, outlines: Sequence[Sequence[np.ndarray]], photo_labels: Sequence[int],
                  left: int, top: int) -> Pasted:
    """Paste the objects of ``photo`` (RGB uint8, already at its pasted size and mirroring) outlined by
    ``outlines`` (per object, its polygons as [P, 2] float arrays in ``photo``'s pixels, where pixel ``k`` spans
    ``[k, k + 1)`` as boxes do; an object is the union of its polygons), with ``photo_labels``, onto ``pixels``
    with the photo's top-left corner at (``left``, ``top``); later objects lie over earlier ones. ``boxes`` etc.
    are the canvas's own objects; the labels follow what shows (the module's docstring)."""
    height, width = pixels.shape[:2]
    owner = np.zeros((height, width), np.int32)  # 0: the canvas; k: pasted object k (1-based)
    # where pasted pixels can be: the canvas and the placed photo overlapping (a polygon has none past the photo)
    x_lo, y_lo = max(0, left), max(0, top)
    x_hi, y_hi = min(width, left + photo.shape[1]), min(height, top + photo.shape[0])
    full, windows = [], []
    offset = np.array([left, top], np.float32)
    for k, polygons in enumerate(outlines, start=1):
        corners = [np.asarray(p, np.float32).reshape(-1, 2) + offset for p in polygons]
        every = np.concatenate(corners).reshape(-1, 2)
        lo, hi = every.min(axis=0), every.max(axis=0)
        # each object drawn in its own window (its bounds, a pixel's margin), not over the whole canvas
        x0, y0 = max(x_lo, int(np.floor(lo[0])) - 1), max(y_lo, int(np.floor(lo[1])) - 1)
        x1, y1 = min(x_hi, int(np.ceil(hi[0])) + 1), min(y_hi, int(np.ceil(hi[1])) + 1)
        mask = np.zeros((max(0, y1 - y0), max(0, x1 - x0)), bool)
        if mask.size:
            for poly in corners:  # each on its own: the object is their union (no even-odd holes where they overlap)
                # the pixels whose centre (k + 0.5) lies inside, so a 10-px square covers 10 px, as its box says
                rows, cols = draw_polygon(poly[:, 1] - 0.5 - y0, poly[:, 0] - 0.5 - x0, shape=mask.shape)
                mask[rows, cols] = True
            owner[y0:y1, x0:x1][mask] = k
        windows.append((x0, y0, x1, y1))
        full.append((int(mask.sum()), lo, hi))
    shown = owner > 0
    out = pixels.copy()
    if shown.any():
        ys, xs = np.nonzero(shown)
        out[ys, xs] = photo[ys - top, xs - left]
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    difficult = np.asarray(difficult, bool).copy()
    if len(boxes):
        # how much of each own box the pasted pixels cover, by a summed-area table of ``shown``
        table = np.zeros((height + 1, width + 1), np.int64)
        table[1:, 1:] = shown.astype(np.int64).cumsum(0).cumsum(1)
        x0 = np.clip(np.floor(boxes[:, 0]), 0, width).astype(int)
        y0 = np.clip(np.floor(boxes[:, 1]), 0, height).astype(int)
        x1 = np.clip(np.ceil(boxes[:, 2]), 0, width).astype(int)
        y1 = np.clip(np.ceil(boxes[:, 3]), 0, height).astype(int)
        covered = table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]
        area = np.maximum((x1 - x0) * (y1 - y0), 1)
        difficult |= covered > HIDDEN_LIMIT * area
    new_boxes, new_labels, new_difficult = [], [], []
    for k, ((drawn, lo, hi), (x0, y0, x1, y1), label) in enumerate(zip(full, windows, photo_labels, strict=True),
                                                                   start=1):
        ys, xs = np.nonzero(owner[y0:y1, x0:x1] == k)  # an empty window gives none
        if len(xs) == 0:
            continue
        xs, ys = xs + x0, ys + y0
        centre = (lo + hi) / 2
        centre_in = 0 <= centre[0] < width and 0 <= centre[1] < height
        new_boxes.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
        new_labels.append(int(label))
        new_difficult.append(not centre_in or len(xs) < (1 - HIDDEN_LIMIT) * drawn)
    return Pasted(out,
                  np.concatenate([boxes, np.asarray(new_boxes, np.float32).reshape(-1, 4)]),
                  np.concatenate([np.asarray(labels, np.int64), np.asarray(new_labels, np.int64)]),
                  np.concatenate([difficult, np.asarray(new_difficult, bool)]),
                  shown, len(new_boxes))
