"""Mosaic augmentation (YOLOv4's, Bochkovskiy et al. 2020): four training images, each at half the training
size, around a random centre of one canvas.

Why: zoom-out (SSD's expand) was the one augmentation that lifted the few-photo preset, and where it helped
was in showing each object at another size against more background. A mosaic does the same with real
photographs instead of a flat fill: every step sees four images' objects at half their size, next to other
images' backgrounds (the person-free photos of a dataset become hard negatives beside the persons), for the
cost of one image of the training size. What it costs: a mosaic is unlike any test photo (seams, four
scenes), so the training loop shows it on a share of the items only (``mosaic_prob``) and the others as
they are.

The layout, as YOLOv4's: a centre drawn uniformly in the middle half of the canvas on each axis; the item's
own image is the top-left tile, three images drawn from the run's others (with repeats) the top-right,
bottom-left and bottom-right ones; each tile touches the centre with one corner and is cut at the canvas edge
and at the centre lines; what no tile covers is the mean colour. An object is kept when its centre lies in the
visible part of its tile (SSD's crop rule, the one a random crop applies:
:func:`~models.data.augmentation.cut_objects`), its box clipped to that part. An object cut so that its centre
is out of view, but part of it shows, becomes an ignore region (``difficult``, as crowd boxes are): the tiles
are cut at the centre lines far more often than a random crop cuts an object, and the visible half of a person
must not be trained as background. Crowd and difficult regions stay regions wherever a part shows. External
proposals (R-CNN's and Fast R-CNN's Selective Search boxes, ranked) are merged rank by rank across the tiles,
so a cap on their number takes the best of every tile, not the first tile's alone.

Pure NumPy functions of a generator the dataset seeds from (seed, epoch, image), so a run repeats exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.data.augmentation import CropWindow, crop_boxes, cut_objects

#: Where the centre may fall, as a share of each canvas side (YOLOv4/v5: the middle half).
CENTRE_RANGE = (0.25, 0.75)
#: The tiles' order: which corner of each tile touches the centre is the opposite of its quadrant.
QUADRANTS = ("top-left", "top-right", "bottom-left", "bottom-right")


@dataclass(frozen=True)
class Mosaic:
    """One item's mosaic: the centre as shares of the canvas's width and height, and the dataset items
    (positions in the dataset's order) shown as the top-right, bottom-left and bottom-right tiles."""

    centre_x: float
    centre_y: float
    partners: tuple[int, int, int]


def draw_mosaic(rng: np.random.Generator, items: int) -> Mosaic:
    """A centre uniform in :data:`CENTRE_RANGE` of each side and three partners uniform over ``items``
    (the item itself may be among them, as in YOLOv4's sampling)."""
    if items < 1:
        raise ValueError("a mosaic needs at least one image")
    cx, cy = rng.uniform(*CENTRE_RANGE, size=2)
    partners = tuple(int(v) for v in rng.integers(0, items, size=3))
    return Mosaic(float(cx), float(cy), partners)  # type: ignore[arg-type]


@dataclass
class Tile:
    """One image ready to be placed: RGB uint8 pixels at the tile's size, its boxes in those pixels, their
    labels and crowd/difficult flags, and external proposals (None when the run has none)."""

    pixels: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray
    proposals: np.ndarray | None = None


@dataclass
class Composite:
    """The mosaic's canvas and what it holds, in the canvas's pixels; ``visible[q]``: the canvas rectangle
    that tile ``q`` (in :data:`QUADRANTS` order) shows (empty when it shows nothing)."""

    pixels: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray
    proposals: np.ndarray | None
    visible: list[CropWindow]


def tile_origins(width: int, height: int, mosaic: Mosaic, sizes: list[tuple[int, int]]
                 ) -> tuple[list[tuple[int, int]], list[CropWindow]]:
    """Top-left corner of each tile (``sizes``: (width, height) in :data:`QUADRANTS` order) on a canvas of
    ``width`` × ``height``, and the canvas rectangle each tile shows: its own rectangle cut to its quadrant."""
    cx, cy = int(round(mosaic.centre_x * width)), int(round(mosaic.centre_y * height))
    quadrants = [(0, 0, cx, cy), (cx, 0, width, cy), (0, cy, cx, height), (cx, cy, width, height)]
    origins, visible = [], []
    for q, (tw, th) in enumerate(sizes):
        x0 = cx - tw if q in (0, 2) else cx
        y0 = cy - th if q in (0, 1) else cy
        qx0, qy0, qx1, qy1 = quadrants[q]
        vx0, vy0 = max(x0, qx0), max(y0, qy0)
        vx1, vy1 = max(vx0, min(x0 + tw, qx1)), max(vy0, min(y0 + th, qy1))
        origins.append((x0, y0))
        visible.append(CropWindow(vx0, vy0, vx1, vy1))
    return origins, visible


def compose(width: int, height: int, mosaic: Mosaic, tiles: list[Tile],
            fill: tuple[int, int, int]) -> Composite:
    """The four ``tiles`` (in :data:`QUADRANTS` order) on a ``width`` × ``height`` canvas of ``fill``, with
    their boxes moved onto it, kept by the crop rule or made ignore regions (see the module's docstring)."""
    if len(tiles) != 4:
        raise ValueError(f"a mosaic has four tiles, not {len(tiles)}")
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = np.asarray(fill, np.uint8)
    origins, visible = tile_origins(width, height, mosaic, [(t.pixels.shape[1], t.pixels.shape[0]) for t in tiles])
    with_proposals = all(t.proposals is not None for t in tiles)
    boxes, labels, difficult, proposals, ranks = [], [], [], [], []
    for tile, (x0, y0), seen in zip(tiles, origins, visible, strict=True):
        if seen.width <= 0 or seen.height <= 0:
            continue
        sx0, sy0, sx1, sy1 = (int(v) for v in (seen.x0, seen.y0, seen.x1, seen.y1))
        canvas[sy0:sy1, sx0:sx1] = tile.pixels[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0]
        # The part shown, in the tile's own pixels: the boxes are cut to it, then moved onto the canvas.
        window = CropWindow(sx0 - x0, sy0 - y0, sx1 - x0, sy1 - y0)
        moved = np.array([sx0, sy0, sx0, sy0], np.float32)
        cut_boxes, cut_labels, cut_difficult = cut_objects(tile.boxes, tile.labels, tile.difficult, window)
        boxes.append(cut_boxes + moved)
        labels.append(cut_labels)
        difficult.append(cut_difficult)
        if with_proposals:
            kept_proposals, kept = crop_boxes(tile.proposals, window, keep_centres=False)
            proposals.append(kept_proposals + moved)
            ranks.append(np.nonzero(kept)[0])
    merged = None
    if with_proposals:  # rank by rank: each tile's best first, the tiles in quadrant order within a rank
        merged = np.zeros((0, 4), np.float32)
        if proposals:
            merged = np.concatenate(proposals).reshape(-1, 4).astype(np.float32)
            merged = merged[np.argsort(np.concatenate(ranks), kind="stable")]
    return Composite(canvas, np.concatenate(boxes).reshape(-1, 4).astype(np.float32) if boxes
                     else np.zeros((0, 4), np.float32),
                     np.concatenate(labels).astype(np.int64) if labels else np.zeros(0, np.int64),
                     np.concatenate(difficult).astype(bool) if difficult else np.zeros(0, bool),
                     merged, visible)
