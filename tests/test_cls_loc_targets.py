"""Classification + localisation: the box encoding, the loss formula, the one-object choice and the figures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.data.synthetic import draw_image, single_object_params
from models.detection.cls_loc_evaluation import evaluate_cls_loc
from models.detection.cls_loc_targets import (
    SelectionReport,
    choose_object,
    cls_loc_loss,
    decode_boxes,
    encode_boxes,
)


def test_encoding_is_corner_and_size_over_image_size() -> None:
    boxes = torch.tensor([[20.0, 30.0, 70.0, 130.0]])
    out = encode_boxes(boxes, 200.0, 400.0)
    assert torch.allclose(out, torch.tensor([[0.1, 0.075, 0.25, 0.25]]))


def test_encoding_round_trips_for_any_image_size() -> None:
    g = torch.Generator().manual_seed(0)
    for width, height in ((320.0, 480.0), (1000.0, 37.0)):
        xy = torch.rand(50, 2, generator=g) * torch.tensor([width, height]) * 0.5
        wh = torch.rand(50, 2, generator=g) * torch.tensor([width, height]) * 0.5
        boxes = torch.cat([xy, xy + wh], dim=1)
        assert torch.allclose(decode_boxes(encode_boxes(boxes, width, height), width, height), boxes, atol=1e-4)


def test_encoding_does_not_depend_on_the_input_resize() -> None:
    """The model squashes images to a square: normalised targets are the same before and after."""
    box = torch.tensor([[40.0, 10.0, 100.0, 90.0]])
    squashed = box * torch.tensor([128 / 400, 128 / 300, 128 / 400, 128 / 300])
    assert torch.allclose(encode_boxes(box, 400.0, 300.0), encode_boxes(squashed, 128.0, 128.0))


def test_loss_is_alpha_cross_entropy_plus_one_minus_alpha_mse() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 2])
    outputs = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.2, 0.2]])
    targets = torch.tensor([[0.0, 0.2, 0.5, 0.4], [0.5, 0.4, 0.2, 0.0]])
    # By hand: softmax cross-entropy of each row, averaged; squared errors over all 8 numbers, averaged.
    ce_rows = [-(2.0 - math.log(math.exp(2) + 1 + math.exp(-1))), -(0.0 - math.log(1 + math.e + 1))]
    ce = sum(ce_rows) / 2
    mse = (0.1 ** 2 + 0 + 0.2 ** 2 + 0 + 0 + 0.1 ** 2 + 0 + 0.2 ** 2) / 8
    for alpha in (0.0, 0.25, 1.0):
        terms = cls_loc_loss(logits, outputs, labels, targets, alpha)
        assert terms["loss_classifier"].item() == pytest.approx(alpha * ce, rel=1e-5)
        assert terms["loss_box_l2"].item() == pytest.approx((1 - alpha) * mse, rel=1e-5)
    with pytest.raises(ValueError, match="alpha"):
        cls_loc_loss(logits, outputs, labels, targets, 1.5)


def test_the_largest_object_is_chosen_and_reported() -> None:
    boxes = np.array([[0, 0, 10, 10], [5, 5, 45, 25], [0, 0, 20, 20]], np.float32)
    assert choose_object(boxes, np.array([1, 2, 3])) == 1
    assert choose_object(np.zeros((0, 4)), np.zeros(0)) is None
    report = SelectionReport()
    for n in (1, 1, 3, 0, 2):
        report.add(n)
    assert (report.single, report.reduced, report.skipped) == (2, 2, 1)
    assert "2 with several objects reduced to their largest" in report.message()
    assert "1 without any object skipped" in report.message()


def test_figures_on_hand_made_answers() -> None:
    gt_a = (np.array([[0, 0, 10, 10]], np.float32), np.array([1]))
    gt_b = (np.array([[0, 0, 10, 10], [20, 20, 60, 60]], np.float32), np.array([1, 2]))  # judged on class 2
    gt_c = (np.zeros((0, 4), np.float32), np.zeros(0, np.int64))  # skipped
    right = (np.array([[0, 0, 10, 5]], np.float32), np.array([0.9]), np.array([1]))  # IoU 0.5, right class
    wrong_class = (np.array([[20, 20, 60, 60]], np.float32), np.array([0.8]), np.array([1]))  # IoU 1, wrong
    result = evaluate_cls_loc([(gt_a, right), (gt_b, wrong_class), (gt_c, right)], ["a", "b"])
    assert result.images == 2
    assert result.accuracy == 0.5
    assert result.mean_iou == pytest.approx(0.75)
    assert result.localisation_accuracy == 0.5
    assert result.per_class_accuracy == {"a": 1.0, "b": 0.0}
    assert (result.selection.single, result.selection.reduced, result.selection.skipped) == (1, 1, 1)


def test_single_object_synthetic_images_hold_one_shape_of_15_to_60_percent() -> None:
    params = single_object_params()
    for i in range(12):
        drawn = draw_image(5, i, params)
        assert len(drawn.objects) == 1
        h, w = drawn.pixels.shape[:2]
        x1, y1, x2, y2 = drawn.objects[0].box
        side = max(x2 - x1, y2 - y1)
        # The mask's longer side is the drawn size (±1 px of rasterisation).
        assert 0.15 * min(h, w) - 2 <= side <= 0.6 * min(h, w) + 2


def test_a_training_crop_keeps_the_whole_object_and_moves_its_box() -> None:
    from models.detection.detectors.cls_loc import random_crop

    torch.manual_seed(0)
    image = torch.rand(3, 120, 200)
    box = torch.tensor([50.0, 30.0, 110.0, 70.0])
    same, same_box = random_crop(image, box, 1.0)
    assert same is image and torch.equal(same_box, box)
    sizes = set()
    for _ in range(200):
        crop, b = random_crop(image, box, 0.5)
        h, w = crop.shape[-2:]
        assert 0 <= b[0] and 0 <= b[1] and b[2] <= w and b[3] <= h  # the object is whole
        assert torch.allclose(b[2:] - b[:2], box[2:] - box[:2])  # moved, not resized
        assert w >= 0.5 * 200 - 1 and h >= 0.5 * 120 - 1
        x0, y0 = int(box[0] - b[0]), int(box[1] - b[1])
        assert torch.equal(crop, image[:, y0:y0 + h, x0:x0 + w])  # a window of the image, not a resample
        sizes.add((w, h))
    assert len(sizes) > 50  # new views, not one
