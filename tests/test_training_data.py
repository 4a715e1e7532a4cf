"""The torch dataset over opened datasets: resizing, flips, skipped files, splits shared by GUI and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from models.data import splits as splits_module
from models.data.annotations import Annotation, BoxObject, write_voc
from models.data.datasets import open_dataset
from models.data.splits import SPLITS_FILE, dataset_splits, split_indices
from models.data.synthetic import SynthParams, write_synthetic
from models.data.training_data import DetectionDataset, class_names_of, collate, resize_scale

CLASSES = ["circle", "square", "triangle"]


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "set"
    write_synthetic(root, 4, seed=5, params=SynthParams(image_format="png"))
    return root


def _img(path: Path, w: int = 40, h: int = 30, value: int = 120) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), value, np.uint8))
    return path


def test_resize_scale_follows_shorter_side_unless_longer_exceeds_max() -> None:
    assert resize_scale(300, 400, 600, 1000) == pytest.approx(2.0)
    assert resize_scale(400, 300, 600, 1000) == pytest.approx(2.0)
    assert resize_scale(100, 1000, 600, 1000) == pytest.approx(1.0)  # 600/100 would make 6000 px
    assert resize_scale(1200, 1200, 600, 1000) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        resize_scale(0, 10)


def test_items_are_resized_tensors_with_scaled_boxes(synth_root: Path) -> None:
    src = open_dataset(synth_root)
    ds = DetectionDataset(src, [0, 1, 2, 3], CLASSES, min_size=200, max_size=260)
    assert len(ds) == 4 and ds.problems == []
    for i in range(4):
        image, t = ds[i]
        h0, w0 = t["orig_size"]
        ann = src.store.load(src.entries[t["index"]])
        assert (w0, h0) == (ann.width, ann.height)
        s = resize_scale(h0, w0, 200, 260)
        assert t["scale"] == pytest.approx(s)
        assert image.dtype == torch.float32 and image.shape == (3, round(h0 * s), round(w0 * s))
        assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
        assert min(image.shape[1:]) == 200 or max(image.shape[1:]) == 260
        factors = torch.tensor([image.shape[2] / w0, image.shape[1] / h0] * 2)
        assert torch.allclose(factors, torch.full((4,), s), atol=0.5 / min(h0, w0) + 1e-6)
        expected = torch.tensor([o.box for o in ann.objects], dtype=torch.float32) * factors
        assert t["boxes"].dtype == torch.float32 and torch.allclose(t["boxes"], expected)
        assert t["labels"].dtype == torch.int64
        assert t["labels"].tolist() == [CLASSES.index(o.name) + 1 for o in ann.objects]
        assert t["difficult"].dtype == torch.bool and not t["difficult"].any()
        assert t["path"] == str(src.entries[t["index"]].path)
    images, targets = collate([ds[0], ds[1]])
    assert isinstance(images, list) and len(images) == 2 and targets[1]["index"] == ds.indices[1]


def test_flip_mirrors_pixels_and_boxes(synth_root: Path) -> None:
    src = open_dataset(synth_root)
    plain = DetectionDataset(src, [0], CLASSES, min_size=320, max_size=480)
    flipped = DetectionDataset(src, [0], CLASSES, min_size=320, max_size=480, flip_prob=1.0)
    (a, ta), (b, tb) = plain[0], flipped[0]
    assert not ta["flipped"] and tb["flipped"]
    assert torch.equal(b, a.flip(-1))
    w = a.shape[-1]
    assert torch.allclose(tb["boxes"][:, 0], w - ta["boxes"][:, 2])
    assert torch.allclose(tb["boxes"][:, 2], w - ta["boxes"][:, 0])
    assert torch.equal(tb["boxes"][:, 1::2], ta["boxes"][:, 1::2])


def test_half_flip_is_seeded_and_changes_with_epoch(synth_root: Path) -> None:
    src = open_dataset(synth_root)
    ds = DetectionDataset(src, [0, 1, 2, 3], CLASSES, min_size=64, max_size=100, flip_prob=0.5, seed=3)
    draws = []
    for epoch in range(6):
        ds.set_epoch(epoch)
        draws.append(tuple(ds[i][1]["flipped"] for i in range(4)))
    again = DetectionDataset(src, [0, 1, 2, 3], CLASSES, min_size=64, max_size=100, flip_prob=0.5, seed=3)
    again.set_epoch(2)
    assert tuple(again[i][1]["flipped"] for i in range(4)) == draws[2]
    flat = [f for d in draws for f in d]
    assert any(flat) and not all(flat)


def _box_of(mask: np.ndarray) -> list[float]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return [float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)]


def test_quarter_turns_carry_the_boxes_with_the_pixels(synth_root: Path) -> None:
    """Paint each box into a mask, turn the mask as numpy does, and read the box back: it must be the
    dataset's turned box, and the turned image must be the plain one turned."""
    src = open_dataset(synth_root)
    plain = DetectionDataset(src, [0, 1], CLASSES, min_size=200, max_size=300)
    turned = DetectionDataset(src, [0, 1], CLASSES, min_size=200, max_size=300, rotate90=True, seed=1)
    seen = set()
    for epoch in range(8):
        turned.set_epoch(epoch)
        for i in range(2):
            (a, ta), (b, tb) = plain[i], turned[i]
            k = tb["quarter_turns"]
            seen.add(k)
            assert torch.equal(b, torch.rot90(a, k, dims=(1, 2)))
            for box, moved in zip(ta["boxes"].numpy(), tb["boxes"].numpy(), strict=True):
                mask = np.zeros(a.shape[1:], bool)
                x1, y1, x2, y2 = (int(round(float(v))) for v in box)
                mask[y1:y2, x1:x2] = True
                expected = _box_of(np.rot90(mask, k))
                assert np.allclose(moved, expected, atol=0.51)
            assert torch.equal(tb["labels"], ta["labels"])
    assert seen == {0, 1, 2, 3}


def test_train_sizes_pick_the_shorter_side_per_image(synth_root: Path) -> None:
    src = open_dataset(synth_root)
    ds = DetectionDataset(src, [0, 1, 2, 3], CLASSES, min_size=999, max_size=2000, train_sizes=[100, 160])
    sides = set()
    for epoch in range(5):
        ds.set_epoch(epoch)
        for i in range(4):
            image, t = ds[i]
            sides.add(min(image.shape[1:]))
            assert t["scale"] == pytest.approx(min(image.shape[1:]) / min(t["orig_size"]), abs=0.01)
    assert sides == {100, 160}


def test_broken_annotations_are_skipped_and_missing_ones_mean_no_objects(tmp_path: Path) -> None:
    _img(tmp_path / "a.png")
    _img(tmp_path / "b.png")
    _img(tmp_path / "c.png")
    write_voc(Annotation("a.png", 40, 30, 3, [BoxObject("cat", (2, 3, 20, 25), difficult=True),
                                              BoxObject("dog", (5, 5, 10, 10)),
                                              BoxObject("cat", (30, 0, 50, 10))]), tmp_path / "a.xml")
    (tmp_path / "b.xml").write_text("<annotation><object>")
    src = open_dataset(tmp_path)
    ds = DetectionDataset(src, [0, 1, 2], ["cat"], min_size=30, max_size=100)
    assert ds.indices == [0, 2]
    assert any("b.png" in p and "skipped" in p for p in ds.problems)
    assert any("dog" in p for p in ds.problems)  # a class outside the list is reported, not silently learnt
    _, ta = ds[0]
    assert ta["labels"].tolist() == [1, 1]
    assert ta["difficult"].tolist() == [True, False]
    assert ta["boxes"][1].tolist() == [30.0, 0.0, 40.0, 10.0]  # clipped to the image
    _, tc = ds[1]
    assert tc["boxes"].shape == (0, 4) and tc["labels"].shape == (0,)


def test_own_splits_are_used_voc_and_yolo(synth_root: Path, tmp_path: Path) -> None:
    src = open_dataset(synth_root)
    splits = dataset_splits(src)
    assert splits == src.splits and set(splits) == {"train", "test"}
    assert not (synth_root / SPLITS_FILE).exists()
    for split in ("train", "val"):
        _img(tmp_path / "y" / "images" / split / f"{split}1.png")
    (tmp_path / "y" / "labels").mkdir()
    (tmp_path / "y" / "classes.txt").write_text("cat\n")
    ysrc = open_dataset(tmp_path / "y")
    ysplits = dataset_splits(ysrc)
    assert set(ysplits) == {"train", "val"}
    assert split_indices(ysplits, "test") == ysplits["val"]
    with pytest.raises(KeyError, match="train, val"):
        split_indices(ysplits, "holdout")


def test_seeded_split_is_written_once_and_reused(tmp_path: Path) -> None:
    for i in range(8):
        _img(tmp_path / f"img{i}.png")
    src = open_dataset(tmp_path)
    first = dataset_splits(src, seed=1)
    assert len(first["test"]) == 2 and len(first["train"]) == 6
    doc = json.loads((tmp_path / SPLITS_FILE).read_text())
    assert sorted(doc["splits"]["test"]) == sorted(src.entries[i].name for i in first["test"])
    # Another seed on a later call does not reshuffle: the file wins, so GUI and CLI agree.
    assert dataset_splits(open_dataset(tmp_path), seed=99) == first
    # A new image joins one split; the others stay where they were.
    _img(tmp_path / "img10.png")
    src2 = open_dataset(tmp_path)
    second = dataset_splits(src2, seed=1)
    names = {k: {src2.entries[i].name for i in v} for k, v in second.items()}
    old = {k: {src.entries[i].name for i in v} for k, v in first.items()}
    assert old["train"] <= names["train"] and old["test"] <= names["test"]
    assert "img10.png" in names["train"] | names["test"]


def test_read_only_folder_computes_the_split_and_says_so(tmp_path: Path, monkeypatch) -> None:
    for i in range(4):
        _img(tmp_path / f"img{i}.png")

    def refuse(path, text):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(splits_module, "atomic_write_text", refuse)
    src = open_dataset(tmp_path)
    splits = dataset_splits(src, seed=0)
    assert sorted(splits["train"] + splits["test"]) == [0, 1, 2, 3] and len(splits["test"]) == 1
    assert any("could not be saved" in p for p in src.problems)
    assert not (tmp_path / SPLITS_FILE).exists()
    assert dataset_splits(open_dataset(tmp_path), seed=0) == splits  # same seed → same split


def test_class_names(tmp_path: Path) -> None:
    _img(tmp_path / "f" / "a.png")
    _img(tmp_path / "f" / "b.png")
    write_voc(Annotation("a.png", 40, 30, 3, [BoxObject("zebra", (0, 0, 5, 5))]), tmp_path / "f" / "a.xml")
    write_voc(Annotation("b.png", 40, 30, 3, [BoxObject("ant", (0, 0, 5, 5))]), tmp_path / "f" / "b.xml")
    assert class_names_of(open_dataset(tmp_path / "f")) == ["ant", "zebra"]
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
            "categories": [{"id": 3, "name": "zebra"}, {"id": 1, "name": "ant"}], "annotations": []}
    (tmp_path / "f" / "c.json").write_text(json.dumps(coco))
    assert class_names_of(open_dataset(tmp_path / "f" / "c.json")) == ["zebra", "ant"]  # declared order


def test_class_filter_keeps_one_class_and_the_images_without_it_as_negatives(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        _img(tmp_path / "f" / f"{name}.png")
    write_voc(Annotation("a.png", 40, 30, 3, [BoxObject("person", (1, 1, 9, 20)), BoxObject("cup", (20, 5, 30, 15))]),
              tmp_path / "f" / "a.xml")
    write_voc(Annotation("b.png", 40, 30, 3, [BoxObject("cup", (2, 2, 8, 8))]), tmp_path / "f" / "b.xml")
    src = open_dataset(tmp_path / "f")  # c.png has no annotation at all
    ds = DetectionDataset(src, [0, 1, 2], ["person"], class_filter=True)
    assert len(ds) == 3 and ds.problems == [] and ds.left_out == 2
    labels = {Path(t.path).name: t.labels.tolist() for t in ds.targets}
    assert labels == {"a.png": [1], "b.png": [], "c.png": []}
    assert ds.targets[0].boxes.tolist() == [[1.0, 1.0, 9.0, 20.0]]
    # Without the filter a class outside the list is something to tell the user about.
    unfiltered = DetectionDataset(src, [0, 1, 2], ["person"])
    assert len(unfiltered.problems) == 2 and all("'cup' is not among the classes" in p for p in unfiltered.problems)
