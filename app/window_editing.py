"""The main window's box-editing actions (W, Ctrl+C/V, digit keys) and LabelImg's label prompt after a box
is drawn: what they say in the status bar and which canvas call they make.

A part of :class:`app.main_window.MainWindow` (a mixin: the canvas, model, class list and prompt are the
window's); the canvas does the edits themselves as undo commands.
"""

from __future__ import annotations


class WindowEditing:
    """Mixed into :class:`app.main_window.MainWindow` (which owns every attribute used here)."""

    def create_box(self) -> None:
        if self.document.current_entry is None or self.canvas.image_rect().isEmpty():
            self.show_message("Open an image first")
            return
        self.canvas.set_create_mode()
        self.canvas.setFocus()

    def copy_boxes(self) -> int:
        objs = self.canvas.selected_objects()
        if objs:
            self._clipboard = objs
            self.show_message(f"Copied {len(objs)} box(es)")
        return len(objs)

    def paste_boxes(self) -> int:
        if not self._clipboard:
            self.show_message("Nothing to paste: copy boxes with Ctrl+C first")
            return 0
        return self.canvas.paste_objects(self._clipboard)

    def pick_class(self, k: int) -> None:
        """Digit key: the k-th class for new boxes, and for the selected boxes (one undo step)."""
        name = self.class_list.choose_index(k)
        if name is None:
            self.show_message(f"No class {k}: add classes in the Classes panel")
            return
        self._relabel_selected(name)

    def _relabel_selected(self, name: str) -> int:
        """Give the selection class ``name``; the status bar says how many boxes changed (Ctrl+A, then 3)."""
        changed = sum(1 for i in self.model.selected_indices if self.model.object(i).name != name)
        self.canvas.set_class_of_selected(name)
        n = len(self.model.selected_indices)
        if n > 1 or changed > 1:
            self.show_message(f"Class: {name} — {changed} of {n} selected boxes relabelled")
        else:
            self.show_message(f"Class: {name}" + (" — 1 box relabelled" if changed else ""))
        return changed

    # --- label prompt after drawing -------------------------------------------------------------------------
    def _on_box_created(self, index: int) -> None:
        if self.act_prompt.isChecked():
            self._prompt_index = index
            self.label_prompt.ask(self.class_list.names(), self.model.current_class)

    def _on_label_chosen(self, name: str) -> None:
        i, self._prompt_index = self._prompt_index, -1
        self.class_list.choose(name)  # new boxes follow, as LabelImg's prompt does
        if 0 <= i < len(self.model):
            self.model.select([i])
            self.canvas.set_class_of_selected(name)
            self.show_message(f"Class: {name}")

    def _on_label_cancelled(self) -> None:
        """Escape in the prompt: the box just drawn goes away (LabelImg's behaviour)."""
        i, self._prompt_index = self._prompt_index, -1
        stack = self.canvas.undo_stack
        if stack is not None and stack.canUndo() and stack.undoText() == "Draw box" and i == len(self.model) - 1:
            stack.undo()
        elif 0 <= i < len(self.model):
            self.model.select([i])
            self.canvas.delete_selected()
