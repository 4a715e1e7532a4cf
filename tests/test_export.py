"""Whole-dataset export/import and class rename (models.data.export): round trips lose nothing a format carries."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.data.annotations import Annotation, BoxObject, read_voc, write_voc
from models.data.annotations.yolo import read_class_file
from models.data.datasets import open_dataset
from models.data.export import ConversionCancelled, export_dataset, import_annotations, read_all, rename_class

W, H = 64, 48


def make_folder(root: Path, boxes: dict[str, list[BoxObject]], verified: tuple[str, ...] = ()) -> Path:
    """Images (and VOC files beside them for those in ``boxes`` with a list) in ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    img = np.zeros((H, W, 3), np.uint8)
    img[:, :, 1] = 90
    for name, objs in boxes.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(p), img)
        if objs is not None:
            write_voc(Annotation(p.name, W, H, 3, list(objs), verified=name in verified), p.with_suffix(".xml"))
    return root


def boxes_of(source) -> dict[str, list[tuple[str, tuple[float, ...]]]]:
    items, problems = read_all(source)
    assert problems == []
    return {e.name: sorted((o.name, tuple(round(v, 3) for v in o.box)) for o in ann.objects)
            for e, ann in items if ann is not None}


SAMPLE = {
    "a.png": [BoxObject("cat", (0, 0, 10, 12), difficult=True), BoxObject("dog", (5.5, 6.25, 40, 47))],
    "sub/b.png": [BoxObject("dog", (1, 2, 63, 47), truncated=True)],
    "c.png": [],  # labelled, no objects
    "d.png": None,  # not labelled
}


@pytest.mark.parametrize("fmt", ["voc", "coco", "yolo"])
def test_export_reopens_with_same_boxes(tmp_path, fmt):
    src = open_dataset(make_folder(tmp_path / "src", SAMPLE, verified=("a.png",)))
    report = export_dataset(src, fmt, tmp_path / "out")
    want = {Path(k).name: v for k, v in boxes_of(src).items()}
    if fmt == "yolo":  # YOLO has no difficult flag: the export leaves such a box out, and says so
        flagged = {(o.name, o.box) for objs in SAMPLE.values() for o in objs or [] if o.difficult or o.crowd}
        want["a.png"] = [b for b in want["a.png"] if b not in flagged]
        assert report.left_out == 1 and "(1 crowd or difficult box left out: YOLO has no flag for them)" in report.summary()
    else:
        assert report.left_out == 0 and "left out" not in report.summary()
    assert report.images == 4 and report.annotations == 3 and not report.problems
    assert report.boxes == sum(len(v) for v in want.values())
    out = open_dataset(tmp_path / "out")
    assert out.kind == fmt and len(out.entries) == 4
    got = {Path(k).name.replace("sub_", ""): v for k, v in boxes_of(out).items()}
    if fmt == "coco":  # COCO lists every image: an unlabelled one reads back as "no objects"
        want["d.png"] = []
    assert got.keys() == want.keys()
    for k in want:
        assert [n for n, _ in got[k]] == [n for n, _ in want[k]]
        for (_, gb), (_, wb) in zip(got[k], want[k], strict=True):
            assert gb == pytest.approx(wb, abs=1e-3)
    assert read_class_file(tmp_path / "out" / "classes.txt") == ["cat", "dog"] if fmt != "coco" else True
    if fmt == "voc":  # VOC keeps the flags and LabelImg's verified mark
        ann = read_voc(tmp_path / "out" / "Annotations" / "a.xml")
        assert ann.verified and ann.objects[0].difficult
        assert read_voc(tmp_path / "out" / "Annotations" / "b.xml").objects[0].truncated


def test_export_skips_unreadable_annotation_and_image_with_reasons(tmp_path):
    root = make_folder(tmp_path / "src", {"a.png": [BoxObject("cat", (1, 1, 9, 9))], "b.png": []})
    (root / "b.xml").write_text("<annotation><object>", encoding="utf-8")
    (root / "broken.png").write_bytes(b"")
    report = export_dataset(open_dataset(root), "yolo", tmp_path / "out")
    assert report.images == 1
    text = " ".join(report.problems)
    assert "b.xml" in text and "broken.png" in text


def test_export_refuses_its_own_folder_and_unknown_formats(tmp_path):
    src = open_dataset(make_folder(tmp_path / "src", {"a.png": []}))
    with pytest.raises(ValueError):
        export_dataset(src, "voc", tmp_path / "src")
    with pytest.raises(ValueError):
        export_dataset(src, "pascal", tmp_path / "out")


def test_export_can_be_cancelled(tmp_path):
    src = open_dataset(make_folder(tmp_path / "src", {f"{k}.png": [] for k in range(5)}))
    with pytest.raises(ConversionCancelled):
        export_dataset(src, "voc", tmp_path / "out", cancelled=lambda: True)


def test_export_uses_unsaved_overrides_and_reports_progress(tmp_path):
    src = open_dataset(make_folder(tmp_path / "src", {"a.png": None}))
    seen = []
    export_dataset(src, "voc", tmp_path / "out", progress=lambda f, m: seen.append(f),
                   overrides={0: Annotation("a.png", W, H, 3, [BoxObject("x", (1, 1, 5, 5))])})
    assert [o.name for o in read_voc(tmp_path / "out" / "Annotations" / "a.xml").objects] == ["x"]
    assert seen[-1] == 1.0 and all(0 <= f <= 1 for f in seen)


def test_voc_export_keeps_splits_and_flattens_clashing_names(tmp_path):
    root = make_folder(tmp_path / "src", {"x/img.png": [BoxObject("a", (1, 1, 5, 5))],
                                          "y/img.png": [BoxObject("b", (2, 2, 6, 6))]})
    src = open_dataset(root)
    src.splits = {"train": [0], "val": [1]}
    export_dataset(src, "voc", tmp_path / "out")
    out = open_dataset(tmp_path / "out")
    assert sorted(e.name for e in out.entries) == ["x_img.png", "y_img.png"]
    assert (tmp_path / "out" / "ImageSets" / "Main" / "train.txt").read_text().split() == ["x_img"]
    assert boxes_of(out) == {"x_img.png": [("a", (1, 1, 5, 5))], "y_img.png": [("b", (2, 2, 6, 6))]}


@pytest.mark.parametrize("fmt", ["voc", "coco", "yolo"])
def test_import_brings_annotations_onto_open_images(tmp_path, fmt):
    labelled = make_folder(tmp_path / "labelled", {"a.png": [BoxObject("cat", (3, 4, 30, 40))], "b.png": None})
    export_dataset(open_dataset(labelled), fmt, tmp_path / "exported")
    target_root = make_folder(tmp_path / "target", {"a.png": None, "b.png": None})
    target = open_dataset(target_root)
    report = import_annotations(target, open_dataset(tmp_path / "exported"))
    assert report.annotations >= 1
    assert [(o.name, o.box) for o in read_voc(target_root / "a.xml").objects] == [("cat", (3, 4, 30, 40))]


def test_import_never_replaces_an_unreadable_file(tmp_path):
    labelled = make_folder(tmp_path / "labelled", {"a.png": [BoxObject("cat", (3, 4, 30, 40))]})
    target_root = make_folder(tmp_path / "target", {"a.png": None})
    (target_root / "a.xml").write_text("<annotation", encoding="utf-8")
    report = import_annotations(open_dataset(target_root), open_dataset(labelled))
    assert (target_root / "a.xml").read_text() == "<annotation"
    assert "a.png" in " ".join(report.problems)


def test_rename_and_merge_in_voc_folder(tmp_path):
    root = make_folder(tmp_path / "src", {"a.png": [BoxObject("kitty", (1, 1, 9, 9)), BoxObject("dog", (2, 2, 8, 8))],
                                          "b.png": [BoxObject("dog", (1, 1, 9, 9))], "c.png": None})
    (root / "bad.png").write_bytes((root / "a.png").read_bytes())
    (root / "bad.xml").write_text("<annotation", encoding="utf-8")
    src = open_dataset(root)
    src.store.class_names[:] = ["kitty", "dog"]
    report = rename_class(src, "kitty", "cat")
    assert report.annotations == 1 and report.boxes == 1
    assert "bad.png" in " ".join(report.problems)
    assert [o.name for o in read_voc(root / "a.xml").objects] == ["cat", "dog"]
    assert src.store.class_names == ["cat", "dog"]
    report = rename_class(src, "dog", "cat")  # "cat" exists: a merge
    assert report.boxes == 2
    assert [o.name for o in read_voc(root / "b.xml").objects] == ["cat"]
    assert src.store.class_names == ["cat"]
    with pytest.raises(ValueError):
        rename_class(src, "cat", "  ")


def test_rename_and_merge_in_yolo_keep_indices_consistent(tmp_path):
    src0 = open_dataset(make_folder(tmp_path / "src", {"a.png": [BoxObject("a", (1, 1, 9, 9)), BoxObject("b", (2, 2, 8, 8)),
                                                                  BoxObject("c", (3, 3, 7, 7))]}))
    export_dataset(src0, "yolo", tmp_path / "y")
    y = open_dataset(tmp_path / "y")
    assert y.class_names == ["a", "b", "c"]
    rename_class(y, "b", "bee")
    assert read_class_file(tmp_path / "y" / "classes.txt") == ["a", "bee", "c"]
    rename_class(y, "a", "c")  # merge a into c: indices shift, every label rewritten
    again = open_dataset(tmp_path / "y")
    assert again.class_names == ["bee", "c"]
    assert [o.name for o in read_all(again)[0][0][1].objects] == ["c", "bee", "c"]


def test_rename_in_coco_writes_once_and_keeps_ids(tmp_path):
    src0 = open_dataset(make_folder(tmp_path / "src", {"a.png": [BoxObject("a", (1, 1, 9, 9))],
                                                        "b.png": [BoxObject("b", (1, 1, 9, 9))]}))
    export_dataset(src0, "coco", tmp_path / "c")
    c = open_dataset(tmp_path / "c")
    rename_class(c, "a", "alpha")
    rename_class(c, "b", "alpha")
    again = open_dataset(tmp_path / "c")
    assert again.class_names == ["alpha"]
    assert [o.name for _, ann in read_all(again)[0] for o in ann.objects] == ["alpha", "alpha"]


_coord = st.integers(min_value=0, max_value=W - 2)


@st.composite
def random_boxes(draw) -> list[BoxObject]:
    n = draw(st.integers(min_value=0, max_value=6))
    out = []
    for _ in range(n):
        x1, y1 = draw(_coord), draw(st.integers(min_value=0, max_value=H - 2))
        x2 = draw(st.integers(min_value=x1 + 1, max_value=W))
        y2 = draw(st.integers(min_value=y1 + 1, max_value=H))
        frac = draw(st.sampled_from([0.0, 0.25, 0.5]))
        out.append(BoxObject(draw(st.sampled_from(["cat", "dog", "bird"])),
                             (float(x1) + frac, float(y1), float(x2), float(y2) - frac / 2)))
    return out


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(objs=random_boxes())
def test_property_random_boxes_survive_voc_coco_yolo_voc(tmp_path_factory, objs):
    base = tmp_path_factory.mktemp("rt")
    src = open_dataset(make_folder(base / "voc0", {"img.png": objs}))
    export_dataset(src, "coco", base / "coco")
    export_dataset(open_dataset(base / "coco"), "yolo", base / "yolo")
    export_dataset(open_dataset(base / "yolo"), "voc", base / "voc1")
    back = read_voc(base / "voc1" / "Annotations" / "img.xml").objects
    assert [o.name for o in back] == [o.name for o in objs]
    for got, want in zip(back, objs, strict=True):
        assert got.box == pytest.approx(want.box, abs=0.01)
    shutil.rmtree(base)


def test_a_coco_export_to_yolo_leaves_crowd_regions_out_and_keeps_the_persons_polygons(tmp_path):
    import json

    root = tmp_path / "coco"
    (root / "images").mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "a.png"), np.zeros((H, W, 3), np.uint8))
    person = [10.3, 5.3, 30.3, 5.3, 20.3, 40.3]  # a triangle, and a second part: one person behind a pole
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": W, "height": H}],
           "categories": [{"id": 1, "name": "person"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10.3, 5.3, 30.0, 35.0], "iscrowd": 0,
                            "segmentation": [person, [35.3, 10.3, 40.3, 10.3, 40.3, 20.3]]},
                           {"id": 2, "image_id": 1, "category_id": 1, "bbox": [0, 0, 60, 40], "iscrowd": 1,
                            "segmentation": {"counts": [0, 2400], "size": [H, W]}}]}
    (root / "annotations").mkdir()
    (root / "annotations" / "instances.json").write_text(json.dumps(doc))
    report = export_dataset(open_dataset(root), "yolo", tmp_path / "out")
    assert report.boxes == 1 and report.left_out == 1
    lines = (tmp_path / "out" / "labels" / "a.txt").read_text().splitlines()
    assert len(lines) == 1 and len(lines[0].split()) > 5  # the person, as a polygon of both parts
    back = open_dataset(tmp_path / "out")
    (obj,) = read_all(back)[0][0][1].objects
    assert obj.box == pytest.approx((10.3, 5.3, 40.3, 40.3), abs=1e-3) and len(obj.outline) == 1
    assert "(1 crowd or difficult box left out" in report.summary()
