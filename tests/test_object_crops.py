"""One-object crops of a detection dataset (the pretrained cls-loc figure on COCO uses them): one labelled box
per crop with 30-100 % context per side, small and crowd boxes left out with a count, split by source image."""

from __future__ import annotations

from collections import Counter

import numpy as np

from models.data.datasets import open_dataset
from models.data.object_crops import crop_box, most_frequent_classes, write_object_crops
from models.data.splits import dataset_splits, split_indices
from models.data.synthetic import SynthParams, write_synthetic


def test_crop_box_adds_the_margins_and_clips_to_the_image() -> None:
    assert crop_box((20, 10, 60, 30), 100, 50, np.array([0.5, 0.5, 0.5, 0.5])) == (0, 0, 80, 40)
    assert crop_box((20, 10, 60, 30), 100, 50, np.array([1.0, 0.0, 1.0, 2.0])) == (0, 10, 100, 50)


def test_crops_hold_one_box_each_and_are_split_by_source_image(tmp_path) -> None:
    params = SynthParams(min_objects=2, max_objects=4, photo_fraction=0.0, image_format="png")
    source = open_dataset(write_synthetic(tmp_path / "multi", 12, seed=4, params=params).root)
    classes = most_frequent_classes(source, 2)
    counts = Counter(o.name for e in source.entries for o in source.store.load(e, None).objects)
    assert classes == [c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:2]]
    crops, report = write_object_crops(source, tmp_path / "crops", classes, seed=1, min_side=24)
    expected = sum(counts[c] for c in classes)
    assert report.train + report.test + report.too_small == expected
    assert sum(report.per_class.values()) == report.train + report.test == len(crops.entries)
    splits = dataset_splits(crops)
    train, test = split_indices(splits, "train"), split_indices(splits, "test")
    assert len(train) == report.train and len(test) == report.test and test
    for entry in crops.entries:
        ann = crops.store.load(entry, None)
        assert len(ann.objects) == 1 and ann.objects[0].name in classes
        x1, y1, x2, y2 = ann.objects[0].box
        assert 0 <= x1 < x2 <= ann.width and 0 <= y1 < y2 <= ann.height
        w, h = x2 - x1, y2 - y1
        # context of 30-100 % of the box's size on every side, unless the image's border cut it
        assert ann.width <= w * 3.0 + 2 and ann.height <= h * 3.0 + 2
    source_of = {crops.entries[i].name.rsplit("_", 1)[0]: ("test" if i in test else "train")
                 for i in range(len(crops.entries))}
    for i in range(len(crops.entries)):
        assert source_of[crops.entries[i].name.rsplit("_", 1)[0]] == ("test" if i in test else "train")
    assert "train and" in report.message() and "under the minimum side" in report.message() or not report.too_small
