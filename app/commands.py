"""Undo commands for annotation edits: every change a user makes to boxes is one of these.

Why commands hold whole ``BoxObject`` values (not deltas): undo must restore exactly what was there, even
after snapping or clamping, and a value is trivially correct. Commands touch the model only through its
low-level mutators (``insert_object``, ``remove_object``, ``replace_object``) and restore the selection,
so undo puts the user back where they were.

The main window owns one QUndoStack per image; the canvas and box editor push onto the active one. Where
no stack is set, ``apply`` runs the command directly (tests, headless use).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from PySide6.QtGui import QUndoCommand, QUndoStack

from app.annotation_model import AnnotationModel, Box
from models.data.annotations import BoxObject

#: ``QUndoCommand.id`` values: commands with the same id may merge (``mergeWith``).
NUDGE_ID = 1001
EDIT_ID = 1002


def apply(stack: QUndoStack | None, cmd: QUndoCommand) -> None:
    """Push onto ``stack`` (which runs ``redo``) or, without a stack, just run it."""
    if stack is not None:
        stack.push(cmd)
    else:
        cmd.redo()


class AddObjectsCommand(QUndoCommand):
    """Add boxes (draw, paste, duplicate). Inserted at ``indices`` (default: appended) and selected."""

    def __init__(self, model: AnnotationModel, objects: Sequence[BoxObject], text: str = "Add box",
                 indices: Sequence[int] | None = None) -> None:
        n = len(objects)
        super().__init__(text if n == 1 or "box" not in text else text.replace("box", f"{n} boxes"))
        self._model = model
        self._objects = [replace(o) for o in objects]
        start = len(model)
        self._indices = list(indices) if indices is not None else list(range(start, start + n))
        self._previous_selection = model.selected_indices

    @property
    def indices(self) -> list[int]:
        return list(self._indices)

    def redo(self) -> None:
        for i, obj in sorted(zip(self._indices, self._objects, strict=True), key=lambda t: t[0]):
            self._model.insert_object(i, obj)
        self._model.select(self._indices)

    def undo(self) -> None:
        for i in sorted(self._indices, reverse=True):
            self._model.remove_object(i)
        self._model.select(self._previous_selection)


class DeleteObjectsCommand(QUndoCommand):
    """Delete boxes; undo puts them back at their old positions (order matters for export)."""

    def __init__(self, model: AnnotationModel, indices: Sequence[int], text: str = "Delete box") -> None:
        idx = sorted(set(indices))
        super().__init__(text if len(idx) == 1 else f"{text.replace('box', 'boxes')} ({len(idx)})")
        self._model = model
        self._indices = idx
        self._objects = [replace(model.object(i)) for i in idx]
        self._previous_selection = model.selected_indices

    def redo(self) -> None:
        for i in reversed(self._indices):
            self._model.remove_object(i)
        self._model.select([])

    def undo(self) -> None:
        for i, obj in zip(self._indices, self._objects, strict=True):
            self._model.insert_object(i, obj)
        self._model.select(self._previous_selection or self._indices)


class SetBoxesCommand(QUndoCommand):
    """Move or resize boxes: the new coordinates of each given box."""

    def __init__(self, model: AnnotationModel, indices: Sequence[int], boxes: Sequence[Box],
                 text: str = "Move box") -> None:
        super().__init__(text)
        self._model = model
        self._indices = list(indices)
        self._old = [model.object(i).box for i in self._indices]
        self._new = [tuple(float(v) for v in b) for b in boxes]

    def _set(self, boxes: Sequence[Box]) -> None:
        for i, b in zip(self._indices, boxes, strict=True):
            self._model.replace_object(i, self._model.object(i).moved(b))
        self._model.select(self._indices)

    def redo(self) -> None:
        self._set(self._new)

    def undo(self) -> None:
        self._set(self._old)


class NudgeCommand(SetBoxesCommand):
    """Arrow-key move; consecutive nudges of the same boxes merge into one undo step."""

    def __init__(self, model: AnnotationModel, indices: Sequence[int], boxes: Sequence[Box]) -> None:
        super().__init__(model, indices, boxes, "Nudge box" if len(indices) == 1 else "Nudge boxes")

    def id(self) -> int:  # noqa: A003 - Qt's name
        return NUDGE_ID

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt's name
        if not isinstance(other, NudgeCommand) or other._indices != self._indices:
            return False
        self._new = list(other._new)
        if self._new == self._old:
            self.setObsolete(True)  # nudged back to the start: nothing left to undo
        return True


class EditObjectsCommand(QUndoCommand):
    """Change properties (class, difficult, truncated, numeric coordinates) of boxes.

    ``merge_key`` lets consecutive edits of the same field of the same boxes (spin-box arrow clicks) merge
    into one undo step; edits with different keys never merge.
    """

    def __init__(self, model: AnnotationModel, indices: Sequence[int], objects: Sequence[BoxObject],
                 text: str = "Edit box", merge_key: str | None = None) -> None:
        super().__init__(text)
        self._model = model
        self._indices = list(indices)
        self._old = [replace(model.object(i)) for i in self._indices]
        self._new = [replace(o) for o in objects]
        self._merge_key = merge_key

    def _set(self, objects: Sequence[BoxObject]) -> None:
        for i, o in zip(self._indices, objects, strict=True):
            self._model.replace_object(i, o)
        self._model.select(self._indices)

    def redo(self) -> None:
        self._set(self._new)

    def undo(self) -> None:
        self._set(self._old)

    def id(self) -> int:  # noqa: A003 - Qt's name
        return EDIT_ID if self._merge_key else -1

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt's name
        if (not isinstance(other, EditObjectsCommand) or other._merge_key != self._merge_key
                or self._merge_key is None or other._indices != self._indices):
            return False
        self._new = list(other._new)
        if self._new == self._old:
            self.setObsolete(True)
        return True


def set_property(model: AnnotationModel, indices: Sequence[int], text: str, merge_key: str | None = None,
                 **changes: object) -> EditObjectsCommand | None:
    """An edit command setting the same fields on every given box, or None when nothing would change."""
    old = [model.object(i) for i in indices]
    new = [replace(o, **changes) for o in old]  # type: ignore[arg-type]
    if new == old:
        return None
    return EditObjectsCommand(model, indices, new, text, merge_key)
