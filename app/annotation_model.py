"""The current image's editable annotation, shared by the canvas, the box editor and the document.

Why a QObject wrapper around ``models.data.annotations.Annotation``: several views show the same boxes (canvas,
box editor, class list, autosave) and each must hear about every edit exactly once. All edits go through
undo commands (``app.commands``) which call the low-level mutators here; the mutators emit ``changed`` so
autosave fires once per edit, and keep the selection consistent when boxes are inserted or removed.

Boxes are float ``[x1, y1, x2, y2]`` in full-resolution displayed pixels (x2/y2 exclusive).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace

from PySide6.QtCore import QObject, Signal

from models.data.annotations import Annotation, BoxObject

Box = tuple[float, float, float, float]


#: Name given to a box drawn while no class is chosen: VOC/COCO/YOLO all need a non-empty name.
FALLBACK_CLASS = "object"


class AnnotationModel(QObject):
    """Editable annotation of one image at a time; see the module docstring for the signal contract."""

    #: After every edit (insert/remove/replace/verified). Not emitted by ``set_annotation``.
    changed = Signal()
    selectionChanged = Signal()
    #: A different annotation (usually another image) was loaded; views redraw from scratch.
    annotationReset = Signal()
    currentClassChanged = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ann = Annotation()
        self._selected: list[int] = []
        self._current_class = ""

    # --- whole annotation -------------------------------------------------------------------------------
    def set_annotation(self, ann: Annotation | None, width: int, height: int) -> None:
        """Show ``ann`` (copied) for an image of ``width``×``height``; None means an empty annotation.

        The given size wins over the annotation's recorded one: boxes are clamped against what is displayed.
        Emits ``annotationReset`` (not ``changed``: loading is not an edit and must not trigger autosave).
        """
        if ann is None:
            self._ann = Annotation(width=int(width), height=int(height))
        else:
            self._ann = ann.copy()
            self._ann.verified = ann.verified
            self._ann.warnings = list(ann.warnings)
            self._ann.width, self._ann.height = int(width), int(height)
        had_selection = bool(self._selected)
        self._selected = []
        self.annotationReset.emit()
        if had_selection:
            self.selectionChanged.emit()

    def annotation(self) -> Annotation:
        """A copy for saving; later edits do not change it."""
        out = self._ann.copy()
        out.verified = self._ann.verified
        out.warnings = list(self._ann.warnings)
        return out

    @property
    def width(self) -> int:
        return self._ann.width

    @property
    def height(self) -> int:
        return self._ann.height

    @property
    def objects(self) -> list[BoxObject]:
        """The boxes in order (a new list; the objects are replaced, never mutated, by edits)."""
        return list(self._ann.objects)

    def __len__(self) -> int:
        return len(self._ann.objects)

    def object(self, i: int) -> BoxObject:
        return self._ann.objects[i]

    @property
    def verified(self) -> bool:
        return self._ann.verified

    def set_verified(self, verified: bool) -> None:
        """The LabelImg "verified" mark; an edit (autosaved) but not an undoable one."""
        if bool(verified) != self._ann.verified:
            self._ann.verified = bool(verified)
            self.changed.emit()

    # --- selection ----------------------------------------------------------------------------------------
    @property
    def selected_indices(self) -> list[int]:
        return list(self._selected)

    def select(self, indices: Iterable[int]) -> None:
        """Select exactly ``indices`` (out-of-range ones are dropped)."""
        n = len(self._ann.objects)
        new = sorted({int(i) for i in indices if 0 <= int(i) < n})
        if new != self._selected:
            self._selected = new
            self.selectionChanged.emit()

    def clear_selection(self) -> None:
        self.select([])

    # --- current class ------------------------------------------------------------------------------------
    @property
    def current_class(self) -> str:
        """Class given to newly drawn boxes (the class list's choice, digit keys 1–9)."""
        return self._current_class

    @current_class.setter
    def current_class(self, name: str) -> None:
        self.set_current_class(name)

    def set_current_class(self, name: str) -> None:
        name = str(name)
        if name != self._current_class:
            self._current_class = name
            self.currentClassChanged.emit(name)

    def class_for_new_box(self) -> str:
        return self._current_class.strip() or FALLBACK_CLASS

    # --- geometry helpers ---------------------------------------------------------------------------------
    def clamp_box(self, box: Iterable[float], snap: bool = True) -> Box:
        """Ordered, optionally snapped to integer pixels, and clamped to the image."""
        x1, y1, x2, y2 = (float(v) for v in box)
        x1, x2 = min(x1, x2), max(x1, x2)
        y1, y2 = min(y1, y2), max(y1, y2)
        if snap:
            x1, y1, x2, y2 = (float(round(v)) for v in (x1, y1, x2, y2))
        w, h = self._ann.width, self._ann.height
        if w > 0 and h > 0:
            x1, x2 = min(max(x1, 0.0), float(w)), min(max(x2, 0.0), float(w))
            y1, y2 = min(max(y1, 0.0), float(h)), min(max(y2, 0.0), float(h))
        return (x1, y1, x2, y2)

    def clamp_translation(self, boxes: Iterable[Box], dx: float, dy: float) -> tuple[float, float]:
        """Largest part of (dx, dy) that keeps every box inside the image (moving never changes a size)."""
        w, h = self._ann.width, self._ann.height
        if w <= 0 or h <= 0:
            return dx, dy
        boxes = list(boxes)
        if not boxes:
            return 0.0, 0.0
        lo_x = max(-b[0] for b in boxes)
        hi_x = min(w - b[2] for b in boxes)
        lo_y = max(-b[1] for b in boxes)
        hi_y = min(h - b[3] for b in boxes)
        # A box already outside (imported) must still be movable inward, never pushed further out.
        dx = min(max(dx, min(lo_x, 0.0)), max(hi_x, 0.0))
        dy = min(max(dy, min(lo_y, 0.0)), max(hi_y, 0.0))
        return dx, dy

    # --- low-level mutators: ONLY app.commands calls these ----------------------------------------------
    def insert_object(self, i: int, obj: BoxObject) -> None:
        i = max(0, min(int(i), len(self._ann.objects)))
        self._ann.objects.insert(i, _clean(obj))
        shifted = [j + 1 if j >= i else j for j in self._selected]
        if shifted != self._selected:
            self._selected = shifted
            self.selectionChanged.emit()
        self.changed.emit()

    def remove_object(self, i: int) -> BoxObject:
        obj = self._ann.objects.pop(int(i))
        sel = [j - 1 if j > i else j for j in self._selected if j != i]
        if sel != self._selected:
            self._selected = sel
            self.selectionChanged.emit()
        self.changed.emit()
        return obj

    def replace_object(self, i: int, obj: BoxObject) -> None:
        self._ann.objects[int(i)] = _clean(obj)
        self.changed.emit()


def _clean(obj: BoxObject) -> BoxObject:
    """A private copy with plain float coordinates, so callers can't mutate what the model holds."""
    box = tuple(float(v) for v in obj.box)
    if not all(math.isfinite(v) for v in box):
        raise ValueError(f"non-finite box {box}")
    return replace(obj, box=box)
