"""COCO instances JSON (bbox = [x, y, w, h], 0-based, in pixels).

Reading keeps the raw document so that writing back one edited image preserves everything we do not model:
the file's keys and their order, every image, category and annotation entry we did not change exactly as it
was (``segmentation``, ``area``, ``attributes``, other tools' keys), entries we skip on reading (zero-size
boxes), and the file's JSON layout (indentation, separators, ASCII escaping, final newline) when it is one
``json.dumps`` writes. An edited box keeps its entry's id and extra keys; only ``bbox``, ``category_id`` and
``iscrowd`` change (and ``area`` when it was the box's, i.e. there is no segmentation).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from models.data.annotations.atomic import atomic_write_bytes
from models.data.annotations.fidelity import (
    SourceRecord,
    content_key,
    match_origins,
    new_key,
    new_object_groups,
    same_box,
)
from models.data.annotations.model import (
    Annotation,
    AnnotationError,
    BoxObject,
    polygon_area,
    validate_objects,
)

MAX_JSON_BYTES = 2_000_000_000
#: How much of the file's start is kept to recognise its JSON layout.
_HEAD_BYTES = 1 << 20

#: ``json.dumps`` layouts a COCO file is commonly written in (pycocotools and most tools: the default).
_STYLES: tuple[dict[str, Any], ...] = tuple(
    {"indent": indent, "separators": seps, "ensure_ascii": ascii_}
    for ascii_ in (True, False)
    for indent, seps in ((None, (", ", ": ")), (None, (",", ":")), (2, (",", ": ")), (4, (",", ": ")),
                         (1, (",", ": ")), ("\t", (",", ": ")), (0, (",", ": ")))
)
_DEFAULT_STYLE: dict[str, Any] = {"indent": None, "separators": (", ", ": "), "ensure_ascii": False}


@dataclass
class CocoImage:
    image_id: int
    file_name: str
    width: int
    height: int


@dataclass(eq=False)
class CocoSource(SourceRecord):
    """The file as read: ``file_objects`` holds one entry per raw annotation (by index in the file)."""

    #: Raw annotation indices shown as objects, per image id (zero-size boxes are not: they are kept as is).
    loaded_indices: dict[int, list[int]] = field(default_factory=dict)
    #: ``content_key`` of each image's annotation as the file states it.
    file_keys: dict[int, tuple] = field(default_factory=dict)
    stores_verified = False
    #: The first bytes of the file and whether it ends with a newline: to write it back in its own layout.
    head: bytes = b""
    final_newline: bool = False


@dataclass
class CocoDataset:
    path: Path | None
    class_names: list[str]
    category_ids: list[int]  # parallel to class_names
    images: list[CocoImage]
    annotations: dict[int, Annotation]  # by image id
    raw: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: What was read (None for a dataset built in memory, e.g. an export).
    source: CocoSource | None = None

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
    src = CocoSource(new_key(), b"")
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
        box = (x, y, x + w, y + h)
        obj = BoxObject(id_to_name[cid], box, crowd=bool(a.get("iscrowd", 0)), origin=(src.key, i),
                        outline=_outline_of(_polygons(a.get("segmentation")), box))
        src.file_objects.append(obj)
        if w == 0 or h == 0:
            warnings.append(f"{what}: zero-size box skipped")
            continue
        by_id[iid].objects.append(replace(obj))
        src.loaded_indices.setdefault(iid, []).append(i)
    for im in images:
        ann = by_id[im.image_id]
        ann.warnings.extend(validate_objects(ann.objects, ann.width, ann.height, path))
        src.file_keys[im.image_id] = content_key(ann, verified=False)
    return CocoDataset(path, names, ids, images, by_id, doc, warnings, src)


def _polygons(segmentation: Any) -> tuple[tuple[float, ...], ...]:
    """COCO's polygon ``segmentation`` (a list of flat ``[x0, y0, x1, y1, ...]`` lists) as an outline; () for
    a run-length mask (crowd regions), none, or anything malformed: an outline is optional, a box is not."""
    if not isinstance(segmentation, list):
        return ()
    polygons = []
    for poly in segmentation:
        if (not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in poly)):
            return ()
        polygons.append(tuple(float(v) for v in poly))
    return tuple(polygons)


#: How far (pixels, or this share of the box's side where larger) an outline's bounds may lie from its box.
OUTLINE_SLACK_PX, OUTLINE_SLACK_SHARE = 2.0, 0.1


def _outline_of(outline: tuple[tuple[float, ...], ...], box: tuple[float, float, float, float]
                ) -> tuple[tuple[float, ...], ...]:
    """``outline`` where its bounds agree with ``box``, else (): a box moved or resized after its polygon was
    drawn (by us, which keeps the file's ``segmentation`` as it was, or by another tool) no longer has the
    polygon's shape, and cutting along the old polygon would ignore the correction."""
    if not outline:
        return ()
    xs = [v for poly in outline for v in poly[0::2]]
    ys = [v for poly in outline for v in poly[1::2]]
    sx = max(OUTLINE_SLACK_PX, OUTLINE_SLACK_SHARE * (box[2] - box[0]))
    sy = max(OUTLINE_SLACK_PX, OUTLINE_SLACK_SHARE * (box[3] - box[1]))
    near = (abs(min(xs) - box[0]) <= sx and abs(max(xs) - box[2]) <= sx
            and abs(min(ys) - box[1]) <= sy and abs(max(ys) - box[3]) <= sy)
    return outline if near else ()


def _outline_area(outline: tuple[tuple[float, ...], ...]) -> float:
    """Pixels inside an outline's polygons (the shoelace formula), COCO's ``area`` of a polygon object."""
    return sum(polygon_area(poly) for poly in outline)


def read_coco(path: str | os.PathLike) -> CocoDataset:
    p = Path(path)
    try:
        if p.stat().st_size > MAX_JSON_BYTES:
            raise AnnotationError(p, "file is too large")
        with open(p, "rb") as fb:
            head = fb.read(_HEAD_BYTES)
            if len(head) == _HEAD_BYTES:
                fb.seek(-1, os.SEEK_END)
                final_newline = fb.read(1) == b"\n"
            else:
                final_newline = head.endswith(b"\n")
        with open(p, encoding="utf-8") as f:
            doc = json.load(f)
    except json.JSONDecodeError as exc:
        raise AnnotationError(p, f"malformed JSON: {exc.msg}", exc.lineno) from exc
    except UnicodeDecodeError as exc:
        raise AnnotationError(p, "not UTF-8 text") from exc
    except OSError as exc:
        raise AnnotationError(p, f"cannot read file ({exc.strerror or exc})") from exc
    ds = parse_coco(doc, p)
    assert ds.source is not None
    ds.source.head, ds.source.final_newline = head, final_newline
    return ds


def _bbox(o: BoxObject) -> list[float]:
    x1, y1, x2, y2 = o.box
    return [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)]


def _patched_annotation(entry: dict, o: BoxObject, was: BoxObject, cid: int, iid: int) -> dict:
    """``entry`` (the file's) with only what differs between ``o`` and ``was`` changed; the same dict when
    nothing does."""
    changes: dict[str, Any] = {}
    if o.name != was.name or entry.get("category_id") != cid:
        changes["category_id"] = cid
    if not same_box(o.box, was.box):
        bbox = _bbox(o)
        changes["bbox"] = bbox
        if not entry.get("segmentation") or "area" not in entry:  # a mask's area stays the mask's
            changes["area"] = round(bbox[2] * bbox[3], 2)
    if bool(o.crowd) != bool(was.crowd):
        changes["iscrowd"] = int(o.crowd)
    if entry.get("image_id") != iid:
        changes["image_id"] = iid
    if not changes:
        return entry
    return {**entry, **changes}


def coco_document(ds: CocoDataset) -> dict[str, Any]:
    """The JSON document for ``ds``: the raw document with only what the model changed replaced.

    Keys keep their order; entries nobody changed are the very dicts that were read; edited annotations keep
    their ids and extra keys; deleted ones go; new ones are appended with new ids.
    """
    raw = ds.raw
    src = ds.source
    raw_images = [im for im in raw.get("images", []) if isinstance(im, dict)]
    raw_cats = [c for c in raw.get("categories", []) if isinstance(c, dict)]
    raw_anns = list(raw.get("annotations", [])) if isinstance(raw.get("annotations"), list) else []
    for ann in ds.annotations.values():  # classes added while labelling become categories
        for o in ann.objects:
            ds.category_id(o.name)

    images: list[dict] = []
    by_id = {im.image_id: im for im in ds.images}
    seen: set[int] = set()
    for entry in raw_images:
        im = by_id.get(entry.get("id"))
        if im is None:
            continue  # an image the dataset no longer lists
        seen.add(im.image_id)
        want = {"file_name": im.file_name, "width": im.width, "height": im.height}
        changes = {k: v for k, v in want.items() if entry.get(k) != v and (v or k == "file_name")}
        images.append({**entry, **changes} if changes else entry)
    for im in ds.images:
        if im.image_id not in seen:
            images.append({"id": im.image_id, "file_name": im.file_name, "width": im.width, "height": im.height})

    names = dict(zip(ds.category_ids, ds.class_names, strict=True))
    categories: list[dict] = []
    for entry in raw_cats:
        cid = entry.get("id")
        if cid not in names:
            continue  # merged into another class
        categories.append(entry if entry.get("name") == names[cid] else {**entry, "name": names[cid]})
    raw_cat_ids = {c.get("id") for c in raw_cats}
    for cid, name in names.items():
        if cid not in raw_cat_ids:
            categories.append({"id": cid, "name": name, "supercategory": name})

    # Which raw entry each object updates (only entries of its own image), and which objects are new. Per
    # image, the kept objects fill the places of their entries in the file in the order the user sees them, and
    # new objects go right after the kept object they follow (or before the first), so the file reads back in
    # the same order; an image with no kept entry gets its new ones at the end.
    at_slot: dict[int, tuple[BoxObject, int, int]] = {}  # raw index → (object, its own entry, image id)
    before: dict[int, list[tuple[BoxObject, int]]] = {}  # raw index → new objects written just before it
    after: dict[int, list[tuple[BoxObject, int]]] = {}  # raw index → new objects written just after it
    at_end: list[tuple[BoxObject, int]] = []
    shown: set[int] = set()  # raw indices that were objects of an image in the model
    for im in ds.images:
        ann = ds.annotations.get(im.image_id)
        if ann is None:
            continue
        iid = im.image_id
        if src is None:
            at_end.extend((o, iid) for o in ann.objects)
            continue
        mine = src.loaded_indices.get(iid, [])
        shown.update(mine)
        targets = match_origins(ann.objects, src, mine)
        kept = [(o, j) for o, j in zip(ann.objects, targets, strict=True) if j is not None]
        slots = sorted(j for _, j in kept)
        for slot, (o, j) in zip(slots, kept, strict=True):
            at_slot[slot] = (o, j, iid)
        for g, idx in new_object_groups(targets).items():
            objs = [(ann.objects[k], iid) for k in idx]
            if not slots:
                at_end.extend(objs)
            elif g == 0:
                before.setdefault(slots[0], []).extend(objs)
            else:
                after.setdefault(slots[g - 1], []).extend(objs)
    next_id = 1 + max((a.get("id", 0) for a in raw_anns if isinstance(a, dict) and isinstance(a.get("id"), int)),
                      default=0)

    def new_entry(o: BoxObject, iid: int) -> dict:
        nonlocal next_id
        bbox = _bbox(o)
        area = _outline_area(o.outline) if o.outline else bbox[2] * bbox[3]
        entry = {"id": next_id, "image_id": iid, "category_id": ds.category_id(o.name), "bbox": bbox,
                 "area": round(area, 2), "iscrowd": int(o.crowd), "segmentation": [list(p) for p in o.outline]}
        next_id += 1
        return entry

    annotations: list[Any] = []
    for j, entry in enumerate(raw_anns):
        if j in at_slot and src is not None:
            o, own, iid = at_slot[j]
            annotations.extend(new_entry(*n) for n in before.get(j, []))
            annotations.append(_patched_annotation(raw_anns[own], o, src.file_objects[own], ds.category_id(o.name),
                                                   iid))
            annotations.extend(new_entry(*n) for n in after.get(j, []))
        elif j not in shown:
            annotations.append(entry)  # never shown (a zero-size box, an image no longer listed): kept as is
    annotations.extend(new_entry(*n) for n in at_end)

    lists = {"images": images, "annotations": annotations, "categories": categories}
    doc = {k: lists.get(k, v) for k, v in raw.items()}
    for k, v in lists.items():
        doc.setdefault(k, v)
    return doc


def _style(ds: CocoDataset) -> dict[str, Any]:
    """The ``json.dumps`` arguments that reproduce the file's first bytes from its document, if any do."""
    src = ds.source
    if src is None or not src.head:
        return _DEFAULT_STYLE
    head = src.head
    for style in _STYLES:
        pos, ok = 0, True
        for chunk in json.JSONEncoder(**style).iterencode(ds.raw):
            b = chunk.encode("utf-8")
            n = min(len(b), len(head) - pos)
            if b[:n] != head[pos:pos + n]:
                ok = False
                break
            pos += len(b)
            if pos >= len(head):
                break
        if ok and (pos >= len(head) or head[pos:] == b"\n"):
            return style
    return _DEFAULT_STYLE


def coco_bytes(ds: CocoDataset) -> bytes:
    """The file's bytes: in the layout it was read in (when recognised), with a final newline if it had one."""
    text = json.dumps(coco_document(ds), **_style(ds))
    if ds.source is not None and ds.source.final_newline:
        text += "\n"
    return text.encode("utf-8")


def write_coco(ds: CocoDataset, path: str | os.PathLike | None = None) -> None:
    target = Path(path) if path is not None else ds.path
    if target is None:
        raise ValueError("no path to write the COCO file to")
    atomic_write_bytes(target, coco_bytes(ds))


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
