"""Felzenszwalb–Huttenlocher segmentation: known answers on synthetic images, and agreement with scikit-image."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from models.proposals.color_spaces import COLOR_SPACES, as_rgb8, convert
from models.proposals.segmentation import (
    boundary_mask,
    felzenszwalb,
    reference_felzenszwalb,
    segment_channels,
    sorted_edges,
)


def _halves(h: int = 40, w: int = 60) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (200, 40, 40)
    img[:, w // 2:] = (30, 90, 220)
    return img


def _blobs(seed: int = 0, h: int = 90, w: int = 120) -> np.ndarray:
    """Smooth random blobs plus a little noise: many segments, boundaries not on a grid."""
    rng = np.random.default_rng(seed)
    base = ndi.gaussian_filter(rng.normal(size=(h // 6, w // 6, 3)), 1.0)
    base = np.kron(base, np.ones((6, 6, 1)))
    base = (base - base.min()) / (np.ptp(base) + 1e-9) * 255
    img = base + rng.normal(0, 4, base.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_two_flat_halves_give_two_segments_with_exact_boxes() -> None:
    # The Gaussian pre-smoothing turns the step into a few one-pixel columns, each its own component
    # (as in the reference algorithm); min_size above a column's 40 pixels folds them into the halves.
    seg = felzenszwalb(_halves(), k=100, sigma=0.8, min_size=50, color_space="rgb")
    assert seg.n_regions == 2
    assert seg.labels.dtype == np.int32 and seg.labels.shape == (40, 60)
    assert seg.labels[0, 0] == 0 and seg.labels[0, -1] == 1  # raster order of first pixel
    np.testing.assert_array_equal(seg.sizes, [1200, 1200])
    np.testing.assert_array_equal(seg.boxes, [[0, 0, 30, 40], [30, 0, 60, 40]])
    np.testing.assert_array_equal(seg.mean_colors, [[200, 40, 40], [30, 90, 220]])
    assert seg.boundaries().sum() == 40  # one column of boundary pixels


def test_larger_k_means_fewer_regions() -> None:
    img = _blobs()
    counts = [felzenszwalb(img, k=k, min_size=5).n_regions for k in (20, 100, 500)]
    assert counts[0] > counts[1] > counts[2] >= 1


@pytest.mark.parametrize("space", ["lab", "I"])
def test_edges_sorted_once_segment_every_k_as_from_scratch(space: str) -> None:
    """Selective Search sorts one colour space's edges once for all its k: the labels must not change."""
    img = _blobs(3)
    channels = convert(img, space)
    edges = sorted_edges(channels, 0.8)
    assert edges.a.shape == edges.b.shape == edges.weight.shape
    assert np.all(np.diff(edges.weight) >= -1.0 / 1024)  # ascending up to the counting sort's bucket
    for k, min_size in ((30, 10), (100, 100), (300, 50)):
        shared = felzenszwalb(img, k=k, min_size=min_size, color_space=space, edges=edges)
        fresh = felzenszwalb(img, k=k, min_size=min_size, color_space=space)
        np.testing.assert_array_equal(shared.labels, fresh.labels)
        np.testing.assert_array_equal(shared.labels, segment_channels(channels, k, 0.8, min_size)[0])
        assert shared.n_regions == fresh.n_regions


def test_edges_of_another_image_or_sigma_are_refused() -> None:
    edges = sorted_edges(convert(_blobs(), "rgb"), 0.8)
    with pytest.raises(ValueError, match="edges of a"):
        felzenszwalb(_blobs(h=60), k=100, edges=edges)
    with pytest.raises(ValueError, match="sigma"):
        felzenszwalb(_blobs(), k=100, sigma=0.5, edges=edges)


def test_min_size_is_respected() -> None:
    seg = felzenszwalb(_blobs(1), k=30, min_size=50)
    assert seg.sizes.min() >= 50
    assert seg.sizes.sum() == 90 * 120
    assert seg.labels.max() == seg.n_regions - 1


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("space,k", [("rgb", 100), ("hsv", 50), ("I", 80)])
def test_agrees_with_scikit_image(seed: int, space: str, k: float) -> None:
    """Same algorithm: segment counts within 15 % and nearly all boundaries within a pixel of theirs.

    Exact equality is not expected: equal-weight edges are visited in a different order (we sort stably by
    weight quantised to 1/1024 grey level; scikit-image uses an unstable argsort on floats).
    """
    img = _blobs(seed)
    ours = felzenszwalb(img, k=k, sigma=0.8, min_size=20, color_space=space)
    ref = reference_felzenszwalb(img, k=k, sigma=0.8, min_size=20, color_space=space)
    _assert_similar(ours.labels, ours.n_regions, ref, count_tol=0.03, boundary=0.97)


def _assert_similar(labels: np.ndarray, n: int, ref: np.ndarray, count_tol: float, boundary: float) -> None:
    n_ref = int(ref.max()) + 1
    assert abs(n - n_ref) <= max(2, count_tol * n_ref)
    a, b = boundary_mask(labels), boundary_mask(ref)
    assert (a & ndi.binary_dilation(b)).sum() / max(a.sum(), 1) > boundary  # our boundaries near theirs
    assert (b & ndi.binary_dilation(a)).sum() / max(b.sum(), 1) > boundary  # theirs near ours


def test_agrees_with_scikit_image_on_a_real_photo() -> None:
    from models.data.io import read_image, resize_to_max_side
    from tests.conftest import SHARED_DATA

    folder = SHARED_DATA / "coco_tiny" / "val2017"
    photos = sorted(folder.glob("*.jpg")) if folder.is_dir() else []
    if not photos:
        pytest.skip("../shared/data/coco_tiny not present")
    rgb, _ = resize_to_max_side(read_image(photos[0]).pixels, 500)
    for space, k in (("hsv", 100), ("lab", 150)):
        ours = felzenszwalb(rgb, k=k, color_space=space)
        ref = reference_felzenszwalb(rgb, k=k, color_space=space)
        _assert_similar(ours.labels, ours.n_regions, ref, count_tol=0.1, boundary=0.9)


@pytest.mark.parametrize("shape", [(1, 1), (1, 1, 3), (8, 8, 3), (1, 4000, 3), (4000, 1), (5, 3, 4)])
def test_edge_case_shapes(shape: tuple[int, ...]) -> None:
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    seg = felzenszwalb(img, k=50, min_size=3)
    assert seg.labels.shape == shape[:2]
    assert seg.n_regions >= 1 and seg.labels.max() == seg.n_regions - 1
    assert seg.sizes.sum() == shape[0] * shape[1]
    assert (seg.boxes[:, 2] <= shape[1]).all() and (seg.boxes[:, 3] <= shape[0]).all()


def test_one_colour_and_greyscale() -> None:
    seg = felzenszwalb(np.full((30, 20, 3), 99, np.uint8), k=10, min_size=1)
    assert seg.n_regions == 1
    np.testing.assert_array_equal(seg.boxes, [[0, 0, 20, 30]])
    grey = np.zeros((20, 20), np.uint8)
    grey[:, 10:] = 250
    seg = felzenszwalb(grey, k=50, min_size=30)
    assert seg.n_regions == 2
    assert seg.mean_colors[1].tolist() == [250, 250, 250]


def test_every_colour_space_is_uint8_with_its_channels() -> None:
    img = _blobs(3, 24, 30)
    for space, channels in COLOR_SPACES.items():
        out = convert(img, space)
        assert out.dtype == np.uint8 and out.shape == (24, 30, channels), space
        seg = felzenszwalb(img, k=50, color_space=space)
        assert seg.params.color_space == space and seg.n_regions >= 1
    # black has no chromaticity: rgI maps it to the neutral point, not to a saturated colour
    black = convert(np.zeros((1, 1, 3), np.uint8), "rgI")[0, 0]
    assert abs(int(black[0]) - 85) <= 1 and abs(int(black[1]) - 85) <= 1 and black[2] == 0
    with pytest.raises(ValueError):
        convert(img, "xyz")


def test_as_rgb8_accepts_float_and_alpha() -> None:
    f = np.full((2, 2, 3), 0.5, np.float32)
    assert as_rgb8(f)[0, 0].tolist() == [127, 127, 127]
    rgba = np.zeros((2, 2, 4), np.uint8)
    assert as_rgb8(rgba).shape == (2, 2, 3)
    with pytest.raises(ValueError):
        as_rgb8(np.zeros((2, 2, 2), np.uint8))


def test_random_colours_are_stable_for_a_seed() -> None:
    seg = felzenszwalb(_blobs(), k=50)
    np.testing.assert_array_equal(seg.random_colors(3), seg.random_colors(3))
    assert seg.random_colors(3).shape == (seg.n_regions, 3)
