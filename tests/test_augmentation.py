"""Random crops, zoom-out and colour jitter for detection training: the boxes follow the pixels, nothing is lost silently,
and a run without them draws the same flips and sizes as before."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from models.data import augmentation
from models.data.annotations import Annotation, BoxObject, write_voc
from models.data.augmentation import CropWindow
from models.data.datasets import open_dataset
from models.data.training_data import DetectionDataset
from tests.tiny_training import tiny_dataset, train_tiny


def test_a_drawn_crop_keeps_an_objects_centre_and_its_sides_in_range() -> None:
    boxes = np.array([[300, 200, 340, 260]], np.float32)  # one small object near the bottom right
    for seed in range(50):
        w = augmentation.draw_crop(np.random.default_rng(seed), 400, 300, boxes, 0.5)
        assert w is not None
        assert 0 <= w.x0 < w.x1 <= 400 and 0 <= w.y0 < w.y1 <= 300
        assert 0.5 * 400 - 1 <= w.width <= 400 and 0.5 * 300 - 1 <= w.height <= 300
        assert augmentation.centres_inside(boxes, w).all()
    again = augmentation.draw_crop(np.random.default_rng(7), 400, 300, boxes, 0.5)
    assert again == augmentation.draw_crop(np.random.default_rng(7), 400, 300, boxes, 0.5)


def test_no_crop_when_no_window_can_keep_an_object() -> None:
    # A window of at least 99% of each side always holds the centre here, so use an object whose centre
    # lies on the border: no window of [x0, x1) holds x = 400.
    boxes = np.array([[398, 0, 402, 10]], np.float32)
    assert augmentation.draw_crop(np.random.default_rng(0), 400, 300, boxes, 0.99) is None
    with pytest.raises(ValueError):
        augmentation.draw_crop(np.random.default_rng(0), 400, 300, boxes, 0.0)


def test_crop_boxes_shifts_clips_and_keeps_by_centre() -> None:
    window = CropWindow(100, 50, 300, 250)
    boxes = np.array([[120, 60, 160, 120],    # inside
                      [280, 200, 360, 240],   # centre (320, 220) outside: dropped
                      [80, 40, 140, 100],     # centre (110, 70) inside, cut by the corner: clipped
                      [0, 0, 20, 20]], np.float32)  # outside
    kept, mask = augmentation.crop_boxes(boxes, window)
    assert mask.tolist() == [True, False, True, False]
    np.testing.assert_allclose(kept, [[20, 10, 60, 70], [0, 0, 40, 50]])
    # Proposals keep every box that still covers a pixel of the window.
    kept, mask = augmentation.crop_boxes(boxes, window, keep_centres=False)
    assert mask.tolist() == [True, True, True, False]
    np.testing.assert_allclose(kept[1], [180, 150, 200, 190])


def test_a_crop_leaves_what_shows_of_an_object_it_cuts_off_centre_as_an_ignore_region() -> None:
    """SSD's centre rule decides what stays an object; the visible part of one whose centre is cut away is
    not trained as background but ignored, as crowd boxes are; an object out of view leaves nothing."""
    boxes = np.array([[150, 150, 190, 190],   # wholly inside: an object, moved
                      [40, 100, 100, 140],    # centre (70, 120) left of the window: a part shows
                      [0, 0, 30, 30]], np.float32)  # out of view
    cut, labels, regions = augmentation.cut_objects(boxes, np.array([1, 2, 3]), np.zeros(3, bool),
                                                    augmentation.CropWindow(80, 20, 200, 200))
    np.testing.assert_allclose(cut, [[70, 130, 110, 170], [0, 80, 20, 120]])
    assert labels.tolist() == [1, 2] and regions.tolist() == [False, True]


def test_a_cropped_items_cut_objects_are_ignore_regions(bright_squares: Path) -> None:
    """Through the dataset: every square a crop cuts shows as a box, an object where its centre is inside the
    window, else flagged difficult (ignored in training), and none is lost."""
    src = open_dataset(bright_squares)
    ds = DetectionDataset(src, [0], ["square"], min_size=240, max_size=400, crop_prob=1.0, crop_min_side=0.4)
    originals = np.array([o.box for o in src.store.load(src.entries[0], None).objects], np.float32)
    regions_seen = 0
    for epoch in range(12):
        ds.set_epoch(epoch)
        _, target = ds[0]
        if target["crop"] is None:
            continue
        window = augmentation.CropWindow(*target["crop"])
        showing = augmentation.crop_boxes(originals, window, keep_centres=False)[1]
        inside = showing & augmentation.centres_inside(originals, window)
        flags = target["difficult"].numpy()
        assert len(flags) == int(showing.sum())
        assert (~flags).sum() == int(inside.sum())
        regions_seen += int(flags.sum())
    assert regions_seen >= 1


def test_colour_jitter_factors_do_what_they_say() -> None:
    rng = np.random.default_rng(0)
    px = rng.integers(0, 200, size=(20, 30, 3), dtype=np.uint8)
    same = augmentation.apply_colour_jitter(px, augmentation.ColourJitter(1.0, 1.0, 1.0))
    np.testing.assert_array_equal(same, px)
    brighter = augmentation.apply_colour_jitter(px, augmentation.ColourJitter(1.2, 1.0, 1.0))
    np.testing.assert_allclose(brighter.astype(float), np.clip(px * 1.2, 0, 255), atol=1)
    grey = augmentation.apply_colour_jitter(px, augmentation.ColourJitter(1.0, 1.0, 0.0))
    assert np.abs(grey.astype(int) - grey[..., :1].astype(int)).max() <= 1  # R = G = B
    flat = augmentation.apply_colour_jitter(px, augmentation.ColourJitter(1.0, 0.0, 1.0))
    assert flat.astype(float).std() < 1.0  # no contrast: one grey
    for seed in range(20):
        j = augmentation.draw_colour_jitter(np.random.default_rng(seed), 0.3)
        assert all(0.7 <= f <= 1.3 for f in (j.brightness, j.contrast, j.saturation))
    with pytest.raises(ValueError):
        augmentation.draw_colour_jitter(rng, 1.0)


def test_a_drawn_zoom_out_holds_the_image_and_its_ratio_is_in_range() -> None:
    for seed in range(50):
        z = augmentation.draw_zoom_out(np.random.default_rng(seed), 400, 300, 2.5)
        assert 1.0 <= z.ratio <= 2.5
        assert z.width == max(400, round(400 * z.ratio)) and z.height == max(300, round(300 * z.ratio))
        assert 0 <= z.left <= z.width - 400 and 0 <= z.top <= z.height - 300
    assert augmentation.draw_zoom_out(np.random.default_rng(7), 400, 300, 2.0) == \
        augmentation.draw_zoom_out(np.random.default_rng(7), 400, 300, 2.0)
    with pytest.raises(ValueError, match="zoom_out_max"):
        augmentation.draw_zoom_out(np.random.default_rng(0), 400, 300, 0.5)
    canvas = augmentation.paste_on_canvas(np.full((2, 3, 3), 255, np.uint8), 5, 4, 2, 1)
    assert canvas.shape == (4, 5, 3) and (canvas[1:3, 2:5] == 255).all()
    assert (canvas[0] == augmentation.ZOOM_OUT_FILL).all() and (canvas[:, :2] == augmentation.ZOOM_OUT_FILL).all()
    with pytest.raises(ValueError, match="does not fit"):
        augmentation.paste_on_canvas(np.zeros((2, 3, 3), np.uint8), 4, 4, 2, 1)


@pytest.fixture
def bright_squares(tmp_path: Path) -> Path:
    """One 320×240 black image with two white rectangles, each labelled exactly."""
    root = tmp_path / "set"
    root.mkdir()
    img = np.zeros((240, 320, 3), np.uint8)
    rects = [(40, 30, 100, 130), (200, 120, 290, 200)]
    for x1, y1, x2, y2 in rects:
        img[y1:y2, x1:x2] = 255
    cv2.imwrite(str(root / "a.png"), img)
    ann = Annotation("a.png", 320, 240, 3, [BoxObject("square", tuple(float(v) for v in r)) for r in rects])
    write_voc(ann, root / "a.xml")
    return root


def _bounds_of_white(image) -> tuple[float, float, float, float] | None:  # noqa: ANN001 - tensor
    mask = image.numpy().min(0) > 0.5
    ys, xs = np.nonzero(mask)
    return (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) if len(xs) else None


def _assert_each_box_bounds_white(image, boxes: np.ndarray, atol: float) -> None:  # noqa: ANN001 - tensor
    """Each box, rounded to whole pixels, holds white pixels that reach its four sides (within ``atol``)."""
    for box in boxes:
        bx1, by1, bx2, by2 = (int(round(v)) for v in box)
        found = _bounds_of_white(image[:, by1:by2, bx1:bx2])
        assert found is not None
        np.testing.assert_allclose(found, (0, 0, bx2 - bx1, by2 - by1), atol=atol)


def test_cropped_items_boxes_follow_their_pixels(bright_squares: Path) -> None:
    src = open_dataset(bright_squares)
    ds = DetectionDataset(src, [0], ["square"], min_size=240, max_size=400, flip_prob=0.5, crop_prob=1.0,
                          crop_min_side=0.4)
    cropped = 0
    for epoch in range(12):
        ds.set_epoch(epoch)
        image, target = ds[0]
        h, w = image.shape[1:]
        boxes = target["boxes"].numpy()
        assert len(boxes) >= 1  # a crop never turns a labelled photo into a negative
        assert (boxes[:, [0, 2]] >= 0).all() and (boxes[:, [0, 2]] <= w + 1e-3).all()
        assert (boxes[:, [1, 3]] >= 0).all() and (boxes[:, [1, 3]] <= h + 1e-3).all()
        if target["crop"] is None:
            continue
        cropped += 1
        x0, y0, x1, y1 = target["crop"]
        assert target["orig_size"] == (y1 - y0, x1 - x0)
        _assert_each_box_bounds_white(image, boxes, atol=2)
    assert cropped >= 10


def test_zoomed_out_items_show_smaller_objects_on_the_mean_colour_and_boxes_follow(bright_squares: Path) -> None:
    """On a canvas r times the image, resized to the same shorter side, each object is 1/r of its size in a
    plain item, its box still bounds its white pixels (after flips too), and the rest is the fill colour."""
    src = open_dataset(bright_squares)
    plain = DetectionDataset(src, [0], ["square"], min_size=240, max_size=800, flip_prob=0.5)
    zoomed = DetectionDataset(src, [0], ["square"], min_size=240, max_size=800, flip_prob=0.5,
                              zoom_out_prob=1.0, zoom_out_max=3.0)
    ratios = []
    for epoch in range(10):
        plain.set_epoch(epoch)
        zoomed.set_epoch(epoch)
        (_, ta), (b, tb) = plain[0], zoomed[0]
        draw = zoomed.draws(0).zoom
        assert draw is not None and tb["zoom_out"] == (draw.width, draw.height, draw.left, draw.top)
        assert ta["flipped"] == tb["flipped"]
        assert min(b.shape[1:]) == 240  # the canvas is fitted to the training size
        boxes = tb["boxes"].numpy()
        assert len(boxes) == 2
        _assert_each_box_bounds_white(b, boxes, atol=2)
        side = lambda bx: (bx[:, 2] - bx[:, 0]) * (bx[:, 3] - bx[:, 1])  # noqa: E731
        shrink = np.sqrt(side(ta["boxes"].numpy()) / side(boxes))
        np.testing.assert_allclose(shrink, draw.ratio, rtol=0.03)
        ratios.append(draw.ratio)
        outside = np.ones(b.shape[1:], bool)
        for x1, y1, x2, y2 in boxes.round().astype(int):
            outside[max(0, y1 - 2):y2 + 2, max(0, x1 - 2):x2 + 2] = False
        pixels = (b.permute(1, 2, 0).numpy() * 255).round()
        is_fill = np.abs(pixels - np.asarray(augmentation.ZOOM_OUT_FILL)).max(-1) <= 1
        assert (is_fill | (pixels.max(-1) <= 1))[outside].all()  # the photo's black or the canvas
        assert is_fill.mean() >= 1 - 1 / draw.ratio ** 2 - 0.05
    assert max(ratios) - min(ratios) > 0.5  # the ratio is drawn per epoch


def test_the_canvas_is_the_models_mean_colour(bright_squares: Path) -> None:
    from models.detection.run_data import training_dataset
    from models.detection.training_config import TrainConfig

    src = open_dataset(bright_squares)
    config = TrainConfig(data=str(bright_squares), out="unused.pt", min_size=240, max_size=800, flip_prob=0.0,
                         zoom_out_prob=1.0, zoom_out_max=3.0, model={"input": {"image_mean": [0.0, 1.0, 0.0]}})
    ds = training_dataset(config, src, [0], ["square"])
    assert ds.zoom_out_fill == (0, 255, 0)
    image, target = ds[0]
    corners = image[:, [0, 0, -1, -1], [0, -1, 0, -1]].T.numpy()  # an image 1/r of the canvas leaves a corner
    assert any(np.allclose(c, (0.0, 1.0, 0.0)) for c in corners)


@pytest.mark.parametrize(("crop_prob", "zoom_out_prob", "max_pixels"),
                         [(0.0, 0.0, 20_000), (1.0, 0.0, 20_000), (0.0, 1.0, 20_000), (1.0, 1.0, 20_000),
                          (1.0, 0.0, 5_000), (1.0, 1.0, 5_000)])
def test_boxes_follow_the_pixels_of_an_image_decoded_reduced(bright_squares: Path, monkeypatch: pytest.MonkeyPatch,
                                                             crop_prob: float, zoom_out_prob: float,
                                                             max_pixels: int) -> None:
    """A huge photo is decoded at 1/2-1/8 of its size; boxes stay in full-resolution pixels and must still land
    on the objects after the crop and resize."""
    from functools import partial

    from models.data import training_data
    from models.data.io import read_image

    monkeypatch.setattr(training_data, "read_image", partial(read_image, max_pixels=max_pixels))
    assert training_data.read_image(bright_squares / "a.png").scale == (0.5 if max_pixels == 20_000 else 0.25)
    ds = DetectionDataset(open_dataset(bright_squares), [0], ["square"], min_size=240, max_size=400,
                          crop_prob=crop_prob, crop_min_side=0.5, zoom_out_prob=zoom_out_prob)
    for epoch in range(6):
        ds.set_epoch(epoch)
        image, target = ds[0]
        # The squares' edges lie on the decoded grid, so the boxes land on them to the rounding: the crop is cut
        # on the decoded grid and the boxes are moved by the rectangle those pixels cover (moved by the window
        # drawn instead, they were 1.6-2.7 px off at 1/2-1/4 scale).
        _assert_each_box_bounds_white(image, target["boxes"].numpy(), atol=1.0)


def test_crop_and_jitter_leave_the_other_draws_as_they_were(bright_squares: Path) -> None:
    src = open_dataset(bright_squares)
    plain = DetectionDataset(src, [0], ["square"], min_size=200, max_size=400, flip_prob=0.5,
                             train_sizes=[160, 200, 240])
    augmented = DetectionDataset(src, [0], ["square"], min_size=200, max_size=400, flip_prob=0.5,
                                 train_sizes=[160, 200, 240], crop_prob=0.5, colour_jitter=0.3, zoom_out_prob=0.5)
    jittered = 0
    for epoch in range(8):
        plain.set_epoch(epoch)
        augmented.set_epoch(epoch)
        (a, ta), (b, tb) = plain[0], augmented[0]
        assert ta["flipped"] == tb["flipped"]
        if tb["crop"] is None and tb["zoom_out"] is None:
            assert a.shape == b.shape  # same size drawn
            jittered += int(not np.allclose(a.numpy(), b.numpy()))
    assert jittered >= 1


@pytest.mark.parametrize(("crop_prob", "zoom_out_prob"), [(1.0, 0.0), (0.0, 1.0)])
def test_external_proposals_are_cropped_and_zoomed_out_with_the_image(bright_squares: Path, crop_prob: float,
                                                                      zoom_out_prob: float) -> None:
    src = open_dataset(bright_squares)
    ds = DetectionDataset(src, [0], ["square"], min_size=240, max_size=400, crop_prob=crop_prob,
                          zoom_out_prob=zoom_out_prob)
    ds.proposals = {0: np.array([[0, 0, 320, 240], [40, 30, 100, 130], [300, 220, 320, 240]], np.float32)}
    for epoch in range(6):
        ds.set_epoch(epoch)
        image, target = ds[0]
        h, w = image.shape[1:]
        p = target["proposals"].numpy()
        assert len(p) >= 1
        assert (p[:, 0] >= 0).all() and (p[:, 2] <= w + 1e-3).all() and (p[:, 3] <= h + 1e-3).all()
        assert (p[:, 2] - p[:, 0] >= 1).all()
        if zoom_out_prob:  # the proposal on the first square moved with it onto the canvas
            np.testing.assert_allclose(p[1], target["boxes"].numpy()[0], atol=1e-3)


def test_bad_settings_are_refused(bright_squares: Path) -> None:
    from models.detection.presets import train_config_from_preset
    from models.detection.training_config import TrainConfig

    src = open_dataset(bright_squares)
    for bad in ({"crop_prob": 1.5}, {"crop_min_side": 0.0}, {"colour_jitter": 1.0}, {"zoom_out_prob": -0.1},
                {"zoom_out_max": 0.9}, {"zoom_out_max": 5.0}, {"zoom_out_max": float("nan")},
                {"zoom_out_prob": "0.5"}, {"crop_prob": True}):
        with pytest.raises(ValueError):
            DetectionDataset(src, [0], ["square"], **bad)
        with pytest.raises(ValueError, match=next(iter(bad))):  # when the config is made, before any file opens
            TrainConfig(data="d", out="o.pt", **bad)
        if not isinstance(next(iter(bad.values())), (str, bool)):  # a preset's overrides convert text, as typed
            with pytest.raises(ValueError, match=next(iter(bad))):
                train_config_from_preset("shapes-cpu", "d", "o.pt", bad)
    assert train_config_from_preset("shapes-cpu", "d", "o.pt", {"zoom_out_prob": "0.5"}).zoom_out_prob == 0.5


def test_training_runs_with_crops_and_colour_jitter(tmp_path: Path) -> None:
    data = tiny_dataset(tmp_path / "tiny", count=4)
    result = train_tiny(data, tmp_path / "m.pt", crop_prob=0.8, crop_min_side=0.6, colour_jitter=0.2,
                        zoom_out_prob=0.5, zoom_out_max=1.5, max_steps=3)
    assert result.status == "completed" and result.checkpoint is not None
    from models.detection.checkpoints import load_checkpoint

    saved = load_checkpoint(result.checkpoint)["config"]
    assert saved["crop_prob"] == 0.8 and saved["crop_min_side"] == 0.6 and saved["colour_jitter"] == 0.2
    assert saved["zoom_out_prob"] == 0.5 and saved["zoom_out_max"] == 1.5


def test_augmented_views_are_the_training_items_of_each_epoch(bright_squares: Path) -> None:
    from models.detection.augmentation_preview import augmented_views
    from models.detection.training_config import TrainConfig

    config = TrainConfig(data=str(bright_squares), out="unused.pt", min_size=240, max_size=400, flip_prob=0.5,
                         crop_prob=1.0, crop_min_side=0.5, colour_jitter=0.0, zoom_out_prob=0.5, seed=3)
    views = augmented_views(config, open_dataset(bright_squares), 0, epochs=4)
    assert [v.epoch for v in views] == [1, 2, 3, 4]
    ds = DetectionDataset(open_dataset(bright_squares), [0], ["square"], min_size=240, max_size=400,
                          flip_prob=0.5, crop_prob=1.0, crop_min_side=0.5, zoom_out_prob=0.5, seed=3)
    for view in views:
        ds.set_epoch(view.epoch)
        image, target = ds[0]
        np.testing.assert_array_equal(view.pixels, (image.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
        np.testing.assert_allclose(view.boxes, target["boxes"].numpy())
        ignored = target["difficult"].numpy()
        assert view.names == ["square (ignored)" if skip else "square" for skip in ignored]
        assert ("ignored" in view.caption()) == bool(ignored.any())
        assert ("crop" in view.caption()) == (view.draws.window is not None)
        assert ("mirrored" in view.caption()) == view.draws.flip
        assert ("zoomed out" in view.caption()) == (view.draws.zoom is not None)


def test_the_command_line_sets_the_augmentation(tmp_path: Path) -> None:
    from app.cli.training import command_config, parser

    args = parser().parse_args(["--data", str(tmp_path), "--out", str(tmp_path / "m.pt"), "--crop", "0.3",
                                "--colour-jitter", "0.2", "--zoom-out", "0.5", "--zoom-out-max", "3"])
    config = command_config(args).config
    assert (config.crop_prob, config.colour_jitter, config.zoom_out_prob, config.zoom_out_max) == (0.3, 0.2, 0.5, 3.0)
    args = parser().parse_args(["--data", str(tmp_path), "--out", str(tmp_path / "m.pt"), "--zoom-out-max", "6"])
    with pytest.raises((SystemExit, ValueError), match="zoom_out_max"):
        command_config(args)
