"""Keeping the document in step with the disk: reloading an image's annotation, watching the current file
for another program's writes, and the two questions (replace an unreadable file? keep my edits or reload?).

A part of :class:`app.document.Document` (a mixin: the state, signals and model it uses are the document's).
The watcher watches the folder as well as the file because an atomic replace (ours and most editors') drops a
file watch.
"""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox

from app.document_state import ImageState, file_signature
from models.data.datasets import ImageEntry


class DocumentDiskSync:
    """Mixed into :class:`app.document.Document` (which owns every attribute used here)."""

    # --- reloading and watching ---------------------------------------------------------------------------
    def reload_current(self) -> None:
        """Re-read the current image's annotation from disk, dropping in-memory edits and their undo history."""
        i = self.index
        if self.current_entry is None:
            return
        st = self.state(i)
        st.loaded = False
        st.dirty = False
        st.overwrite_ok = False
        st.asked_overwrite = False
        self._load(i)
        self._show_without_history(st)
        self._watch(self.entries[i])
        self.entryChanged.emit(i)
        self.reloaded.emit(i)
        if not self.any_dirty:
            self.dirtyChanged.emit(False)

    def reload_memory_current(self) -> None:
        """Show the current image's in-memory annotation again (after it was changed outside the model,
        e.g. a dataset-wide class rename); its undo history no longer applies and is cleared."""
        st = self.current_state()
        if st is None:
            return
        self._show_without_history(st)

    def _show_without_history(self, st: ImageState) -> None:
        """Put ``st``'s annotation in the model as a load, not an edit; its old undo history no longer applies."""
        if st.stack is not None:
            st.stack.clear()
        self._loading = True
        try:
            self.model.set_annotation(st.annotation, self.model.width, self.model.height)
        finally:
            self._loading = False

    def forget_clean_states(self) -> None:
        """After a dataset-wide rewrite (class rename): re-read every image not holding unsaved edits."""
        for i, st in list(self.states.items()):
            if not st.dirty:
                self.states[i] = ImageState(stack=st.stack)
                if st.stack is not None:
                    st.stack.clear()
        self._has_label = {}
        if self.current_entry is not None and not self.state(self.index).dirty:
            self._load(self.index)
            self._loading = True
            try:
                self.model.set_annotation(self.state(self.index).annotation, self.model.width, self.model.height)
            finally:
                self._loading = False
        self.sourceChanged.emit()

    def refresh_signatures(self) -> None:
        """After the app itself rewrote annotation files (class rename, import), remember their new state so
        the next save of an image with unsaved edits is not mistaken for a conflict with another program."""
        for i, st in self.states.items():
            if st.loaded:
                st.signature = file_signature(self.annotation_path(i))

    def _unwatch(self) -> None:
        if self._closed:
            return
        paths = self._watcher.files() + self._watcher.directories()
        if paths:
            self._watcher.removePaths(paths)

    def _watch(self, entry: ImageEntry) -> None:
        """Watch the current annotation file and its folder (atomic replaces drop a file watch)."""
        if self._closed:
            return
        self._unwatch()
        if self.source is None or not self.source.store.per_image_files:
            return
        path = self.source.store.annotation_path(entry)
        if path is None:
            return
        wanted = [str(path)] if path.exists() else []
        if path.parent.is_dir():
            wanted.append(str(path.parent))
        if wanted:
            self._watcher.addPaths(wanted)

    def _on_disk_change(self, _path: str = "") -> None:
        entry = self.current_entry
        if entry is None or self._closed:
            return
        i = self.index
        st = self.state(i)
        path = self.annotation_path(i)
        sig = file_signature(path)
        if path is not None and path.exists() and str(path) not in self._watcher.files():
            self._watcher.addPath(str(path))
        if sig == st.signature or sig is None:
            return
        name = path.name if path else entry.name
        if not st.dirty:
            self.reload_current()
            self.message.emit(f"{name} changed on disk: reloaded")
            return
        choice = self.resolve_conflict(f"{name} was changed by another program, and you have unsaved edits "
                                       "to this image.")
        if choice == "reload":
            self.reload_current()
            self.message.emit(f"{name} reloaded from disk; your edits were discarded")
        else:
            st.signature = sig  # theirs is known now; ours replaces it on the next save
            st.load_error = None
            self.message.emit(f"Keeping your edits to {entry.name}; they replace the file on disk")
            self.save_index(i)

    # --- dialogs (default hooks) ----------------------------------------------------------------------------
    def _ask_overwrite_dialog(self, text: str) -> bool:
        answer = QMessageBox.question(self.dialog_parent, "Replace unreadable annotation file?", text,
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _ask_conflict_dialog(self, text: str) -> str:
        box = QMessageBox(QMessageBox.Icon.Question, "Annotation changed on disk", text,
                          parent=self.dialog_parent)
        keep = box.addButton("Keep my edits", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Reload from disk", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(keep)
        box.exec()
        return "keep" if box.clickedButton() is keep else "reload"
