"""One-object crops of a detection dataset: a classification + localisation set made from labelled boxes.

Classification + localisation learns one class and one box per image. A detection dataset (COCO: several
objects of many classes per photo) becomes one by cutting a crop around each labelled box of the chosen
classes, with a random margin of context on every side (a fraction of the box's width or height), so the
object is neither always centred nor always filling the crop. Only that box is labelled in its crop (others
that happen to overlap it are not the crop's object). The split is by source image: crops of one photo are
all in train or all in test, so a test object's neighbours never leak into training.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from models.data.annotations import Annotation, BoxObject, write_voc
from models.data.annotations.atomic import atomic_write_bytes, atomic_write_text
from models.data.datasets import DatasetSource, open_voc_root
from models.data.io import ImageError, read_image


@dataclass
class CropReport:
    """What :func:`write_object_crops` made and left out, and why."""

    classes: list[str]
    train: int = 0
    test: int = 0
    per_class: Counter = field(default_factory=Counter)
    too_small: int = 0  # boxes under min_side on either side: a few pixels say nothing about their class
    crowd: int = 0  # COCO crowd regions: many objects in one box
    unreadable: list[str] = field(default_factory=list)

    def message(self) -> str:
        parts = [f"{self.train} train and {self.test} test crops of {', '.join(self.classes)} "
                 f"({', '.join(f'{c} {self.per_class[c]}' for c in self.classes)})"]
        if self.too_small:
            parts.append(f"{self.too_small} boxes under the minimum side left out")
        if self.crowd:
            parts.append(f"{self.crowd} crowd boxes left out")
        if self.unreadable:
            parts.append(f"{len(self.unreadable)} unreadable images")
        return "; ".join(parts)


def most_frequent_classes(source: DatasetSource, n: int) -> list[str]:
    """The ``n`` classes with the most (non-crowd) labelled boxes, most frequent first (ties: by name)."""
    counts: Counter = Counter()
    for entry in source.entries:
        ann = source.store.load(entry, None)
        if ann is not None:
            counts.update(o.name for o in ann.objects if not o.crowd)
    return [c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def crop_box(box: tuple[float, float, float, float], width: int, height: int,
             margins: np.ndarray) -> tuple[int, int, int, int]:
    """The integer crop [x0, y0, x1, y1) around ``box`` with ``margins`` (left, top, right, bottom) as
    fractions of the box's width/height, clipped to the image."""
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    x0 = int(np.floor(max(0.0, x1 - margins[0] * bw)))
    y0 = int(np.floor(max(0.0, y1 - margins[1] * bh)))
    xe = int(np.ceil(min(float(width), x2 + margins[2] * bw)))
    ye = int(np.ceil(min(float(height), y2 + margins[3] * bh)))
    return x0, y0, xe, ye


def write_object_crops(source: DatasetSource, out_dir: str | os.PathLike, classes: list[str], seed: int = 0,
                       margin: tuple[float, float] = (0.3, 1.0), test_fraction: float = 0.3,
                       min_side: float = 16.0) -> tuple[DatasetSource, CropReport]:
    """Write a crop per labelled box of ``classes`` as a VOC root with train/test split files (by image).

    Each side's margin is drawn uniformly from ``margin`` (fractions of the box's size), per crop."""
    rng = np.random.default_rng(seed)
    root = Path(out_dir)
    img_dir, ann_dir, main = root / "JPEGImages", root / "Annotations", root / "ImageSets" / "Main"
    for d in (img_dir, ann_dir, main):
        d.mkdir(parents=True, exist_ok=True)
    n_images = len(source.entries)
    order = rng.permutation(n_images)
    n_test = int(round(n_images * test_fraction))
    test_images = {int(i) for i in order[:n_test]}
    report = CropReport(list(classes))
    stems: dict[str, list[str]] = {"train": [], "test": []}
    wanted = set(classes)
    for idx, entry in enumerate(source.entries):
        ann = source.store.load(entry, None)
        objects = [o for o in (ann.objects if ann is not None else []) if o.name in wanted]
        if not objects:
            continue
        try:
            image = read_image(entry.path, max_pixels=None)
        except (ImageError, OSError) as exc:
            report.unreadable.append(f"{entry.name}: {exc}")
            continue
        pixels = image.pixels
        h, w = pixels.shape[:2]
        split = "test" if idx in test_images else "train"
        for k, obj in enumerate(objects):
            if obj.crowd:
                report.crowd += 1
                continue
            if obj.width < min_side or obj.height < min_side:
                report.too_small += 1
                continue
            x0, y0, xe, ye = crop_box(obj.box, w, h, rng.uniform(margin[0], margin[1], size=4))
            crop = np.ascontiguousarray(pixels[y0:ye, x0:xe])
            stem = f"{Path(entry.name).stem}_{k:02d}"
            name = f"{stem}.jpg"
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
            if not ok:
                report.unreadable.append(f"{entry.name}: could not encode its crop")
                continue
            atomic_write_bytes(img_dir / name, buf.tobytes())
            bx = (obj.box[0] - x0, obj.box[1] - y0, obj.box[2] - x0, obj.box[3] - y0)
            write_voc(Annotation(name, xe - x0, ye - y0, 3, [BoxObject(obj.name, bx)]), ann_dir / f"{stem}.xml",
                      Path("JPEGImages") / name)
            stems[split].append(stem)
            report.per_class[obj.name] += 1
    for split, names in stems.items():
        atomic_write_text(main / f"{split}.txt", "".join(f"{s}\n" for s in names))
    report.train, report.test = len(stems["train"]), len(stems["test"])
    return open_voc_root(root), report


__all__ = ["CropReport", "crop_box", "most_frequent_classes", "write_object_crops"]
