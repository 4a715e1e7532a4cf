"""Nearest neighbours of CNN codes: every labelled box indexed through the one cache, neighbours by its
distance."""

from __future__ import annotations

import numpy as np

from models.data.datasets import open_dataset
from models.data.synthetic import write_synthetic
from models.detection.code_neighbours import build_code_index, nearest, same_class_share
from models.detection.features import FeatureCache, code_distances, random_efficientnet_extractor


def _index(tmp_path, cache):
    ds = write_synthetic(tmp_path / "syn", 4, seed=3)
    extractor = random_efficientnet_extractor(seed=1, input_size=64)
    return ds, extractor, build_code_index(open_dataset(ds.root), extractor, cache)


def test_every_labelled_box_is_indexed_and_a_second_pass_reads_the_cache(tmp_path) -> None:
    with FeatureCache(tmp_path / "codes.sqlite") as cache:
        ds, extractor, index = _index(tmp_path, cache)
        n_boxes = sum(len(ds.store.load(e).objects) for e in ds.entries)
        assert len(index) == n_boxes and index.codes.shape == (n_boxes, 1280)
        assert index.from_cache == 0
        again = build_code_index(open_dataset(ds.root), extractor, cache)
        assert again.from_cache == n_boxes
        np.testing.assert_allclose(again.codes, index.codes)


def test_neighbours_are_the_k_nearest_by_the_cache_distance(tmp_path) -> None:
    _, _, index = _index(tmp_path, None)
    query_row = 2
    found = nearest(index, index.codes[query_row], k=4, exclude_row=query_row)
    distances = code_distances(index.codes[query_row], index.codes)
    expected = [int(r) for r in np.argsort(distances, kind="stable") if r != query_row][:4]
    assert [nb.row for nb in found] == expected
    assert [nb.distance for nb in found] == sorted(nb.distance for nb in found)
    assert all(abs(nb.distance - distances[nb.row]) < 1e-9 for nb in found)
    # Euclidean, by hand for one pair.
    a, b = index.codes[query_row].astype(np.float64), index.codes[found[0].row].astype(np.float64)
    assert abs(found[0].distance - np.sqrt(((a - b) ** 2).sum())) < 1e-6


def test_same_class_share_counts_neighbours_of_the_same_class(tmp_path) -> None:
    _, _, index = _index(tmp_path, None)
    share = same_class_share(index, k=2)
    by_hand = []
    for row, box in enumerate(index.boxes):
        by_hand += [nb.box.class_name == box.class_name for nb in nearest(index, index.codes[row], 2, row)]
    assert share == sum(by_hand) / len(by_hand)


def test_an_unreadable_image_is_reported_and_the_rest_indexed(tmp_path) -> None:
    ds = write_synthetic(tmp_path / "syn", 3, seed=4)
    victim = ds.entries[0].path
    victim.write_bytes(b"not an image")
    index = build_code_index(open_dataset(ds.root), random_efficientnet_extractor(input_size=64))
    assert len(index.problems) == 1 and str(victim) in index.problems[0]
    assert {b.entry_index for b in index.boxes} <= {1, 2} and len(index) > 0
