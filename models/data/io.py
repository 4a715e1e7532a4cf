"""Safe image decoding: every image the app or a command sees goes through here.

Why one place: EXIF orientation, odd pixel formats (16-bit, grey, alpha, palette, CMYK), huge images and
corrupt files must be handled identically everywhere, or boxes drawn in the GUI would not match the boxes
a command computes on the same file.
"""

from __future__ import annotations

import io
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

#: The one limit on image size, for every decoder (OpenCV, and Pillow where OpenCV cannot read a file): a
#: file whose header declares more stored pixels is refused with a message before any pixel is decoded.
#: 300 MP covers large scans and stitched panoramas (0.9 GB as RGB if a decoder must work at full size)
#: while a "decompression bomb" (a tiny file declaring, say, 60000×60000) cannot exhaust memory.
MAX_IMAGE_PIXELS = 300_000_000

# Pillow's own bomb guard would refuse even to read the *header* of an image above its limit (we read sizes
# of every image in a folder); MAX_IMAGE_PIXELS, checked in read_image and the Pillow fallback, replaces it.
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


def jpeg_end(data: bytes) -> int | None:
    """Offset just past the end-of-image marker of the JPEG stream that starts ``data``.

    None when the data stops before that marker (a truncated file); -1 when the segment structure is not
    one we can walk (the decoder then judges the whole file). Walking the segments, rather than looking
    for the marker near the end of the file, is what lets phones' files through: motion photos and maker
    notes append megabytes after the image, so its end-of-image marker is nowhere near the end of the file.
    Entropy-coded data never holds 0xFF followed by anything but 0x00 (stuffing), a restart marker or fill,
    so the first other marker after a scan ends it.
    """
    n = len(data)
    if n < 4 or data[:2] != b"\xff\xd8":
        return -1
    markers: np.ndarray | None = None  # offsets of every 0xFF that starts a real marker (computed on demand)
    pos = 2
    while True:
        if pos + 1 >= n:
            return None
        if data[pos] != 0xFF:
            return -1
        m = data[pos + 1]
        if m == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if m == 0xD9:
            return pos + 2
        if 0xD0 <= m <= 0xD7 or m == 0x01:
            pos += 2
            continue
        if pos + 4 > n:
            return None
        length = (data[pos + 2] << 8) | data[pos + 3]
        if length < 2:
            return -1
        pos += 2 + length
        if pos > n:
            return None
        if m == 0xDA:  # start of scan: skip its entropy-coded data to the next real marker
            if markers is None:
                arr = np.frombuffer(data, np.uint8)
                ff = np.flatnonzero(arr[:-1] == 0xFF)
                nxt = arr[ff + 1]
                markers = ff[(nxt != 0x00) & (nxt != 0xFF) & ((nxt < 0xD0) | (nxt > 0xD7))]
            k = int(np.searchsorted(markers, pos))
            if k >= markers.shape[0]:
                return None
            pos = int(markers[k])


def png_end(data: bytes) -> int | None:
    """Offset just past the IEND chunk of a PNG; None when the data stops first, -1 when not walkable."""
    n = len(data)
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return -1
    pos = 8
    while True:
        if pos + 8 > n:
            return None
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        pos += 12 + length  # length, type, data, CRC
        if pos > n:
            return None
        if kind == b"IEND":
            return pos


def _complete_stream(data: bytes) -> tuple[bytes, str | None]:
    """(the image's own bytes without trailing extras, or a reason the stream is cut short).

    OpenCV 5 refuses a cut-off JPEG, but OpenCV 4 fills the missing part with grey and says nothing, so
    truncation is decided here, on the format's own structure, for every OpenCV version.
    """
    if data[:3] == b"\xff\xd8\xff":
        end, what = jpeg_end(data), "JPEG data is truncated (it ends before its end-of-image marker)"
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        end, what = png_end(data), "PNG data is truncated (it ends before its IEND chunk)"
    else:
        return data, None
    if end is None:
        return data, what
    return (data[:end] if 0 < end < len(data) else data), None


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
    check_pixel_cap(p.name, info.stored_width, info.stored_height)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ImageError(f"{p.name}: cannot read file ({exc.strerror or exc})") from exc
    data, reason = _complete_stream(data)
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
    why = ""
    if arr is None:
        arr, why = _decode_with_pillow(data, p.name)
    if arr is None or arr.size == 0:
        raise ImageError(f"{p.name}: cannot decode image data (corrupt or unsupported{'; ' + why if why else ''})")
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


def check_pixel_cap(name: str, width: int, height: int) -> None:
    """Refuse an image above :data:`MAX_IMAGE_PIXELS` (read from the module at call time, so tests can lower it)."""
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageError(f"{name}: image too large to open ({width}×{height} = {width * height / 1e6:.0f} MP; "
                         f"the limit is {MAX_IMAGE_PIXELS / 1e6:.0f} MP)")


def _decode_with_pillow(data: bytes, name: str) -> tuple[np.ndarray | None, str]:
    """Fallback for formats OpenCV lacks (e.g. some palette or CMYK files): (BGR like OpenCV, or None, and
    why not). Pillow's decoder says when data is cut short ("image file is truncated"); its size is checked
    against the same cap as OpenCV's before it decodes anything."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            check_pixel_cap(name, *im.size)
            im.load()
            rgb = np.asarray(im.convert("RGB"))
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), ""
    except ImageError:
        raise
    except Exception as exc:
        return None, str(exc)


def resize_to_max_side(rgb: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """Downscale so the longer side is at most ``max_side``; returns (pixels, scale applied)."""
    h, w = rgb.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return rgb, 1.0
    s = max_side / max(h, w)
    out = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return out, s
