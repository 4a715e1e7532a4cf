"""YOLO text labels: one ``class cx cy w h`` line per box, normalised to the image size, classes by index.

The class list comes from ``classes.txt`` (one name a line) or a ``data.yaml`` (``names`` as a list or a
dict of index → name), as Ultralytics and LabelImg write them.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from models.annotations.atomic import atomic_write_text
from models.annotations.model import Annotation, AnnotationError, BoxObject, validate_objects


def parse_yolo(text: str, class_names: list[str], width: int, height: int, path: str | Path | None = None,
               filename: str = "") -> Annotation:
    if width <= 0 or height <= 0:
        raise AnnotationError(path, "image size unknown; YOLO labels need it to convert coordinates")
    objects: list[BoxObject] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) < 5:
            raise AnnotationError(path, f"expected 'class cx cy w h', got {line.strip()!r}", lineno)
        try:
            cls = int(parts[0])
            cx, cy, w, h = (float(v) for v in parts[1:5])
        except ValueError as exc:
            raise AnnotationError(path, f"not numbers: {line.strip()!r}", lineno) from exc
        if not 0 <= cls < len(class_names):
            raise AnnotationError(path, f"unknown class id {cls} (the class list has {len(class_names)})", lineno)
        if w <= 0 or h <= 0:
            raise AnnotationError(path, f"negative or zero box size: {line.strip()!r}", lineno)
        objects.append(BoxObject(class_names[cls], ((cx - w / 2) * width, (cy - h / 2) * height,
                                                     (cx + w / 2) * width, (cy + h / 2) * height)))
    ann = Annotation(filename, width, height, 3, objects)
    ann.warnings.extend(validate_objects(objects, width, height, path))
    return ann


def read_yolo(path: str | os.PathLike, class_names: list[str], width: int, height: int,
              filename: str = "") -> Annotation:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise AnnotationError(p, "not UTF-8 text") from exc
    except OSError as exc:
        raise AnnotationError(p, f"cannot read file ({exc.strerror or exc})") from exc
    return parse_yolo(text, class_names, width, height, p, filename)


def yolo_text(ann: Annotation, class_names: list[str]) -> str:
    """Label text; raises KeyError-like ValueError for a class not in the list (callers add it first)."""
    if ann.width <= 0 or ann.height <= 0:
        raise ValueError("annotation has no image size")
    lines = []
    for o in ann.objects:
        if o.name not in class_names:
            raise ValueError(f"class {o.name!r} is not in the YOLO class list")
        x1, y1, x2, y2 = o.box
        cx, cy = (x1 + x2) / 2 / ann.width, (y1 + y2) / 2 / ann.height
        w, h = (x2 - x1) / ann.width, (y2 - y1) / ann.height
        lines.append(f"{class_names.index(o.name)} {cx:.8f} {cy:.8f} {w:.8f} {h:.8f}")
    return "\n".join(lines) + ("\n" if lines else "")


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


def write_class_file(path: str | os.PathLike, class_names: list[str]) -> None:
    atomic_write_text(path, "\n".join(class_names) + "\n")
