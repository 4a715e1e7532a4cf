"""The in-memory annotation every format converts to and from.

Boxes are float ``[x1, y1, x2, y2]`` in pixels of the image *as displayed* (EXIF applied), x2/y2 exclusive,
so a box that covers pixel columns 0..9 is ``[0, 0, 10, ...]``. Format quirks (VOC's 1-based inclusive
corners, COCO's ``[x, y, w, h]``, YOLO's normalised centres) are converted at the file edge only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np


class AnnotationError(Exception):
    """A file we could not parse; names the file (and line when known) so the user can fix it."""

    def __init__(self, path: str | Path | None, reason: str, line: int | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.reason = reason
        self.line = line
        where = self.path.name if self.path is not None else "annotation"
        if line is not None:
            where += f", line {line}"
        super().__init__(f"{where}: {reason}")


@dataclass
class BoxObject:
    name: str
    box: tuple[float, float, float, float]
    difficult: bool = False
    truncated: bool = False
    #: COCO ``iscrowd``: a group of objects in one box, none of them boxed. Never a miss; a detection mostly
    #: inside it is not scored (COCO's rule, models.detection.evaluation); training never takes it as an object.
    crowd: bool = False
    #: Which element/entry/line of the file it was read from, as ``(source key, index)``; lets a writer patch
    #: that one instead of regenerating the file (see ``models.data.annotations.fidelity``). Edits made with
    #: ``dataclasses.replace`` keep it; it is not part of the object's value (not compared, not shown).
    origin: tuple[int, int] | None = field(default=None, compare=False, repr=False)
    #: The object's outline where the file has one (COCO's polygon ``segmentation``): polygons, each a flat
    #: ``(x0, y0, x1, y1, ...)`` in displayed pixels. Read-only: the GUI edits boxes, and training uses it to
    #: cut the object out of its photo (copy-paste augmentation). Not part of the object's value.
    outline: tuple[tuple[float, ...], ...] = field(default=(), compare=False, repr=False)

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    def moved(self, box: tuple[float, float, float, float]) -> BoxObject:
        """The object with a new box; its outline is dropped, as it no longer says where the object is."""
        return replace(self, box=tuple(float(v) for v in box), outline=())  # type: ignore[arg-type]


def polygon_area(polygon: Sequence[float]) -> float:
    """The area inside a flat ``(x0, y0, x1, y1, ...)`` polygon (the shoelace formula): an outline's size."""
    return abs(_signed_area(polygon))


def _signed_area(polygon: Sequence[float]) -> float:
    xs, ys = polygon[0::2], polygon[1::2]
    return sum(float(xs[i]) * float(ys[i - 1]) - float(xs[i - 1]) * float(ys[i]) for i in range(len(xs))) / 2


def joined_polygon(outline: Sequence[Sequence[float]]) -> tuple[float, ...]:
    """An outline of several polygons (a COCO object in parts: a person behind a pole) as one polygon, for
    formats that hold one per object (YOLO's segmentation lines).

    The parts are chained nearest first, each joined to the next by a bridge between their closest vertices;
    the ring walks every part out along the bridges and back, so each bridge is run once each way and adds no
    area (Ultralytics' ``merge_multi_segment`` joins parts the same way, in the file's order). Every part is
    first turned the same way round, so the joined polygon's area is the parts' sum, and filled by pixel
    centres (even-odd, as ``skimage.draw.polygon`` and copy-paste fill) it covers the parts' pixels, except
    where parts overlap (their common pixels become a hole) or a bridge crosses a part: 4 of coco_tiny's 65
    objects in parts differ, by at most 2 % of their pixels. ``cv2.fillPoly`` also draws the bridges as 1-px
    lines. Parts that are no polygon (under three vertices, an odd count of values, no area) are left out; ()
    when none is left."""
    parts = [np.asarray(p, np.float64).reshape(-1, 2) for p in outline
             if len(p) >= 6 and len(p) % 2 == 0 and polygon_area(p) > 0]
    if len(parts) < 2:
        return tuple(float(v) for v in parts[0].reshape(-1)) if parts else ()
    parts = [p if _signed_area(p.reshape(-1)) >= 0 else p[::-1] for p in parts]
    chain, rest = [parts[0]], parts[1:]
    while rest:  # the part nearest the last one chained goes next: short bridges, across as little as possible
        gaps = [float(_closest(chain[-1], p)[2]) for p in rest]
        chain.append(rest.pop(int(np.argmin(gaps))))
    exits = [_closest(chain[k], chain[k + 1]) for k in range(len(chain) - 1)]  # (vertex in k, in k + 1, gap)
    entry = [None] + [int(e[1]) for e in exits]
    leave = [int(e[0]) for e in exits] + [None]
    ring = [_arc(chain[0], leave[0], leave[0])]  # part 0 all round, from where it leaves
    for k in range(1, len(chain)):  # out: each part from where it is entered to where it leaves (the last: all)
        ring.append(_arc(chain[k], entry[k], entry[k] if leave[k] is None else leave[k], leave[k] is None))
    for k in range(len(chain) - 2, 0, -1):  # back: the rest of each part, from where it left to its entry
        ring.append(_arc(chain[k], leave[k], entry[k], True))
    return tuple(float(v) for v in np.concatenate(ring).reshape(-1))


def _closest(a: np.ndarray, b: np.ndarray) -> tuple[int, int, float]:
    """The vertex of ``a`` and the vertex of ``b`` closest to each other, and their distance."""
    d = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    i, j = np.unravel_index(int(np.argmin(d)), d.shape)
    return int(i), int(j), float(np.sqrt(d[i, j]))


def _arc(ring: np.ndarray, start: int, stop: int, all_round: bool = True) -> np.ndarray:
    """The vertices of ``ring`` from ``start`` to ``stop`` going forward, both included; the whole ring back to
    ``start`` when they are the same vertex and ``all_round`` (else that one vertex)."""
    n = len(ring)
    steps = (stop - start) % n
    if steps == 0 and all_round:
        steps = n
    return ring[(start + np.arange(steps + 1)) % n]


@dataclass
class Annotation:
    """One image's ground truth. ``width``/``height`` are the displayed image size (0 when unknown)."""

    filename: str = ""
    width: int = 0
    height: int = 0
    depth: int = 3
    objects: list[BoxObject] = field(default_factory=list)
    verified: bool = False
    #: Free-form notes from reading, e.g. "boxes rotated to match EXIF orientation"; shown once to the user.
    warnings: list[str] = field(default_factory=list)
    #: What the reader saw (a ``models.data.annotations.fidelity.SourceRecord``: the file's bytes, its objects as
    #: written): the writer of the same format patches that file, so what we do not model is kept and an
    #: unchanged annotation is written back byte-identical. Shared by copies; never compared.
    source: object | None = field(default=None, compare=False, repr=False)

    def copy(self) -> Annotation:
        return Annotation(self.filename, self.width, self.height, self.depth,
                          [replace(o) for o in self.objects], self.verified, [], self.source)

    @property
    def class_names(self) -> list[str]:
        seen: dict[str, None] = {}
        for o in self.objects:
            seen.setdefault(o.name, None)
        return list(seen)


def clip_box(box: tuple[float, float, float, float], width: int, height: int) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = box
    return (min(max(x1, 0.0), width), min(max(y1, 0.0), height), min(max(x2, 0.0), width), min(max(y2, 0.0), height))


def validate_objects(objects: list[BoxObject], width: int, height: int, path: str | Path | None) -> list[str]:
    """Problems a user should hear about; raises for boxes that cannot be represented (negative size)."""
    problems: list[str] = []
    for i, o in enumerate(objects):
        x1, y1, x2, y2 = o.box
        if not all(map(_finite, o.box)):
            raise AnnotationError(path, f"object {i + 1} ({o.name}) has a non-numeric coordinate")
        if x2 <= x1 or y2 <= y1:
            raise AnnotationError(path, f"object {i + 1} ({o.name}) has a negative or zero size: {o.box}")
        if width and height and (x1 < 0 or y1 < 0 or x2 > width or y2 > height):
            problems.append(f"object {i + 1} ({o.name}) lies partly outside the {width}×{height} image")
    return problems


def _finite(v: float) -> bool:
    return v == v and v not in (float("inf"), float("-inf"))
