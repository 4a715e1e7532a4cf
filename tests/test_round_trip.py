"""Files keep what they had: load → (edit) → save → load on generated VOC, COCO and YOLO files full of things
we do not model (other tools' tags, attributes and keys, comments, layouts). An untouched save, or an edit
that was undone, is byte-identical; a real edit changes only the edited objects."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from models.data.annotations import BoxObject, voc_bytes
from models.data.annotations.coco import coco_bytes, parse_coco, read_coco
from models.data.annotations.fidelity import same_box
from models.data.annotations.voc import parse_voc
from models.data.annotations.yolo import parse_yolo, yolo_text
from models.data.datasets import CocoStore, ImageEntry, VocStore

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

W, H = 640, 480
words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)
texts = st.text(alphabet="abc XYZ&<>é'\"0123", min_size=0, max_size=12)


@st.composite
def boxes(draw) -> tuple[int, int, int, int]:
    x1 = draw(st.integers(0, W - 20))
    y1 = draw(st.integers(0, H - 20))
    return x1, y1, draw(st.integers(x1 + 2, W)), draw(st.integers(y1 + 2, H))


# ------------------------------------------------------------------------------------------------------- VOC


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


@st.composite
def voc_files(draw) -> bytes:
    """A VOC file in one of several layouts with foreign elements, attributes and comments."""
    step = draw(st.sampled_from(["\t", "  ", "    "]))
    nl = draw(st.sampled_from(["\n", "\r\n"]))
    lines: list[str] = []
    if draw(st.booleans()):
        lines.append('<?xml version="1.0" encoding="utf-8"?>')
    if draw(st.booleans()):
        lines.append("<!-- written by another tool -->")
    attrs = draw(st.sampled_from(['', ' verified="yes"', ' verified="no"', ' tool="x" version="2"']))
    lines.append(f"<annotation{attrs}>")
    lines.append(f"{step}<folder>{_esc(draw(texts))}</folder>")
    lines.append(f"{step}<filename>{draw(words)}.jpg</filename>")
    if draw(st.booleans()):
        lines += [f"{step}<source>", f"{step}{step}<database>{_esc(draw(texts))}</database>",
                  f"{step}{step}<flickrid>{draw(st.integers(0, 10**9))}</flickrid>", f"{step}</source>"]
    if draw(st.booleans()):
        lines.append(f'{step}<owner kind="{_esc(draw(texts))}"><name>{_esc(draw(texts))}</name></owner>')
    lines.append(f"{step}<size><width>{W}</width><height>{H}</height><depth>3</depth></size>")
    for _ in range(draw(st.integers(0, 5))):
        x1, y1, x2, y2 = draw(boxes())
        obj = [f"{step}<object>", f"{step}{step}<name>{draw(words)}</name>"]
        if draw(st.booleans()):
            obj.append(f"{step}{step}<pose>{draw(st.sampled_from(['Left', 'Right', 'Frontal']))}</pose>")
        for flag in ("truncated", "difficult"):
            if draw(st.booleans()):
                obj.append(f"{step}{step}<{flag}>{draw(st.sampled_from(['0', '1']))}</{flag}>")
        if draw(st.booleans()):
            obj.append(f'{step}{step}<attributes><attribute name="{draw(words)}">{_esc(draw(texts))}'
                       "</attribute></attributes>")
        obj += [f"{step}{step}<bndbox>", f"{step}{step}{step}<xmin>{x1 + 1}</xmin>",
                f"{step}{step}{step}<ymin>{y1 + 1}</ymin>", f"{step}{step}{step}<xmax>{x2}</xmax>",
                f"{step}{step}{step}<ymax>{y2}</ymax>", f"{step}{step}</bndbox>"]
        if draw(st.booleans()):
            obj.append(f"{step}{step}<part><name>head</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax>"
                       "<ymax>5</ymax></bndbox></part>")
        obj.append(f"{step}</object>")
        lines += obj
        if draw(st.booleans()):
            lines.append(f'{step}<mytool:note xmlns:mytool="urn:t" id="{draw(st.integers(0, 99))}"/>')
    lines.append("</annotation>")
    return (nl.join(lines) + (nl if draw(st.booleans()) else "")).encode("utf-8")


def _xml(el: ET.Element) -> str:
    """An element serialised without its tail (the whitespace after it depends on its neighbours)."""
    tail, el.tail = el.tail, None
    try:
        return ET.tostring(el, encoding="unicode")
    finally:
        el.tail = tail


def _foreign(el: ET.Element) -> list[str]:
    """Every child that we do not model, serialised (what must survive an edit untouched)."""
    return [_xml(c) for c in el if c.tag not in ("name", "bndbox", "difficult", "truncated")]


@SETTINGS
@given(voc_files())
def test_voc_untouched_save_is_byte_identical(data: bytes) -> None:
    assert voc_bytes(parse_voc(data)) == data


@SETTINGS
@given(voc_files(), st.data())
def test_voc_edit_changes_only_the_edited_objects(data: bytes, draw) -> None:
    ann = parse_voc(data)
    n = len(ann.objects)
    keep = draw.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    objs = []
    for o, k in zip(ann.objects, keep, strict=True):
        if not k:
            continue  # deleted
        op = draw.draw(st.sampled_from(["none", "move", "rename", "difficult"]))
        if op == "move":
            o = o.moved(draw.draw(boxes()))
        elif op == "rename":
            o = replace(o, name=draw.draw(words) + " & co")
        elif op == "difficult":
            o = replace(o, difficult=not o.difficult)
        objs.append(o)
    if draw.draw(st.booleans()):
        objs = draw.draw(st.permutations(objs))  # the user reordered the boxes
    for _ in range(draw.draw(st.integers(0, 2))):  # new boxes, anywhere in the list
        objs.insert(draw.draw(st.integers(0, len(objs))), BoxObject(draw.draw(words), draw.draw(boxes())))
    ann.objects = objs
    ann.verified = draw.draw(st.booleans())
    out = voc_bytes(ann)
    back = parse_voc(out)
    assert [(o.name, o.box, o.difficult, o.truncated) for o in back.objects] == \
        [(o.name, tuple(float(v) for v in o.box), o.difficult, o.truncated) for o in ann.objects]
    assert back.verified == ann.verified
    before, after = ET.fromstring(data), ET.fromstring(out)
    # Everything outside the objects is untouched (the root's other attributes too).
    assert [_xml(c) for c in before if c.tag != "object"] == [_xml(c) for c in after if c.tag != "object"]
    assert {k: v for k, v in before.attrib.items() if k != "verified"} == \
        {k: v for k, v in after.attrib.items() if k != "verified"}
    # Kept objects keep every child we do not model (the file holds the objects in the order shown).
    before_objs, after_objs = before.findall("object"), after.findall("object")
    for m, o in enumerate(ann.objects):
        if o.origin is not None:
            assert _foreign(before_objs[o.origin[1]]) == _foreign(after_objs[m])
    # Comments and the declaration survive: the bytes before the root element are the same.
    assert out[:out.index(b"<annotation")] == data[:data.index(b"<annotation")]


@SETTINGS
@given(voc_files(), st.data())
def test_voc_edit_then_undo_is_byte_identical(data: bytes, draw) -> None:
    ann = parse_voc(data)
    if not ann.objects:
        ann.objects.append(BoxObject("x", (1.0, 1.0, 5.0, 5.0)))
        ann.objects.pop()
    else:
        k = draw.draw(st.integers(0, len(ann.objects) - 1))
        original = ann.objects[k]
        ann.objects[k] = original.moved((0, 0, 3, 3))
        ann.objects[k] = replace(ann.objects[k], box=original.box)  # the undo restores the old value
    assert voc_bytes(ann) == data


def test_voc_store_edit_and_undo_through_the_store(tmp_path: Path) -> None:
    """The issue's file: folder, source, owner and pose survive an edit; an undone edit leaves the bytes."""
    xml = (b'<annotation>\n\t<folder>VOC2007</folder>\n\t<filename>000001.jpg</filename>\n\t<source>\n'
           b'\t\t<database>The VOC2007 Database</database>\n\t\t<annotation>PASCAL VOC2007</annotation>\n'
           b'\t</source>\n\t<owner>\n\t\t<flickrid>Fried Camels</flickrid>\n\t</owner>\n'
           b'\t<size>\n\t\t<width>353</width>\n\t\t<height>500</height>\n\t\t<depth>3</depth>\n\t</size>\n'
           b'\t<segmented>0</segmented>\n\t<object>\n\t\t<name>dog</name>\n\t\t<pose>Left</pose>\n'
           b'\t\t<truncated>1</truncated>\n\t\t<difficult>0</difficult>\n\t\t<bndbox>\n\t\t\t<xmin>48</xmin>\n'
           b'\t\t\t<ymin>240</ymin>\n\t\t\t<xmax>195</xmax>\n\t\t\t<ymax>371</ymax>\n\t\t</bndbox>\n'
           b'\t</object>\n\t<object>\n\t\t<name>person</name>\n\t\t<pose>Left</pose>\n'
           b'\t\t<truncated>1</truncated>\n\t\t<difficult>0</difficult>\n\t\t<bndbox>\n\t\t\t<xmin>8</xmin>\n'
           b'\t\t\t<ymin>12</ymin>\n\t\t\t<xmax>352</xmax>\n\t\t\t<ymax>498</ymax>\n\t\t</bndbox>\n'
           b'\t</object>\n</annotation>\n')
    root = tmp_path / "VOC2007"
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    (root / "Annotations" / "000001.xml").write_bytes(xml)
    entry = ImageEntry(root / "JPEGImages" / "000001.jpg", "000001.jpg")
    store = VocStore(root / "Annotations", root / "JPEGImages")
    ann = store.load(entry)
    assert ann is not None
    store.save(entry, ann.copy())
    assert (root / "Annotations" / "000001.xml").read_bytes() == xml
    edited = ann.copy()
    edited.objects[1] = edited.objects[1].moved((10, 20, 300, 400))
    store.save(entry, edited)
    out = (root / "Annotations" / "000001.xml").read_bytes()
    expected = xml.replace(b"<xmin>8</xmin>", b"<xmin>11</xmin>").replace(b"<ymin>12</ymin>", b"<ymin>21</ymin>") \
        .replace(b"<xmax>352</xmax>", b"<xmax>300</xmax>").replace(b"<ymax>498</ymax>", b"<ymax>400</ymax>")
    assert out == expected


# ------------------------------------------------------------------------------------------------------ COCO

STYLES = [dict(), dict(indent=2), dict(indent=4), dict(separators=(",", ":")), dict(ensure_ascii=False),
          dict(indent="\t")]


@st.composite
def coco_docs(draw) -> dict:
    n_img = draw(st.integers(1, 3))
    cats = [{"id": 10 + k, "name": n, **({"supercategory": "thing"} if draw(st.booleans()) else {}),
             **({"keypoints": ["a", "b"]} if draw(st.booleans()) else {})}
            for k, n in enumerate(draw(st.lists(words, min_size=1, max_size=3, unique=True)))]
    images = [{"id": 100 + i, "file_name": f"im{i}.jpg", "width": W, "height": H,
               **({"license": 2, "flickr_url": "http://x/é"} if draw(st.booleans()) else {})}
              for i in range(n_img)]
    anns = []
    for k in range(draw(st.integers(0, 6))):
        x1, y1, x2, y2 = draw(boxes())
        w, h = (0, y2 - y1) if draw(st.integers(0, 9)) == 0 else (x2 - x1, y2 - y1)  # now and then zero-size
        a = {"id": 1000 + k, "image_id": draw(st.sampled_from(images))["id"],
             "category_id": draw(st.sampled_from(cats))["id"], "bbox": [x1, y1, w, h]}
        if draw(st.booleans()):
            a["segmentation"] = [[x1, y1, x1 + w, y1, x1 + w, y1 + h]]
            a["area"] = 0.5 * w * h
        if draw(st.booleans()):
            a["iscrowd"] = draw(st.sampled_from([0, 1]))
        if draw(st.booleans()):
            a["attributes"] = {"occluded": draw(st.booleans()), "note": draw(texts)}
        anns.append(a)
    doc: dict = {}
    keys = draw(st.permutations(["info", "images", "annotations", "categories", "licenses", "x_tool"]))
    for key in keys:
        doc[key] = {"images": images, "annotations": anns, "categories": cats,
                    "info": {"year": 2024, "description": draw(texts)}, "licenses": [{"id": 2, "name": "cc"}],
                    "x_tool": {"version": draw(st.integers(0, 9))}}[key]
    return doc


def _write_coco_file(path: Path, doc: dict, style: dict, newline: bool) -> bytes:
    data = (json.dumps(doc, **style) + ("\n" if newline else "")).encode("utf-8")
    path.write_bytes(data)
    return data


@SETTINGS
@given(coco_docs(), st.sampled_from(STYLES), st.booleans())
def test_coco_untouched_round_trip_is_byte_identical(tmp_path_factory, doc, style, newline) -> None:
    path = tmp_path_factory.mktemp("coco") / "instances.json"
    data = _write_coco_file(path, doc, style, newline)
    assert coco_bytes(read_coco(path)) == data


def _store_and_entries(path: Path) -> tuple[CocoStore, list[ImageEntry]]:
    ds = read_coco(path)
    return CocoStore(ds), [ImageEntry(path.parent / im.file_name, im.file_name, im.image_id) for im in ds.images]


@SETTINGS
@given(coco_docs(), st.sampled_from(STYLES), st.data())
def test_coco_edit_keeps_everything_else(tmp_path_factory, doc, style, draw) -> None:
    path = tmp_path_factory.mktemp("coco") / "instances.json"
    data = _write_coco_file(path, doc, style, True)
    store, entries = _store_and_entries(path)
    entry = draw.draw(st.sampled_from(entries))
    ann = store.load(entry)
    assert ann is not None
    store.save(entry, ann.copy())  # no change: the file is not even rewritten
    assert path.read_bytes() == data
    n = len(ann.objects)
    keep = draw.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    moved = draw.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    objs = [o.moved(draw.draw(boxes())) if m else o for o, k, m in zip(ann.objects, keep, moved, strict=True) if k]
    new = [BoxObject(draw.draw(st.sampled_from(doc["categories"]))["name"], draw.draw(boxes()))
           for _ in range(draw.draw(st.integers(0, 2)))]
    # (a new box identical to a deleted one takes over its entry, as a cut-and-paste should: not this test)
    assume(not any(same_box(o.box, f.box) for o in new for f in ann.objects))
    edited = ann.copy()
    edited.objects = list(objs)
    for o in new:
        edited.objects.insert(draw.draw(st.integers(0, len(edited.objects))), o)
    store.save(entry, edited)
    out = json.loads(path.read_bytes())
    assert list(out) == list(doc)  # key order
    for key in doc:
        if key != "annotations":
            assert out[key] == doc[key], key
    # Annotations of other images, zero-size ones, and untouched ones of this image: exactly as they were.
    shown = [a for a in doc["annotations"] if a["image_id"] == entry.coco_id and a["bbox"][2] and a["bbox"][3]]
    by_id = {a["id"]: a for a in out["annotations"]}
    for a in doc["annotations"]:
        if a not in shown:
            assert by_id[a["id"]] == a
    for a, k, m in zip(shown, keep, moved, strict=True):
        if not k:
            assert a["id"] not in by_id
            continue
        b = by_id[a["id"]]
        assert {k2: v for k2, v in b.items() if k2 not in ("bbox", "area")} == \
            {k2: v for k2, v in a.items() if k2 not in ("bbox", "area")}
        if not m:
            assert b == a
        elif a.get("segmentation"):
            assert b["area"] == a["area"]  # the mask's area, not the box's
    assert len(out["annotations"]) == len(doc["annotations"]) - keep.count(False) + len(new)
    # Loading the result shows exactly the edited objects.
    again = parse_coco(out).annotations[entry.coco_id]
    assert [(o.name, o.box) for o in again.objects] == \
        [(o.name, tuple(float(v) for v in o.box)) for o in edited.objects]
    # Undo: back to the objects as shown, back to the original bytes.
    store.save(entry, ann.copy())
    assert path.read_bytes() == data


def test_coco_untouched_save_does_not_rewrite(tmp_path: Path) -> None:
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}], "annotations": [
        {"id": 5, "image_id": 1, "category_id": 1, "bbox": [1.0, 1.0, 4.0, 4.0], "area": 16.0, "iscrowd": 0,
         "segmentation": [[1, 1, 5, 1, 5, 5]]}], "categories": [{"id": 1, "name": "cat"}]}
    path = tmp_path / "x.json"
    path.write_text(json.dumps(doc, indent=3))  # a layout we do not recognise
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    store, entries = _store_and_entries(path)
    store.save(entries[0], store.load(entries[0]))  # type: ignore[arg-type]
    assert os.stat(path).st_mtime_ns == 1_000_000_000


# ------------------------------------------------------------------------------------------------------ YOLO

number = st.one_of(st.floats(0.05, 0.95).map(lambda v: f"{v:.6f}"), st.floats(0.05, 0.95).map(lambda v: f"{v:.3g}"),
                   st.sampled_from(["0.5", ".25", "0.500000", "5e-1"]))


@st.composite
def yolo_files(draw) -> str:
    nl = draw(st.sampled_from(["\n", "\r\n"]))
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 9))
        if kind == 0:
            lines.append("# a comment")
        elif kind == 1:
            lines.append("")
        elif kind == 2:  # Ultralytics' segmentation form: a polygon
            x, y = draw(st.floats(0.05, 0.85)), draw(st.floats(0.05, 0.85))
            corners = [x, y, x + 0.1, y, x + 0.05, y + draw(st.sampled_from([0.1, 0.04]))]
            lines.append(" ".join([str(draw(st.integers(0, 2))), *(f"{v:.6f}" for v in corners)]))
        else:
            cx, cy = draw(number), draw(number)
            w = draw(st.sampled_from(["0.1", "0.05", ".2", "0.100000"]))
            extra = draw(st.sampled_from(["", " 0.87"]))
            sep = draw(st.sampled_from([" ", "  ", "\t"]))
            lines.append(sep.join([str(draw(st.integers(0, 2))), cx, cy, w, w]) + extra)
    text = nl.join(lines)
    return text + (nl if lines and draw(st.booleans()) else "")


NAMES = ["a", "b", "c"]


@SETTINGS
@given(yolo_files())
def test_yolo_untouched_is_identical(text: str) -> None:
    assert yolo_text(parse_yolo(text, NAMES, W, H), NAMES) == text


@SETTINGS
@given(yolo_files(), st.data())
def test_yolo_edit_keeps_untouched_lines(text: str, draw) -> None:
    ann = parse_yolo(text, NAMES, W, H)
    n = len(ann.objects)
    ops = draw.draw(st.lists(st.sampled_from(["keep", "delete", "move", "rename"]), min_size=n, max_size=n))
    objs = []
    for o, op in zip(ann.objects, ops, strict=True):
        if op == "move":
            o = o.moved(draw.draw(boxes()))
        elif op == "rename":
            o = replace(o, name=NAMES[(NAMES.index(o.name) + 1) % 3])
        if op != "delete":
            objs.append(o)
    for _ in range(draw.draw(st.integers(0, 2))):
        objs.insert(draw.draw(st.integers(0, len(objs))), BoxObject("c", draw.draw(boxes())))
    ann.objects = objs
    out = yolo_text(ann, NAMES)
    back = parse_yolo(out, NAMES, W, H)
    assert [o.name for o in back.objects] == [o.name for o in ann.objects]
    for a, b in zip(back.objects, ann.objects, strict=True):
        assert a.box == pytest.approx(b.box, abs=1e-3)
        # a polygon survives a relabel (same points) and is dropped when the box moves
        assert len(a.outline) == len(b.outline)
        for pa, pb in zip(a.outline, b.outline, strict=True):
            assert pa == pytest.approx(pb, abs=1e-3)
    object_lines = [ln for ln in text.splitlines(keepends=True) if ln.strip() and not ln.startswith("#")]
    out_lines = out.splitlines(keepends=True)
    for line, op in zip(object_lines, ops, strict=True):
        if op == "keep":
            assert line in out_lines or line + ("\r\n" if "\r\n" in text else "\n") in out_lines
    comments = [ln.rstrip("\r\n") for ln in text.splitlines() if not ln.strip() or ln.startswith("#")]
    assert [ln for ln in out.splitlines() if not ln.strip() or ln.startswith("#")][:len(comments)] == comments


def test_yolo_new_line_follows_the_files_line_endings() -> None:
    text = "# a comment\r\n0 0.500000 0.500000 0.1 0.1"
    ann = parse_yolo(text, NAMES, W, H)
    ann.objects.append(BoxObject("c", (0.0, 0.0, 2.0, 2.0)))
    out = yolo_text(ann, NAMES)
    assert out.startswith("# a comment\r\n0 0.500000 0.500000 0.1 0.1\r\n2 ") and out.endswith("\r\n")
    assert "\n" not in out.replace("\r\n", "")
