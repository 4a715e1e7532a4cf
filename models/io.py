"""Safe image decoding: every image the app or a command sees goes through here.

Why one place: EXIF orientation, odd pixel formats (16-bit, grey, alpha, palette, CMYK), huge images and
corrupt files must be handled identically everywhere, or boxes drawn in the GUI would not match the boxes
a command computes on the same file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")

#: Above this many pixels an image is decoded reduced (by 2, 4 or 8) so a 20000×20000 scan cannot exhaust
#: memory; boxes stay in full-resolution pixels and ``DecodedImage.scale`` says how to map them.
DEFAULT_MAX_PIXELS = 40_000_000

_EXIF_ORIENTATION_TAG = 0x0112

# Let Pillow read headers of big images: we never decode through Pillow, we only read sizes and tags.
Image.MAX_IMAGE_PIXELS = None


class ImageError(Exception):
    """An image that cannot be shown; the message is meant for the user and names the file."""


@dataclass(frozen=True)
class ImageInfo:
    """What the header says, read without decoding pixels."""

    path: Path
    width: int  # as displayed, EXIF orientation applied
    height: int
    orientation: int  # EXIF orientation tag (1 = as stored)
    stored_width: int  # before orientation
    stored_height: int


@dataclass
class DecodedImage:
    """RGB pixels plus the geometry that maps them back to the full-resolution displayed image."""

    pixels: np.ndarray  # H×W×3 uint8 RGB, possibly reduced (see scale)
    width: int  # full-resolution displayed width (EXIF applied)
    height: int
    orientation: int
    stored_width: int
    stored_height: int
    scale: float = 1.0  # pixels.shape[1] / width; below 1 for a reduced preview
    path: Path | None = None

    @property
    def is_reduced(self) -> bool:
        return self.scale < 1.0


def is_image_file(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def read_image_info(path: str | os.PathLike) -> ImageInfo:
    """Header-only read: size and orientation, fast enough for a folder scan."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise ImageError(f"{p.name}: cannot read file ({exc.strerror or exc})") from exc
    if size == 0:
        raise ImageError(f"{p.name}: empty file (0 bytes)")
    try:
        with Image.open(p) as im:
            w, h = im.size
            orientation = 1
            try:
                orientation = int(im.getexif().get(_EXIF_ORIENTATION_TAG, 1) or 1)
            except Exception:  # a broken EXIF block must not make the image unreadable
                orientation = 1
    except UnidentifiedImageError as exc:
        raise ImageError(f"{p.name}: not a supported image format") from exc
    except OSError as exc:
        raise ImageError(f"{p.name}: cannot read image header ({exc})") from exc
    if orientation not in range(1, 9):
        orientation = 1
    dw, dh = (h, w) if orientation >= 5 else (w, h)
    return ImageInfo(p, dw, dh, orientation, w, h)


def _looks_truncated(data: bytes) -> str | None:
    """Cheap end-of-stream checks; OpenCV happily returns half-grey pixels for a cut-off file."""
    if data[:3] == b"\xff\xd8\xff":
        tail = data[-64:].rstrip(b"\x00")
        if b"\xff\xd9" not in tail:
            return "JPEG data is truncated (no end-of-image marker)"
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        if b"IEND" not in data[-64:]:
            return "PNG data is truncated (no IEND chunk)"
    return None


def _to_rgb8(arr: np.ndarray) -> np.ndarray:
    """Any OpenCV decode result (grey, grey+alpha, BGR, BGRA; 8/16-bit or float) → RGB uint8."""
    if arr.dtype == np.uint16:
        hi = float(np.percentile(arr, 99.9)) if arr.size else 0.0
        hi = hi if hi > 0 else 65535.0
        arr = np.clip(arr.astype(np.float32) * (255.0 / hi), 0, 255).astype(np.uint8)
    elif arr.dtype in (np.float32, np.float64):
        finite = np.nan_to_num(arr.astype(np.float32))
        lo, hi = float(finite.min()), float(finite.max())
        scale = 255.0 / (hi - lo) if hi > lo else 1.0
        arr = np.clip((finite - lo) * scale, 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        return cv2.cvtColor(arr, cv2.COLOR_GRAY2RGB)
    channels = arr.shape[2]
    if channels == 1:
        return cv2.cvtColor(arr[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels == 2:
        return cv2.cvtColor(np.ascontiguousarray(arr[:, :, 0]), cv2.COLOR_GRAY2RGB)
    if channels == 4:
        return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip stored pixels to how a viewer shows them (EXIF orientation 1–8)."""
    if orientation == 2:
        return arr[:, ::-1].copy()
    if orientation == 3:
        return cv2.rotate(arr, cv2.ROTATE_180)
    if orientation == 4:
        return arr[::-1].copy()
    if orientation == 5:
        return np.ascontiguousarray(np.swapaxes(arr, 0, 1))
    if orientation == 6:
        return cv2.rotate(arr, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return np.ascontiguousarray(np.swapaxes(arr[::-1, ::-1], 0, 1))
    if orientation == 8:
        return cv2.rotate(arr, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return arr


def read_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode an image file to RGB uint8 as displayed (EXIF applied), reduced if above ``max_pixels``.

    Raises ImageError with a reason a user can act on; never returns garbage for a corrupt file.
    """
    info = read_image_info(path)
    p = info.path
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ImageError(f"{p.name}: cannot read file ({exc.strerror or exc})") from exc
    reason = _looks_truncated(data)
    if reason:
        raise ImageError(f"{p.name}: {reason}")
    buf = np.frombuffer(data, np.uint8)
    factor = 1
    if max_pixels is not None:
        while info.stored_width * info.stored_height / (factor * factor) > max_pixels and factor < 8:
            factor *= 2
    if factor > 1:
        flag = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}[factor]
        arr = cv2.imdecode(buf, flag | cv2.IMREAD_IGNORE_ORIENTATION)
    else:
        arr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
        if arr is None:  # e.g. CMYK or odd TIFF that only the colour path understands
            arr = cv2.imdecode(buf, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if arr is None:
        arr = _decode_with_pillow(p)
    if arr is None or arr.size == 0:
        raise ImageError(f"{p.name}: cannot decode image data (corrupt or unsupported)")
    if arr.ndim == 3 and arr.shape[2] == 4 and _is_cmyk(p):
        raise ImageError(f"{p.name}: CMYK image could not be converted")
    rgb = apply_orientation(_to_rgb8(arr), info.orientation)
    scale = rgb.shape[1] / info.width if info.width else 1.0
    if factor == 1:
        scale = 1.0
    return DecodedImage(rgb, info.width, info.height, info.orientation, info.stored_width, info.stored_height,
                        scale, p)


def _is_cmyk(path: Path) -> bool:
    try:
        with Image.open(path) as im:
            return im.mode == "CMYK"
    except Exception:
        return False


def _decode_with_pillow(path: Path) -> np.ndarray | None:
    """Fallback for formats OpenCV lacks (e.g. some palette or CMYK files); returns BGR like OpenCV."""
    try:
        with Image.open(path) as im:
            im.load()
            rgb = np.asarray(im.convert("RGB"))
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    except Exception:
        return None


def resize_to_max_side(rgb: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """Downscale so the longer side is at most ``max_side``; returns (pixels, scale applied)."""
    h, w = rgb.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return rgb, 1.0
    s = max_side / max(h, w)
    out = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return out, s
