"""YOLO text labels: one ``class cx cy w h`` line per box, normalised to the image size, classes by index.

A line of more than six fields with an even number of coordinates, all in [0, 1] (to a rounding's
:data:`POLYGON_SLACK`), is Ultralytics' segmentation form, ``class x1 y1 x2 y2 x3 y3 ...``: an object's
polygon, read as Ultralytics reads it for detection (its box the polygon's bounds) and kept as the object's
outline (copy-paste cuts objects along it). Written back as it was;
a relabelled object keeps its polygon, a moved or resized one becomes a box line (the polygon no longer says
where the object is). Not in a pose dataset (a ``data.yaml`` with ``kpt_shape``), whose lines are a box and its
keypoints: there, as before, every line is a box and what follows it extra fields.

The class list comes from ``classes.txt`` (one name a line) or a ``data.yaml`` (``names`` as a list or a
dict of index → name), as Ultralytics and LabelImg write them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from models.data.annotations.atomic import atomic_write_text
from models.data.annotations.fidelity import (
    SourceRecord,
    match_origins,
    new_key,
    new_object_groups,
    same_box,
    source_of,
    unchanged,
)
from models.data.annotations.model import (
    Annotation,
    AnnotationError,
    BoxObject,
    joined_polygon,
    validate_objects,
)


@dataclass(eq=False)
class YoloSource(SourceRecord):
    """A label file as read: its lines (with their endings), and for each object its line and class index."""

    lines: list[str] = field(default_factory=list)
    object_lines: list[int] = field(default_factory=list)
    class_ids: list[int] = field(default_factory=list)
    #: Per object: its line is a polygon (the segmentation form), not a box.
    polygon_lines: list[bool] = field(default_factory=list)
    stores_verified = False


def parse_yolo(text: str, class_names: list[str], width: int, height: int, path: str | Path | None = None,
               filename: str = "", polygons: bool = True) -> Annotation:
    """``polygons``: lines in the segmentation form are polygons (the module's docstring); False for a pose
    dataset's labels."""
    if width <= 0 or height <= 0:
        raise AnnotationError(path, "image size unknown; YOLO labels need it to convert coordinates")
    objects: list[BoxObject] = []
    src = YoloSource(new_key(), text.encode("utf-8"), lines=text.splitlines(keepends=True))
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) < 5:
            raise AnnotationError(path, f"expected 'class cx cy w h', got {line.strip()!r}", lineno)
        try:
            cls = int(parts[0])
            values = [float(v) for v in parts[1:5]]
            polygon = polygons and len(parts) > 6 and len(parts) % 2 == 1 and _is_polygon(parts[1:])
            values = [min(max(float(v), 0.0), 1.0) for v in parts[1:]] if polygon else values
        except ValueError as exc:
            raise AnnotationError(path, f"not numbers: {line.strip()!r}", lineno) from exc
        if not all(math.isfinite(v) for v in values) or (polygon is None):
            raise AnnotationError(path, f"not finite numbers: {line.strip()!r}", lineno)
        if not 0 <= cls < len(class_names):
            raise AnnotationError(path, f"unknown class id {cls} (the class list has {len(class_names)})", lineno)
        outline: tuple[tuple[float, ...], ...] = ()
        if polygon:
            xs, ys = values[0::2], values[1::2]
            outline = (tuple(v for x, y in zip(xs, ys, strict=True) for v in (x * width, y * height)),)
            cx, cy, w, h = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, max(xs) - min(xs), max(ys) - min(ys)
        else:
            cx, cy, w, h = values
        if not w > 0 or not h > 0:
            raise AnnotationError(path, f"negative or zero box size: {line.strip()!r}", lineno)
        objects.append(BoxObject(class_names[cls], ((cx - w / 2) * width, (cy - h / 2) * height,
                                                     (cx + w / 2) * width, (cy + h / 2) * height),
                                 origin=(src.key, len(objects)), outline=outline))
        src.object_lines.append(lineno - 1)
        src.class_ids.append(cls)
        src.polygon_lines.append(polygon)
    ann = Annotation(filename, width, height, 3, objects)
    ann.warnings.extend(validate_objects(objects, width, height, path))
    src.file_objects = [replace(o) for o in objects]
    src.remember_loaded(ann)
    ann.source = src
    return ann


#: How far past [0, 1] a polygon's coordinate may lie (a writer's rounding) before the line is taken for a box
#: and extra fields instead; such coordinates are clipped onto the image.
POLYGON_SLACK = 1e-3


def _is_polygon(fields: list[str]) -> bool | None:
    """Whether the fields after the class (a count that fits a polygon) are a polygon's normalised coordinates:
    all in [0, 1] to :data:`POLYGON_SLACK`. False where a number lies clearly outside (a box with a score and a
    track id after it, or words); None where one is not finite (the line is refused)."""
    try:
        values = [float(v) for v in fields]
    except ValueError:  # words after a box: extra fields
        return False
    if not all(math.isfinite(v) for v in values):
        return None
    return all(-POLYGON_SLACK <= v <= 1.0 + POLYGON_SLACK for v in values)


def read_yolo(path: str | os.PathLike, class_names: list[str], width: int, height: int,
              filename: str = "", polygons: bool = True) -> Annotation:
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")  # not read_text: its newline translation would lose CRLF
    except UnicodeDecodeError as exc:
        raise AnnotationError(p, "not UTF-8 text") from exc
    except OSError as exc:
        raise AnnotationError(p, f"cannot read file ({exc.strerror or exc})") from exc
    return parse_yolo(text, class_names, width, height, p, filename, polygons)


def _line(o: BoxObject, cls: int, width: int, height: int) -> str:
    x1, y1, x2, y2 = o.box
    cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
    w, h = (x2 - x1) / width, (y2 - y1) / height
    return f"{cls} {cx:.8f} {cy:.8f} {w:.8f} {h:.8f}"


def yolo_text(ann: Annotation, class_names: list[str]) -> str:
    """Label text; raises KeyError-like ValueError for a class not in the list (callers add it first).

    An annotation read from a label file is written as that file with only the changed lines replaced: the
    order of lines, comments, blank lines, extra fields and the number formatting of untouched lines stay.
    A new file (an export from COCO) is written in the segmentation form where every object has an outline,
    so the polygons survive the conversion (an object in several parts as one polygon,
    :func:`~models.data.annotations.model.joined_polygon`); else as boxes, since Ultralytics reads a file with
    any polygon line as polygons only."""
    if ann.width <= 0 or ann.height <= 0:
        raise ValueError("annotation has no image size")
    for o in ann.objects:
        if o.name not in class_names:
            raise ValueError(f"class {o.name!r} is not in the YOLO class list")
    src = source_of(ann, YoloSource)
    if src is not None:
        return _patched_text(ann, class_names, src)
    polygons = [joined_polygon(o.outline) for o in ann.objects]
    if ann.objects and all(polygons):
        lines = [_polygon_line(poly, class_names.index(o.name), ann.width, ann.height)
                 for o, poly in zip(ann.objects, polygons, strict=True)]
    else:
        lines = [_line(o, class_names.index(o.name), ann.width, ann.height) for o in ann.objects]
    return "\n".join(lines) + ("\n" if lines else "")


def _polygon_line(poly: tuple[float, ...], cls: int, width: int, height: int) -> str:
    """An object's outline (its parts joined) in the segmentation form, normalised and clipped to the image."""
    coords = [min(max(v / (width if k % 2 == 0 else height), 0.0), 1.0) for k, v in enumerate(poly)]
    return " ".join([str(cls), *(f"{v:.6f}" for v in coords)])


def _patched_text(ann: Annotation, class_names: list[str], src: YoloSource) -> str:
    ids = [class_names.index(o.name) for o in ann.objects]
    original = "".join(src.lines)
    if unchanged(ann, src) and ids == src.class_ids:  # (a merge of classes renumbers them: not unchanged)
        return original
    targets = match_origins(ann.objects, src)
    nl = "\r\n" if "\r\n" in original else "\n"
    kept = [(o, cls, j) for o, cls, j in zip(ann.objects, ids, targets, strict=True) if j is not None]
    slots = sorted(j for _, _, j in kept)
    groups = new_object_groups(targets)

    def new_lines(g: int) -> list[str]:
        return [_line(ann.objects[k], ids[k], ann.width, ann.height) + nl for k in groups.get(g, [])]

    texts: dict[int, list[str]] = {}  # object index in the file → the lines that take its place
    for s, (slot, (o, cls, j)) in enumerate(zip(slots, kept, strict=True)):
        body = src.lines[src.object_lines[j]].rstrip("\r\n")
        moved = not same_box(o.box, src.file_objects[j].box)
        if src.polygon_lines[j] and moved:  # the polygon no longer says where the object is
            body = _line(o, cls, ann.width, ann.height)
        elif src.polygon_lines[j] and cls != src.class_ids[j]:  # relabelled: the same polygon
            body = " ".join([str(cls), *body.split()[1:]])
        elif cls != src.class_ids[j] or moved:
            extra = body.split()[5:]  # fields after the box (e.g. a score) are kept
            body = " ".join([_line(o, cls, ann.width, ann.height), *extra])
        slot_line = src.lines[src.object_lines[slot]]
        ending = slot_line[len(slot_line.rstrip("\r\n")):]
        after = new_lines(s + 1)
        texts[slot] = (new_lines(0) if s == 0 else []) + [body + (ending or (nl if after else ""))] + after
    out: list[str] = []
    line_to_object = {ln: k for k, ln in enumerate(src.object_lines)}
    for ln, line in enumerate(src.lines):
        k = line_to_object.get(ln)
        if k is None:
            out.append(line)  # a comment, a blank line
        elif k in texts:
            out.extend(texts[k])
    if not kept and groups:
        if out and not out[-1].endswith(("\n", "\r")):
            out[-1] += nl
        out.extend(new_lines(0))
    return "".join(out)


def write_yolo(ann: Annotation, path: str | os.PathLike, class_names: list[str]) -> None:
    atomic_write_text(path, yolo_text(ann, class_names))


def read_class_file(path: str | os.PathLike) -> list[str]:
    """``classes.txt`` (a name a line) or ``data.yaml``/``.yml`` (``names``)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError(p, f"cannot read class list ({exc})") from exc
    if p.suffix.lower() in (".yaml", ".yml"):
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise AnnotationError(p, f"malformed YAML: {exc}") from exc
        names = doc.get("names") if isinstance(doc, dict) else None
        if isinstance(names, dict):
            try:
                return [str(names[k]) for k in sorted(names, key=int)]
            except (TypeError, ValueError) as exc:
                raise AnnotationError(p, "'names' keys must be class indices") from exc
        if isinstance(names, list):
            return [str(n) for n in names]
        raise AnnotationError(p, "no 'names' list in data.yaml")
    return [line.strip() for line in text.splitlines() if line.strip()]


#: The dataset files Ultralytics describes a dataset with, beside its labels.
DATASET_YAMLS = ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml")


def declares_keypoints(root: str | os.PathLike) -> bool:
    """A pose dataset: one of the dataset YAMLs in ``root`` has ``kpt_shape``, so its label lines carry keypoints,
    not polygons. Whichever file gives the class names (a ``classes.txt`` beside it, as saving a new class
    writes one); a YAML that cannot be read counts as not saying so (the class-list reader says why)."""
    for name in DATASET_YAMLS:
        path = Path(root) / name
        if not path.is_file():
            continue
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(doc, dict) and "kpt_shape" in doc:
            return True
    return False


def write_class_file(path: str | os.PathLike, class_names: list[str]) -> None:
    atomic_write_text(path, "\n".join(class_names) + "\n")
