"""Colour spaces of Selective Search (Uijlings et al., IJCV 2013, table 1), all as uint8 channels 0..255.

Why they matter: each space is invariant to different things (HSV/H to shading, rg to intensity, I to
nothing), so segmenting and grouping in several of them finds objects a single space misses. Every space is
returned as an H×W×C uint8 array with each channel spanning 0..255, so the graph segmentation's k and the
histograms' 25 bins mean the same thing in every space.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Names accepted everywhere (CLI, GUI, strategies); ``channels`` says how many each produces.
COLOR_SPACES: dict[str, int] = {
    "rgb": 3,  # plain RGB
    "hsv": 3,  # hue (full circle mapped to 0..255), saturation, value
    "lab": 3,  # CIE L*a*b*, OpenCV's 8-bit scaling (L·255/100, a+128, b+128)
    "rgI": 3,  # normalised r, g (chromaticity) plus intensity
    "nrgb": 3,  # normalised r, g, b (sum to 255)
    "H": 1,  # hue only
    "I": 1,  # intensity (grey)
}


def as_rgb8(image: np.ndarray) -> np.ndarray:
    """H×W, H×W×1, H×W×3 or H×W×4 of any numeric type → contiguous H×W×3 uint8 RGB.

    Greyscale input is common (scans, X-rays); treating it as three equal channels keeps one code path.
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an H×W or H×W×{{1,3,4}} image, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.size and float(np.nanmax(arr)) <= 1.0:
            arr = np.nan_to_num(arr) * 255.0
        arr = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[:, :, :3]
    return np.ascontiguousarray(arr)


def convert(rgb: np.ndarray, space: str) -> np.ndarray:
    """RGB uint8 → ``space`` as H×W×C uint8 (C = ``COLOR_SPACES[space]``)."""
    if space not in COLOR_SPACES:
        raise ValueError(f"unknown colour space {space!r}; choose from {', '.join(COLOR_SPACES)}")
    rgb = as_rgb8(rgb)
    if space == "rgb":
        return rgb
    if space == "hsv":
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL)
    if space == "H":
        return np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL)[:, :, :1])
    if space == "lab":
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)
    if space == "I":
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[:, :, None]
    f = rgb.astype(np.float32)
    total = f.sum(axis=2, keepdims=True)
    # A black pixel has no chromaticity; give it the neutral grey point so it does not look saturated.
    norm = np.where(total > 0, f * (255.0 / np.maximum(total, 1.0)), 255.0 / 3.0)
    if space == "nrgb":
        return np.clip(norm + 0.5, 0, 255).astype(np.uint8)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)[:, :, None]
    rgi = np.concatenate([norm[:, :, :2], grey], axis=2)
    return np.clip(rgi + 0.5, 0, 255).astype(np.uint8)
