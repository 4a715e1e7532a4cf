"""File and folder choosers, injectable so tests never block on a modal dialog.

Why one small object instead of direct ``QFileDialog.get…`` calls: the window and its panels ask for paths
in a dozen places; routing them through ``FileDialogs`` lets a test replace one attribute (``dialogs.ask``)
with a function that returns a path, and keeps one decision — use the platform's own dialogs (Qt does
this by default; we never pass ``DontUseNativeDialog``) — in one place.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QFileDialog, QWidget

#: (kind, parent, title, start folder or file, name filter) -> chosen path, or "" when cancelled.
#: ``kind`` is "open" (an existing file), "save" (a file name) or "folder" (an existing folder).
AskPath = Callable[[str, QWidget | None, str, str, str], str]


def native_options() -> QFileDialog.Option:
    """The options every chooser uses: the platform's native dialog where it has one."""
    return QFileDialog.Option(0)


def ask_with_qt(kind: str, parent: QWidget | None, title: str, start: str, name_filter: str) -> str:
    """The real choosers (native on Windows, macOS and desktops with a portal/GTK/KDE dialog)."""
    opts = native_options()
    if kind == "folder":
        return QFileDialog.getExistingDirectory(parent, title, start, opts | QFileDialog.Option.ShowDirsOnly)
    if kind == "save":
        return QFileDialog.getSaveFileName(parent, title, start, name_filter, "", opts)[0]
    return QFileDialog.getOpenFileName(parent, title, start, name_filter, "", opts)[0]


class FileDialogs:
    """Path questions of one window; replace ``ask`` in tests."""

    def __init__(self, parent: QWidget | None = None, ask: AskPath | None = None) -> None:
        self.parent = parent
        self.ask: AskPath = ask or ask_with_qt

    def open_file(self, title: str, start: str = "", name_filter: str = "") -> str:
        return self.ask("open", self.parent, title, start, name_filter)

    def save_file(self, title: str, start: str = "", name_filter: str = "") -> str:
        return self.ask("save", self.parent, title, start, name_filter)

    def folder(self, title: str, start: str = "") -> str:
        return self.ask("folder", self.parent, title, start, "")
