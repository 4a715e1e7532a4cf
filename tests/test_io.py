"""Image decoding: orientation, odd pixel formats, huge and broken files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from models.data.io import ImageError, read_image, read_image_info, resize_to_max_side


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


def _photo_jpeg(path: Path, h: int = 120, w: int = 160, progressive: bool = False) -> bytes:
    rgb = cv2.GaussianBlur(_pattern(h, w), (0, 0), 2)
    ok, buf = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)])
    assert ok
    path.write_bytes(buf.tobytes())
    return buf.tobytes()


@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_with_a_phone_trailer_opens(tmp_path: Path, progressive: bool) -> None:
    """Motion photos and maker notes append data after the end-of-image marker: the image still opens."""
    clean = _photo_jpeg(tmp_path / "clean.jpg", progressive=progressive)
    rng = np.random.default_rng(1)
    trailer = b"MotionPhoto_Data" + rng.integers(0, 256, 6 * 1024, dtype=np.uint8).tobytes()
    phone = tmp_path / "phone.jpg"
    phone.write_bytes(clean + trailer)
    d = read_image(phone)
    assert (d.width, d.height) == (160, 120) and d.pixels.shape == (120, 160, 3)
    np.testing.assert_array_equal(d.pixels, read_image(tmp_path / "clean.jpg").pixels)


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("keep", [0.3, 0.7, 0.99, -2])
def test_truncated_jpeg_is_refused(tmp_path: Path, progressive: bool, keep: float) -> None:
    data = _photo_jpeg(tmp_path / "good.jpg", progressive=progressive)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[:int(len(data) * keep)] if keep > 0 else data[:keep])
    with pytest.raises(ImageError, match="cut.jpg.*truncated"):
        read_image(cut)


def test_truncated_jpeg_with_zero_padding_is_refused(tmp_path: Path) -> None:
    """A copy cut short and padded (a failed download) is not mistaken for a trailer."""
    data = _photo_jpeg(tmp_path / "good.jpg")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2] + b"\x00" * 6000)
    with pytest.raises(ImageError, match="truncated"):
        read_image(cut)


def test_png_with_trailing_bytes_opens_and_cut_png_is_refused(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), _pattern(40, 50))
    extra = tmp_path / "extra.png"
    extra.write_bytes(good.read_bytes() + b"x" * 6000)
    assert read_image(extra).pixels.shape == (40, 50, 3)
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:-20])
    with pytest.raises(ImageError, match="truncated"):
        read_image(cut)


def test_one_pixel_cap_covers_opencv_and_the_pillow_fallback(tmp_path: Path, monkeypatch) -> None:
    import models.data.io as mio

    path = tmp_path / "big.png"
    cv2.imwrite(str(path), _pattern(60, 80))
    monkeypatch.setattr(mio, "MAX_IMAGE_PIXELS", 60 * 80 - 1)
    with pytest.raises(ImageError, match="big.png: image too large"):
        read_image(path)
    with pytest.raises(ImageError, match="too large"):
        read_image(path, max_pixels=None)  # no reduction asked: the cap still holds
    # The Pillow fallback (used when OpenCV cannot read a file) refuses before decoding, too.
    decoded_by_pillow = []
    real_open = mio.Image.open

    def spy_open(fp, *a, **k):
        im = real_open(fp, *a, **k)
        real_load = im.load
        im.load = lambda: decoded_by_pillow.append(1) or real_load()
        return im

    monkeypatch.setattr(mio.Image, "open", spy_open)
    with pytest.raises(ImageError, match="too large"):
        mio._decode_with_pillow(path.read_bytes(), path.name)
    assert decoded_by_pillow == []
    monkeypatch.setattr(mio, "MAX_IMAGE_PIXELS", 60 * 80)
    arr, _ = mio._decode_with_pillow(path.read_bytes(), path.name)
    assert arr is not None and arr.shape == (60, 80, 3)
