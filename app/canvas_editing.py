"""The canvas's editing API, which the main window's actions (Delete, Ctrl+D, Ctrl+V, digit keys, arrows)
call: every change to the boxes is one undo command pushed on the image's stack.

A part of :class:`app.canvas.Canvas` (a mixin: the model, undo stack and ``message`` signal are the canvas's),
kept apart from the mouse gestures and the view's zoom and pan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from PySide6.QtGui import QUndoCommand

from app.commands import AddObjectsCommand, DeleteObjectsCommand, NudgeCommand, apply, set_property
from models.data.annotations import BoxObject

#: How far a duplicate is offset from its original, in image pixels.
DUPLICATE_OFFSET = 10.0


class CanvasEditing:
    """Mixed into :class:`app.canvas.Canvas` (which owns ``_model``, ``_stack`` and ``message``)."""

    def _push(self, cmd: QUndoCommand) -> None:
        apply(self._stack, cmd)

    def selected_objects(self) -> list[BoxObject]:
        """Copies of the selected boxes (for the clipboard)."""
        return [replace(self._model.object(i)) for i in self._model.selected_indices]

    def delete_selected(self) -> int:
        idx = self._model.selected_indices
        if idx:
            self._push(DeleteObjectsCommand(self._model, idx))
        return len(idx)

    def duplicate_selected(self) -> int:
        """Copy the selection offset by a few pixels (back inside the image if it would leave it)."""
        idx = self._model.selected_indices
        if not idx:
            return 0
        boxes = [self._model.object(i).box for i in idx]
        dx, dy = self._model.clamp_translation(boxes, DUPLICATE_OFFSET, DUPLICATE_OFFSET)
        if dx < DUPLICATE_OFFSET or dy < DUPLICATE_OFFSET:  # at the bottom-right edge: go up-left
            dx2, dy2 = self._model.clamp_translation(boxes, -DUPLICATE_OFFSET, -DUPLICATE_OFFSET)
            dx = dx if dx >= DUPLICATE_OFFSET else dx2
            dy = dy if dy >= DUPLICATE_OFFSET else dy2
        objs = [self._model.object(i).moved((b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy))
                for i, b in zip(idx, boxes, strict=True)]
        self._push(AddObjectsCommand(self._model, objs, "Duplicate box"))
        return len(objs)

    def paste_objects(self, objs: Sequence[BoxObject]) -> int:
        """Add copies of ``objs`` clamped to this image; boxes left with no area are dropped (and said so)."""
        out = []
        for o in objs:
            box = self._model.clamp_box(o.box, snap=False)
            if box[2] - box[0] >= 1 and box[3] - box[1] >= 1:
                out.append(o.moved(box) if tuple(box) != tuple(o.box) else replace(o))  # a moved box: no outline
        dropped = len(objs) - len(out)
        if dropped:
            self.message.emit(f"{dropped} pasted box(es) lie outside this image and were skipped")
        if out:
            self._push(AddObjectsCommand(self._model, out, "Paste box"))
        return len(out)

    def select_all(self) -> None:
        self._model.select(range(len(self._model)))

    def set_class_of_selected(self, name: str) -> bool:
        """Give every selected box class ``name`` (one undo step); e.g. after a class chooser or a digit key."""
        name = name.strip()
        idx = self._model.selected_indices
        if not name or not idx:
            return False
        cmd = set_property(self._model, idx, f"Set class to {name}", name=name)
        if cmd is None:
            return False
        self._push(cmd)
        return True

    def nudge_selected(self, dx: float, dy: float) -> bool:
        """Move the selection by (dx, dy) pixels, stopping at the image border; merges in the undo stack."""
        idx = self._model.selected_indices
        if not idx:
            return False
        boxes = [self._model.object(i).box for i in idx]
        dx, dy = self._model.clamp_translation(boxes, float(dx), float(dy))
        if dx == 0 and dy == 0:
            self.message.emit("At the image border")
            return False
        new = [(b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy) for b in boxes]
        self._push(NudgeCommand(self._model, idx, new))
        return True
