"""The second look of classification + localisation (cls_loc_head.test_glimpse): the window around the first
box, the box mapped back from it, the answer predict and the trace give, and the option's round trip."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from models.detection.checkpoints import load_detector, save_checkpoint
from models.detection.config import ConfigError
from models.detection.detectors import build_detector
from models.detection.detectors.cls_loc import box_from_window, glimpse_window


def _mask_box(mask: torch.Tensor) -> torch.Tensor:
    """Normalised (x, y, w, h) of the non-zero pixels of a [H, W] mask."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    h, w = mask.shape
    x1, y1 = float(xs.min()), float(ys.min())
    return torch.tensor([x1 / w, y1 / h, (float(xs.max()) + 1 - x1) / w, (float(ys.max()) + 1 - y1) / h])


def test_the_window_is_centred_on_the_box_which_fills_the_share_of_each_side() -> None:
    # A box of 20 × 20 px at (80, 40) in a 200 × 100 image: at share 0.5 a 40 × 40 window around its centre.
    box = torch.tensor([0.4, 0.4, 0.1, 0.2])
    assert glimpse_window(box, 200, 100, 0.5) == (70, 30, 110, 70)
    # At a corner the window keeps its size and is shifted inside the image.
    assert glimpse_window(torch.tensor([0.0, 0.0, 0.1, 0.1]), 100, 100, 0.25) == (0, 0, 40, 40)
    assert glimpse_window(torch.tensor([0.9, 0.95, 0.1, 0.05]), 100, 100, 0.25) == (60, 80, 100, 100)
    # A box larger than share of the image: the window is the whole image.
    assert glimpse_window(torch.tensor([0.1, 0.1, 0.8, 0.7]), 120, 90, 0.5) == (0, 0, 120, 90)
    # A degenerate box still gives a window the warp can take.
    x1, y1, x2, y2 = glimpse_window(torch.tensor([0.5, 0.5, 0.0, 0.0]), 100, 100, 0.5)
    assert x2 - x1 >= 2 and y2 - y1 >= 2


def test_a_box_found_in_the_window_maps_back_to_the_same_pixels_of_the_image() -> None:
    """Hand-made: a rectangle at x 37..51, y 22..30 of a 120 × 80 image. Cut the window, find the rectangle in
    the cut (normalised to the window), map it back: the rectangle's box in the whole image."""
    image = torch.zeros(80, 120)
    image[22:31, 37:52] = 1.0
    truth = _mask_box(image)
    window = glimpse_window(truth, 120, 80, 0.4)
    x1, y1, x2, y2 = window
    in_window = _mask_box(image[y1:y2, x1:x2])
    assert float(in_window[2]) == pytest.approx(0.4, abs=0.03)  # the box fills the share of the window
    assert torch.allclose(box_from_window(in_window, window, 120, 80), truth, atol=1e-6)
    # and by hand: (0.25, 0.5, 0.5, 0.25) of the window (10, 20, 50, 60) of a 100 × 100 image
    assert torch.allclose(box_from_window(torch.tensor([0.25, 0.5, 0.5, 0.25]), (10, 20, 50, 60), 100, 100),
                          torch.tensor([0.2, 0.4, 0.2, 0.1]))


def _finder(model):  # noqa: ANN001, ANN202 - a ClsLoc
    """A stand-in for the network's look: finds the bright rectangle of each image, and says class 0 when the
    image it is given is the whole image (wide) and class 1 when it is a window (the rectangle fills more)."""
    looked: list[tuple[int, int]] = []

    def look(images):  # noqa: ANN001, ANN202
        boxes, probs = [], []
        for im in images:
            looked.append(tuple(im.shape[-2:]))
            box = _mask_box(im[0] > 0.5)
            boxes.append(box)
            probs.append(torch.tensor([1.0, 0.0]) if float(box[2]) < 0.3 else torch.tensor([0.2, 0.8]))
        return torch.stack(probs), torch.stack(boxes)

    model._look = look
    return looked


def test_with_a_glimpse_the_answer_is_the_second_looks_class_and_box_in_image_coordinates() -> None:
    model = build_detector("cls-loc", ["a", "b"], small_width=8, **{"cls_loc_head.test_glimpse": 0.5}).eval()
    looked = _finder(model)
    image = torch.zeros(3, 100, 160)
    image[:, 40:50, 100:116] = 1.0  # 16 × 10 px: a tenth of each side
    probs, box, windows = model._answers([image])
    assert looked == [(100, 160), (20, 32)]  # the whole image, then the window where the box fills half
    assert windows == [(92, 35, 124, 55)]
    assert torch.allclose(box[0], _mask_box(image[0]), atol=1e-6)
    assert torch.allclose(probs[0], torch.tensor([0.2, 0.8]))  # the second look's, not an average

    model.test_glimpse = 0.0
    looked.clear()
    probs, box, windows = model._answers([image])
    assert looked == [(100, 160)] and windows is None and torch.allclose(probs[0], torch.tensor([1.0, 0.0]))


def test_predict_and_the_trace_give_the_glimpse_answer_and_the_trace_shows_its_window() -> None:
    torch.manual_seed(0)
    image = (np.random.default_rng(0).random((150, 200, 3)) * 255).astype(np.uint8)
    model = build_detector("cls-loc", ["a", "b"], small_width=8, **{"cls_loc_head.hidden": 16,
                                                                    "cls_loc_head.test_glimpse": 0.5}).eval()
    t, (sy, sx) = model.prepare(image)
    with torch.no_grad():
        probs, box, windows = model._answers([t])
    dets = model.predict([image], score_threshold=0.0)[0]
    trace = model.trace(image)
    assert dets.scores[0] == pytest.approx(float(probs.max()), abs=1e-5)
    assert np.allclose(trace.box_output, box[0].numpy(), atol=1e-6)
    assert np.allclose(trace.detections.boxes, dets.boxes, atol=1e-3)
    x1, y1, x2, y2 = windows[0]
    assert np.allclose(trace.glimpse_window, [x1 / sx, y1 / sy, x2 / sx, y2 / sy], atol=1e-4)
    model.test_glimpse = 0.0
    assert model.trace(image).glimpse_window is None


def test_the_glimpse_share_is_saved_with_the_model_and_checked(tmp_path) -> None:
    model = build_detector("cls-loc", ["a", "b"], small_width=8, **{"cls_loc_head.test_glimpse": 0.55})
    path = save_checkpoint(tmp_path / "g.pt", model=model, config={}, class_names=["a", "b"],
                           split={"name": "train", "files": []}, epoch=1)
    loaded = load_detector(path, "cpu")
    assert loaded.test_glimpse == pytest.approx(0.55)
    assert loaded.parts.cls_loc_head.test_glimpse == pytest.approx(0.55)
    # a checkpoint written before the option loads with one look
    payload = torch.load(path, weights_only=True)
    payload["model_config"]["cls_loc_head"].pop("test_glimpse")
    torch.save(payload, path)
    assert load_detector(path, "cpu").test_glimpse == 0.0
    for bad in (-0.1, 1.5):
        with pytest.raises(ConfigError, match="test_glimpse"):
            build_detector("cls-loc", ["a"], small_width=8, **{"cls_loc_head.test_glimpse": bad})


def test_the_command_line_sets_the_glimpse(capsys) -> None:
    from app.cli.detection import _add_test_sizes, _apply_test_options

    parser = argparse.ArgumentParser()
    _add_test_sizes(parser)
    model = build_detector("cls-loc", ["a"], small_width=8, **{"cls_loc_head.test_glimpse": 0.55})
    _apply_test_options(model, parser.parse_args([]))
    assert model.test_glimpse == pytest.approx(0.55)
    _apply_test_options(model, parser.parse_args(["--test-glimpse", "0"]))
    assert model.test_glimpse == 0.0
    _apply_test_options(model, parser.parse_args(["--test-glimpse", "0.4"]))
    assert model.test_glimpse == pytest.approx(0.4)
    with pytest.raises(SystemExit):
        parser.parse_args(["--test-glimpse", "2"])
    assert "expected a number in [0, 1]" in capsys.readouterr().err
    detector = build_detector("faster-rcnn", ["a"], small_width=8)
    _apply_test_options(detector, parser.parse_args(["--test-glimpse", "0.5"]))
    assert "ignores it" in capsys.readouterr().err and not hasattr(detector, "test_glimpse")
