"""The open dataset: its images, each image's annotation in memory, dirty state, autosave and file watching.

Why the document keeps every visited image's annotation in memory: edits must survive moving between
images even when saving fails (read-only folder, a malformed file the user has not yet agreed to replace),
and undo stacks (one per image, in a QUndoGroup) refer to those annotations.

Saving rules, in order of importance:
1. Nothing the user did is lost: a failed save leaves the edits in memory, marked dirty, and says why.
2. Nothing on disk is destroyed silently: an annotation file that failed to parse is never overwritten until
   the user edits that image and confirms; a file changed by another program is reloaded only when we have
   no unsaved edits, otherwise the user decides.
3. Autosave (on by default) writes every edit within ``autosave_delay_ms`` (debounced, < 1 s).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import shiboken6
from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer, Signal
from PySide6.QtGui import QUndoGroup, QUndoStack
from PySide6.QtWidgets import QMessageBox, QWidget

from app.annotation_model import AnnotationModel
from app.image_decoder import ASYNC_DECODE_PIXELS, BackgroundDecoder, placeholder_image
from app.settings import Settings
from app.workers import WorkerPool
from models.data.annotations import Annotation, AnnotationError
from models.data.datasets import DatasetSource, ImageEntry, VocStore
from models.data.io import DecodedImage, ImageError, ImageInfo, read_image, read_image_info

#: Undo depth per image (the issue asks for no limit below 100; 0 would mean unlimited).
UNDO_LIMIT = 1000
AUTOSAVE_DELAY_MS = 400

Signature = tuple[int, int]


def file_signature(path: Path | None) -> Signature | None:
    """(mtime in ns, size): how we tell our own writes from another program's."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


@dataclass
class ImageState:
    """What the document knows about one image."""

    loaded: bool = False
    annotation: Annotation | None = None  # None: no annotation (file absent, or unreadable)
    dirty: bool = False
    load_error: str | None = None  # the annotation file exists but could not be parsed
    overwrite_ok: bool = False  # the user agreed to replace the unreadable file
    asked_overwrite: bool = False
    decode_error: str | None = None
    save_error: str | None = None
    signature: Signature | None = None  # of the annotation file as we last read or wrote it
    warnings_shown: bool = False
    stack: QUndoStack | None = None
    warnings: list[str] = field(default_factory=list)


class Document(QObject):
    """Owns the dataset source, per-image states and undo stacks; drives the shared AnnotationModel."""

    sourceChanged = Signal()
    #: The current image was decoded (DecodedImage, or None when it could not be) — emitted before the
    #: model is reset, so the canvas has the new size when the boxes arrive.
    imageDecoded = Signal(object)
    currentChanged = Signal(int)
    #: Something shown in the file list changed for this entry (labelled, dirty, error, verified).
    entryChanged = Signal(int)
    dirtyChanged = Signal(bool)
    message = Signal(str)
    saveFailed = Signal(str)
    #: The annotation file of an entry could not be parsed (index, "file: reason").
    annotationError = Signal(int, str)
    saved = Signal(int)
    reloaded = Signal(int)

    def __init__(self, model: AnnotationModel, settings: Settings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.settings = settings
        self.source: DatasetSource | None = None
        self.index = -1
        self.states: dict[int, ImageState] = {}
        self._has_label: dict[int, bool] = {}
        self._verified_names: set[str] = set()
        self.undo_group = QUndoGroup(self)
        self.autosave_delay_ms = AUTOSAVE_DELAY_MS
        self._autosave = settings.autosave()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(self.autosave_delay_ms)
        self._timer.timeout.connect(self.save_pending)
        self._watcher = QFileSystemWatcher(self)
        self._watcher.fileChanged.connect(self._on_disk_change)
        self._watcher.directoryChanged.connect(self._on_disk_change)
        self._loading = False
        self._closed = False
        self._save_failure_reported = False
        self.pool = WorkerPool(self)
        self.async_decode_pixels = ASYNC_DECODE_PIXELS
        #: Big images decode here, one at a time, the latest visit winning.
        self.decoder = BackgroundDecoder(self.pool, self)
        self.decoder.decoded.connect(self._on_decoded)
        #: True while the current image's pixels are still being decoded in the background.
        self.decoding = False
        #: True while a background job rewrites annotation files: autosave waits for it.
        self.busy = False
        #: Dialog parent; the main window sets itself.
        self.dialog_parent: QWidget | None = None
        #: Hooks for questions (tests replace them): overwrite an unreadable file? keep my edits or reload?
        self.confirm_overwrite: Callable[[str], bool] = self._ask_overwrite_dialog
        self.resolve_conflict: Callable[[str], str] = self._ask_conflict_dialog
        model.changed.connect(self._on_model_changed)

    # --- opening --------------------------------------------------------------------------------------------
    @property
    def entries(self) -> list[ImageEntry]:
        return self.source.entries if self.source is not None else []

    @property
    def current_entry(self) -> ImageEntry | None:
        return self.entries[self.index] if 0 <= self.index < len(self.entries) else None

    def state(self, i: int) -> ImageState:
        st = self.states.get(i)
        if st is None:
            st = ImageState()
            self.states[i] = st
        return st

    def current_state(self) -> ImageState | None:
        return self.state(self.index) if self.current_entry is not None else None

    def set_source(self, source: DatasetSource, start: int = 0) -> None:
        """Show a newly opened dataset (after saving what can be saved of the previous one)."""
        self.save_pending()
        for st in self.states.values():
            if st.stack is not None:
                self.undo_group.removeStack(st.stack)
                st.stack.deleteLater()
        self.states = {}
        self._has_label = {}
        self.index = -1
        self.source = source
        if source.kind in ("image", "folder") and isinstance(source.store, VocStore):
            chosen = self.settings.annotation_dir(source.root)
            if chosen and source.store.annotation_dir is None:
                source.store.annotation_dir = Path(chosen)
        self._verified_names = self.settings.verified_names(source.root) if not self.stores_verified else set()
        self._unwatch()
        self.sourceChanged.emit()
        if source.entries:
            self.go_to(max(0, min(start, len(source.entries) - 1)))
        else:
            self._loading = True
            try:
                self.imageDecoded.emit(None)
                self.model.set_annotation(None, 0, 0)
            finally:
                self._loading = False
            self.currentChanged.emit(-1)

    @property
    def stores_verified(self) -> bool:
        """VOC files carry LabelImg's ``verified="yes"``; other formats keep the mark in the settings."""
        return self.source is not None and self.source.store.kind == "voc"

    # --- navigation ---------------------------------------------------------------------------------------
    def go_to(self, i: int) -> bool:
        """Show image ``i``: decode it, put its annotation in the model, activate its undo stack."""
        if not 0 <= i < len(self.entries):
            return False
        if i == self.index:
            return True
        if self._autosave and self.current_entry is not None and not self.busy:
            self.save_index(self.index)  # leaving an image writes its edits at once
        self.index = i
        entry = self.entries[i]
        st = self.state(i)
        decoded: DecodedImage | None = None
        info: ImageInfo | None = None
        self.decoder.cancel()
        self.decoding = False
        try:
            info = read_image_info(entry.path)
            if info.stored_width * info.stored_height > self.async_decode_pixels:
                decoded = placeholder_image(info)
                self.decoding = True
                self.decoder.request(i, entry.path)
                self.message.emit(f"Decoding {entry.name} ({info.width}×{info.height})…")
            else:
                decoded = read_image(entry.path)
            st.decode_error = None
        except ImageError as exc:
            st.decode_error = str(exc)
            self.message.emit(f"Cannot show {entry.name}: {exc}")
            self.entryChanged.emit(i)
        if st.loaded and not st.dirty and file_signature(self.annotation_path(i)) != st.signature \
                and self.source is not None and self.source.store.per_image_files:
            st.loaded = False  # changed on disk since we read it (list preview or an earlier visit)
            if st.stack is not None:
                st.stack.clear()
        if not st.loaded:
            self._load(i, info)
        if st.stack is None:
            st.stack = QUndoStack(self)
            st.stack.setUndoLimit(UNDO_LIMIT)
            self.undo_group.addStack(st.stack)
        w, h = (decoded.width, decoded.height) if decoded is not None else (0, 0)
        if decoded is None and info is not None:
            w, h = info.width, info.height
        if decoded is None and st.annotation is not None:
            w, h = w or st.annotation.width, h or st.annotation.height
        self._loading = True
        try:
            self.imageDecoded.emit(decoded)
            self.model.set_annotation(st.annotation, w, h)
        finally:
            self._loading = False
        self.undo_group.setActiveStack(st.stack)
        self._watch(entry)
        self.currentChanged.emit(i)
        self._report_state(i)
        return True

    def _on_decoded(self, i: int, result: DecodedImage | ImageError) -> None:
        """The latest background decode finished (the decoder drops those of images the user has left)."""
        if i != self.index or self._closed:
            return
        self.decoding = False
        if isinstance(result, ImageError):
            self.state(i).decode_error = str(result)
            self.message.emit(f"Cannot show {self.entries[i].name}: {result}")
            self.entryChanged.emit(i)
            return
        self.imageDecoded.emit(result)
        if result.is_reduced:
            self.message.emit(f"{self.entries[i].name}: showing a {result.pixels.shape[1]}×{result.pixels.shape[0]} "
                              "preview; boxes are in full-resolution pixels")

    def next(self) -> bool:
        return self.go_to(self.index + 1)

    def previous(self) -> bool:
        return self.go_to(self.index - 1)

    def _report_state(self, i: int) -> None:
        st = self.state(i)
        name = self.entries[i].name
        if st.load_error:
            self.message.emit(f"Annotation not loaded — {st.load_error}. It will not be overwritten "
                              "unless you edit this image and confirm.")
        elif st.warnings and not st.warnings_shown:
            st.warnings_shown = True
            self.message.emit(f"{name}: " + "; ".join(st.warnings))

    # --- loading annotations ------------------------------------------------------------------------------
    def annotation_path(self, i: int) -> Path | None:
        if self.source is None or not 0 <= i < len(self.entries):
            return None
        return self.source.store.annotation_path(self.entries[i])

    def _load(self, i: int, info: ImageInfo | None = None) -> None:
        assert self.source is not None
        entry = self.entries[i]
        st = self.state(i)
        st.loaded = True
        st.signature = file_signature(self.annotation_path(i))
        if info is None:
            try:
                info = read_image_info(entry.path)
            except ImageError:
                info = None
        try:
            ann = self.source.store.load(entry, info)
            st.load_error = None
        except AnnotationError as exc:
            st.load_error = str(exc)
            st.annotation = None
            self._has_label[i] = True
            self.annotationError.emit(i, str(exc))
            self.entryChanged.emit(i)
            return
        if ann is not None:
            st.warnings = list(ann.warnings)
        if not self.stores_verified and entry.name in self._verified_names:
            ann = ann if ann is not None else Annotation(entry.path.name, info.width if info else 0,
                                                         info.height if info else 0)
            ann.verified = True
        st.annotation = ann
        self._has_label[i] = ann is not None
        self.entryChanged.emit(i)

    def ensure_loaded(self, i: int) -> ImageState:
        st = self.state(i)
        if not st.loaded:
            self._load(i)
        return st

    # --- status for views ---------------------------------------------------------------------------------
    def has_label(self, i: int) -> bool:
        """An annotation exists (in memory or on disk); cached, one ``stat`` per entry on first ask."""
        st = self.states.get(i)
        if st is not None and st.loaded:
            return st.annotation is not None or st.load_error is not None
        cached = self._has_label.get(i)
        if cached is None and self.source is not None:
            try:
                cached = self.source.store.has_annotation(self.entries[i])
            except OSError:
                cached = False
            self._has_label[i] = cached
        return bool(cached)

    def error_text(self, i: int) -> str | None:
        st = self.states.get(i)
        if st is None:
            return None
        return st.decode_error or st.load_error or st.save_error

    def set_decode_error(self, i: int, reason: str | None) -> None:
        """A background reader (thumbnails) found the image unreadable."""
        st = self.state(i)
        if st.decode_error != reason:
            st.decode_error = reason
            self.entryChanged.emit(i)

    def is_dirty(self, i: int) -> bool:
        st = self.states.get(i)
        return bool(st and st.dirty)

    @property
    def any_dirty(self) -> bool:
        return any(st.dirty for st in self.states.values())

    def is_verified(self, i: int) -> bool:
        if not self.stores_verified:
            st = self.states.get(i)
            if st is not None and st.loaded and st.annotation is not None:
                return st.annotation.verified
            return self.entries[i].name in self._verified_names
        st = self.ensure_loaded(i)
        return bool(st.annotation is not None and st.annotation.verified)

    def known_verified(self, i: int) -> bool | None:
        """Verified state without reading files (None when not known yet) — for the file list."""
        st = self.states.get(i)
        if st is not None and st.loaded:
            return bool(st.annotation is not None and st.annotation.verified)
        if not self.stores_verified and self.source is not None:
            return self.entries[i].name in self._verified_names
        return None

    # --- edits and saving ---------------------------------------------------------------------------------
    @property
    def autosave(self) -> bool:
        return self._autosave

    def set_autosave(self, on: bool) -> None:
        self._autosave = bool(on)
        self.settings.set_autosave(on)
        if on and self.any_dirty:
            self._timer.start(self.autosave_delay_ms)

    def toggle_verified(self) -> bool:
        """LabelImg's Space: flip the verified mark of the current image (saved like any edit)."""
        if self.current_entry is None:
            return False
        self.model.set_verified(not self.model.verified)
        return self.model.verified

    def _on_model_changed(self) -> None:
        if self._loading or self.current_entry is None:
            return
        i = self.index
        st = self.state(i)
        st.annotation = self.model.annotation()
        st.annotation.warnings = []
        was_dirty = self.any_dirty
        st.dirty = True
        self._has_label[i] = True
        self.entryChanged.emit(i)
        if not was_dirty:
            self.dirtyChanged.emit(True)
        if st.load_error and not st.overwrite_ok and not st.asked_overwrite:
            st.asked_overwrite = True
            QTimer.singleShot(0, lambda: self._confirm_overwrite(i))
        if self._autosave:
            self._timer.start(self.autosave_delay_ms)

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

    def close(self) -> None:
        """Stop the timer, the watcher and any background decode (waits for its thread).

        The watcher is deleted here, in the GUI thread: its inotify socket notifier must never be destroyed
        by a garbage collection that happens to run in a worker thread (Qt then spins forever on an
        invalid socket), which is what happens to a parentless Document dropped in a reference cycle.
        """
        if self._closed:
            return
        self._timer.stop()
        self._unwatch()
        self._closed = True
        self.decoder.cancel()  # a waiting decode must not start once the pool has shut down
        self.pool.shutdown()
        shiboken6.delete(self._watcher)
