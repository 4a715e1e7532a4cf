"""Pascal VOC XML, as LabelImg and the VOC devkit write it.

VOC corners are 1-based and inclusive: a box over pixel columns 0..9 is ``xmin=1, xmax=10``. In memory
that is ``x1=0, x2=10`` (0-based, exclusive), so reading subtracts 1 from the minima only.
Parsing goes through defusedxml: annotation files come from strangers (entity bombs, external entities).
Writing an annotation that was read from a file patches that file (``voc_patch``): what we do not model is
kept, and an annotation without real changes is written back byte-identical.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from models.data.annotations.atomic import atomic_write_bytes
from models.data.annotations.fidelity import new_key, source_of
from models.data.annotations.model import Annotation, AnnotationError, BoxObject, validate_objects
from models.data.annotations.voc_patch import VocSource, patched_voc_bytes

MAX_XML_BYTES = 20_000_000


def _text(el: ET.Element | None, tag: str, default: str | None = None) -> str | None:
    if el is None:
        return default
    child = el.find(tag)
    if child is None or child.text is None:
        return default
    return child.text.strip()


def _flag(el: ET.Element, tag: str) -> bool:
    value = (_text(el, tag, "0") or "0").lower()
    return value in ("1", "true", "yes")


def parse_voc(data: bytes, path: str | Path | None = None) -> Annotation:
    if len(data) > MAX_XML_BYTES:
        raise AnnotationError(path, f"file is too large for an annotation ({len(data)} bytes)")
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise AnnotationError(path, f"refused unsafe XML ({type(exc).__name__})") from exc
    except ET.ParseError as exc:
        line = exc.position[0] if getattr(exc, "position", None) else None
        raise AnnotationError(path, f"malformed XML: {exc}", line) from exc
    if root.tag != "annotation":
        raise AnnotationError(path, f"not a Pascal VOC annotation (root element <{root.tag}>)")
    size = root.find("size")
    try:
        width = int(float(_text(size, "width", "0") or 0))
        height = int(float(_text(size, "height", "0") or 0))
        depth = int(float(_text(size, "depth", "3") or 3))
    except ValueError as exc:
        raise AnnotationError(path, f"<size> is not numeric: {exc}") from exc
    if width < 0 or height < 0:
        raise AnnotationError(path, f"negative image size {width}×{height}")
    objects: list[BoxObject] = []
    key = new_key()
    for i, obj in enumerate(root.findall("object")):
        name = _text(obj, "name")
        if not name:
            raise AnnotationError(path, f"object {i + 1} has no <name>")
        bnd = obj.find("bndbox")
        if bnd is None:
            raise AnnotationError(path, f"object {i + 1} ({name}) has no <bndbox>")
        try:
            xmin, ymin, xmax, ymax = (float(_text(bnd, t) or "nan") for t in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError as exc:
            raise AnnotationError(path, f"object {i + 1} ({name}) has a non-numeric coordinate") from exc
        objects.append(BoxObject(name, (xmin - 1.0, ymin - 1.0, xmax, ymax),
                                 difficult=_flag(obj, "difficult"), truncated=_flag(obj, "truncated"),
                                 origin=(key, i)))
    ann = Annotation(_text(root, "filename", "") or "", width, height, depth, objects,
                     verified=root.get("verified", "no").lower() == "yes")
    ann.warnings.extend(validate_objects(objects, width, height, path))
    src = VocSource(key, bytes(data), [replace(o) for o in objects])
    src.remember_loaded(ann)
    ann.source = src
    return ann


def read_voc(path: str | os.PathLike) -> Annotation:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise AnnotationError(p, f"cannot read file ({exc.strerror or exc})") from exc
    return parse_voc(data, p)


def _fmt(v: float) -> str:
    r = round(v)
    return str(int(r)) if abs(v - r) < 1e-6 else f"{v:.2f}"


def voc_bytes(ann: Annotation, folder: str = "", path: str = "") -> bytes:
    """The XML for ``ann``: its source file patched when it was read from one (``folder`` and ``path`` are then
    the file's own), else a new LabelImg-style document."""
    src = source_of(ann, VocSource)
    if src is not None:
        patched = patched_voc_bytes(ann, src)
        if patched is not None:
            return patched
    return new_voc_bytes(ann, folder, path)


def new_voc_bytes(ann: Annotation, folder: str = "", path: str = "") -> bytes:
    """A new VOC document, as LabelImg writes it."""
    root = ET.Element("annotation")
    if ann.verified:
        root.set("verified", "yes")
    ET.SubElement(root, "folder").text = folder
    ET.SubElement(root, "filename").text = ann.filename
    if path:
        ET.SubElement(root, "path").text = path
    src = ET.SubElement(root, "source")
    ET.SubElement(src, "database").text = "Unknown"
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(int(ann.width))
    ET.SubElement(size, "height").text = str(int(ann.height))
    ET.SubElement(size, "depth").text = str(int(ann.depth))
    ET.SubElement(root, "segmented").text = "0"
    for o in ann.objects:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = o.name
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "1" if o.truncated else "0"
        ET.SubElement(obj, "difficult").text = "1" if o.difficult else "0"
        bnd = ET.SubElement(obj, "bndbox")
        x1, y1, x2, y2 = o.box
        ET.SubElement(bnd, "xmin").text = _fmt(x1 + 1.0)
        ET.SubElement(bnd, "ymin").text = _fmt(y1 + 1.0)
        ET.SubElement(bnd, "xmax").text = _fmt(x2)
        ET.SubElement(bnd, "ymax").text = _fmt(y2)
    ET.indent(root, space="\t")
    return ET.tostring(root, encoding="utf-8", xml_declaration=False) + b"\n"


def write_voc(ann: Annotation, path: str | os.PathLike, image_path: str | os.PathLike | None = None) -> None:
    p = Path(path)
    folder = Path(image_path).parent.name if image_path else p.parent.name
    atomic_write_bytes(p, voc_bytes(ann, folder=folder, path=str(image_path) if image_path else ""))
