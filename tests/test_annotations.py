"""Readers and writers of VOC, COCO and YOLO: conventions, hostile input, lossless round trips."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.data.annotations import (
    Annotation,
    AnnotationError,
    BoxObject,
    atomic_write_text,
    read_voc,
    write_voc,
)
from models.data.annotations.coco import coco_from_annotations, read_coco, write_coco
from models.data.annotations.orientation import fit_to_orientation, map_box
from models.data.annotations.voc import parse_voc
from models.data.annotations.yolo import parse_yolo, read_class_file, yolo_text
from models.data.io import apply_orientation

VOC_SAMPLE = b"""<annotation verified="yes">
  <filename>dog.jpg</filename>
  <size><width>100</width><height>80</height><depth>3</depth></size>
  <object><name>dog</name><truncated>1</truncated><difficult>0</difficult>
    <bndbox><xmin>1</xmin><ymin>1</ymin><xmax>10</xmax><ymax>20</ymax></bndbox></object>
  <object><name>cat</name><difficult>1</difficult>
    <bndbox><xmin>50.5</xmin><ymin>30</ymin><xmax>100</xmax><ymax>80</ymax></bndbox></object>
</annotation>"""


def test_voc_is_one_based_inclusive() -> None:
    ann = parse_voc(VOC_SAMPLE)
    assert ann.verified and (ann.width, ann.height) == (100, 80)
    dog, cat = ann.objects
    assert dog.box == (0.0, 0.0, 10.0, 20.0)  # pixels 0..9 → exclusive 10
    assert dog.truncated and not dog.difficult
    assert cat.difficult and cat.box == (49.5, 29.0, 100.0, 80.0)


def test_voc_write_read_round_trip(tmp_path: Path) -> None:
    ann = parse_voc(VOC_SAMPLE)
    path = tmp_path / "dog.xml"
    write_voc(ann, path)
    text = path.read_text()
    assert "<xmin>1</xmin>" in text and "<xmax>10</xmax>" in text and 'verified="yes"' in text
    again = read_voc(path)
    assert again.objects == ann.objects and again.verified


@pytest.mark.parametrize(
    "data, message",
    [
        (b"<annotation><object>", "malformed XML"),
        (b"<foo/>", "not a Pascal VOC"),
        (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
         b"<annotation>&lol2;</annotation>", "unsafe XML"),
        (b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><annotation>&x;</annotation>', "unsafe XML"),
        (b"<annotation><object><name>a</name><bndbox><xmin>5</xmin><ymin>5</ymin><xmax>2</xmax><ymax>9</ymax>"
         b"</bndbox></object></annotation>", "negative or zero size"),
        (b"<annotation><object><name>a</name><bndbox><xmin>x</xmin><ymin>5</ymin><xmax>2</xmax><ymax>9</ymax>"
         b"</bndbox></object></annotation>", "non-numeric"),
        (b"<annotation><object><bndbox/></object></annotation>", "no <name>"),
    ],
)
def test_voc_hostile_or_malformed_input_is_reported(data: bytes, message: str) -> None:
    with pytest.raises(AnnotationError, match=message):
        parse_voc(data, "bad.xml")


def test_voc_boxes_outside_image_are_kept_with_a_warning() -> None:
    ann = parse_voc(b"<annotation><size><width>10</width><height>10</height></size><object><name>a</name>"
                    b"<bndbox><xmin>5</xmin><ymin>5</ymin><xmax>20</xmax><ymax>9</ymax></bndbox></object>"
                    b"</annotation>")
    assert len(ann.objects) == 1 and "outside" in ann.warnings[0]


def test_malformed_xml_error_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "x.xml"
    p.write_text("<annotation>\n<object>\n<name>a</name>\n</annotation>\n")
    with pytest.raises(AnnotationError) as err:
        read_voc(p)
    assert err.value.line == 4 and "x.xml" in str(err.value)


def _coco_doc() -> dict:
    return {
        "info": {"description": "kept"},
        "images": [{"id": 7, "file_name": "a.jpg", "width": 100, "height": 50, "license": 3}],
        "categories": [{"id": 18, "name": "dog", "supercategory": "animal"}, {"id": 3, "name": "car"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 18, "bbox": [10, 5, 20, 30], "iscrowd": 0,
             "segmentation": [[10, 5, 30, 5, 30, 35]], "area": 300},
            {"id": 2, "image_id": 7, "category_id": 3, "bbox": [0, 0, 5, 5], "iscrowd": 1},
        ],
    }


def test_coco_reads_xywh_and_keeps_unmodelled_fields(tmp_path: Path) -> None:
    p = tmp_path / "c.json"
    p.write_text(json.dumps(_coco_doc()))
    ds = read_coco(p)
    ann = ds.annotations[7]
    assert ds.class_names == ["dog", "car"]
    assert ann.objects[0].box == (10.0, 5.0, 30.0, 35.0) and ann.objects[1].crowd
    ann.objects.append(BoxObject("car", (50, 10, 60, 20)))
    write_coco(ds)
    doc = json.loads(p.read_text())
    assert doc["info"] == {"description": "kept"} and doc["images"][0]["license"] == 3
    dog = next(a for a in doc["annotations"] if a["category_id"] == 18)
    assert dog["segmentation"] == [[10, 5, 30, 5, 30, 35]]  # untouched object keeps its polygon
    assert sorted(a["bbox"] for a in doc["annotations"]) == [[0, 0, 5, 5], [10, 5, 20, 30], [50, 10, 10, 10]]
    assert len({a["id"] for a in doc["annotations"]}) == 3


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("images"), "no 'images'"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), "four numbers"),
        (lambda d: d["annotations"][0].update(category_id=99), "unknown category_id 99"),
        (lambda d: d["annotations"][0].update(image_id=99), "image_id 99"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, -3, 4]), "negative"),
        (lambda d: d["images"][0].update(id="seven"), "wrong type"),
    ],
)
def test_coco_wrong_fields_are_reported(tmp_path: Path, mutate, message: str) -> None:
    doc = _coco_doc()
    mutate(doc)
    p = tmp_path / "c.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(AnnotationError, match=message):
        read_coco(p)


def test_coco_malformed_json_names_line(tmp_path: Path) -> None:
    p = tmp_path / "c.json"
    p.write_text('{\n"images": [\n,]}')
    with pytest.raises(AnnotationError) as err:
        read_coco(p)
    assert err.value.line == 3


def test_yolo_parse_and_errors() -> None:
    ann = parse_yolo("0 0.5 0.5 0.2 0.4\n\n1 0.1 0.1 0.2 0.2\n", ["a", "b"], 200, 100)
    assert ann.objects[0].box == pytest.approx((80, 30, 120, 70))
    assert ann.objects[1].name == "b"
    with pytest.raises(AnnotationError, match="unknown class id 5") as err:
        parse_yolo("0 0.5 0.5 0.1 0.1\n5 0.5 0.5 0.1 0.1", ["a"], 10, 10, "l.txt")
    assert err.value.line == 2
    with pytest.raises(AnnotationError, match="negative or zero"):
        parse_yolo("0 0.5 0.5 -0.1 0.1", ["a"], 10, 10)
    with pytest.raises(AnnotationError, match="expected"):
        parse_yolo("0 0.5 0.5", ["a"], 10, 10)


def test_a_yolo_segmentation_line_is_a_polygon_whose_bounds_are_the_box() -> None:
    ann = parse_yolo("1 0.1 0.2 0.5 0.2 0.3 0.6\n0 0.5 0.5 0.2 0.4 0.9\n", ["a", "b"], 200, 100)
    polygon, scored = ann.objects
    assert polygon.name == "b" and polygon.box == pytest.approx((20, 20, 100, 60))
    assert polygon.outline == (pytest.approx((20, 20, 100, 20, 60, 60)),)
    assert scored.box == pytest.approx((80, 30, 120, 70)) and scored.outline == ()  # a box with a score after it
    with pytest.raises(AnnotationError, match="negative or zero"):
        parse_yolo("0 0.1 0.2 0.1 0.5 0.1 0.7", ["a"], 10, 10)  # all on one vertical line
    with pytest.raises(AnnotationError, match="not finite"):
        parse_yolo("0 .1 .1 nan .5 .5 .5", ["a"], 10, 10)
    # a writer's rounding past the edge is clipped, not a reason to read the line as a box
    rounded = parse_yolo("0 .1 .2 .5 .2 .5 1.0000001\n", ["a"], 100, 100).objects[0]
    assert rounded.box == pytest.approx((10, 20, 50, 100)) and rounded.outline
    with pytest.raises(AnnotationError, match="not finite"):
        parse_yolo("0 .1 .2 .5 .2 .5 nan", ["a"], 10, 10)
    worded = parse_yolo("0 .5 .5 .2 .2 tag two\n", ["a"], 100, 100).objects[0]  # words after a box: extra fields
    assert worded.box == pytest.approx((40, 40, 60, 60))
    # a box followed by a score and a track id is no polygon (a coordinate above 1), nor a pose line
    tracked = parse_yolo("0 .5 .5 .2 .2 .9 7\n", ["a"], 100, 100).objects[0]
    assert tracked.box == pytest.approx((40, 40, 60, 60)) and tracked.outline == ()
    keypoints = parse_yolo("0 .5 .5 .2 .2 .45 .45 .55 .55\n", ["a"], 100, 100, polygons=False).objects[0]
    assert keypoints.box == pytest.approx((40, 40, 60, 60)) and keypoints.outline == ()


def test_a_pose_datasets_keypoints_are_not_read_as_polygons(tmp_path: Path) -> None:
    import cv2

    from models.data.datasets import open_dataset

    root = tmp_path / "pose"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    cv2.imwrite(str(root / "images" / "a.png"), np.zeros((100, 100, 3), np.uint8))
    (root / "labels" / "a.txt").write_text("0 .5 .5 .2 .2 .45 .45 .55 .55\n")
    (root / "data.yaml").write_text("names: [person]\nkpt_shape: [2, 2]\n")
    source = open_dataset(root)
    assert source.store.load(source.entries[0]).objects[0].box == pytest.approx((40, 40, 60, 60))
    (root / "classes.txt").write_text("person\n")  # saving a new class writes one beside data.yaml
    source = open_dataset(root)
    assert source.store.load(source.entries[0]).objects[0].box == pytest.approx((40, 40, 60, 60))
    (root / "classes.txt").unlink()
    (root / "data.yaml").write_text("names: [person]\n")  # a segmentation dataset: the same line is a polygon
    source = open_dataset(root)
    assert source.store.load(source.entries[0]).objects[0].box == pytest.approx((20, 20, 55, 55))


def test_yolo_class_files(tmp_path: Path) -> None:
    (tmp_path / "classes.txt").write_text("cat\ndog\n\n")
    (tmp_path / "data.yaml").write_text("names:\n  0: person\n  1: bike\n")
    (tmp_path / "list.yaml").write_text("names: [x, y]\n")
    assert read_class_file(tmp_path / "classes.txt") == ["cat", "dog"]
    assert read_class_file(tmp_path / "data.yaml") == ["person", "bike"]
    assert read_class_file(tmp_path / "list.yaml") == ["x", "y"]


boxes = st.tuples(st.integers(0, 500), st.integers(0, 400), st.integers(1, 300), st.integers(1, 300)).map(
    lambda t: (float(t[0]), float(t[1]), float(min(t[0] + t[2], 640)), float(min(t[1] + t[3], 480)))
).filter(lambda b: b[2] > b[0] and b[3] > b[1])
objects = st.lists(st.builds(BoxObject, st.sampled_from(["cat", "dog", "car"]), boxes, st.booleans()),
                   max_size=8)


@settings(max_examples=60, deadline=None)
@given(objects)
def test_random_boxes_survive_voc_coco_yolo_round_trip(objs: list[BoxObject]) -> None:
    classes = ["cat", "dog", "car"]
    ann = Annotation("img.jpg", 640, 480, 3, objs)
    voc = parse_voc(__import__("models.data.annotations.voc", fromlist=["voc_bytes"]).voc_bytes(ann))
    assert [(o.name, o.box, o.difficult) for o in voc.objects] == [(o.name, o.box, o.difficult) for o in objs]
    ds = coco_from_annotations([("img.jpg", voc)], classes)
    from models.data.annotations.coco import coco_document, parse_coco

    coco = parse_coco(coco_document(ds)).annotations[1]
    assert [(o.name, o.box) for o in coco.objects] == [(o.name, o.box) for o in objs]
    yolo = parse_yolo(yolo_text(coco, classes), classes, 640, 480)
    for a, b in zip(yolo.objects, objs, strict=True):
        assert a.name == b.name
        assert np.allclose(a.box, b.box, atol=1e-3)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_box_mapping_follows_the_pixels(orientation: int) -> None:
    stored = np.zeros((40, 60), np.uint8)
    stored[5:15, 20:50] = 1  # box (20, 5, 50, 15) on stored pixels
    shown = apply_orientation(stored[:, :, None].repeat(3, 2), orientation)[:, :, 0]
    ys, xs = np.nonzero(shown)
    expected = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert map_box((20, 5, 50, 15), orientation, 60, 40) == expected


def test_fit_to_orientation_only_when_size_is_the_stored_one() -> None:
    ann = Annotation("a.jpg", 60, 40, 3, [BoxObject("a", (20, 5, 50, 15))])
    assert fit_to_orientation(ann, 6, 60, 40)
    assert (ann.width, ann.height) == (40, 60) and ann.objects[0].box == (25, 20, 35, 50) and ann.warnings
    already = Annotation("a.jpg", 40, 60, 3, [BoxObject("a", (1, 2, 3, 4))])
    assert not fit_to_orientation(already, 6, 60, 40) and already.objects[0].box == (1, 2, 3, 4)


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path: Path, monkeypatch) -> None:
    p = tmp_path / "a.xml"
    p.write_text("old")

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        atomic_write_text(p, "new")
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["a.xml"]  # no temp file left behind
