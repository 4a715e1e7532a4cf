"""The no-preset rule on hand-made box statistics: what it picks for the size, anchors and run length, and why.

Pure functions of the statistics: no images, no training, deterministic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.data.box_stats import BoxStats
from models.detection import auto_settings as rule
from models.detection.auto_settings import choose_settings


def _stats(sqrt_areas: list[float], image: tuple[int, int], n_images: int) -> BoxStats:
    """Square boxes of the given sides, all on images of ``image`` (width, height); ``n_images`` such images."""
    boxes = np.asarray([(10.0, 10.0, 10.0 + s, 10.0 + s) for s in sqrt_areas], np.float32)
    n = len(boxes)
    return BoxStats(class_names=["x"], n_images=n_images, n_annotated=n_images, boxes_per_class={"x": n},
                    images_per_class={"x": n_images}, boxes=boxes, labels=np.zeros(n, np.int64),
                    image_of=np.arange(n) % n_images, box_index=np.arange(n),
                    box_image_size=np.tile(np.asarray(image, np.float32), (n, 1)),
                    image_sizes=np.tile(np.asarray(image, np.float32), (n_images, 1)))


def _spread(lo: float, hi: float, n: int = 200) -> list[float]:
    return list(np.geomspace(lo, hi, n))


def test_training_size_brings_the_small_objects_to_32_px() -> None:
    """400×300 images whose 5th-percentile object is ~17 px: the shorter side grows by 32 / 17 (to a multiple
    of 32), the longer side follows the aspect, 4:3; objects that are already 150 px get the lower bound."""
    small = choose_settings(_stats(_spread(15, 120), (400, 300), 300), coverage=False)
    q5 = float(np.percentile(_spread(15, 120), 5))
    assert small.min_size == 32 * round(300 * 32 / q5 / 32)
    assert small.max_size == math.ceil(small.min_size * 4 / 3 / 32) * 32
    big = choose_settings(_stats(_spread(150, 280), (400, 300), 300), coverage=False)
    assert big.min_size == rule.MIN_SIDE  # 300 × 32 / 150 is under the bound
    assert "bounded" in big.reasons["training size"]


def test_anchors_cover_the_box_sizes_at_the_training_size_in_root_two_steps() -> None:
    """Boxes of 20–160 px on 480×320 images: anchors over their range at the training size in steps of √2,
    one ratio for square boxes; all but a few boxes (the ends beyond the 2nd/98th percentile, and where the
    grid falls) have an anchor at IoU ≥ 0.7, against two thirds unmatched by the papers' anchors."""
    s = choose_settings(_stats(_spread(20, 160), (480, 320), 300))
    scale = s.min_size / 320
    lo, hi = 20 * scale, 160 * scale
    assert s.anchor_ratios == [1.0]
    assert min(s.anchor_sizes) <= lo * math.sqrt(2) and max(s.anchor_sizes) >= hi / math.sqrt(2)
    assert np.allclose(np.diff(np.log(s.anchor_sizes)), math.log(math.sqrt(2)), atol=0.03)
    assert s.unmatched_share < 0.1 and s.paper_unmatched_share > 0.5
    assert "√2" in s.reasons["anchor sizes"]


def test_run_length_is_a_time_budget_estimated_from_the_dataset_size() -> None:
    """300 images at 512 px: the budget over (images × cost per image) estimated epochs, the cap a little
    above; twice the images: half the epochs; the trainer gets the budget to fit the run to."""
    one = choose_settings(_stats(_spread(20, 160), (480, 320), 300), coverage=False)
    mp = one.min_size * min(one.max_size, one.min_size * 1.5) / 1e6
    expected = rule.TRAIN_BUDGET_S / (300 * (rule.COST_PER_IMAGE_S + rule.COST_PER_MP_S * mp))
    assert one.time_budget_s == rule.TRAIN_BUDGET_S
    assert one.epochs == math.ceil(expected * rule.EPOCH_HEADROOM)
    assert f"about {expected:.1f} epochs" in one.reasons["epochs"]
    assert one.config_fields()["time_budget_s"] == rule.TRAIN_BUDGET_S
    two = choose_settings(_stats(_spread(20, 160), (480, 320), 600), coverage=False)
    assert two.epochs == math.ceil(expected / 2 * rule.EPOCH_HEADROOM)


def test_small_images_are_not_free() -> None:
    """The fixed cost per image (RPN NMS, sampling, the RoI head, Python) bounds the epochs of small training
    sizes: at 256 px instead of 448 an image has a third of the pixels but costs about two thirds as much,
    so the estimate grows by ~1.5×, not by the 3× a pixel-only rule would give."""
    large = choose_settings(_stats(_spread(20, 160), (480, 320), 300), coverage=False)
    small = choose_settings(_stats(_spread(60, 200), (480, 320), 300), coverage=False)
    assert (large.min_size, small.min_size) == (448, rule.MIN_SIDE)
    pixel_ratio = (large.min_size * large.max_size) / (small.min_size * small.max_size)
    assert pixel_ratio > 2.5
    assert 1.2 < small.epochs / large.epochs < 2.0


def test_a_dataset_too_large_for_the_budget_gets_the_minimum_epochs_and_no_budget() -> None:
    s = choose_settings(_stats(_spread(20, 160), (480, 320), 5000), coverage=False)
    assert s.epochs == rule.MIN_EPOCHS and s.time_budget_s is None
    assert "fewer than the" in s.reasons["epochs"] and "min of one core" in s.reasons["epochs"]
    line = next(v for v in s.lines() if v.startswith("epochs:"))
    assert line.startswith(f"epochs: {rule.MIN_EPOCHS} ")


def test_every_setting_is_printed_with_a_reason() -> None:
    s = choose_settings(_stats(_spread(20, 160), (480, 320), 300))
    lines = s.lines()
    assert len(lines) == 9
    for line in lines:
        name, _, rest = line.partition(": ")
        assert rest.endswith(")") and "()" not in rest, line
    assert next(v for v in lines if v.startswith("epochs:")).startswith(
        f"epochs: at most {s.epochs}, within {rule.TRAIN_BUDGET_S:.0f} s of training")


@pytest.mark.parametrize("ratios,expected", [((0.95, 1.05), [1.0]), ((0.4, 1.05), [0.5, 1.0]),
                                             ((0.2, 5.0), [0.25, 0.5, 1.0, 2.0, 4.0])])
def test_anchor_ratios_span_the_box_shapes(ratios: tuple[float, float], expected: list[float]) -> None:
    rng = np.random.default_rng(0)
    boxes = []
    for r in np.geomspace(*ratios, 100):
        w = float(rng.uniform(40, 80))
        boxes.append((0.0, 0.0, w, w * r))
    stats = _stats([1.0] * len(boxes), (480, 320), 100)
    stats.boxes = np.asarray(boxes, np.float32)
    assert choose_settings(stats, coverage=False).anchor_ratios == expected


def test_data_parallel_processes_each_get_the_budget_and_a_share_of_the_images() -> None:
    """Under torchrun with 2 processes (one core each) an epoch costs each process half the images, so the
    budget buys twice the epochs, at one image per step per process (still the recipe's 2 per step)."""
    one = choose_settings(_stats(_spread(20, 160), (480, 320), 300), coverage=False)
    two = choose_settings(_stats(_spread(20, 160), (480, 320), 300), coverage=False, processes=2)
    assert (one.batch_size, two.batch_size) == (2, 1)
    assert two.time_budget_s == one.time_budget_s == rule.TRAIN_BUDGET_S
    assert two.epochs == pytest.approx(2 * one.epochs, abs=1)
    assert "150 per epoch on each of 2 processes" in two.reasons["epochs"]
    assert "1 image per step on each of 2 processes" in two.reasons["optimiser"]
