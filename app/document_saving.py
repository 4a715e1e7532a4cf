"""Writing the document's edits: autosave's and Ctrl+S's saves, the question before replacing an unreadable
annotation file, a file another program changed since we read it, and moving the annotation folder.

A part of :class:`app.document.Document` (a mixin: the state, signals and model it uses are the document's),
kept apart because these are the rules that decide whether anything on disk is replaced — read them in one
place. The rules themselves are in app/document.py's docstring.
"""

from __future__ import annotations

from pathlib import Path

from app.document_state import ImageState, file_signature
from models.data.annotations import Annotation
from models.data.datasets import VocStore


class DocumentSaving:
    """Mixed into :class:`app.document.Document` (which owns every attribute used here)."""

    def _confirm_overwrite(self, i: int) -> None:
        st = self.state(i)
        if not st.dirty or st.overwrite_ok or not st.load_error:
            return
        path = self.annotation_path(i)
        if self.confirm_overwrite(f"{st.load_error}\n\nReplace {path} with your edits?"):
            st.overwrite_ok = True
            if self._autosave:
                self.save_index(i)
        else:
            self.message.emit(f"{path.name if path else 'Annotation'} left untouched; your edits stay in memory "
                              "(save with Ctrl+S to be asked again, or choose another annotation folder)")

    def save_pending(self) -> bool:
        """Write every dirty image whose file may be written; True when nothing is left unsaved."""
        self._timer.stop()
        if self.busy:
            self._timer.start(self.autosave_delay_ms)
            return False
        ok = True
        for i in sorted(i for i, st in self.states.items() if st.dirty):
            ok = self.save_index(i) and ok
        return ok

    def save_all(self, interactive: bool = True) -> bool:
        """Ctrl+S: like autosave, but asks again about unreadable files the user has edited."""
        if interactive:
            for i, st in self.states.items():
                if st.dirty and st.load_error and not st.overwrite_ok:
                    st.asked_overwrite = True
                    self._confirm_overwrite(i)
        self._save_failure_reported = False
        return self.save_pending()

    def save_index(self, i: int) -> bool:
        if self.source is None or not 0 <= i < len(self.entries):
            return False
        st = self.state(i)
        if not st.dirty:
            return True
        if st.load_error and not st.overwrite_ok:
            return False
        entry = self.entries[i]
        if self.source.store.per_image_files:
            now = file_signature(self.annotation_path(i))
            if now is not None and now != st.signature:  # another program wrote it since we read it
                if self.resolve_conflict(f"{self.annotation_path(i)} was changed by another program, and you "
                                         "have unsaved edits to this image.") == "reload":
                    if i == self.index:
                        self.reload_current()
                    else:
                        self.states[i] = ImageState(stack=st.stack)
                        if st.stack is not None:
                            st.stack.clear()
                    return True
                st.signature = now
        ann = (st.annotation or Annotation(entry.path.name)).copy()
        ann.verified = bool(st.annotation and st.annotation.verified)
        if not ann.filename:
            ann.filename = entry.path.name
        try:
            self.source.store.save(entry, ann)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            path = self.annotation_path(i)
            st.save_error = f"not saved to {path}: {reason}"
            self.entryChanged.emit(i)
            if not self._save_failure_reported:
                self._save_failure_reported = True
                self.saveFailed.emit(f"Could not save {entry.name} to {path}: {reason}. "
                                     "Your edits are kept in memory; choose another annotation folder "
                                     "(File ▸ Change Annotation Folder…) to save them.")
            else:
                self.message.emit(f"Not saved: {entry.name} ({reason}); edits kept in memory")
            return False
        if not self.stores_verified and self.source is not None:
            before = entry.name in self._verified_names
            if ann.verified != before:
                (self._verified_names.add if ann.verified else self._verified_names.discard)(entry.name)
                self.settings.set_verified_names(self.source.root, self._verified_names)
        st.dirty = False
        st.save_error = None
        st.load_error = None
        st.overwrite_ok = False
        st.signature = file_signature(self.annotation_path(i))
        self._save_failure_reported = False
        self._has_label[i] = True
        if i == self.index:
            self._watch(entry)
        self.entryChanged.emit(i)
        self.saved.emit(i)
        if not self.any_dirty:
            self.dirtyChanged.emit(False)
        return True

    def unsaved_count(self) -> int:
        return sum(1 for st in self.states.values() if st.dirty)

    # --- annotation folder --------------------------------------------------------------------------------
    @property
    def can_change_annotation_dir(self) -> bool:
        return self.source is not None and isinstance(self.source.store, VocStore) and \
            self.source.kind in ("image", "folder", "voc")

    def set_annotation_dir(self, folder: Path | None) -> bool:
        """Save VOC files into ``folder`` (None: beside the images) from now on; re-saves unsaved edits."""
        if not self.can_change_annotation_dir:
            return False
        assert self.source is not None
        store = self.source.store
        assert isinstance(store, VocStore)
        if folder:
            targets: dict[str, str] = {}
            for e in self.entries:
                xml = Path(e.name).with_suffix(".xml").as_posix()
                other = targets.setdefault(xml, e.name)
                if other != e.name:  # e.g. x.png and x.jpg in one folder would share one XML
                    self.message.emit(f"Cannot use one annotation folder: {other} and {e.name} would both be "
                                      f"saved as {xml}")
                    return False
        store.annotation_dir = Path(folder) if folder else None
        if self.source.kind != "voc":
            self.settings.set_annotation_dir(self.source.root, folder)
        for i, st in list(self.states.items()):
            if st.dirty:
                path = self.annotation_path(i)
                if st.load_error and path is not None and not path.exists():
                    st.load_error = None  # nothing to protect at the new place
                continue
            if i != self.index:
                self.states[i] = ImageState(stack=st.stack)
        self._has_label = {}
        self._save_failure_reported = False
        ok = self.save_pending()
        cur = self.current_state()
        if cur is not None and not cur.dirty and self.current_entry is not None:
            self.reload_current()
        elif self.current_entry is not None:
            self._watch(self.current_entry)
        self.sourceChanged.emit()
        return ok
