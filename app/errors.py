"""The last line of defence: an unexpected exception shows a dialog, is logged, and the window stays up.

Why not let it crash: PySide6 prints exceptions raised in slots and carries on, so the user would see
nothing and keep working on a half-updated window; and an unhandled exception elsewhere would kill the app
with unsaved work. Installed only by the real entry point (``app.cli.gui``), never by the main window, so
pytest-qt's own exception capture keeps failing tests in the test suite.
"""

from __future__ import annotations

import datetime
import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

log = logging.getLogger("rcnn_explorer")

#: The log is rotated when a write would take it past this size: ``errors.log`` → ``errors.log.1`` → … Why:
#: an exception in a paint handler repeats on every repaint, and a log that grows without limit fills the
#: disk of a user who leaves the app open.
MAX_LOG_BYTES = 1_000_000
#: Rotated files kept beside the current one.
LOG_BACKUPS = 3


class ErrorReporter:
    """``sys.excepthook`` replacement: log to a file, then show one non-blocking dialog at a time."""

    def __init__(self, log_path: Path, parent_getter: Callable[[], QWidget | None] | None = None,
                 show_dialog: bool = True, max_bytes: int = MAX_LOG_BYTES, backups: int = LOG_BACKUPS) -> None:
        self.log_path = Path(log_path)
        self.max_bytes = max_bytes
        self.backups = backups
        self._parent_getter = parent_getter
        self.show_dialog = show_dialog
        self.count = 0
        self.last_message = ""
        self._box: QMessageBox | None = None
        self._previous: Callable[..., object] | None = None

    def install(self) -> None:
        self._previous = sys.excepthook
        sys.excepthook = self.handle

    def uninstall(self) -> None:
        if sys.excepthook == self.handle and self._previous is not None:
            sys.excepthook = self._previous

    def handle(self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            QApplication.quit()
            return
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        self.count += 1
        self.last_message = f"{exc_type.__name__}: {exc}"
        self._write_log(text)
        sys.stderr.write(text)
        if self.show_dialog and QApplication.instance() is not None:
            self._show(text)

    def _write_log(self, text: str) -> None:
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            stamp = datetime.datetime.now().isoformat(timespec="seconds")
            entry = f"--- {stamp}\n{text}\n"
            if self.max_bytes > 0:
                entry = entry[-self.max_bytes:]  # one huge traceback is cut, not kept whole
                self._rotate_if_needed(len(entry.encode("utf-8")))
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(entry)
        except OSError:
            pass  # a broken log must never raise from the excepthook

    def _rotate_if_needed(self, incoming: int) -> None:
        """Shift ``log`` → ``log.1`` → … → ``log.N`` (the oldest dropped) when ``incoming`` would not fit."""
        try:
            size = self.log_path.stat().st_size
        except OSError:
            return
        if size + incoming <= self.max_bytes:
            return
        if self.backups <= 0:
            self.log_path.unlink(missing_ok=True)
            return
        for k in range(self.backups - 1, 0, -1):
            older = self.log_path.with_name(f"{self.log_path.name}.{k}")
            if older.exists():
                older.replace(self.log_path.with_name(f"{self.log_path.name}.{k + 1}"))
        self.log_path.replace(self.log_path.with_name(f"{self.log_path.name}.1"))

    def _show(self, details: str) -> None:
        if self._box is not None and self._box.isVisible():
            # One dialog at a time: an exception in a paint handler would otherwise open hundreds.
            self._box.setInformativeText(f"{self.count} errors so far; see {self.log_path}")
            return
        parent = self._parent_getter() if self._parent_getter else None
        box = QMessageBox(QMessageBox.Icon.Critical, "Unexpected error",
                          f"Something went wrong: {self.last_message}\n\n"
                          "Your annotations are kept; you can continue working.", parent=parent)
        box.setInformativeText(f"Details were written to {self.log_path}")
        box.setDetailedText(details)
        box.setModal(False)
        self._box = box
        box.show()  # non-blocking: the excepthook must return so the event loop keeps running
