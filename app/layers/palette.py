"""Class colours that stay apart from one another, and label text that stays readable on them.

Why not a hash of the name: hues from a hash bunch up (person, helmet, flag and banner all came out green),
and a user cannot tell those boxes apart. Instead the first colours of a dataset's class list are taken, in
list order, from a palette whose colours are spread out in OKLab (a perceptually uniform colour space): each
new colour is the candidate farthest from all colours already taken (farthest-point sampling). The class
list only grows at its end, so a class keeps its colour within a dataset. Names outside the list (a
detection's class, say) fall back to a stable hash into the same palette.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

from PySide6.QtGui import QColor

#: How many colours the palette holds before it repeats.
PALETTE_SIZE = 24


def oklch_to_srgb(lightness: float, chroma: float, hue_deg: float) -> tuple[float, float, float] | None:
    """OKLCH → sRGB in 0..1, or None when the colour lies outside the sRGB gamut."""
    a = chroma * math.cos(math.radians(hue_deg))
    b = chroma * math.sin(math.radians(hue_deg))
    l_ = (lightness + 0.3963377774 * a + 0.2158037573 * b) ** 3
    m_ = (lightness - 0.1055613458 * a - 0.0638541728 * b) ** 3
    s_ = (lightness - 0.0894841775 * a - 1.2914855480 * b) ** 3
    lin = (4.0767416621 * l_ - 3.3077115913 * m_ + 0.2309699292 * s_,
           -1.2684380046 * l_ + 2.6097574011 * m_ - 0.3413193965 * s_,
           -0.0041960863 * l_ - 0.7034186147 * m_ + 1.7076147010 * s_)
    if any(c < -1e-4 or c > 1 + 1e-4 for c in lin):
        return None
    return tuple(_gamma(min(max(c, 0.0), 1.0)) for c in lin)  # type: ignore[return-value]


def _gamma(c: float) -> float:
    return 12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055


def _lab(lightness: float, chroma: float, hue_deg: float) -> tuple[float, float, float]:
    return (lightness, chroma * math.cos(math.radians(hue_deg)), chroma * math.sin(math.radians(hue_deg)))


def build_palette(n: int = PALETTE_SIZE) -> list[tuple[int, int, int]]:
    """``n`` sRGB colours, each as far (OKLab) from the earlier ones as the candidates allow.

    Candidates: bright, saturated colours only (lightness 0.62–0.88, chroma 0.10–0.20), so every class
    colour shows on a dark halo and under a label. Deterministic: no randomness, same list every run.
    """
    cands: list[tuple[tuple[float, float, float], tuple[float, float, float]]] = []
    for lightness in (0.62, 0.70, 0.78, 0.88):
        for chroma in (0.20, 0.15, 0.10):
            for hue in range(0, 360, 10):
                rgb = oklch_to_srgb(lightness, chroma, hue)
                if rgb is not None:
                    cands.append((_lab(lightness, chroma, hue), rgb))
    chosen: list[int] = [min(range(len(cands)), key=lambda k: _dist(cands[k][0], _lab(0.70, 0.20, 30)))]
    dmin = [_dist(c[0], cands[chosen[0]][0]) for c in cands]
    while len(chosen) < min(n, len(cands)):
        k = max(range(len(cands)), key=lambda j: dmin[j])
        chosen.append(k)
        dmin = [min(d, _dist(c[0], cands[k][0])) for d, c in zip(dmin, cands, strict=True)]
    return [tuple(round(v * 255) for v in cands[k][1]) for k in chosen]  # type: ignore[misc]


def _dist(p: Sequence[float], q: Sequence[float]) -> float:
    return math.dist(p, q)


PALETTE: list[tuple[int, int, int]] = build_palette()
_order: dict[str, int] = {}


def set_class_order(names: Sequence[str]) -> None:
    """The open dataset's class list: its k-th class gets palette colour k (repeating after the palette)."""
    _order.clear()
    for k, n in enumerate(names):
        _order.setdefault(str(n), k)


def class_color(name: str) -> QColor:
    """The colour of class ``name``: by its place in the dataset's class list, else a stable hash."""
    k = _order.get(name)
    if k is None:
        k = zlib.crc32(name.encode("utf-8"))
    r, g, b = PALETTE[k % len(PALETTE)]
    return QColor(r, g, b)


def relative_luminance(color: QColor) -> float:
    """WCAG relative luminance of an sRGB colour (0 black … 1 white)."""
    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    return 0.2126 * lin(color.redF()) + 0.7152 * lin(color.greenF()) + 0.0722 * lin(color.blueF())


def contrast_ratio(a: QColor, b: QColor) -> float:
    la, lb = relative_luminance(a), relative_luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def text_color_for(background: QColor) -> QColor:
    """Black or white, whichever contrasts more with ``background`` (WCAG contrast ratio)."""
    black, white = QColor(0, 0, 0), QColor(255, 255, 255)
    return black if contrast_ratio(background, black) >= contrast_ratio(background, white) else white
