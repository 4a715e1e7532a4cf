"""Recognising what the user opened, and reading/writing annotations through each layout's store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.data.annotations import Annotation, AnnotationError, BoxObject
from models.data.datasets import natural_key, open_dataset
from tests.conftest import SHARED_DATA


def _img(path: Path, w: int = 40, h: int = 30) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), 120, np.uint8))
    return path


def test_natural_sort() -> None:
    names = ["img10.jpg", "img2.jpg", "Img1.jpg", "a/img3.jpg"]
    assert sorted(names, key=natural_key) == ["a/img3.jpg", "Img1.jpg", "img2.jpg", "img10.jpg"]


def test_plain_folder_recursive_with_voc_beside(tmp_path: Path) -> None:
    for name in ("b/img10.png", "img2.png", "img1.png", ".hidden/x.png"):
        _img(tmp_path / name)
    (tmp_path / "notes.txt").write_text("x")
    src = open_dataset(tmp_path)
    assert src.kind == "folder"
    assert [e.name for e in src.entries] == ["b/img10.png", "img1.png", "img2.png"]
    e = src.entries[1]
    assert src.store.load(e) is None and not src.store.has_annotation(e)
    src.store.save(e, Annotation("", 40, 30, 3, [BoxObject("cat", (1, 2, 10, 20))]))
    assert (tmp_path / "img1.xml").exists() and src.store.has_annotation(e)
    assert src.store.load(e).objects[0].box == (1, 2, 10, 20)
    assert src.class_names == ["cat"]


def test_annotation_folder_option(tmp_path: Path) -> None:
    _img(tmp_path / "imgs" / "a.png")
    src = open_dataset(tmp_path / "imgs", annotation_dir=tmp_path / "ann")
    src.store.save(src.entries[0], Annotation("", 40, 30, 3, [BoxObject("x", (0, 0, 5, 5))]))
    assert (tmp_path / "ann" / "a.xml").exists() and not (tmp_path / "imgs" / "a.xml").exists()


def test_voc_root_with_splits(tmp_path: Path) -> None:
    for stem in ("000001", "000002", "000003"):
        _img(tmp_path / "JPEGImages" / f"{stem}.jpg")
    (tmp_path / "Annotations").mkdir()
    main = tmp_path / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (main / "train.txt").write_text("000001\n000003\n")
    (main / "test.txt").write_text("000002\n")
    (main / "cat_train.txt").write_text("000001 1\n")
    src = open_dataset(tmp_path)
    assert src.kind == "voc" and len(src.entries) == 3
    assert src.splits == {"test": [1], "train": [0, 2]}
    src.store.save(src.entries[0], Annotation("", 40, 30, 3, [BoxObject("cat", (0, 0, 5, 5))]))
    assert (tmp_path / "Annotations" / "000001.xml").exists()


def test_yolo_root_with_data_yaml_and_splits(tmp_path: Path) -> None:
    _img(tmp_path / "images" / "train" / "a.jpg", 200, 100)
    _img(tmp_path / "images" / "val" / "b.jpg", 200, 100)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train" / "a.txt").write_text("1 0.5 0.5 0.2 0.4\n")
    (tmp_path / "data.yaml").write_text("names: [person, bike]\n")
    src = open_dataset(tmp_path)
    assert src.kind == "yolo" and src.class_names == ["person", "bike"]
    assert src.splits == {"train": [0], "val": [1]}
    ann = src.store.load(src.entries[0])
    assert ann.objects[0].name == "bike" and ann.objects[0].box == pytest.approx((80, 30, 120, 70))
    ann.objects.append(BoxObject("dog", (0, 0, 10, 10)))
    src.store.save(src.entries[0], ann)
    assert (tmp_path / "classes.txt").read_text().split() == ["person", "bike", "dog"]
    assert (tmp_path / "labels" / "train" / "a.txt").read_text().startswith("1 0.5")


def test_coco_json_with_sibling_image_folder(tmp_path: Path) -> None:
    _img(tmp_path / "val2017" / "x.jpg")
    (tmp_path / "annotations").mkdir()
    doc = {"images": [{"id": 1, "file_name": "x.jpg", "width": 40, "height": 30}],
           "categories": [{"id": 5, "name": "dog"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 5, "bbox": [1, 1, 10, 10]}]}
    jp = tmp_path / "annotations" / "instances_val2017.json"
    jp.write_text(json.dumps(doc))
    for path in (jp, tmp_path):
        src = open_dataset(path)
        assert src.kind == "coco" and src.root == tmp_path / "val2017"
        assert src.entries[0].path.exists() and src.store.load(src.entries[0]).objects[0].name == "dog"
    ann = src.store.load(src.entries[0])
    ann.objects.append(BoxObject("cat", (5, 5, 20, 20)))
    src.store.save(src.entries[0], ann)
    assert {c["name"] for c in json.loads(jp.read_text())["categories"]} == {"dog", "cat"}


def test_malformed_annotation_is_an_error_not_a_crash(tmp_path: Path) -> None:
    _img(tmp_path / "a.png")
    (tmp_path / "a.xml").write_text("<annotation><object>")
    src = open_dataset(tmp_path)
    with pytest.raises(AnnotationError, match="a.xml"):
        src.store.load(src.entries[0])


def test_unreadable_subfolder_is_reported(tmp_path: Path, monkeypatch) -> None:
    _img(tmp_path / "ok.png")
    locked = tmp_path / "locked"
    _img(locked / "x.png")
    real_scandir = os.scandir

    def scandir(path):  # chmod 0 does not stop root, who runs CI, so refuse the way the kernel would
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    src = open_dataset(tmp_path)
    assert [e.name for e in src.entries] == ["ok.png"] and "permission" in src.problems[0]


def test_missing_path() -> None:
    with pytest.raises(FileNotFoundError):
        open_dataset("/nonexistent/folder")


@pytest.mark.skipif(not (SHARED_DATA / "coco_tiny").exists(), reason="shared data absent")
def test_shared_coco_tiny_opens() -> None:
    src = open_dataset(SHARED_DATA / "coco_tiny" / "annotations" / "instances_val2017.json")
    assert len(src.entries) == 80 and all(e.path.exists() for e in src.entries)
    total = sum(len(src.store.load(e).objects) for e in src.entries)
    assert total == 815


def test_annotation_folder_mirrors_subfolders(tmp_path: Path) -> None:
    _img(tmp_path / "imgs" / "a" / "x.png")
    _img(tmp_path / "imgs" / "b" / "x.png")
    src = open_dataset(tmp_path / "imgs", annotation_dir=tmp_path / "ann")
    for k, e in enumerate(src.entries):
        src.store.save(e, Annotation("", 40, 30, 3, [BoxObject(f"c{k}", (0, 0, 5, 5))]))
    assert read_names(tmp_path / "ann" / "a" / "x.xml") == ["c0"]
    assert read_names(tmp_path / "ann" / "b" / "x.xml") == ["c1"]


def read_names(path: Path) -> list[str]:
    from models.data.annotations import read_voc

    return [o.name for o in read_voc(path).objects]
