"""Bring boxes recorded on the stored (unrotated) pixels onto the image as displayed.

LabelImg and older tools ignored EXIF orientation, so their VOC files describe the sideways image. When a
file's recorded size matches the stored size but not the displayed one, its boxes are mapped through the
same transform as the pixels; the caller tells the user once.
"""

from __future__ import annotations

from models.data.annotations.fidelity import SourceRecord
from models.data.annotations.model import Annotation


def map_box(box: tuple[float, float, float, float], orientation: int, stored_w: int,
            stored_h: int) -> tuple[float, float, float, float]:
    """Map a box on stored pixels (W×H) to displayed pixels for EXIF orientation 1–8."""
    x1, y1, x2, y2 = box
    W, H = stored_w, stored_h
    if orientation == 2:
        return (W - x2, y1, W - x1, y2)
    if orientation == 3:
        return (W - x2, H - y2, W - x1, H - y1)
    if orientation == 4:
        return (x1, H - y2, x2, H - y1)
    if orientation == 5:  # transpose
        return (y1, x1, y2, x2)
    if orientation == 6:  # rotate 90° clockwise: (x, y) → (H - y, x)
        return (H - y2, x1, H - y1, x2)
    if orientation == 7:  # transverse
        return (H - y2, W - x2, H - y1, W - x1)
    if orientation == 8:  # rotate 90° counter-clockwise: (x, y) → (y, W - x)
        return (y1, W - x2, y2, W - x1)
    return box


def _map_polygon(poly: tuple[float, ...], orientation: int, stored_w: int, stored_h: int) -> tuple[float, ...]:
    """A flat ``(x0, y0, x1, y1, ...)`` polygon mapped as :func:`map_box` maps a box (a point is an empty box)."""
    out: list[float] = []
    for x, y in zip(poly[0::2], poly[1::2], strict=True):
        out.extend(map_box((x, y, x, y), orientation, stored_w, stored_h)[:2])
    return tuple(out)


def fit_to_orientation(ann: Annotation, orientation: int, stored_w: int, stored_h: int) -> bool:
    """Rotate ``ann`` in place when its size is the stored, not displayed, one; True if it did."""
    if orientation not in (5, 6, 7, 8) or stored_w == stored_h:
        return False
    if (ann.width, ann.height) != (stored_w, stored_h):
        return False
    for o in ann.objects:
        o.box = map_box(o.box, orientation, stored_w, stored_h)
        o.outline = tuple(_map_polygon(poly, orientation, stored_w, stored_h) for poly in o.outline)
    ann.width, ann.height = stored_h, stored_w
    if isinstance(ann.source, SourceRecord) and ann.source.loaded is not None:
        ann.source.remember_loaded(ann)  # what the user is shown; saving it unedited changes nothing
    ann.warnings.append("boxes were recorded on the unrotated image; rotated to match its EXIF orientation")
    return True
