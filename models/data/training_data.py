"""Any opened dataset (VOC, COCO, YOLO, a folder of images with XML) as a torch Dataset for detectors.

Why a separate module from ``models.data.datasets``: that one lists files and reads/writes annotations for the
labelling GUI and never touches torch; this one turns them into tensors, resizes the way the papers do
(shorter side 600, longer at most 1000) and augments for training; which images train and which test is
``models.data.splits``'s.

Normalisation (ImageNet mean/std) is the model's job, not the dataset's: a checkpoint then carries
everything needed to run on raw 0..1 RGB.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from models.data import augmentation, copy_paste, mosaic
from models.data.annotations import AnnotationError
from models.data.annotations.model import polygon_area
from models.data.datasets import DatasetSource
from models.data.io import ImageError, read_image, read_image_info

#: Kinds whose store declares its class list (COCO categories, YOLO class file); the others only know
#: the names they have met so far, in reading order, which is not a stable class order.
_DECLARED_CLASS_KINDS = ("coco", "yolo")


def resize_scale(h: int, w: int, min_size: int = 600, max_size: int = 1000) -> float:
    """Scale that makes the shorter side ``min_size`` unless the longer side would then exceed ``max_size``."""
    if h <= 0 or w <= 0:
        raise ValueError(f"image size must be positive, got {w}×{h}")
    scale = min_size / min(h, w)
    if max(h, w) * scale > max_size:
        scale = max_size / max(h, w)
    return float(scale)


@dataclass
class ImageTargets:
    """One image's ground truth in displayed full-resolution pixels (before any resizing)."""

    index: int  # index into source.entries
    path: Path
    width: int  # displayed size (EXIF applied); 0 when unknown
    height: int
    boxes: np.ndarray  # float32 [N, 4]
    labels: np.ndarray  # int64 [N], 1..K into class_names
    difficult: np.ndarray  # bool [N]: VOC difficult or COCO iscrowd
    names: list[str]  # class name per object
    #: Per object, its outline's polygons ([P, 2] float32 in displayed pixels); () where the file has none.
    outlines: list[tuple[np.ndarray, ...]] = field(default_factory=list)
    #: bool [N]: COCO iscrowd (also set in ``difficult``): the evaluation scores a crowd region by COCO's rule.
    #: Left out, none is.
    crowd: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.crowd is None:
            self.crowd = np.zeros(len(self.boxes), bool)

    def outlined(self) -> list[int]:
        """Positions of the objects copy-paste may cut out: outlined with at least a pixel's area, neither crowd
        nor difficult."""
        return [k for k, o in enumerate(self.outlines)
                if not self.difficult[k] and any(polygon_area(p.reshape(-1)) >= 1.0 for p in o)]


def load_targets(source: DatasetSource, index: int, class_names: list[str], need_image_info: bool = True,
                 report_other_classes: bool = True) -> tuple[ImageTargets, list[str]]:
    """Ground truth of ``source.entries[index]`` with labels into ``class_names``; messages for the user.

    Raises AnnotationError (unreadable annotation) or ImageError (``need_image_info`` and the header is
    unreadable). Objects of classes not in ``class_names`` are dropped, with a message unless
    ``report_other_classes`` is False (training on a chosen subset of the classes, where leaving the others
    out is the point); boxes are clipped to the image and dropped if nothing is left. Without image info
    (evaluating a detections file with no images at hand) boxes are taken as stored.
    """
    entry = source.entries[index]
    info = None
    if need_image_info:
        info = read_image_info(entry.path)
    elif entry.path.is_file():
        try:
            info = read_image_info(entry.path)
        except ImageError:
            info = None
    ann = source.store.load(entry, info)
    messages: list[str] = []
    width = info.width if info is not None else (ann.width if ann is not None else 0)
    height = info.height if info is not None else (ann.height if ann is not None else 0)
    boxes: list[tuple[float, float, float, float]] = []
    labels: list[int] = []
    difficult: list[bool] = []
    crowd: list[bool] = []
    names: list[str] = []
    outlines: list[tuple[np.ndarray, ...]] = []
    lookup = {n: i + 1 for i, n in enumerate(class_names)}
    for obj in ann.objects if ann is not None else []:
        if obj.name not in lookup:
            if report_other_classes:
                messages.append(f"{entry.name}: object of class '{obj.name}' is not among the classes; skipped")
            continue
        x1, y1, x2, y2 = (float(v) for v in obj.box)
        if width and height:
            x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
            y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
        if x2 - x1 < 1e-3 or y2 - y1 < 1e-3:
            messages.append(f"{entry.name}: {obj.name} box {obj.box} lies outside the image; skipped")
            continue
        boxes.append((x1, y1, x2, y2))
        labels.append(lookup[obj.name])
        difficult.append(bool(obj.difficult or obj.crowd))
        crowd.append(bool(obj.crowd))
        names.append(obj.name)
        outlines.append(tuple(np.asarray(poly, np.float32).reshape(-1, 2) for poly in obj.outline))
    targets = ImageTargets(index, entry.path, int(width), int(height),
                           np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64),
                           np.asarray(difficult, bool), names, outlines, np.asarray(crowd, bool))
    return targets, messages


class DetectionDataset(Dataset):
    """Items: ``(image float32 [3, H, W] RGB in 0..1, target dict)``, resized and optionally flipped.

    target keys: ``boxes`` float32 [N, 4] in resized pixels, ``labels`` int64 [N] in 1..K, ``difficult``
    bool [N], ``scale`` (resized / original), ``orig_size`` (h, w) of the displayed image (of its window when
    cropped), ``path`` str, ``index`` (into ``source.entries``), ``flipped`` bool, ``quarter_turns`` (0-3 counter-clockwise).

    Augmentation, all drawn from (seed, epoch, image) so a run repeats exactly:
    ``flip_prob`` mirrors left-right (the papers' only augmentation); ``rotate90`` also turns the image by a
    random multiple of 90°, which only suits data with no "up" (aerial views, microscopy, the synthetic
    shapes): with the flip it gives all eight symmetries of the square; ``train_sizes`` picks the shorter
    side per image from a list (multi-scale training) instead of always ``min_size``; ``crop_prob`` cuts a
    random window (each side at least ``crop_min_side`` of the image's) that keeps at least one object's
    centre (an object whose centre it cuts away leaves its visible part as an ignore region),
    ``zoom_out_prob`` places the image (or its crop) on a mean-coloured canvas up to ``zoom_out_max``
    times its side, so the objects come out smaller, ``mosaic_prob`` shows the image as the top-left tile of
    a four-image mosaic at half size (:mod:`models.data.mosaic`: three other images of the run beside it, no
    crop or zoom-out), and ``colour_jitter`` scales brightness, contrast and saturation by ``1 ± colour_jitter``
    (:mod:`models.data.augmentation`, for detectors fine-tuned on a few dozen photos); ``copy_paste_prob``
    pastes outlined objects of another training image onto the item (:mod:`models.data.copy_paste`; not on
    mosaics, and only where the dataset has outlines: COCO or YOLO polygons).

    Annotations are read once, at construction, so a broken file is reported before training starts
    (and skipped, with its message in ``problems``) instead of killing a worker mid-epoch.

    ``class_filter``: ``class_names`` is a chosen subset of the dataset's classes (train a person detector
    on COCO): objects of the other classes are left out without a message each (``left_out`` counts them),
    and images holding none of the chosen classes stay in, as negatives.
    """

    def __init__(self, source: DatasetSource, indices: list[int], class_names: list[str],
                 min_size: int = 600, max_size: int = 1000, flip_prob: float = 0.0, seed: int = 0,
                 rotate90: bool = False, train_sizes: list[int] | None = None, class_filter: bool = False,
                 crop_prob: float = 0.0, crop_min_side: float = 0.5, colour_jitter: float = 0.0,
                 zoom_out_prob: float = 0.0, zoom_out_max: float = 2.0,
                 zoom_out_fill: tuple[int, int, int] = augmentation.ZOOM_OUT_FILL, mosaic_prob: float = 0.0,
                 copy_paste_prob: float = 0.0) -> None:
        augmentation.check_settings(crop_prob, crop_min_side, colour_jitter, zoom_out_prob, zoom_out_max, mosaic_prob,
                                    copy_paste_prob)
        self.copy_paste_prob = float(copy_paste_prob)
        self.mosaic_prob = float(mosaic_prob)
        #: The canvas colour (RGB 0-255): the model's mean, which its normalisation turns into zeros.
        self.zoom_out_fill = tuple(int(v) for v in zoom_out_fill)
        self.zoom_out_prob = float(zoom_out_prob)
        self.zoom_out_max = float(zoom_out_max)
        self.crop_prob = float(crop_prob)
        self.crop_min_side = float(crop_min_side)
        self.colour_jitter = float(colour_jitter)
        self.source = source
        self.rotate90 = bool(rotate90)
        self.train_sizes = [int(v) for v in train_sizes] if train_sizes else None
        self.class_names = list(class_names)
        self.min_size = int(min_size)
        self.max_size = int(max_size)
        self.flip_prob = float(flip_prob)
        self.seed = int(seed)
        self.epoch = 0
        #: External proposals per image (``source.entries`` index → float32 [P, 4] in full-resolution pixels),
        #: for the generations that take Selective Search boxes; filled by :func:`attach_proposals`.
        self.proposals: dict[int, np.ndarray] | None = None
        self.problems: list[str] = []
        self.targets: list[ImageTargets] = []
        #: Objects of classes outside ``class_names`` left out under ``class_filter``.
        self.left_out = 0
        for idx in indices:
            entry = source.entries[idx]
            try:
                t, msgs = load_targets(source, idx, self.class_names, report_other_classes=not class_filter)
            except AnnotationError as exc:
                self.problems.append(f"{entry.name}: annotation cannot be read ({exc}); image skipped")
                continue
            except ImageError as exc:
                self.problems.append(f"{exc}; image skipped")
                continue
            self.problems.extend(msgs)
            self.targets.append(t)
            if class_filter:
                ann = source.store.load(entry, None)
                self.left_out += sum(o.name not in self.class_names for o in ann.objects) if ann is not None else 0
        #: Per item, how many objects copy-paste may cut out of it (counted once: every draw reads them).
        self.outlined_counts = [len(t.outlined()) for t in self.targets]

    def copy_paste_note(self) -> str:
        """What copy-paste has to paste, in a sentence for the run's log: how many outlined objects in how many
        images, or that there are none (a box-only dataset: nothing is pasted, which the user should know)."""
        counts = self.outlined_counts
        images = sum(n > 0 for n in counts)
        if not images:
            return ("copy-paste: no object of the training images has an outline (COCO or YOLO polygons), "
                    "so nothing is pasted")
        return f"copy-paste: {sum(counts)} outlined objects in {images} of {len(counts)} training images to paste from"

    @property
    def indices(self) -> list[int]:
        """Indices into ``source.entries`` of the images kept, in item order."""
        return [t.index for t in self.targets]

    def __len__(self) -> int:
        return len(self.targets)

    def set_epoch(self, epoch: int) -> None:
        """Change the flip draw per epoch (each item's flip depends on seed, epoch and image only)."""
        self.epoch = int(epoch)

    def draws(self, i: int) -> AugmentationDraws:
        """What augmentation does to item ``i`` in the current epoch (what :meth:`__getitem__` applies)."""
        return self._draws(self.targets[i], i)

    def _draws(self, t: ImageTargets, item: int) -> AugmentationDraws:
        """What augmentation does to this image in this epoch. The crop, colour, zoom-out and mosaic draws come
        after the others, and only when enabled, so a run without them draws the flips and sizes it always did;
        copy-paste comes last, and not for a mosaic."""
        rng = np.random.default_rng([self.seed, self.epoch, t.index])
        flip = bool(rng.random() < self.flip_prob) if self.flip_prob > 0.0 else False
        turns = int(rng.integers(4)) if self.rotate90 else 0
        size = int(self.train_sizes[int(rng.integers(len(self.train_sizes)))]) if self.train_sizes else self.min_size
        window = None
        if self.crop_prob > 0.0 and rng.random() < self.crop_prob and t.width > 0 and t.height > 0:
            # around an ordinary object: a crowd or difficult box is no object to keep in view
            window = augmentation.draw_crop(rng, t.width, t.height, t.boxes[~t.difficult], self.crop_min_side)
        jitter = augmentation.draw_colour_jitter(rng, self.colour_jitter) if self.colour_jitter > 0.0 else None
        zoom = None
        if self.zoom_out_prob > 0.0 and rng.random() < self.zoom_out_prob and t.width > 0 and t.height > 0:
            # Drawn for what is shown: the crop window when there is one, else the whole image.
            w, h = (window.width, window.height) if window is not None else (t.width, t.height)
            zoom = augmentation.draw_zoom_out(rng, w, h, self.zoom_out_max)
        tiles = None
        if self.mosaic_prob > 0.0 and rng.random() < self.mosaic_prob and t.width > 0 and t.height > 0:
            tiles = mosaic.draw_mosaic(rng, len(self.targets))
            window = zoom = None  # a mosaic shows whole images, already at half size
        paste = None
        if self.copy_paste_prob > 0.0 and tiles is None and rng.random() < self.copy_paste_prob:
            paste = copy_paste.draw_paste(rng, self.outlined_counts, self.flip_prob, item)
        return AugmentationDraws(flip, turns, size, window, jitter, zoom, tiles, paste)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, Any]]:
        t = self.targets[i]
        draws = self.draws(i)
        if draws.mosaic is not None:
            return self._mosaic_item(t, draws)
        img = read_image(t.path)
        min_size = draws.size
        px, boxes, labels, difficult = img.pixels, t.boxes.copy(), t.labels.copy(), t.difficult.copy()
        external = self.proposals[t.index].astype(np.float32) if self.proposals is not None else None
        window = draws.window
        if window is not None and (img.width, img.height) != (t.width, t.height):
            window = None  # the file changed size since its annotation was read: no crop rather than a wrong one
        # Sizes in full-resolution pixels, the boxes' units: a huge image may be decoded reduced (img.scale < 1).
        h, w = img.height, img.width
        if window is not None:
            px = augmentation.crop_pixels(px, window, img.scale)
            shown = augmentation.covered_window(window, img.scale)  # what those pixels cover, exactly
            h, w = shown.height, shown.width
            boxes, labels, difficult = augmentation.cut_objects(boxes, labels, difficult, shown)
            if external is not None:
                external = augmentation.crop_boxes(external, shown, keep_centres=False)[0]
        # Zoom-out, as SSD's expand but after the crop (a crop never shows the fill): the image's place is
        # clamped onto the canvas below, so a canvas drawn for a file that changed size since still holds it.
        zoom = draws.zoom
        # The canvas (the shown image itself without a zoom-out) is what the shorter side is fitted to.
        canvas_w, canvas_h = (zoom.width, zoom.height) if zoom is not None else (w, h)
        scale = resize_scale(canvas_h, canvas_w, min_size, self.max_size)
        px, factors = _resized(px, w, h, scale)
        new_h, new_w = px.shape[:2]
        boxes = boxes * factors
        if external is not None:
            external = external * factors
        if draws.jitter is not None:  # before the canvas: the photo's light changes, not the fill's
            px = augmentation.apply_colour_jitter(px, draws.jitter)
        if zoom is not None:
            out_w = max(new_w, int(round(canvas_w * scale)))
            out_h = max(new_h, int(round(canvas_h * scale)))
            left = min(int(round(zoom.left * scale)), out_w - new_w)
            top = min(int(round(zoom.top * scale)), out_h - new_h)
            px = augmentation.paste_on_canvas(px, out_w, out_h, left, top, self.zoom_out_fill)
            shift = np.array([left, top, left, top], np.float32)
            boxes = boxes + shift
            if external is not None:
                external = external + shift
            new_w, new_h = out_w, out_h
        pasted = None
        if draws.paste is not None:
            px, boxes, labels, difficult, pasted = self._paste(px, boxes, labels, difficult, draws)
        return _finish(px, boxes, labels, difficult, external, draws, {
            "scale": float(scale),
            "orig_size": (int(round(h)), int(round(w))),
            "path": str(t.path),
            "index": int(t.index),
            # The window of the original image this item shows (x0, y0, x1, y1), None for the whole image.
            "crop": None if window is None else (window.x0, window.y0, window.x1, window.y1),
            # The canvas the image (or its crop) was placed on, in its pixels (width, height, left, top); None: none.
            "zoom_out": None if zoom is None else (zoom.width, zoom.height, zoom.left, zoom.top),
            "mosaic": None,
            # (entry index of the image objects were pasted from, how many were pasted); None: no copy-paste.
            "copy_paste": pasted,
        })

    def _paste(self, px: np.ndarray, boxes: np.ndarray, labels: np.ndarray, difficult: np.ndarray,
               draws: AugmentationDraws) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[int, int] | None]:
        """``draws.paste`` applied to an item's canvas (:mod:`models.data.copy_paste`): the partner at the size it
        has as an item of its own (the item's shorter side) times the draw's factor, mirrored as drawn; None for
        what was pasted when the partner's file no longer has the size its annotation was read with."""
        paste = draws.paste
        t = self.targets[paste.partner]
        img = read_image(t.path)
        h, w = img.height, img.width  # full-resolution pixels, the outlines' units
        if (w, h) != (t.width, t.height):  # the file changed size since its outlines were read: no paste
            return px, boxes, labels, difficult, None
        photo, factors = _resized(img.pixels, w, h, resize_scale(h, w, draws.size, self.max_size) * paste.scale)
        outlined = t.outlined()
        chosen = [outlined[k] for k in paste.chosen if k < len(outlined)]
        pw = photo.shape[1]
        outlines = []
        for k in chosen:
            polygons = []
            for poly in t.outlines[k]:
                moved = poly * factors[:2]
                if paste.flip:
                    moved = np.stack([pw - moved[:, 0], moved[:, 1]], axis=1)
                polygons.append(moved)
            outlines.append(polygons)
        if paste.flip:
            photo = np.ascontiguousarray(photo[:, ::-1])
        left, top = copy_paste.placement(px.shape[1], px.shape[0], pw, photo.shape[0], paste)
        out = copy_paste.paste_objects(px, boxes, labels, difficult, photo, outlines, [t.labels[k] for k in chosen],
                                       left, top)
        return out.pixels, out.boxes, out.labels, out.difficult, (int(t.index), out.pasted)

    def _mosaic_item(self, t: ImageTargets, draws: AugmentationDraws) -> tuple[torch.Tensor, dict[str, Any]]:
        """Item of ``t`` drawn as a mosaic: a canvas of the size ``t`` alone would be resized to (the same step
        cost), ``t`` and its three partners on it, each resized to half the shorter side (and half the cap)."""
        scale = resize_scale(t.height, t.width, draws.size, self.max_size)
        width, height = max(1, int(round(t.width * scale))), max(1, int(round(t.height * scale)))
        members = [t] + [self.targets[j] for j in draws.mosaic.partners]
        tiles = [self._tile(m, max(1, draws.size // 2), max(1, self.max_size // 2), draws.jitter) for m in members]
        comp = mosaic.compose(width, height, draws.mosaic, tiles, self.zoom_out_fill)
        own = tiles[0].pixels.shape[1] / max(float(t.width), 1.0)
        return _finish(comp.pixels, comp.boxes, comp.labels, comp.difficult, comp.proposals, draws, {
            "scale": float(own),  # the item's own image, as its tile shows it
            "orig_size": (int(t.height), int(t.width)),
            "path": str(t.path),
            "index": int(t.index),
            "crop": None,
            "zoom_out": None,
            # (centre x, centre y) on the canvas before the flip and quarter turns, and the entries (``index``)
            # of the other three tiles.
            "mosaic": (int(round(draws.mosaic.centre_x * width)), int(round(draws.mosaic.centre_y * height)),
                       tuple(int(m.index) for m in members[1:])),
            "copy_paste": None,
        })

    def _tile(self, t: ImageTargets, min_size: int, max_size: int,
              jitter: augmentation.ColourJitter | None) -> mosaic.Tile:
        """Image ``t`` resized for a mosaic tile (shorter side ``min_size``, longer at most ``max_size``), its
        colour jittered by the item's factors, with its boxes and proposals in the tile's pixels."""
        img = read_image(t.path)
        h, w = img.height, img.width  # full-resolution pixels, the boxes' units
        px, factors = _resized(img.pixels, w, h, resize_scale(h, w, min_size, max_size))
        if jitter is not None:
            px = augmentation.apply_colour_jitter(px, jitter)
        proposals = None if self.proposals is None else self.proposals[t.index].astype(np.float32) * factors
        return mosaic.Tile(np.ascontiguousarray(px), t.boxes * factors, t.labels.copy(), t.difficult.copy(), proposals)


def _resized(px: np.ndarray, width: float, height: float, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """``px`` (showing ``width`` × ``height`` full-resolution pixels, decoded at any size) resized to that size
    × ``scale`` in whole pixels, and the per-axis factors [4] that move boxes from full-resolution pixels onto
    it. Bilinear like the detectors' own ``predict`` resize, so training sees what inference will see; the
    factors are per axis because rounding the size to whole pixels moves the edges by up to half a pixel."""
    new_w, new_h = max(1, int(round(width * scale))), max(1, int(round(height * scale)))
    if px.shape[:2] != (new_h, new_w):
        px = cv2.resize(px, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return px, np.array([new_w / width, new_h / height, new_w / width, new_h / height], np.float32)


def _finish(px: np.ndarray, boxes: np.ndarray, labels: np.ndarray, difficult: np.ndarray,
            external: np.ndarray | None, draws: AugmentationDraws, meta: dict[str, Any]
            ) -> tuple[torch.Tensor, dict[str, Any]]:
    """An item's last steps, whole image or mosaic alike: the flip and quarter turns of ``draws`` applied to
    the pixels, boxes and proposals, the tensor made, and the target dict (``meta`` adds what the item was)."""
    new_h, new_w = px.shape[:2]
    boxes = _move_boxes(np.asarray(boxes, np.float32).reshape(-1, 4).copy(), new_w, new_h, draws.flip, draws.turns)
    proposals = None
    if external is not None:
        proposals = _move_boxes(np.asarray(external, np.float32).reshape(-1, 4).copy(), new_w, new_h,
                                draws.flip, draws.turns)
    if draws.flip:
        px = px[:, ::-1]
    for _ in range(draws.turns):
        px = np.rot90(px)
    image = torch.from_numpy(np.ascontiguousarray(px)).permute(2, 0, 1).float().div_(255.0)
    target = {
        "boxes": torch.from_numpy(boxes.astype(np.float32)),
        "labels": torch.from_numpy(labels),
        "difficult": torch.from_numpy(difficult),
        "flipped": draws.flip,
        "quarter_turns": draws.turns,
        **meta,
    }
    if proposals is not None:
        target["proposals"] = torch.from_numpy(np.ascontiguousarray(proposals, np.float32))
    return image, target


@dataclass(frozen=True)
class AugmentationDraws:
    """One item's augmentation in one epoch (:meth:`DetectionDataset.draws`): mirrored, quarter turns,
    shorter side, the crop window (None: the whole image), the colour factors (None: none), the zoom-out
    canvas (None: none), the mosaic (None: the image alone) and the copy-paste (None: none)."""

    flip: bool
    turns: int
    size: int
    window: augmentation.CropWindow | None
    jitter: augmentation.ColourJitter | None
    zoom: augmentation.ZoomOut | None = None
    mosaic: mosaic.Mosaic | None = None
    paste: copy_paste.Paste | None = None


def _move_boxes(boxes: np.ndarray, width: int, height: int, flipped: bool, turns: int) -> np.ndarray:
    """Boxes of a ``width``×``height`` image after its left-right flip and then ``turns`` quarter turns."""
    if flipped:
        x1 = width - boxes[:, 2]
        x2 = width - boxes[:, 0]
        boxes[:, 0], boxes[:, 2] = x1, x2
    for _ in range(turns):
        # np.rot90 turns counter-clockwise: the pixel at (x, y) moves to (y, width - x).
        boxes = np.stack([boxes[:, 1], width - boxes[:, 2], boxes[:, 3], width - boxes[:, 0]], axis=1)
        width, height = height, width
    return boxes


def attach_proposals(dataset: DetectionDataset, cache: Any, params: Any,
                     progress: Callable[[int, int], None] | None = None) -> None:
    """Selective Search boxes for every image of ``dataset``, computed once (or read from ``cache``, a
    :class:`models.proposals.cache.ProposalCache`) before training, so no training step waits for them.
    ``progress(done, total)`` after each image."""
    out: dict[int, np.ndarray] = {}
    total = len(dataset.targets)
    for i, t in enumerate(dataset.targets):
        dec = read_image(t.path)
        boxes = cache.get(dec.pixels, params)
        out[t.index] = boxes / np.float32(dec.scale) if dec.scale != 1.0 else boxes
        if progress is not None:
            progress(i + 1, total)
    dataset.proposals = out


def collate(batch: list[tuple[torch.Tensor, dict[str, Any]]]) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
    """Images differ in size, so a batch stays a list (the detector pads or loops)."""
    return [b[0] for b in batch], [b[1] for b in batch]


def class_names_of(source: DatasetSource) -> list[str]:
    """The class list: the store's declared one (COCO, YOLO), else the sorted names found in annotations.

    Sorted rather than first-met order, so the label ids do not depend on which image was read first.
    """
    if source.kind in _DECLARED_CLASS_KINDS and source.store.class_names:
        return list(source.store.class_names)
    found: set[str] = set(source.store.class_names)
    for entry in source.entries:
        try:
            ann = source.store.load(entry, None)
        except (AnnotationError, ImageError, OSError):
            continue
        if ann is not None:
            found.update(o.name for o in ann.objects)
    return sorted(found)
