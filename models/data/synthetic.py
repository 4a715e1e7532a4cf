"""A synthetic detection dataset: circles, squares and triangles on noise and on crops of real photographs.

Why it exists: every detector in the explorer must be trainable and measurable on a 2-core CPU in minutes,
without downloading anything. Three shape classes are easy enough for a small CNN to learn from scratch,
yet the set keeps the difficulties that make detection interesting: objects from 20 to 200 px, touching and
overlapping neighbours (box IoU up to 0.3, a later shape may hide up to a quarter of an earlier one),
colours close to the background, and cluttered backgrounds cut from real photographs.

Everything is drawn from ``numpy.random.default_rng([seed, image_index])``, so the same seed writes
byte-identical files, and image *i* does not depend on how many images were asked for.

Boxes are computed from the final label map (which pixel belongs to which shape after occlusion), so every
box is exactly tight around the visible pixels of its shape: ``[min col, min row, max col + 1, max row + 1]``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from models.boxes_numpy import box_iou_numpy
from models.data.annotations import Annotation, BoxObject, write_voc
from models.data.annotations.atomic import atomic_write_bytes, atomic_write_text
from models.data.datasets import DatasetSource, open_voc_root

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")

#: Photographs bundled with scikit-image that load without a download (checked when first used).
PHOTO_NAMES: tuple[str, ...] = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry",
                                "hubble_deep_field")

#: File written at the root with the parameters, so a dataset on disk says how it was made.
PARAMS_FILE = "synthetic.json"

ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class SynthParams:
    """Everything that shapes the drawing; defaults follow the issue (320–480 px images, 1–6 objects)."""

    min_image_size: int = 320
    max_image_size: int = 480
    min_objects: int = 1
    max_objects: int = 6
    min_object_size: int = 20  # longer side of the visible box, pixels
    max_object_size: int = 200
    max_overlap: float = 0.3  # pairwise box IoU cap
    max_hidden: float = 0.25  # a later shape may cover at most this fraction of an earlier one's pixels
    photo_fraction: float = 0.5  # share of images drawn on a photo crop (others on textured noise)
    close_colour_fraction: float = 0.25  # share of objects whose colour is close to the background
    image_format: str = "jpg"  # "jpg" (quality 95) or "png" (lossless, bigger)
    #: When set, each shape's longer side is drawn uniformly from this range of the image's shorter side
    #: (instead of log-uniformly between ``min_object_size`` and ``max_object_size``): the single-object
    #: sets for classification + localisation use (0.15, 0.6).
    object_side_fraction: tuple[float, float] | None = None


def single_object_params(**overrides: object) -> SynthParams:
    """The classification + localisation set: exactly one shape per image, its side 15–60% of the image's
    shorter side, anywhere in the image, on the usual backgrounds."""
    values: dict = {"min_objects": 1, "max_objects": 1, "object_side_fraction": (0.15, 0.6)}
    values.update(overrides)
    return SynthParams(**values)


@dataclass
class SyntheticImage:
    """One drawn image before it is written: pixels, the label map behind its boxes, and the objects."""

    pixels: np.ndarray  # H×W×3 uint8 RGB
    label_map: np.ndarray  # H×W int16: 0 background, i+1 = objects[i]
    objects: list[BoxObject] = field(default_factory=list)
    background: str = "noise"  # "noise" or "photo:<name>"


class SyntheticDataset(DatasetSource):
    """The written VOC root, opened; also usable as a path (``open_dataset(ds)``, ``Path(ds)``, ``ds / x``).

    Why both: callers either want the opened dataset right away or just the folder to pass on.
    """

    def __fspath__(self) -> str:
        return os.fspath(self.root)

    def __truediv__(self, other: str | os.PathLike) -> Path:
        return Path(self.root) / other

    def __str__(self) -> str:
        return str(self.root)


@lru_cache(maxsize=1)
def available_photos() -> tuple[np.ndarray, ...]:
    """The bundled photographs that load offline (RGB uint8); empty when none do (then noise only)."""
    photos: list[np.ndarray] = []
    try:
        import skimage.data as skdata
    except Exception:  # scikit-image missing or broken: noise backgrounds still work
        return ()
    for name in PHOTO_NAMES:
        try:
            img = np.asarray(getattr(skdata, name)())
        except Exception:  # not bundled and no network: skip it
            continue
        if img.ndim == 3 and img.shape[2] >= 3 and img.dtype == np.uint8 and min(img.shape[:2]) >= 160:
            photos.append(np.ascontiguousarray(img[:, :, :3]))
    return tuple(photos)


def _noise_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Coloured multi-scale noise: smooth blobs plus fine grain, so backgrounds are never flat."""
    out = np.zeros((h, w, 3), np.float32)
    base = rng.uniform(0, 255, size=3).astype(np.float32)
    out += base
    for cells, amp in ((4, rng.uniform(20, 70)), (16, rng.uniform(10, 40)), (64, rng.uniform(0, 25))):
        small = rng.normal(0, 1, size=(max(2, h * cells // 480), max(2, w * cells // 480), 3)).astype(np.float32)
        out += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) * amp
    return np.clip(out, 0, 255).astype(np.uint8)


def _photo_background(rng: np.random.Generator, h: int, w: int, photos: tuple[np.ndarray, ...]
                      ) -> tuple[np.ndarray, int]:
    k = int(rng.integers(len(photos)))
    photo = photos[k]
    ph, pw = photo.shape[:2]
    aspect = w / h
    crop_h_max = min(ph, int(pw / aspect))
    crop_h = int(round(crop_h_max * rng.uniform(0.45, 1.0)))
    crop_h = max(8, crop_h)
    crop_w = max(8, min(pw, int(round(crop_h * aspect))))
    y0 = int(rng.integers(0, ph - crop_h + 1))
    x0 = int(rng.integers(0, pw - crop_w + 1))
    crop = photo[y0:y0 + crop_h, x0:x0 + crop_w]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    interp = cv2.INTER_AREA if crop_h > h else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(crop), (w, h), interpolation=interp), k


def _shape_mask(rng: np.random.Generator, shape: str, size: int) -> np.ndarray:
    """A bool mask whose tight box has ``size`` as its longer side (±1 px of rasterisation)."""
    theta = rng.uniform(0, 2 * math.pi)
    if shape == "circle":
        pts = None
    elif shape == "square":
        ang = theta + np.array([0.25, 0.75, 1.25, 1.75]) * math.pi
        pts = np.stack([np.cos(ang), np.sin(ang)], axis=1)
    elif shape == "triangle":
        ang = theta + np.array([0.0, 2.0, 4.0]) * math.pi / 3
        pts = np.stack([np.cos(ang), np.sin(ang)], axis=1)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
    pad = 2
    canvas = np.zeros((size + 2 * pad, size + 2 * pad), np.uint8)
    c = pad + size / 2.0
    shift = 4
    one = 1 << shift
    if pts is None:
        # A circle of diameter `size` covers about `size` pixels across (centre at a pixel corner).
        cv2.circle(canvas, (int(round(c * one)), int(round(c * one))), int(round((size / 2.0 - 0.5) * one)),
                   1, thickness=-1, lineType=cv2.LINE_8, shift=shift)
    else:
        extent = float(max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1])))
        pts = pts * ((size - 1) / extent)
        pts = pts - (pts.min(axis=0) + pts.max(axis=0)) / 2.0 + (c - 0.5)
        poly = np.round(pts * one).astype(np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(canvas, [poly], 1, lineType=cv2.LINE_8, shift=shift)
    ys, xs = np.nonzero(canvas)
    return canvas[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(bool)


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """Tight exclusive box ``[x1, y1, x2, y2]`` of a bool mask's True pixels; None when it is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))


def _visible_boxes(label_map: np.ndarray, n: int) -> list[tuple[float, float, float, float] | None]:
    return [mask_box(label_map == i + 1) for i in range(n)]


def _boxes_ok(boxes: list, params: SynthParams) -> bool:
    for a in boxes:
        if a is None or max(a[2] - a[0], a[3] - a[1]) < params.min_object_size:
            return False
    iou = box_iou_numpy(np.array(boxes), np.array(boxes))
    return not bool(np.any(np.triu(iou, k=1) > params.max_overlap + 1e-9))


def _place_objects(rng: np.random.Generator, h: int, w: int, params: SynthParams
                   ) -> tuple[np.ndarray, list[str]]:
    """Place shapes one by one; a candidate is kept only if every constraint still holds afterwards."""
    n_wanted = int(rng.integers(params.min_objects, params.max_objects + 1))
    label_map = np.zeros((h, w), np.int16)
    names: list[str] = []
    areas: list[int] = []
    lo = math.log(params.min_object_size)
    hi = math.log(min(params.max_object_size, h - 2, w - 2))
    for _ in range(n_wanted):
        for _attempt in range(60):
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            if params.object_side_fraction is not None:
                f_lo, f_hi = params.object_side_fraction
                size = int(round(min(rng.uniform(f_lo, f_hi) * min(h, w), h - 2, w - 2)))
            else:
                size = int(round(math.exp(rng.uniform(lo, hi))))
            mask = _shape_mask(rng, shape, size)
            mh, mw = mask.shape
            if mh > h or mw > w:
                continue
            y0 = int(rng.integers(0, h - mh + 1))
            x0 = int(rng.integers(0, w - mw + 1))
            region = label_map[y0:y0 + mh, x0:x0 + mw]
            covered = region[mask]
            if covered.size and covered.max() > 0:
                counts = np.bincount(covered, minlength=len(names) + 1)
                if any(counts[j + 1] > params.max_hidden * areas[j] for j in range(len(names))):
                    continue
            trial = label_map.copy()
            trial[y0:y0 + mh, x0:x0 + mw][mask] = len(names) + 1
            if not _boxes_ok(_visible_boxes(trial, len(names) + 1), params):
                continue
            label_map = trial
            names.append(shape)
            areas.append(int(mask.sum()))
            break
    return label_map, names


def _object_colour(rng: np.random.Generator, bg_mean: np.ndarray, params: SynthParams) -> np.ndarray:
    if rng.random() < params.close_colour_fraction:
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction) + 1e-9
        colour = bg_mean + direction * rng.uniform(28, 48)
        # Clipping can pull the colour back onto the background; push it the other way instead.
        if np.linalg.norm(np.clip(colour, 0, 255) - bg_mean) < 24:
            colour = bg_mean - direction * rng.uniform(28, 48)
        return np.clip(colour, 0, 255)
    return rng.uniform(0, 255, size=3)


def draw_image(seed: int, index: int, params: SynthParams | None = None) -> SyntheticImage:
    """Draw image ``index`` of the set made with ``seed``; pure function of its arguments."""
    params = params or SynthParams()
    rng = np.random.default_rng([int(seed), int(index)])
    h = int(rng.integers(params.min_image_size, params.max_image_size + 1))
    w = int(rng.integers(params.min_image_size, params.max_image_size + 1))
    photos = available_photos()
    use_photo = bool(photos) and rng.random() < params.photo_fraction
    if use_photo:
        bg, k = _photo_background(rng, h, w, photos)
        background = f"photo:{k}"
    else:
        bg = _noise_background(rng, h, w)
        background = "noise"
    label_map, names = _place_objects(rng, h, w, params)
    img = bg.astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    objects: list[BoxObject] = []
    for i, name in enumerate(names):
        sel = label_map == i + 1
        box = mask_box(sel)
        assert box is not None  # _place_objects keeps only visible objects
        bg_mean = bg[sel].reshape(-1, 3).mean(axis=0)
        colour = _object_colour(rng, bg_mean, params)
        # A gentle linear shading so a shape is not one flat colour (like a lit object).
        gx, gy = rng.uniform(-0.12, 0.12, size=2)
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        shade = (xx[sel] - cx) * gx + (yy[sel] - cy) * gy
        img[sel] = colour[None, :] + shade[:, None]
        objects.append(BoxObject(name, box))
    img += rng.normal(0, rng.uniform(2, 7), size=img.shape).astype(np.float32)
    pixels = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return SyntheticImage(pixels, label_map, objects, background)


def _encode(pixels: np.ndarray, fmt: str) -> bytes:
    bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    if fmt == "png":
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    elif fmt in ("jpg", "jpeg"):
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    else:
        raise ValueError(f"image format must be 'jpg' or 'png', not {fmt!r}")
    if not ok:
        raise OSError("image encoding failed")
    return buf.tobytes()


def split_counts(n_images: int, test_fraction: float) -> tuple[int, int]:
    """(train, test) sizes: ``round(n * fraction)`` test images, at least one of each when possible."""
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test fraction must lie in [0, 1], got {test_fraction}")
    n_test = int(round(n_images * test_fraction))
    if test_fraction > 0 and n_images >= 2:
        n_test = min(max(n_test, 1), n_images - 1)
    return n_images - n_test, n_test


def _clear_previous(root: Path) -> None:
    """Remove what an earlier run wrote, so a smaller second run leaves no stray images behind."""
    for sub, pattern in (("JPEGImages", "synth_*"), ("Annotations", "synth_*.xml")):
        d = root / sub
        if d.is_dir():
            for p in d.glob(pattern):
                p.unlink()
    main = root / "ImageSets" / "Main"
    if main.is_dir():
        shutil.rmtree(main)


def is_synthetic_root(path: str | os.PathLike) -> bool:
    return (Path(path) / PARAMS_FILE).is_file()


def write_synthetic(out_dir: str | os.PathLike, n_images: int, seed: int, test_fraction: float = 0.25,
                    params: SynthParams | None = None, overwrite: bool = False,
                    progress: ProgressFn | None = None) -> SyntheticDataset:
    """Write ``n_images`` drawn images as a Pascal VOC root with ``train`` and ``test`` splits.

    ``out_dir`` must be empty or missing, or an earlier synthetic set (its files are replaced when
    ``overwrite``); refusing otherwise protects a user's own folder from being mixed with drawn images.
    Returns the opened dataset, which also acts as the root path.
    """
    if n_images < 1:
        raise ValueError(f"need at least one image, got {n_images}")
    params = params or SynthParams()
    fmt = params.image_format.lower()
    root = Path(out_dir).expanduser()
    n_train, n_test = split_counts(n_images, test_fraction)
    if root.exists():
        if not root.is_dir():
            raise NotADirectoryError(f"{root}: exists and is not a folder")
        if any(root.iterdir()):
            if not (overwrite and is_synthetic_root(root)):
                raise FileExistsError(f"{root}: folder is not empty"
                                      + ("" if is_synthetic_root(root) else " and holds no synthetic set")
                                      + ("; pass overwrite (--force) to replace it" if is_synthetic_root(root)
                                         else "; choose an empty or new folder"))
            _clear_previous(root)
    img_dir, ann_dir, main = root / "JPEGImages", root / "Annotations", root / "ImageSets" / "Main"
    for d in (img_dir, ann_dir, main):
        d.mkdir(parents=True, exist_ok=True)
    ext = "png" if fmt == "png" else "jpg"
    stems: list[str] = []
    for i in range(n_images):
        drawn = draw_image(seed, i, params)
        stem = f"synth_{i:06d}"
        name = f"{stem}.{ext}"
        atomic_write_bytes(img_dir / name, _encode(drawn.pixels, ext))
        h, w = drawn.pixels.shape[:2]
        ann = Annotation(name, w, h, 3, drawn.objects)
        # A relative image path keeps the XML identical whichever folder the set is written to.
        write_voc(ann, ann_dir / f"{stem}.xml", Path("JPEGImages") / name)
        stems.append(stem)
        if progress is not None:
            progress((i + 1) / n_images, f"image {i + 1}/{n_images}")
    order = np.random.default_rng([int(seed), 1 << 20]).permutation(n_images)
    test_idx = sorted(int(i) for i in order[:n_test])
    train_idx = sorted(int(i) for i in order[n_test:])
    atomic_write_text(main / "train.txt", "".join(f"{stems[i]}\n" for i in train_idx))
    atomic_write_text(main / "test.txt", "".join(f"{stems[i]}\n" for i in test_idx))
    meta = {"generator": "rcnn-explorer synthetic shapes", "version": 1, "seed": int(seed),
            "images": n_images, "train": n_train, "test": n_test, "test_fraction": test_fraction,
            "classes": list(SHAPES), "params": params.__dict__,
            "photos_available": len(available_photos())}
    atomic_write_text(root / PARAMS_FILE, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    src = open_voc_root(root)
    return SyntheticDataset(src.kind, src.root, src.entries, src.store, src.splits, src.problems)
