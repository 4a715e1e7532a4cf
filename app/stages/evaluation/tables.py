"""The evaluation view's tables: AP per class, the confusion matrix, a class's worst images.

Plain widgets filled from the row lists of :mod:`models.detection.evaluation_report` (the same rows the CSV
export writes, so what is exported is what is shown). They compute nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

#: Cell colours of the confusion matrix: correct (diagonal), confusions/background/missed.
GOOD = QColor(40, 170, 80)
BAD = QColor(220, 60, 60)


def _item(text: str, numeric: bool) -> QTableWidgetItem:
    it = QTableWidgetItem(text)
    it.setFlags(Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled)
    if numeric:
        it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return it


class RowsTable(QTableWidget):
    """A read-only table of a header row and data rows; whole rows are selected."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(22)
        self.setAlternatingRowColors(True)
        self.rows: list[list[str]] = []

    def set_rows(self, rows: Sequence[Sequence[str]]) -> None:
        """Show ``rows`` (the first is the header) without emitting selection changes."""
        self.rows = [list(map(str, r)) for r in rows]
        self.blockSignals(True)
        try:
            self.clearSelection()
            self.clear()
            header = self.rows[0] if self.rows else []
            body = self.rows[1:]
            self.setColumnCount(len(header))
            self.setRowCount(len(body))
            self.setHorizontalHeaderLabels(header)
            for r, row in enumerate(body):
                for c, text in enumerate(row):
                    self.setItem(r, c, _item(text, c > 0))
            self.resizeColumnsToContents()
        finally:
            self.blockSignals(False)

    def select_row_silently(self, row: int) -> None:
        self.blockSignals(True)
        try:
            self.selectRow(row)
        finally:
            self.blockSignals(False)

    def current_row(self) -> int:
        rows = self.selectionModel().selectedRows()
        return rows[0].row() if rows else -1


class ConfusionTable(QTableWidget):
    """The confusion matrix: row and column headers are the labels; a cell's shade is its share of its row."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.verticalHeader().setDefaultSectionSize(22)
        self.rows: list[list[object]] = []

    def set_matrix(self, rows: Sequence[Sequence[object]]) -> None:
        """``rows``: :meth:`models.detection.confusion.ConfusionMatrix.rows` (header first)."""
        self.rows = [list(r) for r in rows]
        self.blockSignals(True)
        try:
            self.clear()
            header = [str(h) for h in self.rows[0][1:]] if self.rows else []
            body = self.rows[1:]
            self.setColumnCount(len(header))
            self.setRowCount(len(body))
            self.setHorizontalHeaderLabels([f"→ {h}" for h in header])
            self.setVerticalHeaderLabels([f"{r[0]}" for r in body])
            for r, row in enumerate(body):
                values = [int(v) for v in row[1:]]
                total = max(1, sum(values))
                for c, v in enumerate(values):
                    it = _item(str(v), True)
                    if v:
                        base = GOOD if (r == c and r < len(body) - 1) else BAD
                        shade = QColor(base)
                        shade.setAlpha(int(40 + 170 * v / total))
                        it.setBackground(shade)
                    self.setItem(r, c, it)
        finally:
            self.blockSignals(False)
        self.setToolTip(self.tooltip_text())

    @staticmethod
    def tooltip_text() -> str:
        return ("Rows: the ground truth (each class, then background). Columns: the predicted class, then "
                "'missed' (objects no detection found). Diagonal: true positives. Off the diagonal: boxes "
                "of the column's class on an object of the row's class (IoU above the threshold). Background "
                "row: every other false positive (on nothing, poorly placed, duplicate).")


__all__ = ["BAD", "GOOD", "ConfusionTable", "RowsTable"]
