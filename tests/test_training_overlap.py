"""The "images used to train this model" count: by file name on the training dataset itself, by content when
the evaluated dataset is another folder (two synthetic seeds share every file name and no image)."""

from __future__ import annotations

from pathlib import Path

from models.data.datasets import ImageEntry
from models.detection.training_overlap import training_overlap


def folder(root: Path, images: dict[str, bytes]) -> Path:
    for name, data in images.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def entries(image_dir: Path, names: list[str]) -> list[ImageEntry]:
    return [ImageEntry(image_dir / n, n) for n in names]


def info(train_root: Path | str, files: list[str]) -> dict:
    return {"split": {"name": "train", "files": files}, "config": {"data": str(train_root)}}


def test_same_dataset_counts_the_training_names(tmp_path: Path) -> None:
    root = folder(tmp_path / "set", {"JPEGImages/a.jpg": b"A", "JPEGImages/b.jpg": b"B", "JPEGImages/c.jpg": b"C"})
    ck = info(root, ["a.jpg", "b.jpg"])
    assert training_overlap(ck, root, entries(root / "JPEGImages", ["a.jpg", "b.jpg", "c.jpg"])) == 2
    assert training_overlap(ck, root, entries(root / "JPEGImages", ["c.jpg"])) == 0


def test_another_dataset_with_the_same_names_counts_only_identical_images(tmp_path: Path) -> None:
    seed0 = folder(tmp_path / "seed0", {"JPEGImages/a.jpg": b"A0", "JPEGImages/b.jpg": b"B0"})
    seed1 = folder(tmp_path / "seed1", {"JPEGImages/a.jpg": b"A1", "JPEGImages/b.jpg": b"B0"})  # b is a copy
    ck = info(seed0, ["a.jpg", "b.jpg"])
    assert training_overlap(ck, seed1, entries(seed1 / "JPEGImages", ["a.jpg", "b.jpg"])) == 1


def test_training_folder_gone_or_unrecorded_falls_back_to_names(tmp_path: Path) -> None:
    other = folder(tmp_path / "other", {"a.jpg": b"X"})
    mine = entries(other, ["a.jpg"])
    assert training_overlap(info(tmp_path / "deleted", ["a.jpg"]), other, mine) == 1
    assert training_overlap({"split": {"files": ["a.jpg"]}}, other, mine) == 1
    assert training_overlap(None, other, mine) == 0
    assert training_overlap({"split": {"name": "train"}}, other, mine) == 0
