"""The linear classifier on a dataset's CNN codes: classes chosen by count, a held-out split by image, the
L2 strength chosen on the training images, and the raw-pixel baseline on the same boxes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from models.detection.code_classifier import choose_classes, split_by_image, train_code_classifier
from models.detection.code_neighbours import CodeIndex, LabelledBox

COLOURS = {"red": (0, 0, 255), "blue": (255, 0, 0), "green": (0, 255, 0)}  # BGR for cv2


def make_index(tmp_path, separable: bool, images: int = 12, seed: int = 0, extra: dict | None = None) -> CodeIndex:
    """``images`` photos, each with one box of each of red/blue/green (filled with that colour) and ``extra``
    boxes of rare classes; codes carry the class (``separable``) or are pure noise."""
    rng = np.random.default_rng(seed)
    boxes, codes = [], []
    centres = {name: rng.normal(0, 1, 16) * 4 for name in COLOURS}
    for i in range(images):
        canvas = np.full((120, 200, 3), 128, np.uint8)
        path = tmp_path / f"img{i}.png"
        names = list(COLOURS) + [name for name, n in (extra or {}).items() if i < n]
        for k, name in enumerate(names):
            x1, y1 = 10 + 45 * k, 20 + int(rng.integers(0, 40))
            box = (float(x1), float(y1), float(x1 + 35), float(y1 + 50))
            cv2.rectangle(canvas, (x1, y1), (x1 + 34, y1 + 49), COLOURS.get(name, (0, 0, 0)), -1)
            boxes.append(LabelledBox(str(path), i, k, name, box))
            noise = rng.normal(0, 1, 16)
            codes.append(centres.get(name, np.zeros(16)) + noise if separable else noise)
        cv2.imwrite(str(path), canvas)
    return CodeIndex("test", "test codes", boxes, np.array(codes, np.float32), 0, [])


def test_codes_that_carry_the_class_are_classified_on_held_out_images(tmp_path) -> None:
    index = make_index(tmp_path, separable=True, extra={"rare": 2})
    report = train_code_classifier(index, min_boxes=5, test_fraction=0.3, seed=0)
    assert report.classes == ["red", "blue", "green"]  # "rare" has 2 boxes, fewer than 5
    assert report.left_out == 2 and len(report.rows) == len(index) - 2
    groups = np.array([index.boxes[r].entry_index for r in report.rows])
    assert not set(groups[report.test]) & set(groups[~report.test])  # no image on both sides
    assert (report.train_images, report.test_images) == (8, 4)
    assert report.codes.balanced_accuracy == pytest.approx(1.0)
    assert report.codes.confusion.sum() == int(report.test.sum())
    assert np.trace(report.codes.confusion) == int(report.test.sum())
    # the raw-pixel baseline sees each box's colour, so it separates these too
    assert report.pixels is not None and report.pixels.balanced_accuracy == pytest.approx(1.0)
    row = int(report.rows[report.test][0])
    probs = report.probabilities(index.codes[row])
    assert probs[0][0] == index.boxes[row].class_name
    assert sum(p for _, p in probs) == pytest.approx(1.0, abs=1e-5)
    assert report.held_out(row) is True
    assert report.held_out(int(report.rows[~report.test][0])) is False
    rare = next(r for r, b in enumerate(index.boxes) if b.class_name == "rare")
    assert report.held_out(rare) is None  # a rare-class box took no part


def test_codes_without_the_class_score_far_below_codes_with_it(tmp_path) -> None:
    noisy = train_code_classifier(make_index(tmp_path, separable=False, images=20), with_pixels=False)
    clean = train_code_classifier(make_index(tmp_path, separable=True, images=20), with_pixels=False)
    assert noisy.pixels is None and noisy.pixels_problem == ""
    assert clean.codes.balanced_accuracy - noisy.codes.balanced_accuracy > 0.3
    assert noisy.chance == pytest.approx(1 / 3)


def test_an_unreadable_image_drops_the_pixel_baseline_not_the_codes_score(tmp_path) -> None:
    index = make_index(tmp_path, separable=True)
    (tmp_path / "img3.png").write_bytes(b"not an image")
    report = train_code_classifier(index)
    assert report.pixels is None and "raw-pixel baseline" in report.pixels_problem
    assert report.codes.balanced_accuracy == pytest.approx(1.0)


def test_too_few_classes_is_a_clear_error(tmp_path) -> None:
    index = make_index(tmp_path, separable=True, images=3)  # 3 boxes a class
    with pytest.raises(ValueError, match="two classes with at least 5"):
        train_code_classifier(index)


def test_class_choice_and_split_helpers() -> None:
    assert choose_classes(["a"] * 6 + ["b"] * 9 + ["c"] * 2 + ["d"] * 5, max_classes=2) == ["b", "a"]
    groups = np.repeat(np.arange(10), 3)
    test = split_by_image(groups, 0.3, seed=4)
    assert len(set(groups[test])) == 3 and not set(groups[test]) & set(groups[~test])
    assert split_by_image(groups, 0.3, seed=4).tolist() == test.tolist()  # seeded
    with pytest.raises(ValueError, match="two images"):
        split_by_image(np.zeros(4, int), 0.3, 0)


def test_a_cancelled_classifier_stops_with_interrupted_error(tmp_path) -> None:
    """The worker's cancel reaches the L2 search and the fits (most of the run), not only the pixel reading."""
    index = make_index(tmp_path, separable=True)
    asked = []

    def cancelled() -> bool:
        asked.append(1)
        return len(asked) > 3  # a few loss evaluations in

    with pytest.raises(InterruptedError):
        train_code_classifier(index, with_pixels=False, cancelled=cancelled)
    assert len(asked) == 4


def test_a_class_without_a_held_out_box_has_no_recall_and_is_left_out_of_the_balance(tmp_path) -> None:
    index = make_index(tmp_path, separable=True, images=12, extra={"rare": 6})  # "rare" in images 0-5 only
    seeds = [s for s in range(40) if not np.isin(
        [b.entry_index for b in index.boxes if b.class_name == "rare"],
        np.where(split_by_image(np.arange(12), 0.3, s))[0]).any()]
    report = train_code_classifier(index, seed=seeds[0], with_pixels=False)
    k = report.classes.index("rare")
    assert np.isnan(report.codes.recall[k]) and report.codes.confusion[k].sum() == 0
    assert report.codes.balanced_accuracy == pytest.approx(np.nanmean(report.codes.recall))
