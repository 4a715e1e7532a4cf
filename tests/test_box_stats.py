"""Dataset box statistics: counts, problem boxes, anchor coverage; and the settings chosen from them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from models.boxes import box_iou
from models.data.annotations import Annotation, BoxObject, write_voc
from models.data.box_stats import BoxStats, anchor_coverage, compute_box_stats
from models.data.datasets import open_dataset
from models.data.synthetic import write_synthetic
from models.detection.anchors import AnchorGenerator
from models.detection.auto_settings import choose_settings


def _image(path: Path, w: int, h: int) -> None:
    cv2.imwrite(str(path), np.full((h, w, 3), 128, np.uint8))


@pytest.fixture()
def hand_made(tmp_path: Path) -> Path:
    return write_hand_made(tmp_path)


def write_hand_made(tmp_path: Path) -> Path:
    """A COCO file over four images: one clean, one with a zero-width box (the reader skips it), two identical
    boxes of one class (a duplicate) and a third of another class (not one), one box past the image border,
    and an image without boxes."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    sizes = {"a.png": (200, 100), "b.png": (120, 80), "c.png": (64, 64), "d.png": (50, 50)}
    for name, (w, h) in sizes.items():
        _image(tmp_path / name, w, h)
    anns = [(1, 1, [10, 10, 40, 30]), (1, 2, [60, 20, 60, 70]),
            (2, 1, [5, 5, 0, 25]), (2, 2, [20, 20, 40, 40]), (2, 2, [20, 20, 40, 40]), (2, 1, [20, 20, 40, 40]),
            (3, 1, [40, 40, 40, 20])]
    doc = {"images": [{"id": k + 1, "file_name": n, "width": w, "height": h}
                      for k, (n, (w, h)) in enumerate(sizes.items())],
           "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
           "annotations": [{"id": k + 1, "image_id": im, "category_id": c, "bbox": b, "iscrowd": 0,
                            "area": b[2] * b[3]} for k, (im, c, b) in enumerate(anns)]}
    (tmp_path / "instances.json").write_text(json.dumps(doc), encoding="utf-8")
    return tmp_path / "instances.json"


def test_counts_and_problems_of_hand_made_annotations(hand_made: Path) -> None:
    source = open_dataset(hand_made)
    stats = compute_box_stats(source)
    assert stats.n_images == 4 and stats.n_annotated == 3
    # The zero-width box is not among the objects the reader gives (so not counted), but it is listed.
    assert stats.boxes_per_class == {"cat": 3, "dog": 3}
    assert stats.images_per_class == {"cat": 3, "dog": 2}
    found = {(p.kind, p.image_name, p.box_index) for p in stats.problems}
    assert found == {("degenerate", "b.png", -1), ("duplicate", "b.png", 1), ("out_of_image", "c.png", 0)}
    names = [e.name for e in source.entries]
    assert all(names[p.image_index] == p.image_name for p in stats.problems)
    assert stats.problems_of("degenerate")[0].box == (5.0, 5.0, 5.0, 30.0)
    assert len(stats.boxes) == 6 and np.all(stats.widths > 0)
    i = int(np.where((stats.image_of == names.index("a.png")) & (stats.box_index == 1))[0][0])
    assert stats.sqrt_areas[i] == pytest.approx(math.sqrt(60 * 70))
    assert stats.ratios[i] == pytest.approx(70 / 60)


def test_a_voc_file_with_a_zero_size_box_is_listed(tmp_path: Path) -> None:
    """The VOC reader refuses the whole file; the statistics say which image and why instead of failing."""
    _image(tmp_path / "a.png", 100, 100)
    _image(tmp_path / "b.png", 100, 100)
    write_voc(Annotation("a.png", 100, 100, 3, [BoxObject("cat", (10, 10, 50, 50))]), tmp_path / "a.xml")
    (tmp_path / "b.xml").write_text("<annotation><size><width>100</width><height>100</height></size><object>"
                                    "<name>cat</name><bndbox><xmin>30</xmin><ymin>5</ymin><xmax>20</xmax>"
                                    "<ymax>40</ymax></bndbox></object></annotation>", encoding="utf-8")
    stats = compute_box_stats(open_dataset(tmp_path))
    assert stats.boxes_per_class == {"cat": 1}
    (problem,) = stats.problems
    assert (problem.kind, problem.image_name, problem.box_index) == ("degenerate", "b.png", -1)
    assert "object 1" in problem.detail and len(stats.unreadable) == 1


def test_counts_match_a_synthetic_set(tmp_path: Path) -> None:
    ds = write_synthetic(tmp_path / "syn", 8, seed=5)
    stats = compute_box_stats(ds)
    per_class: dict[str, int] = {}
    images: dict[str, set] = {}
    for i, entry in enumerate(ds.entries):
        for obj in ds.store.load(entry).objects:
            per_class[obj.name] = per_class.get(obj.name, 0) + 1
            images.setdefault(obj.name, set()).add(i)
    assert stats.n_images == 8
    assert {k: v for k, v in stats.boxes_per_class.items() if v} == per_class
    assert {k: len(v) for k, v in images.items()} == {k: v for k, v in stats.images_per_class.items() if v}
    assert stats.problems == []  # the generator draws tight boxes inside the image


def _stats_of(boxes: list[tuple[float, float, float, float]], size: tuple[int, int]) -> BoxStats:
    n = len(boxes)
    return BoxStats(class_names=["x"], n_images=1, n_annotated=1, boxes_per_class={"x": n},
                    images_per_class={"x": 1}, boxes=np.asarray(boxes, np.float32),
                    labels=np.zeros(n, np.int64), image_of=np.zeros(n, np.int64), box_index=np.arange(n),
                    box_image_size=np.tile(np.asarray(size, np.float32), (n, 1)),
                    image_sizes=np.asarray([size], np.float32))


def test_anchor_coverage_equals_the_whole_grid() -> None:
    """Hand-made boxes on a 200×100 image trained at shorter side 200 (scale 2): the best IoU per box over
    every anchor of the grid, computed directly, equals the coverage's; the share follows from it."""
    boxes = [(10, 10, 26, 26), (0, 0, 200, 100), (50, 40, 58, 44), (100, 10, 110, 90), (190, 90, 200, 100)]
    stats = _stats_of(boxes, (200, 100))
    sizes, ratios, stride = (16, 32, 64), (0.5, 1.0, 2.0), 8
    cov = anchor_coverage(stats, sizes, ratios, stride, min_size=200, max_size=400)
    grid = AnchorGenerator(sizes, ratios, stride)((math.ceil(200 / stride), math.ceil(400 / stride)))
    direct = box_iou(torch.tensor(boxes, dtype=torch.float32) * 2, grid).max(dim=1).values.numpy()
    assert np.allclose(cov.best_iou, direct, atol=1e-6)
    assert cov.unmatched_share == pytest.approx(float((direct < 0.7).mean()))
    assert 0 < cov.unmatched_share < 1  # the set mixes boxes the anchors fit and boxes they do not


def test_auto_settings_follow_the_boxes() -> None:
    """Small square objects get small anchors, a larger training size and one ratio; large elongated ones
    get large anchors and several ratios."""
    rng = np.random.default_rng(0)
    small, tall = [], []
    for _ in range(200):
        s = float(rng.uniform(8, 30))
        x, y = rng.uniform(0, 400, 2)
        small.append((x, y, x + s, y + s * rng.uniform(0.9, 1.1)))
        w = float(rng.uniform(60, 150))
        tall.append((x, y, x + w, y + w * rng.uniform(1.5, 4.0)))
    a = choose_settings(_stats_of(small, (640, 480)))
    b = choose_settings(_stats_of(tall, (640, 480)))
    assert a.anchor_ratios == [1.0]
    assert b.anchor_ratios == [1.0, 2.0, 4.0]
    assert max(a.anchor_sizes) < min(b.anchor_sizes) * 2
    assert a.min_size > b.min_size
    assert a.model["small_stride"] == 8
    assert a.unmatched_share < a.paper_unmatched_share and b.unmatched_share < 0.25
    for s in (a, b):
        steps = np.diff(np.log(s.anchor_sizes))
        assert np.all(steps <= math.log(1.45))  # neighbouring sizes keep IoU ≥ 0.7 for boxes between them
        assert all(s.reasons.get(k) for k in ("training size", "anchor sizes", "anchor ratios", "epochs"))
