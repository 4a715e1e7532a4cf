"""The shortcut sheet (``?``, F1 or Help ▸ Keyboard Shortcuts): every key the app answers to.

Why generated from the actions: a hand-written table goes stale; this one lists each QAction's real
shortcuts, plus the keys and mouse gestures the canvas handles itself (arrows, Escape, wheel, drags).
"""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QHeaderView, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

#: Handled inside the canvas (not QActions), so listed by hand.
CANVAS_KEYS: list[tuple[str, str]] = [
    ("←  →  ↑  ↓", "Nudge the selected boxes by 1 pixel"),
    ("Shift + arrows", "Nudge the selected boxes by 10 pixels"),
    ("Esc", "Cancel drawing / leave create mode / clear the selection"),
    ("Mouse wheel", "Zoom around the cursor"),
    ("Middle drag, Ctrl + left drag", "Pan"),
    ("Left drag (edit mode)", "Select, move a box, or resize it by a handle"),
    ("Shift + click", "Add a box to / remove it from the selection"),
]


def action_rows(actions: Iterable[QAction]) -> list[tuple[str, str]]:
    """(keys, description) for every action that has a shortcut, in the given order, without duplicates."""
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    for a in actions:
        keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in a.shortcuts() if not k.isEmpty()]
        if not keys:
            continue
        text = a.text().replace("&", "").rstrip(".…")
        key = ", ".join(keys)
        if (key, text) in seen:
            continue
        seen.add((key, text))  # type: ignore[arg-type]
        rows.append((key, a.toolTip() if text == "" else text))
    return rows


class ShortcutSheet(QDialog):
    """A non-modal table of keys; stays open beside the window while the user learns them."""

    def __init__(self, actions: Iterable[QAction], parent: QWidget | None = None,
                 extra_rows: list[tuple[str, str]] | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.rows = action_rows(actions) + list(extra_rows or []) + CANVAS_KEYS
        self.table = QTableWidget(len(self.rows), 2)
        self.table.setHorizontalHeaderLabels(["Keys", "Action"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for r, (keys, text) in enumerate(self.rows):
            k = QTableWidgetItem(keys)
            k.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            self.table.setItem(r, 0, k)
            self.table.setItem(r, 1, QTableWidgetItem(text))
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        lay = QVBoxLayout(self)
        lay.addWidget(self.table)
        self.resize(520, 640)

    def keys(self) -> list[str]:
        return [k for k, _ in self.rows]
