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


class ErrorReporter:
    """``sys.excepthook`` replacement: log to a file, then show one non-blocking dialog at a time."""

    def __init__(self, log_path: Path, parent_getter: Callable[[], QWidget | None] | None = None,
                 show_dialog: bool = True) -> None:
        self.log_path = Path(log_path)
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
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(f"--- {stamp}\n{text}\n")
        except OSError:
            pass  # a broken log must never raise from the excepthook

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
