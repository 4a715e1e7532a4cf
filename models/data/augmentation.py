"""Photometric, cropping and zoom-out augmentation for detection training, beyond flips and scale jitter
(the four-image mosaic: :mod:`models.data.mosaic`).

Why these: a user who fine-tunes on a few dozen photographs shows the detector each object once, at one
place, in one light. The two augmentations that detectors trained on little data rely on are SSD's
(Liu et al. 2016, whose ablation credits them with most of its VOC gain):

* **random crops** ("zoom in"): a window of the image, each side a random share of the image's, then
  resized to the training size like a whole image — the objects it holds come out larger, at new
  positions, partly cut by the border; an object is kept when its centre lies in the window (SSD's rule),
  its box clipped to the window, and what shows of an object whose centre is cut away is an ignore region
  (:func:`cut_objects`): a visible half person is not "no person".
* **zoom out** (SSD's "expand"): the image placed at a random spot of a canvas up to ``zoom_out_max`` times
  its size on each side, the rest filled with the mean colour, and the canvas resized to the training size
  like a whole image — every object comes out smaller, so a detector that saw each person at one size also
  learns the small ones (what a few dozen photos rarely show, and what detectors miss most).
* **colour jitter**: brightness, contrast and saturation each scaled by a random factor in ``1 ± strength``
  (the factors of torchvision's ``ColorJitter``, without hue, in a fixed order and clipped once at the end),
  so a model does not learn one photo's exposure.

All are pure functions of a NumPy generator the dataset seeds from (seed, epoch, image), so a run repeats
exactly; nothing here knows torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.detection.config import IMAGENET_MEAN

#: Draws of a window before giving up on one that keeps an object (then the whole image is used).
CROP_TRIES = 20
#: Rec. 601 luma weights: the grey that contrast and saturation blend towards.
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


#: The largest zoom-out (SSD's): the canvas at most this many times the image's side.
ZOOM_OUT_LIMIT = 4.0


def mean_colour(mean: Sequence[float]) -> tuple[int, int, int]:
    """A normalisation mean (RGB in 0..1, ``input.image_mean``) as the 8-bit colour it turns into zeros."""
    r, g, b = (int(round(255 * float(v))) for v in mean)
    return r, g, b


#: The zoom-out canvas's default fill: the ImageNet mean colour (SSD fills with the mean pixel), which the
#: backbones' normalisation turns into zeros, so the canvas adds no signal of its own. The training loop passes
#: its model's own mean (``input.image_mean``) where that differs.
ZOOM_OUT_FILL = mean_colour(IMAGENET_MEAN)


def check_settings(crop_prob: float = 0.0, crop_min_side: float = 0.5, colour_jitter: float = 0.0,
                   zoom_out_prob: float = 0.0, zoom_out_max: float = 2.0, mosaic_prob: float = 0.0,
                   copy_paste_prob: float = 0.0) -> None:
    """ValueError naming the first setting out of its range or not a number: the one check the training
    config, the dataset and the draws below share (NaN fails every range)."""
    for name, value in (("crop_prob", crop_prob), ("crop_min_side", crop_min_side), ("colour_jitter", colour_jitter),
                        ("zoom_out_prob", zoom_out_prob), ("zoom_out_max", zoom_out_max),
                        ("mosaic_prob", mosaic_prob), ("copy_paste_prob", copy_paste_prob)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueError(f"{name} is a number, not {value!r}")
    if not 0.0 <= float(crop_prob) <= 1.0:
        raise ValueError(f"crop_prob is a probability in [0, 1], not {crop_prob}")
    if not 0.0 < float(crop_min_side) <= 1.0:
        raise ValueError(f"crop_min_side is a share in (0, 1] of each side, not {crop_min_side}")
    if not 0.0 <= float(colour_jitter) < 1.0:
        raise ValueError(f"colour_jitter is a strength in [0, 1), not {colour_jitter}")
    if not 0.0 <= float(zoom_out_prob) <= 1.0:
        raise ValueError(f"zoom_out_prob is a probability in [0, 1], not {zoom_out_prob}")
    if not 1.0 <= float(zoom_out_max) <= ZOOM_OUT_LIMIT:
        raise ValueError(f"zoom_out_max is a ratio of sides in [1, {ZOOM_OUT_LIMIT:g}], not {zoom_out_max}")
    if not 0.0 <= float(mosaic_prob) <= 1.0:
        raise ValueError(f"mosaic_prob is a probability in [0, 1], not {mosaic_prob}")
    if not 0.0 <= float(copy_paste_prob) <= 1.0:
        raise ValueError(f"copy_paste_prob is a probability in [0, 1], not {copy_paste_prob}")


@dataclass(frozen=True)
class CropWindow:
    """A window ``[x0, x1) × [y0, y1)`` in the pixels of the image it was drawn for: whole pixels as drawn;
    on a reduced decode's grid as :func:`covered_window` gives it."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0


def draw_crop(rng: np.random.Generator, width: int, height: int, boxes: np.ndarray,
              min_side: float) -> CropWindow | None:
    """A random window whose sides are each a uniform share in ``[min_side, 1]`` of the image's, placed
    uniformly, that keeps at least one of ``boxes`` as :func:`crop_boxes` keeps them (when there are any: a
    crop must not turn a labelled photo into a negative). None when :data:`CROP_TRIES` draws keep none
    (use the whole image).

    Each side is drawn on its own, so the window's aspect differs from the image's; the dataset then
    resizes the window keeping *its* aspect, so objects are never stretched."""
    check_settings(crop_min_side=min_side)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    for _ in range(CROP_TRIES):
        cw = max(1, int(round(width * rng.uniform(min_side, 1.0))))
        ch = max(1, int(round(height * rng.uniform(min_side, 1.0))))
        x0 = int(rng.integers(0, width - cw + 1))
        y0 = int(rng.integers(0, height - ch + 1))
        window = CropWindow(x0, y0, x0 + cw, y0 + ch)
        if len(boxes) == 0 or crop_boxes(boxes, window)[1].any():
            return window
    return None


def _decoded_edges(window: CropWindow, scale: float) -> tuple[int, int, int, int]:
    x0, y0 = int(round(window.x0 * scale)), int(round(window.y0 * scale))
    x1, y1 = max(int(round(window.x1 * scale)), x0 + 1), max(int(round(window.y1 * scale)), y0 + 1)
    return x0, y0, x1, y1


def crop_pixels(pixels: np.ndarray, window: CropWindow, scale: float = 1.0) -> np.ndarray:
    """The pixels of ``window`` (full-resolution coordinates) from an image decoded at ``scale`` of its full
    resolution (``DecodedImage.scale``: below 1 for a huge photo decoded reduced); at least one pixel. They
    cover :func:`covered_window`, which differs from ``window`` by the rounding to the decoded grid."""
    x0, y0, x1, y1 = _decoded_edges(window, scale)
    return pixels[y0:y1, x0:x1]


def covered_window(window: CropWindow, scale: float = 1.0) -> CropWindow:
    """The full-resolution rectangle that :func:`crop_pixels` returns the pixels of: ``window`` itself at
    full resolution; at a reduced decode its edges on the decoded grid (up to half a decoded pixel off),
    which is what the boxes must be moved and scaled by so that they land on those pixels."""
    if scale == 1.0:
        return window
    x0, y0, x1, y1 = _decoded_edges(window, scale)
    return CropWindow(x0 / scale, y0 / scale, x1 / scale, y1 / scale)


def centres_inside(boxes: np.ndarray, window: CropWindow) -> np.ndarray:
    """Which boxes have their centre inside ``window`` (SSD's rule for what a crop keeps)."""
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    return (cx >= window.x0) & (cx < window.x1) & (cy >= window.y0) & (cy < window.y1)


def crop_boxes(boxes: np.ndarray, window: CropWindow, keep_centres: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``boxes`` in the window's pixels, clipped to it, and the mask of the boxes kept: those whose centre
    lies inside (``keep_centres``; ``False``, as for external proposals: every box that still covers a pixel).
    Annotated objects go through :func:`cut_objects`, which also keeps what shows of the others as regions."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    shifted = boxes - np.array([window.x0, window.y0, window.x0, window.y0], np.float32)
    clipped = np.stack([np.clip(shifted[:, 0], 0, window.width), np.clip(shifted[:, 1], 0, window.height),
                        np.clip(shifted[:, 2], 0, window.width), np.clip(shifted[:, 3], 0, window.height)], 1)
    keep = (clipped[:, 2] - clipped[:, 0] >= 1.0) & (clipped[:, 3] - clipped[:, 1] >= 1.0)
    if keep_centres:
        keep &= centres_inside(boxes, window)
    return clipped[keep], keep


def cut_objects(boxes: np.ndarray, labels: np.ndarray, difficult: np.ndarray,
                window: CropWindow) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The annotated objects of an image cut to ``window`` (a random crop, a mosaic tile's visible part): boxes
    in the window's pixels, their labels and difficult (ignore-region) flags.

    SSD's rule keeps an object whose centre shows (clipped to the window); crowd and difficult boxes stay
    regions wherever a part of them shows. What shows of an object whose centre is cut away becomes an ignore
    region (difficult), not background: a visible half person must not be trained as "no person". Kept
    objects come first, in their order, then those regions."""
    flags = np.asarray(difficult, bool).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    shown, showing = crop_boxes(boxes, window, keep_centres=False)
    kept = showing & (flags | centres_inside(np.asarray(boxes, np.float32).reshape(-1, 4), window))
    hidden_centre = showing & ~kept
    return (np.concatenate([shown[kept[showing]], shown[hidden_centre[showing]]]).reshape(-1, 4),
            np.concatenate([labels[kept], labels[hidden_centre]]),
            np.concatenate([flags[kept], np.ones(int(hidden_centre.sum()), bool)]))


@dataclass(frozen=True)
class ZoomOut:
    """A canvas ``width`` × ``height`` with the image's top-left corner at (``left``, ``top``), all in the
    pixels of the image it was drawn for (its crop window's, when it was cropped); ``ratio``: the canvas's
    side over the image's, what every object shrinks by."""

    width: int
    height: int
    left: int
    top: int
    ratio: float


def draw_zoom_out(rng: np.random.Generator, width: int, height: int, max_ratio: float) -> ZoomOut:
    """A canvas ``r`` times the image on each side, ``r`` uniform in ``[1, max_ratio]``, the image placed
    uniformly in it (SSD's expand)."""
    check_settings(zoom_out_max=max_ratio)
    ratio = float(rng.uniform(1.0, max_ratio))
    canvas_w, canvas_h = max(width, int(round(width * ratio))), max(height, int(round(height * ratio)))
    left = int(rng.integers(0, canvas_w - width + 1))
    top = int(rng.integers(0, canvas_h - height + 1))
    return ZoomOut(canvas_w, canvas_h, left, top, ratio)


def paste_on_canvas(pixels: np.ndarray, canvas_width: int, canvas_height: int, left: int, top: int,
                    fill: tuple[int, int, int] = ZOOM_OUT_FILL) -> np.ndarray:
    """``pixels`` (RGB uint8) at (``left``, ``top``) of a canvas of ``fill``; the image must fit."""
    h, w = pixels.shape[:2]
    if left < 0 or top < 0 or left + w > canvas_width or top + h > canvas_height:
        raise ValueError(f"a {w}×{h} image does not fit at ({left}, {top}) of a {canvas_width}×{canvas_height} canvas")
    canvas = np.empty((canvas_height, canvas_width, 3), np.uint8)
    canvas[:] = np.asarray(fill, np.uint8)
    canvas[top:top + h, left:left + w] = pixels
    return canvas


@dataclass(frozen=True)
class ColourJitter:
    """Factors for one image: brightness scales every channel, contrast blends with the image's mean grey,
    saturation with each pixel's grey (1 = unchanged)."""

    brightness: float
    contrast: float
    saturation: float


def draw_colour_jitter(rng: np.random.Generator, strength: float) -> ColourJitter:
    """Each factor uniform in ``[1 - strength, 1 + strength]`` (torchvision's ColorJitter's rule)."""
    check_settings(colour_jitter=strength)
    b, c, s = rng.uniform(1.0 - strength, 1.0 + strength, size=3)
    return ColourJitter(float(b), float(c), float(s))


def apply_colour_jitter(pixels: np.ndarray, jitter: ColourJitter) -> np.ndarray:
    """An RGB uint8 image with ``jitter`` applied (brightness, then contrast, then saturation), as uint8."""
    x = pixels.astype(np.float32) * jitter.brightness
    grey = x @ LUMA
    x = (x - grey.mean()) * jitter.contrast + grey.mean()
    grey = (x @ LUMA)[..., None]
    x = (x - grey) * jitter.saturation + grey
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)
