"""The in-memory annotation every format converts to and from.

Boxes are float ``[x1, y1, x2, y2]`` in pixels of the image *as displayed* (EXIF applied), x2/y2 exclusive,
so a box that covers pixel columns 0..9 is ``[0, 0, 10, ...]``. Format quirks (VOC's 1-based inclusive
corners, COCO's ``[x, y, w, h]``, YOLO's normalised centres) are converted at the file edge only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path


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
    #: COCO ``iscrowd``: like ``difficult``, neither a miss nor a false positive in evaluation.
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
    xs, ys = polygon[0::2], polygon[1::2]
    return abs(sum(float(xs[i]) * float(ys[i - 1]) - float(xs[i - 1]) * float(ys[i]) for i in range(len(xs)))) / 2


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
