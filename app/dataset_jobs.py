"""Dataset-wide jobs of the main window: export, import and class rename/merge, each in a worker thread.

Why apart from the window: these rewrite many files, so each needs a confirmation, a progress dialog, a
cancel button and autosave held off while it runs — a recipe of its own. ``DatasetJobs`` is a mixin of
``MainWindow``: it uses the window's document, worker pool, class list, dialogs and status bar.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import shiboken6

from app.dialogs import progress_dialog
from app.workers import Worker
from models.data.annotations import AnnotationError
from models.data.datasets import open_dataset
from models.data.export import export_dataset, import_annotations, rename_class


class DatasetJobs:
    """Mixin: ``run_job`` and the jobs built on it (the window provides ``document``, ``pool`` etc.)."""

    # Provided by the window this is mixed into.
    document: Any
    pool: Any
    class_list: Any
    model: Any
    settings: Any
    dialogs: Any
    confirm: Callable[[str, str], bool]
    _job_dialog: Any

    def run_job(self, name: str, fn: Callable[..., Any], *args: Any,
                on_result: Callable[[Any], None] | None = None, **kwargs: Any) -> Worker:
        """Run ``fn(*args, progress=, cancelled=)`` in a thread with a progress dialog; autosave waits."""
        dlg = progress_dialog(name, self)  # type: ignore[arg-type]
        self._job_dialog = dlg
        self.document.busy = True

        ended = False

        def progress(f: float, msg: str) -> None:
            # A window-modal QProgressDialog processes events inside setValue, so the job's end (or a later
            # progress report) can run in there and the dialog be deleted by the time this returns: the label
            # goes first, setValue last, and nothing touches a dialog that is gone.
            if ended or not shiboken6.isValid(dlg):
                return
            dlg.setLabelText(msg[:120])
            dlg.setValue(int(max(0.0, min(1.0, f)) * 1000))

        def done(value: Any) -> None:
            if on_result is not None:
                on_result(value)
            self.jobFinished.emit(name, value, "")  # type: ignore[attr-defined]

        def failed(err: str) -> None:
            self.show_message(f"{name}: {err.splitlines()[0]}")  # type: ignore[attr-defined]
            if err != "cancelled":
                self._warn(name, err)  # type: ignore[attr-defined]
            self.jobFinished.emit(name, None, err)  # type: ignore[attr-defined]

        def finished() -> None:
            nonlocal ended
            ended = True
            self.document.busy = False
            if shiboken6.isValid(dlg):
                dlg.close()
                dlg.deleteLater()
            if self._job_dialog is dlg:
                self._job_dialog = None

        def job(j: Any) -> Any:
            return fn(*args, progress=j.progress, cancelled=lambda: j.cancelled, **kwargs)

        worker = self.pool.start(job, on_progress=progress, on_result=done, on_error=failed, on_finished=finished)
        dlg.canceled.connect(worker.cancel)
        return worker

    def _overrides(self) -> dict[int, Any]:
        """Unsaved in-memory annotations, so exports include what the user sees."""
        return {i: st.annotation for i, st in self.document.states.items() if st.dirty}

    def _ask_export(self, fmt: str) -> None:
        if self.document.source is None:
            self.show_message("Open a dataset first")  # type: ignore[attr-defined]
            return
        folder = self.dialogs.folder(f"Export as {fmt.upper()} into (an empty folder)", self.settings.last_folder())
        if folder:
            self.export_to(fmt, folder)

    def export_to(self, fmt: str, folder: str | Path) -> Worker | None:
        source = self.document.source
        if source is None:
            return None
        return self.run_job(f"Export {fmt.upper()}", export_dataset, source, fmt, Path(folder),
                            overrides=self._overrides(),
                            on_result=lambda r: self.show_message(f"Exported: {r.summary()}"))  # type: ignore

    def _ask_import(self) -> None:
        path = self.dialogs.folder("Import annotations from a dataset folder", self.settings.last_folder())
        if path:
            self.import_from(path)

    def _ask_import_json(self) -> None:
        path = self.dialogs.open_file("Import a COCO JSON", self.settings.last_folder(), "COCO JSON (*.json)")
        if path:
            self.import_from(path)

    def import_from(self, path: str | Path) -> Worker | None:
        if self.document.source is None:
            self.show_message("Open the images to import onto first")  # type: ignore[attr-defined]
            return None
        try:
            other = open_dataset(path)
        except (FileNotFoundError, NotADirectoryError, AnnotationError, OSError) as exc:
            self._warn("Import", str(exc))  # type: ignore[attr-defined]
            return None
        if self.document.any_dirty and not self.confirm(
                "Import annotations", "Some edits are not saved yet and imported annotations would replace "
                "them. Continue?"):
            return None

        self.document.save_pending()  # what can be saved is saved; the import then replaces it

        def imported(report: Any) -> None:
            self.class_list.add_classes(self.document.source.class_names if self.document.source else [])
            self.document.forget_clean_states()
            self.document.refresh_signatures()
            self.show_message(f"Imported: {report.summary()}")  # type: ignore[attr-defined]

        return self.run_job("Import annotations", import_annotations, self.document.source, other,
                            on_result=imported)

    def rename_class(self, old: str, new: str) -> Worker | None:
        """Rename (or merge into an existing class) across the whole dataset, after a confirmation."""
        source = self.document.source
        merge = new in self.class_list.names()
        verb = "Merge" if merge else "Rename"
        if source is None:
            self.class_list.apply_rename(old, new)
            return None
        text = (f"{verb} class '{old}' {'into' if merge else 'to'} '{new}' in every annotation of "
                f"{source.root}? This rewrites the affected annotation files.")
        if not self.confirm(f"{verb} class", text):
            return None
        self.document.save_pending()
        for st in self.document.states.values():  # unsaved edits follow the rename in memory
            if st.dirty and st.annotation is not None:
                st.annotation.objects = [replace(o, name=new) if o.name == old else o
                                         for o in st.annotation.objects]

        def renamed(report: Any) -> None:
            self.class_list.apply_rename(old, new)
            if self.model.current_class == old:
                self.class_list.choose(new)
            self.document.forget_clean_states()
            self.document.refresh_signatures()  # our own rewrite is not "another program"
            cur = self.document.current_state()
            if cur is not None and cur.dirty:
                self.document.reload_memory_current()
            self.show_message(f"{verb}d '{old}' → '{new}': {report.summary()}")  # type: ignore[attr-defined]

        return self.run_job(f"{verb} class", rename_class, source, old, new, on_result=renamed)
