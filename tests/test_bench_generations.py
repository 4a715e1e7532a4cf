"""bench/generations.py measures what it says: R-CNN and Fast R-CNN really receive the same number of proposals on
every image (the first one included), proposal reads stay out of the network's columns, and the verdict lines
name each claim. Behaviour only: the figures themselves are in bench/README.md, never asserted here."""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def generations():
    spec = importlib.util.spec_from_file_location("bench_generations", ROOT / "bench" / "generations.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def _small_images(n: int) -> list[np.ndarray]:
    from models.data.synthetic import draw_image

    return [np.ascontiguousarray(draw_image(1, i).pixels[:120, :150]) for i in range(n)]


def test_store_proposals_serves_the_asked_count_and_refuses_unprepared_images(generations):
    from models.proposals.cache import ProposalCache

    images = _small_images(2)
    with tempfile.TemporaryDirectory() as tmp:
        cache = ProposalCache(tmp)
        models = generations.build_models(37, [32], cache)
        params = models["Fast R-CNN"].proposal_params
        seconds, found = generations.store_proposals(images, params, 37, cache)
        assert seconds > 0 and len(found) == 2 and all(0 < f <= 37 for f in found)
        for image in images:
            boxes = cache.get(image, params)
            assert boxes.shape == (37, 4)
            assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        with pytest.raises(RuntimeError, match="did not prepare"):
            cache.get(np.zeros((40, 50, 3), np.uint8), params)


def test_rcnn_and_fast_rcnn_get_the_same_proposals_on_every_image(generations):
    images = _small_images(2)
    report = generations.run(images, 29, [32])
    rows = {r["model"]: r for r in report["rows"]}
    assert set(rows) == {"R-CNN (warp 32 px)", "Fast R-CNN", "Faster R-CNN"}
    # every image, the first (also used for the untimed pass) included, sends all 29 boxes through the network
    assert rows["R-CNN (warp 32 px)"]["regions_per_image"] == 29
    assert rows["Fast R-CNN"]["regions_per_image"] == 29
    assert rows["Faster R-CNN"]["external_proposals"] is False
    for r in rows.values():
        assert r["cpu_seconds_per_image"] > 0 and r["seconds_per_image"] > 0 and r["gflop_first_image"] > 0
    assert rows["Fast R-CNN"]["times_fast_rcnn"] == 1.0 and rows["Fast R-CNN"]["cpu_times_fast_rcnn"] == 1.0
    lines = generations.verdicts(report)
    assert any(line.startswith("R-CNN (warp 32 px) / Fast R-CNN:") and "29 vs 29 regions" in line for line in lines)
    assert any(line.startswith("Fast R-CNN without proposals") for line in lines)
    assert any(line.startswith("Faster R-CNN: no external proposals") for line in lines)


def test_verdict_reads_both_clocks(generations):
    def report(cpu: float, wall: float) -> dict:
        return {"selective_search_seconds_per_image": 1.0, "rows": [
            {"model": "R-CNN (warp 224 px)", "cpu_seconds_per_image": cpu, "seconds_per_image": wall,
             "cpu_times_fast_rcnn": cpu, "times_fast_rcnn": wall, "flops_times_fast_rcnn": 50.0,
             "regions_per_image": 2000.0},
            {"model": "Fast R-CNN", "cpu_seconds_per_image": 1.0, "seconds_per_image": 1.0, "cpu_times_fast_rcnn": 1.0,
             "times_fast_rcnn": 1.0, "flops_times_fast_rcnn": 1.0, "regions_per_image": 2000.0}]}

    assert generations.verdicts(report(50.0, 40.0))[0].endswith("more than an order of magnitude: holds")
    assert "NOT more than an order of magnitude" in generations.verdicts(report(5.5, 6.0))[0]
    assert generations.verdicts(report(11.0, 8.0))[0].endswith("over 10× on one clock only")
