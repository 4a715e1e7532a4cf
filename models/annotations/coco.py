"""COCO instances JSON (bbox = [x, y, w, h], 0-based, in pixels).

Reading keeps the raw document so that writing back one edited image preserves everything we do not model
(info, licences, segmentations of untouched objects, extra keys).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.annotations.atomic import atomic_write_text
from models.annotations.model import Annotation, AnnotationError, BoxObject, validate_objects

MAX_JSON_BYTES = 2_000_000_000


@dataclass
class CocoImage:
    image_id: int
    file_name: str
    width: int
    height: int


@dataclass
class CocoDataset:
    path: Path | None
    class_names: list[str]
    category_ids: list[int]  # parallel to class_names
    images: list[CocoImage]
    annotations: dict[int, Annotation]  # by image id
    raw: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def category_id(self, name: str) -> int:
        if name in self.class_names:
            return self.category_ids[self.class_names.index(name)]
        new_id = max(self.category_ids, default=0) + 1
        self.class_names.append(name)
        self.category_ids.append(new_id)
        return new_id


def _require(obj: Any, key: str, kind: type | tuple[type, ...], path: Path | None, what: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise AnnotationError(path, f"{what} has no '{key}' field")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise AnnotationError(path, f"{what} field '{key}' has the wrong type ({type(value).__name__})")
    return value


def parse_coco(doc: Any, path: Path | None = None) -> CocoDataset:
    if not isinstance(doc, dict):
        raise AnnotationError(path, "COCO file must hold a JSON object")
    images_raw = _require(doc, "images", list, path, "COCO file")
    anns_raw = doc.get("annotations", [])
    cats_raw = doc.get("categories", [])
    if not isinstance(anns_raw, list) or not isinstance(cats_raw, list):
        raise AnnotationError(path, "'annotations' and 'categories' must be lists")
    names: list[str] = []
    ids: list[int] = []
    for i, c in enumerate(cats_raw):
        cid = _require(c, "id", int, path, f"category {i + 1}")
        name = _require(c, "name", str, path, f"category {i + 1}")
        names.append(name)
        ids.append(cid)
    id_to_name = dict(zip(ids, names, strict=True))
    images: list[CocoImage] = []
    by_id: dict[int, Annotation] = {}
    for i, im in enumerate(images_raw):
        iid = _require(im, "id", int, path, f"image {i + 1}")
        fname = _require(im, "file_name", str, path, f"image {i + 1}")
        w = int(im.get("width", 0) or 0) if isinstance(im.get("width", 0), (int, float)) else 0
        h = int(im.get("height", 0) or 0) if isinstance(im.get("height", 0), (int, float)) else 0
        images.append(CocoImage(iid, fname, w, h))
        by_id[iid] = Annotation(os.path.basename(fname), w, h, 3, [])
    warnings: list[str] = []
    for i, a in enumerate(anns_raw):
        what = f"annotation {i + 1}"
        iid = _require(a, "image_id", int, path, what)
        cid = _require(a, "category_id", int, path, what)
        bbox = _require(a, "bbox", list, path, what)
        if len(bbox) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox):
            raise AnnotationError(path, f"{what}: bbox must be four numbers [x, y, w, h], got {bbox!r}")
        if iid not in by_id:
            raise AnnotationError(path, f"{what}: image_id {iid} is not in 'images'")
        if cid not in id_to_name:
            raise AnnotationError(path, f"{what}: unknown category_id {cid}")
        x, y, w, h = (float(v) for v in bbox)
        if w < 0 or h < 0:
            raise AnnotationError(path, f"{what}: negative box size {bbox!r}")
        if w == 0 or h == 0:
            warnings.append(f"{what}: zero-size box skipped")
            continue
        by_id[iid].objects.append(BoxObject(id_to_name[cid], (x, y, x + w, y + h), crowd=bool(a.get("iscrowd", 0))))
    for im in images:
        ann = by_id[im.image_id]
        ann.warnings.extend(validate_objects(ann.objects, ann.width, ann.height, path))
    return CocoDataset(path, names, ids, images, by_id, doc, warnings)


def read_coco(path: str | os.PathLike) -> CocoDataset:
    p = Path(path)
    try:
        if p.stat().st_size > MAX_JSON_BYTES:
            raise AnnotationError(p, "file is too large")
        with open(p, encoding="utf-8") as f:
            doc = json.load(f)
    except json.JSONDecodeError as exc:
        raise AnnotationError(p, f"malformed JSON: {exc.msg}", exc.lineno) from exc
    except UnicodeDecodeError as exc:
        raise AnnotationError(p, "not UTF-8 text") from exc
    except OSError as exc:
        raise AnnotationError(p, f"cannot read file ({exc.strerror or exc})") from exc
    return parse_coco(doc, p)


def coco_document(ds: CocoDataset) -> dict[str, Any]:
    """The JSON document for ``ds``: raw fields kept, images/categories/annotations from the model."""
    doc = {k: v for k, v in ds.raw.items() if k not in ("images", "annotations", "categories")}
    raw_images = {im.get("id"): im for im in ds.raw.get("images", []) if isinstance(im, dict)}
    raw_cats = {c.get("id"): c for c in ds.raw.get("categories", []) if isinstance(c, dict)}
    raw_anns: dict[int, list[dict]] = {}
    for a in ds.raw.get("annotations", []):
        if isinstance(a, dict):
            raw_anns.setdefault(a.get("image_id"), []).append(a)
    doc["images"] = []
    for im in ds.images:
        entry = dict(raw_images.get(im.image_id, {}))
        entry.update({"id": im.image_id, "file_name": im.file_name, "width": im.width, "height": im.height})
        doc["images"].append(entry)
    for ann in ds.annotations.values():  # classes added while labelling become categories
        for o in ann.objects:
            ds.category_id(o.name)
    doc["categories"] = []
    for cid, name in zip(ds.category_ids, ds.class_names, strict=True):
        entry = dict(raw_cats.get(cid, {}))
        entry.update({"id": cid, "name": name})
        entry.setdefault("supercategory", name)
        doc["categories"].append(entry)
    next_id = 1 + max((a.get("id", 0) for lst in raw_anns.values() for a in lst
                       if isinstance(a.get("id", 0), int)), default=0)
    annotations = []
    for im in ds.images:
        ann = ds.annotations.get(im.image_id)
        if ann is None:
            continue
        unused = list(raw_anns.get(im.image_id, []))
        for o in ann.objects:
            cid = ds.category_id(o.name)
            x1, y1, x2, y2 = o.box
            bbox = [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)]
            match = next((a for a in unused if a.get("category_id") == cid and _same_box(a.get("bbox"), bbox)), None)
            if match is not None:
                unused.remove(match)
                entry = dict(match)
            else:
                entry = {"id": next_id, "segmentation": [], "area": round((x2 - x1) * (y2 - y1), 2)}
                next_id += 1
            entry.update({"image_id": im.image_id, "category_id": cid, "bbox": bbox, "iscrowd": int(o.crowd)})
            annotations.append(entry)
    doc["annotations"] = annotations
    return doc


def _same_box(a: Any, b: list[float]) -> bool:
    return isinstance(a, list) and len(a) == 4 and all(abs(float(x) - y) < 1e-2 for x, y in zip(a, b, strict=True))


def write_coco(ds: CocoDataset, path: str | os.PathLike | None = None) -> None:
    target = Path(path) if path is not None else ds.path
    if target is None:
        raise ValueError("no path to write the COCO file to")
    atomic_write_text(target, json.dumps(coco_document(ds), ensure_ascii=False))


def coco_from_annotations(items: list[tuple[str, Annotation]], class_names: list[str]) -> CocoDataset:
    """Build a new COCO dataset from (file name relative to the image folder, annotation) pairs."""
    names = list(class_names)
    for _, ann in items:
        for n in ann.class_names:
            if n not in names:
                names.append(n)
    images = [CocoImage(i + 1, fname, ann.width, ann.height) for i, (fname, ann) in enumerate(items)]
    anns = {i + 1: ann for i, (_, ann) in enumerate(items)}
    return CocoDataset(None, names, list(range(1, len(names) + 1)), images, anns, {})
