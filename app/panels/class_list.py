"""The class list dock: the label set, the class new boxes get, a default class, and class file I/O.

Why rename and merge are only *requested* here: they rewrite annotation files across the whole dataset,
which needs a confirmation, a worker thread and a progress bar — the main window owns those. This panel
only holds the list and says what the user asked for.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QGridLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.file_dialogs import FileDialogs
from app.layers.palette import class_color, set_class_order
from models.data.annotations import AnnotationError
from models.data.annotations.yolo import read_class_file, write_class_file


def _swatch(color: QColor) -> QIcon:
    pm = QPixmap(14, 14)
    pm.fill(color)
    return QIcon(pm)


class ClassListPanel(QWidget):
    """Ordered class names; digit keys 1–9 (main window actions) pick the first nine."""

    #: The user picked the class for new boxes.
    classChosen = Signal(str)
    #: The list itself changed (added, loaded, renamed…): the new names.
    classesChanged = Signal(list)
    renameRequested = Signal(str, str)
    mergeRequested = Signal(str, str)
    defaultChanged = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._names: list[str] = []
        self._default = ""
        self._current = ""
        #: File choosers (the window shares its own, so tests can answer them).
        self.dialogs = FileDialogs(self)
        self.list = QListWidget()
        self.list.setToolTip("Click a class to give it to new boxes (keys 1–9 pick the first nine)")
        self.add_button = QPushButton("Add…")
        self.rename_button = QPushButton("Rename…")
        self.merge_button = QPushButton("Merge into…")
        self.default_button = QPushButton("Set default")
        self.load_button = QPushButton("Load…")
        self.save_button = QPushButton("Save…")
        self.rename_button.setToolTip("Rename the class in every annotation of the dataset")
        self.merge_button.setToolTip("Relabel every box of this class as another class, in the whole dataset")
        self.default_button.setToolTip("The class chosen when an image is opened")
        self.load_button.setToolTip("Load a class file (classes.txt, one name a line, or data.yaml)")
        self.save_button.setToolTip("Save the list as a class file (classes.txt)")
        self.default_label = QLabel()
        grid = QGridLayout()
        for k, b in enumerate((self.add_button, self.rename_button, self.merge_button, self.default_button,
                               self.load_button, self.save_button)):
            grid.addWidget(b, k // 3, k % 3)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.list, 1)
        lay.addWidget(self.default_label)
        lay.addLayout(grid)
        self.list.currentRowChanged.connect(self._on_row)
        self.add_button.clicked.connect(self._ask_add)
        self.rename_button.clicked.connect(self._ask_rename)
        self.merge_button.clicked.connect(self._ask_merge)
        self.default_button.clicked.connect(lambda: self.set_default(self.selected()))
        self.load_button.clicked.connect(self._ask_load)
        self.save_button.clicked.connect(self._ask_save)
        self._refresh()

    # --- state --------------------------------------------------------------------------------------------
    def names(self) -> list[str]:
        return list(self._names)

    @property
    def default_class(self) -> str:
        return self._default

    @property
    def current(self) -> str:
        return self._current

    def selected(self) -> str:
        row = self.list.currentRow()
        return self._names[row] if 0 <= row < len(self._names) else ""

    def set_classes(self, names: list[str]) -> None:
        """Replace the list (keeps order, drops duplicates and blanks)."""
        seen: dict[str, None] = {}
        for n in names:
            n = str(n).strip()
            if n:
                seen.setdefault(n, None)
        new = list(seen)
        if new != self._names:
            self._names = new
            self._refresh()
            self.classesChanged.emit(self.names())

    def add_classes(self, names: list[str]) -> bool:
        """Append names not yet listed (e.g. classes found in a loaded annotation); True if any was new."""
        new = [n for n in names if n and n not in self._names]
        if new:
            self.set_classes(self._names + new)
        return bool(new)

    def add_class(self, name: str) -> bool:
        return self.add_classes([name.strip()])

    def set_default(self, name: str) -> None:
        if name != self._default:
            self._default = name
            self._refresh()
            self.defaultChanged.emit(name)

    def set_current(self, name: str) -> None:
        """Highlight ``name`` (the model's current class) without emitting ``classChosen``."""
        self._current = name
        row = self._names.index(name) if name in self._names else -1
        self.list.blockSignals(True)
        self.list.setCurrentRow(row)
        self.list.blockSignals(False)

    def choose(self, name: str) -> None:
        """Pick ``name`` for new boxes (adding it if new)."""
        self.add_class(name)
        self.set_current(name)
        self.classChosen.emit(name)

    def choose_index(self, k: int) -> str | None:
        """Digit key ``k`` (1-based) picks the k-th class; None when there is no such class."""
        if 1 <= k <= len(self._names):
            name = self._names[k - 1]
            self.choose(name)
            return name
        return None

    def _on_row(self, row: int) -> None:
        if 0 <= row < len(self._names):
            self._current = self._names[row]
            self.classChosen.emit(self._names[row])

    def _refresh(self) -> None:
        set_class_order(self._names)  # class colours follow the dataset's list (app.layers.palette)
        self.list.blockSignals(True)
        self.list.clear()
        for k, n in enumerate(self._names):
            prefix = f"{k + 1}  " if k < 9 else "    "
            item = QListWidgetItem(_swatch(class_color(n)), f"{prefix}{n}{'  (default)' if n == self._default else ''}")
            item.setData(Qt.ItemDataRole.UserRole, n)
            self.list.addItem(item)
        if self._current in self._names:
            self.list.setCurrentRow(self._names.index(self._current))
        self.list.blockSignals(False)
        self.default_label.setText(f"Default class: {self._default}" if self._default else "No default class")
        has = bool(self._names)
        for b in (self.rename_button, self.merge_button, self.default_button, self.save_button):
            b.setEnabled(has)

    # --- requests (the main window does the dataset-wide work) ---------------------------------------------
    def request_rename(self, old: str, new: str) -> None:
        new = new.strip()
        if old in self._names and new and new != old:
            if new in self._names:
                self.mergeRequested.emit(old, new)
            else:
                self.renameRequested.emit(old, new)

    def request_merge(self, old: str, into: str) -> None:
        if old in self._names and into and into != old:
            self.mergeRequested.emit(old, into)

    def apply_rename(self, old: str, new: str) -> None:
        """After the dataset was rewritten: rename (or, when ``new`` exists, drop) ``old`` in the list."""
        names = [new if n == old else n for n in self._names]
        if self._default == old:
            self._default = new
        if self._current == old:
            self._current = new
        self._names = []  # force a refresh and a classesChanged
        self.set_classes(names)

    # --- class files --------------------------------------------------------------------------------------
    def load_file(self, path: str | Path) -> list[str]:
        """Replace the list with a class file's names; raises AnnotationError for an unreadable file."""
        names = read_class_file(path)
        self.set_classes(names)
        return names

    def save_file(self, path: str | Path) -> None:
        write_class_file(path, self._names)

    # --- dialogs ------------------------------------------------------------------------------------------
    def _ask_add(self) -> None:
        name, ok = QInputDialog.getText(self, "Add class", "Class name:")
        if ok and name.strip():
            self.choose(name.strip())

    def _ask_rename(self) -> None:
        old = self.selected()
        if not old:
            return
        new, ok = QInputDialog.getText(self, "Rename class", f"New name for '{old}' (in the whole dataset):",
                                       text=old)
        if ok:
            self.request_rename(old, new)

    def _ask_merge(self) -> None:
        old = self.selected()
        others = [n for n in self._names if n != old]
        if not old or not others:
            return
        into, ok = QInputDialog.getItem(self, "Merge class", f"Relabel every '{old}' box as:", others, 0, True)
        if ok:
            self.request_merge(old, into.strip())

    def _ask_load(self) -> None:
        path = self.dialogs.open_file("Load class file", "", "Class files (*.txt *.names *.yaml *.yml)")
        if path:
            try:
                self.load_file(path)
            except AnnotationError as exc:
                QMessageBox.warning(self, "Class file", str(exc))

    def _ask_save(self) -> None:
        path = self.dialogs.save_file("Save class file", "classes.txt", "Text files (*.txt)")
        if path:
            try:
                self.save_file(path)
            except OSError as exc:
                QMessageBox.warning(self, "Class file", f"Could not save {path}: {exc}")
