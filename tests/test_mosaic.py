"""The four-image mosaic (YOLOv4's) for detection training: each tile lands in its quadrant at half size, the
boxes follow their pixels, cut boxes obey the crop rule, and a run without mosaics draws what it always drew."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from models.data import mosaic
from models.data.annotations import Annotation, BoxObject, write_voc
from models.data.datasets import open_dataset
from models.data.training_data import DetectionDataset
from tests.tiny_training import tiny_dataset, train_tiny

FILL = (7, 7, 7)


def _tile(value: int, w: int = 100, h: int = 80, boxes: list | None = None, difficult: list | None = None,
          proposals: list | None = None) -> mosaic.Tile:
    b = np.asarray(boxes or [], np.float32).reshape(-1, 4)
    return mosaic.Tile(np.full((h, w, 3), value, np.uint8), b, np.arange(1, len(b) + 1, dtype=np.int64),
                       np.asarray(difficult or [False] * len(b), bool),
                       None if proposals is None else np.asarray(proposals, np.float32).reshape(-1, 4))


def test_a_drawn_mosaic_has_its_centre_in_the_middle_half_and_partners_among_the_items() -> None:
    draws = [mosaic.draw_mosaic(np.random.default_rng(seed), 5) for seed in range(200)]
    for d in draws:
        assert 0.25 <= d.centre_x <= 0.75 and 0.25 <= d.centre_y <= 0.75
        assert len(d.partners) == 3 and all(0 <= p < 5 for p in d.partners)
    assert {p for d in draws for p in d.partners} == set(range(5))  # every item can be a partner
    assert mosaic.draw_mosaic(np.random.default_rng(3), 5) == mosaic.draw_mosaic(np.random.default_rng(3), 5)
    with pytest.raises(ValueError):
        mosaic.draw_mosaic(np.random.default_rng(0), 0)


def test_each_tile_touches_the_centre_from_its_quadrant_and_the_rest_is_the_fill() -> None:
    m = mosaic.Mosaic(0.5, 0.5, (0, 0, 0))  # canvas 200×160: centre (100, 80), tiles 100×80 fill it exactly
    comp = mosaic.compose(200, 160, m, [_tile(10), _tile(20), _tile(30), _tile(40)], FILL)
    assert comp.pixels.shape == (160, 200, 3)
    assert comp.pixels[0, 0, 0] == 10 and comp.pixels[0, 199, 0] == 20
    assert comp.pixels[159, 0, 0] == 30 and comp.pixels[159, 199, 0] == 40
    assert (comp.pixels[79, 99] == 10).all() and (comp.pixels[80, 100] == 40).all()
    # Off centre, the tiles are cut at the canvas edge on one side and leave the fill on the other.
    m = mosaic.Mosaic(0.3, 0.7, (0, 0, 0))  # centre (60, 112)
    comp = mosaic.compose(200, 160, m, [_tile(10), _tile(20), _tile(30), _tile(40)], FILL)
    assert [(w.x0, w.y0, w.x1, w.y1) for w in comp.visible] == [(0, 32, 60, 112), (60, 32, 160, 112),
                                                                 (0, 112, 60, 160), (60, 112, 160, 160)]
    assert (comp.pixels[:32] == FILL).all() and (comp.pixels[:, 160:] == FILL).all()
    assert (comp.pixels[32:112, :60] == 10).all() and (comp.pixels[112:, 60:160] == 40).all()


def test_boxes_move_with_their_tile_and_cut_ones_follow_the_crop_rule() -> None:
    m = mosaic.Mosaic(0.3, 0.7, (0, 0, 0))  # centre (60, 112); top-left tile placed at (-40, 32)
    top_left = _tile(10, boxes=[[50, 10, 90, 60],     # inside the visible part: moved by (-40, 32)
                                [0, 10, 30, 40],      # centre x 15 < 40: left of the canvas, dropped
                                [30, 50, 60, 70],     # centre (45, 60) visible, cut at x = 40: clipped
                                [30, 10, 45, 40]],    # centre x 37.5 hidden, x 40-45 shows: an ignore region
                     difficult=[False, False, False, False])
    crowd = _tile(20, boxes=[[80, 0, 100, 80]], difficult=[True])  # top-right at (60, 32): cut at x = 160
    bottom_right = _tile(40, boxes=[[10, 60, 40, 79]])  # at (60, 112): centre y 69.5 > 48 visible rows, dropped
    comp = mosaic.compose(200, 160, m, [top_left, crowd, _tile(30), bottom_right], FILL)
    np.testing.assert_allclose(comp.boxes, [[10, 42, 50, 92], [0, 82, 20, 102], [0, 42, 5, 72],
                                            [140, 32, 160, 112]])
    assert comp.labels.tolist() == [1, 3, 4, 1] and comp.difficult.tolist() == [False, False, True, True]
    # Each kept box still lies on its own tile's pixels.
    for (x0, y0, x1, y1), value in zip(comp.boxes.astype(int), (10, 10, 10, 20), strict=True):
        assert (comp.pixels[y0:y1, x0:x1] == value).all()


def test_proposals_are_moved_and_kept_wherever_they_show() -> None:
    m = mosaic.Mosaic(0.5, 0.5, (0, 0, 0))
    tiles = [_tile(v, proposals=[[0, 0, 100, 80], [90, 70, 100, 80]]) for v in (10, 20, 30, 40)]
    comp = mosaic.compose(200, 160, m, tiles, FILL)
    # Rank by rank: each tile's first proposal (the whole tile here), in quadrant order, then each one's second,
    # so a cap on the number of proposals keeps the best of every tile.
    np.testing.assert_allclose(comp.proposals, [[0, 0, 100, 80], [100, 0, 200, 80], [0, 80, 100, 160],
                                                [100, 80, 200, 160], [90, 70, 100, 80], [190, 70, 200, 80],
                                                [90, 150, 100, 160], [190, 150, 200, 160]])
    assert mosaic.compose(200, 160, m, [_tile(v) for v in (10, 20, 30, 40)], FILL).proposals is None
    with pytest.raises(ValueError, match="four tiles"):
        mosaic.compose(200, 160, m, tiles[:3], FILL)


@pytest.fixture
def four_images(tmp_path: Path) -> Path:
    """Four 320×240 black images, each with one white rectangle of its own size, labelled exactly."""
    root = tmp_path / "set"
    root.mkdir()
    for i, (x1, y1, x2, y2) in enumerate([(40, 30, 120, 150), (160, 60, 300, 200), (20, 100, 200, 220),
                                          (100, 20, 260, 120)]):
        img = np.zeros((240, 320, 3), np.uint8)
        img[y1:y2, x1:x2] = 255
        cv2.imwrite(str(root / f"{i}.png"), img)
        write_voc(Annotation(f"{i}.png", 320, 240, 3, [BoxObject("square", (x1, y1, x2, y2))]), root / f"{i}.xml")
    return root


def _white_in(image, box: np.ndarray) -> float:  # noqa: ANN001 - tensor
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    return float((image.numpy().min(0)[y1:y2, x1:x2] > 0.5).mean())


def test_mosaic_items_keep_the_step_size_and_their_boxes_lie_on_white(four_images: Path) -> None:
    src = open_dataset(four_images)
    kw = dict(min_size=240, max_size=800, flip_prob=0.5, rotate90=True)
    plain = DetectionDataset(src, [0, 1, 2, 3], ["square"], **kw)
    mixed = DetectionDataset(src, [0, 1, 2, 3], ["square"], mosaic_prob=1.0, **kw)
    widest = max(float((plain[i][1]["boxes"][:, 2:] - plain[i][1]["boxes"][:, :2]).max()) for i in range(4))
    objects = 0
    for epoch in range(8):
        plain.set_epoch(epoch)
        mixed.set_epoch(epoch)
        for i in range(4):
            (a, ta), (b, tb) = plain[i], mixed[i]
            d = mixed.draws(i)
            assert d.mosaic is not None and d.window is None and d.zoom is None
            assert b.shape == a.shape  # the canvas is what the item alone would be: the same step cost
            assert (tb["flipped"], tb["quarter_turns"]) == (ta["flipped"], ta["quarter_turns"])
            assert tb["mosaic"][2] == tuple(mixed.targets[p].index for p in d.mosaic.partners)
            assert tb["index"] == ta["index"] and tb["crop"] is None and tb["zoom_out"] is None
            boxes, ignored = tb["boxes"].numpy(), tb["difficult"].numpy()
            assert len(boxes) == len(tb["labels"]) == len(ignored)
            for box in boxes:  # after the flip and quarter turns too, each box holds white only
                assert _white_in(b, box) > 0.97
            sides = boxes[:, 2:] - boxes[:, :2]
            assert (sides <= widest / 2 + 1).all()  # every tile at half the training size
            objects += int((~ignored).sum())
    assert objects > 8 * 4  # most mosaics hold objects of more than one image


def test_external_proposals_reach_the_mosaic_from_every_tile(four_images: Path) -> None:
    src = open_dataset(four_images)
    ds = DetectionDataset(src, [0, 1, 2, 3], ["square"], min_size=240, max_size=800, mosaic_prob=1.0)
    ds.proposals = {i: np.array([[0, 0, 320, 240], [10, 10, 50, 50]], np.float32) for i in range(4)}
    for epoch in range(4):
        ds.set_epoch(epoch)
        image, target = ds[0]
        p = target["proposals"].numpy()
        h, w = image.shape[1:]
        assert 4 <= len(p) <= 8 and (p[:, :2] >= 0).all() and (p[:, 2] <= w).all() and (p[:, 3] <= h).all()
        # The first four are the four tiles' best (their whole visible part): together they cover the tiles.
        covered = np.zeros((h, w), bool)
        for x0, y0, x1, y1 in p[:4].round().astype(int):
            covered[y0:y1, x0:x1] = True
        assert covered.sum() >= 0.2 * h * w


def test_mosaics_leave_the_other_items_as_they_were(four_images: Path) -> None:
    src = open_dataset(four_images)
    kw = dict(min_size=200, max_size=400, flip_prob=0.5, train_sizes=[160, 200, 240], zoom_out_prob=0.5)
    off = DetectionDataset(src, [0, 1, 2, 3], ["square"], **kw)
    half = DetectionDataset(src, [0, 1, 2, 3], ["square"], mosaic_prob=0.5, **kw)
    mosaics = 0
    for epoch in range(10):
        off.set_epoch(epoch)
        half.set_epoch(epoch)
        for i in range(4):
            o, h = off.draws(i), half.draws(i)
            assert o.mosaic is None and (h.flip, h.size, h.jitter) == (o.flip, o.size, o.jitter)
            if h.mosaic is None:  # the same draws, the same pixels and boxes
                assert h == o
                (a, ta), (b, tb) = off[i], half[i]
                assert np.array_equal(a.numpy(), b.numpy()) and np.array_equal(ta["boxes"], tb["boxes"])
            mosaics += h.mosaic is not None
    assert 10 <= mosaics <= 30  # about half of 40


def test_mosaic_settings_are_checked_and_reach_training(tmp_path: Path, four_images: Path) -> None:
    from app.cli.training import command_config, parser
    from models.detection.checkpoints import load_checkpoint
    from models.detection.training_config import TrainConfig

    for bad in (1.5, -0.1, float("nan"), True):
        with pytest.raises(ValueError, match="mosaic_prob"):
            TrainConfig(data="d", out="o.pt", mosaic_prob=bad)
        with pytest.raises(ValueError, match="mosaic_prob"):
            DetectionDataset(open_dataset(four_images), [0], ["square"], mosaic_prob=bad)
    args = parser().parse_args(["--data", str(four_images), "--out", str(tmp_path / "m.pt"), "--mosaic", "0.25"])
    assert command_config(args).config.mosaic_prob == 0.25
    data = tiny_dataset(tmp_path / "tiny", count=4)
    result = train_tiny(data, tmp_path / "m.pt", mosaic_prob=0.5, max_steps=4)
    assert result.status == "completed" and result.checkpoint is not None
    assert load_checkpoint(result.checkpoint)["config"]["mosaic_prob"] == 0.5


def test_the_preview_shows_the_mosaic_the_loop_would_train_on(four_images: Path) -> None:
    from models.detection.augmentation_preview import augmented_views
    from models.detection.run_data import training_dataset
    from models.detection.training_config import TrainConfig

    src = open_dataset(four_images)
    config = TrainConfig(data=str(four_images), out="unused.pt", min_size=240, max_size=400, flip_prob=0.5,
                         mosaic_prob=1.0, train_indices=[0, 1, 3], seed=2)
    views = augmented_views(config, src, 1, epochs=3)
    loop = training_dataset(config, src, [0, 1, 3], ["square"])
    names = {e.name for e in src.entries}
    for view in views:
        loop.set_epoch(view.epoch)
        image, target = loop[1]
        np.testing.assert_array_equal(view.pixels, (image.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
        assert len(view.mosaic_partners) == 3 and set(view.mosaic_partners) <= names - {"2.png"}
        assert "mosaic with " + ", ".join(view.mosaic_partners) in view.caption()
    # An image outside the run's training images still previews, its partners drawn from them.
    outside = augmented_views(config, src, 2, epochs=1)[0]
    assert "mosaic with" in outside.caption() and len(outside.mosaic_partners) == 3


def test_the_preview_says_why_an_image_cannot_be_shown(four_images: Path) -> None:
    from models.detection.augmentation_preview import augmented_views
    from models.detection.training_config import TrainConfig

    sub = four_images / "sub"
    sub.mkdir()
    (sub / "4.png").write_bytes(b"not a png")
    write_voc(Annotation("4.png", 320, 240, 3, [BoxObject("square", (1, 1, 50, 50))]), sub / "4.xml")
    src = open_dataset(four_images)
    broken = next(i for i, e in enumerate(src.entries) if "4.png" in e.name)
    for mosaic_prob in (0.0, 1.0):
        config = TrainConfig(data=str(four_images), out="unused.pt", min_size=240, max_size=400,
                             mosaic_prob=mosaic_prob, train_indices=[0, 1, 2, 3])
        with pytest.raises(ValueError, match="4.png") as err:
            augmented_views(config, src, broken, epochs=1)
        assert str(err.value) != f"image {broken} cannot be read"  # the reason, not only that it failed
    # Training images the dataset does not have: the sentence the training loop itself would stop with.
    config = TrainConfig(data=str(four_images), out="unused.pt", mosaic_prob=1.0, train_indices=[0, 9])
    with pytest.raises(ValueError, match="image index 9 is outside its 5 images"):
        augmented_views(config, src, 0, epochs=1)
    config = TrainConfig(data=str(four_images), out="unused.pt", mosaic_prob=1.0, split="holdout")
    with pytest.raises(ValueError, match="no split named 'holdout'"):
        augmented_views(config, src, 0, epochs=1)
