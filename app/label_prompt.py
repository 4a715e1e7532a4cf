"""The label prompt LabelImg users expect after drawing a box: the class list with type-ahead.

Why non-modal to the application (``open()``, window-modal): the canvas keeps painting and tests drive the
real dialog with keys. Typing filters the list (case-insensitive, anywhere in the name; names starting with
the text first) and highlights the first match; arrows move the highlight; Enter takes the highlighted
class, or the typed text as a new class when nothing matches (Shift+Enter: the typed text even when a
longer class matches it); Escape cancels (the window then removes the box just drawn, as LabelImg does). Edit ▸ "Ask for the Class after Drawing" turns
the prompt off for fast single-class work.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.layers.base import class_color
from app.panels.class_list import _swatch


class LabelPrompt(QDialog):
    """Asks for one class name; ``chosen(name)`` on Enter/OK, ``rejected`` on Escape/Cancel."""

    chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Class of the new box")
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.edit = QLineEdit()
        self.edit.setPlaceholderText("Type to filter, Enter to accept")
        self.edit.setClearButtonEnabled(True)
        self.list = QListWidget()
        self.list.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys go to the edit; arrows move the list
        self.hint = QLabel()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        lay = QVBoxLayout(self)
        lay.addWidget(self.edit)
        lay.addWidget(self.list, 1)
        lay.addWidget(self.hint)
        lay.addWidget(buttons)
        self._names: list[str] = []
        self.edit.textEdited.connect(self._filter)
        self.edit.installEventFilter(self)
        self.list.itemClicked.connect(lambda it: self.edit.setText(it.data(Qt.ItemDataRole.UserRole)))
        self.list.itemDoubleClicked.connect(lambda _it: self.accept())
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.resize(280, 340)

    def ask(self, names: list[str], current: str) -> None:
        """Show the prompt (returns at once); the answer comes as ``chosen`` or ``rejected``."""
        self._names = list(names)
        self.edit.setText(current)
        self._filter(current, select_all=True)
        self.edit.selectAll()  # typing replaces the suggestion; Enter keeps it
        self.open()
        self.edit.setFocus()

    def answer(self, literal: bool = False) -> str:
        """What Enter gives: the highlighted match (the list holds only matches), else the typed text.

        ``literal`` (Shift+Enter) takes the typed text even when a longer class matches it ('dog' beside
        'dogfood').
        """
        item = self.list.currentItem()
        if literal and self.edit.text().strip():
            return self.edit.text().strip()
        if item is not None:
            return str(item.data(Qt.ItemDataRole.UserRole))
        return self.edit.text().strip()

    def _filter(self, text: str, select_all: bool = False) -> None:
        t = text.strip().lower()
        matches = [n for n in self._names if select_all or t in n.lower()]
        # Names starting with the text first, then those containing it.
        if t and not select_all:
            matches.sort(key=lambda n: (not n.lower().startswith(t), self._names.index(n)))
        self.list.clear()
        for n in matches:
            item = QListWidgetItem(_swatch(class_color(n)), n)
            item.setData(Qt.ItemDataRole.UserRole, n)
            self.list.addItem(item)
        exact = next((k for k, n in enumerate(matches) if n.lower() == t), None)
        self.list.setCurrentRow(exact if exact is not None else (0 if matches else -1))
        known = any(n.lower() == t for n in self._names)
        if not t or known:
            self.hint.setText("")
        elif matches:
            self.hint.setText(f"Shift+Enter: a new class '{text.strip()}'")
        else:
            self.hint.setText(f"Enter adds a new class '{text.strip()}'")

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if obj is self.edit and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            key = event.key()
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and \
                    event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                self._finish(self.answer(literal=True))
                return True
            if key in (Qt.Key.Key_Up, Qt.Key.Key_Down):
                row = self.list.currentRow() + (1 if key == Qt.Key.Key_Down else -1)
                if 0 <= row < self.list.count():
                    self.list.setCurrentRow(row)
                return True
        return super().eventFilter(obj, event)

    def accept(self) -> None:
        self._finish(self.answer())

    def _finish(self, name: str) -> None:
        if not name:
            return  # nothing to give the box: stay open
        super().accept()
        self.chosen.emit(name)
