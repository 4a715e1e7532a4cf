"""Keeps the Classes panel equal to the open dataset's class list, and writes changes back to the dataset.

Why a controller of its own: the list used to live in the global settings, so it leaked from one dataset
into the next and keys 1–9 changed meaning. ``models.data.dataset_classes`` decides what the list is and where it
is stored; this object loads it into the panel when a dataset opens, scans the VOC files for more names in
a worker thread, and saves each later change (added, renamed, loaded, found in a file) beside the dataset.
A folder that cannot be written keeps its list in the settings, under the dataset's path, instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.panels.class_list import ClassListPanel
from app.settings import Settings
from app.workers import Worker, WorkerPool
from models.data.dataset_classes import DatasetClasses, dataset_classes, save_classes, unique, voc_names_in
from models.data.datasets import DatasetSource


class DatasetClassList(QObject):
    """Binds a ``ClassListPanel`` to the open ``DatasetSource``."""

    #: A one-line message for the status bar.
    message = Signal(str)
    #: The background scan of the dataset's files ended (tests wait for it).
    scanFinished = Signal(list)

    def __init__(self, panel: ClassListPanel, settings: Settings, pool: WorkerPool,
                 choose: Callable[[str], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.panel = panel
        self.settings = settings
        self.pool = pool
        self._choose = choose
        self.source: DatasetSource | None = None
        self.classes: DatasetClasses | None = None
        self._loading = False
        self._scan: Worker | None = None
        panel.classesChanged.connect(self._on_changed)

    def open(self, source: DatasetSource) -> list[str]:
        """Show ``source``'s class list (nothing of the previous dataset's) and pick its start class."""
        if self._scan is not None:
            self._scan.cancel()
            self._scan = None
        self.source = source
        self.classes = dataset_classes(source, scan=False)
        remembered = self.settings.dataset_classes(source.root)
        names = unique(self.classes.names + remembered)
        self._loading = True
        try:
            self.panel.set_classes(names)
        finally:
            self._loading = False
        for p in self.classes.problems:
            self.message.emit(p)
        default = self.panel.default_class
        start = default if default in names else (names[0] if names else "")
        self._choose(start)
        if source.kind in ("voc", "folder") and source.entries:
            self._scan = self.pool.start(lambda job: voc_names_in(source, lambda: job.cancelled),
                                         on_result=lambda found, s=source: self._on_scanned(s, found))
        return names

    def add_found(self, names: list[str]) -> bool:
        """Names seen in a loaded annotation join the list; the files already hold them, so nothing is written."""
        self._loading = True
        try:
            return self.panel.add_classes(names)
        finally:
            self._loading = False

    def _on_scanned(self, source: DatasetSource, found: list[str]) -> None:
        if source is not self.source:
            return  # another dataset was opened meanwhile
        self._scan = None
        new = [n for n in found if n not in self.panel.names()]
        if new:
            self.add_found(new)
            if not self.panel.current and self.panel.names():
                self._choose(self.panel.names()[0])
        self.scanFinished.emit(new)

    def _on_changed(self, names: list[str]) -> None:
        if self._loading or self.source is None or self.classes is None:
            return
        self.save(names)

    def save(self, names: list[str]) -> Any:
        """Write the list beside the dataset; where that is impossible, remember it in the settings."""
        assert self.source is not None and self.classes is not None
        kept_here = not self.classes.writable or self.classes.path is None
        written = None
        if not kept_here:
            try:
                written = save_classes(self.source, self.classes, names)
            except OSError as exc:
                kept_here = True
                self.message.emit(f"Class list kept in the settings: {self.classes.path} cannot be written "
                                  f"({exc.strerror or exc})")
        extra = [n for n in names if n not in self.classes.names] if kept_here else []
        self.settings.set_dataset_classes(self.source.root, extra)
        return written

    def shutdown(self) -> None:
        if self._scan is not None:
            self._scan.cancel()
