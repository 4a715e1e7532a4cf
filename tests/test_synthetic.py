"""The synthetic shapes set: reproducible, boxes tight around visible pixels, the issue's constraints hold."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from models.boxes_numpy import box_iou_numpy
from models.data.annotations import read_voc
from models.data.datasets import open_dataset
from models.data.io import read_image
from models.data.synthetic import (
    SHAPES,
    SynthParams,
    available_photos,
    draw_image,
    mask_box,
    split_counts,
    write_synthetic,
)
from models.data.training_data import class_names_of


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_writes_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    a = write_synthetic(tmp_path / "a", 5, seed=7)
    b = write_synthetic(tmp_path / "b", 5, seed=7)
    c = write_synthetic(tmp_path / "c", 5, seed=8)
    fa, fb, fc = _files(Path(a)), _files(Path(b)), _files(Path(c))
    assert len(fa) == 5 + 5 + 2 + 1  # images, XML, two split lists, parameters
    assert fa == fb
    assert fa["JPEGImages/synth_000000.jpg"] != fc["JPEGImages/synth_000000.jpg"]


def test_image_i_does_not_depend_on_the_number_of_images(tmp_path: Path) -> None:
    small = _files(Path(write_synthetic(tmp_path / "s", 2, seed=3)))
    big = _files(Path(write_synthetic(tmp_path / "b", 4, seed=3)))
    assert small["JPEGImages/synth_000001.jpg"] == big["JPEGImages/synth_000001.jpg"]
    assert small["Annotations/synth_000001.xml"] == big["Annotations/synth_000001.xml"]


def test_drawn_images_meet_the_issue_constraints() -> None:
    params = SynthParams()
    backgrounds = set()
    n_objects = []
    for i in range(40):
        d = draw_image(11, i, params)
        h, w = d.pixels.shape[:2]
        assert 320 <= h <= 480 and 320 <= w <= 480
        assert d.pixels.dtype == np.uint8 and d.pixels.shape[2] == 3
        assert 1 <= len(d.objects) <= 6
        n_objects.append(len(d.objects))
        backgrounds.add(d.background.split(":")[0])
        for k, obj in enumerate(d.objects):
            assert obj.name in SHAPES
            # Tight: the box is exactly the extent of the shape's visible pixels.
            assert obj.box == mask_box(d.label_map == k + 1)
            side = max(obj.box[2] - obj.box[0], obj.box[3] - obj.box[1])
            assert 20 <= side <= 200
        for a, b in itertools.combinations(d.objects, 2):
            assert box_iou_numpy(np.array([a.box]), np.array([b.box]))[0, 0] <= 0.3 + 1e-9
    assert max(n_objects) >= 4  # several objects per image do occur
    assert "noise" in backgrounds
    if available_photos():
        assert "photo" in backgrounds


def test_some_pairs_overlap_and_some_colours_are_close_to_the_background() -> None:
    overlapping = 0
    close = 0
    for i in range(40):
        d = draw_image(5, i)
        overlapping += sum(box_iou_numpy(np.array([a.box]), np.array([b.box]))[0, 0] > 0.05 for a, b in itertools.combinations(d.objects, 2))
        for k, _ in enumerate(d.objects):
            inside = d.label_map == k + 1
            x1, y1, x2, y2 = (int(v) for v in mask_box(inside))
            ring = np.zeros_like(inside)
            ring[max(0, y1 - 4):y2 + 4, max(0, x1 - 4):x2 + 4] = True
            ring &= d.label_map == 0
            if ring.sum() < 20:
                continue
            diff = np.linalg.norm(d.pixels[inside].mean(0) - d.pixels[ring].mean(0))
            close += diff < 60
    assert overlapping >= 5
    assert close >= 5


def test_written_boxes_read_back_exactly_and_pixels_show_the_shapes(tmp_path: Path) -> None:
    ds = write_synthetic(tmp_path / "s", 3, seed=2, params=SynthParams(image_format="png"))
    for i, entry in enumerate(ds.entries):
        drawn = draw_image(2, i)
        ann = read_voc(tmp_path / "s" / "Annotations" / f"{Path(entry.name).stem}.xml")
        assert [(o.name, o.box) for o in ann.objects] == [(o.name, o.box) for o in drawn.objects]
        img = read_image(entry.path)
        assert (img.width, img.height) == (ann.width, ann.height)
        assert np.array_equal(img.pixels, drawn.pixels)  # PNG is lossless


def test_splits_are_written_disjoint_and_cover_everything(tmp_path: Path) -> None:
    assert split_counts(400, 0.25) == (300, 100)
    assert split_counts(1, 0.25) == (1, 0)
    assert split_counts(2, 0.1) == (1, 1)
    write_synthetic(tmp_path / "s", 8, seed=1)
    src = open_dataset(tmp_path / "s")
    assert src.kind == "voc"
    train, test = set(src.splits["train"]), set(src.splits["test"])
    assert len(train) == 6 and len(test) == 2
    assert not train & test and train | test == set(range(8))
    assert class_names_of(src) == ["circle", "square", "triangle"]


def test_refuses_a_foreign_folder_and_force_replaces_an_earlier_set(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(FileExistsError):
        write_synthetic(mine, 2, seed=0)
    with pytest.raises(FileExistsError):
        write_synthetic(mine, 2, seed=0, overwrite=True)  # never overwrites a folder we did not write
    out = tmp_path / "s"
    write_synthetic(out, 6, seed=0)
    with pytest.raises(FileExistsError):
        write_synthetic(out, 3, seed=0)
    ds = write_synthetic(out, 3, seed=0, overwrite=True)
    assert len(ds.entries) == 3
    assert len(list((out / "Annotations").glob("*.xml"))) == 3
    assert open_dataset(ds).root == out  # the result also acts as the dataset's path
