"""Image decoding: orientation, odd pixel formats, huge and broken files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from models.io import ImageError, read_image, read_image_info, resize_to_max_side


def _pattern(h: int = 30, w: int = 50) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path: Path, orientation: int) -> None:
    rgb = _pattern()
    im = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    im.save(path, exif=exif)
    decoded = read_image(path)
    with Image.open(path) as ref:
        expected = np.asarray(ImageOps.exif_transpose(ref).convert("RGB"))
    assert decoded.orientation == orientation
    assert (decoded.height, decoded.width) == expected.shape[:2]
    np.testing.assert_array_equal(decoded.pixels, expected)


def test_grey_alpha_palette_16bit_and_cmyk_become_rgb8(tmp_path: Path) -> None:
    grey = tmp_path / "grey.png"
    cv2.imwrite(str(grey), np.full((10, 12), 77, np.uint8))
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([_pattern(10, 12), np.full((10, 12), 128, np.uint8)]), "RGBA").save(rgba)
    pal = tmp_path / "pal.png"
    Image.fromarray(_pattern(10, 12)).convert("P").save(pal)
    deep = tmp_path / "deep.png"
    cv2.imwrite(str(deep), (np.arange(120, dtype=np.uint16).reshape(10, 12) * 500))
    cmyk = tmp_path / "cmyk.jpg"
    Image.fromarray(_pattern(10, 12)).convert("CMYK").save(cmyk)
    for p in (grey, rgba, pal, deep, cmyk):
        d = read_image(p)
        assert d.pixels.dtype == np.uint8 and d.pixels.shape == (10, 12, 3), p.name
    assert read_image(grey).pixels[0, 0].tolist() == [77, 77, 77]
    assert read_image(deep).pixels.max() == 255  # 16-bit stretched, not just shifted into darkness


def test_broken_files_raise_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not an image at all")
    good = tmp_path / "good.jpg"
    cv2.imwrite(str(good), _pattern(64, 64))
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(ImageError, match="empty"):
        read_image(empty)
    with pytest.raises(ImageError, match="junk.png"):
        read_image(junk)
    with pytest.raises(ImageError, match="truncated"):
        read_image(cut)
    with pytest.raises(ImageError, match="cannot read"):
        read_image(tmp_path / "missing.jpg")


def test_huge_image_is_decoded_reduced_with_full_resolution_geometry(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    cv2.imwrite(str(path), np.zeros((1200, 1600, 3), np.uint8))
    d = read_image(path, max_pixels=200_000)
    assert (d.width, d.height) == (1600, 1200)
    assert d.is_reduced and d.pixels.shape[1] == round(1600 * d.scale)
    assert d.pixels.shape[0] * d.pixels.shape[1] <= 200_000
    info = read_image_info(path)
    assert (info.width, info.height) == (1600, 1200)


def test_resize_to_max_side() -> None:
    out, s = resize_to_max_side(np.zeros((100, 400, 3), np.uint8), 200)
    assert out.shape == (50, 200, 3) and s == 0.5
    same, s1 = resize_to_max_side(np.zeros((10, 10, 3), np.uint8), 200)
    assert same.shape == (10, 10, 3) and s1 == 1.0
