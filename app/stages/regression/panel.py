"""The Box regression panel: pick an RPN anchor or a head RoI, see its box before/after the deltas.

A plain widget; the controller (:mod:`app.stages.regression.controller`) fills the table.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHeaderView,
    QLabel,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.stages.base import explanation_label

SOURCE_ANCHOR = "anchor"
SOURCE_ROI = "roi"

EXPLANATION = (
    "Detectors do not predict boxes from scratch: they predict four deltas that move and resize a reference box, "
    "dx and dy shift its centre by a fraction of its width and height, dw and dh scale its width and height by "
    "exp(dw) and exp(dh). The RPN moves anchors this way into proposals; the head moves each RoI once per class. "
    "Click an anchor cell or a RoI on the image to see its deltas.")


class RegressionPanel(QWidget):
    """Source, index pickers and the deltas table."""

    #: Which reference to show: (source, index).
    pickChanged = Signal(str, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.explanation = explanation_label(EXPLANATION)
        self.show_box = QCheckBox("Show box regression")
        self.source_combo = QComboBox()
        self.source_combo.addItem("RPN: anchor → proposal", SOURCE_ANCHOR)
        self.source_combo.addItem("Head: RoI → per-class boxes", SOURCE_ROI)
        self.anchor_spin = QSpinBox()
        self.anchor_spin.setRange(0, 0)
        self.anchor_spin.setToolTip("Anchor index in the model's order (cell-major, then size, then ratio); a "
                                    "click on the image picks the best-scoring anchor of that cell")
        self.roi_spin = QSpinBox()
        self.roi_spin.setRange(0, 0)
        self.roi_spin.setToolTip("RoI rank (0 = the best proposal); a click picks the best RoI containing it")
        self.title = QLabel("")
        self.title.setWordWrap(True)
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.table = QTableWidget(0, 0)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setMinimumHeight(140)
        self.status = QLabel("")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("reference", self.source_combo)
        form.addRow("anchor #", self.anchor_spin)
        form.addRow("RoI #", self.roi_spin)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(self.explanation)
        lay.addWidget(self.show_box)
        lay.addLayout(form)
        lay.addWidget(self.status)
        lay.addWidget(self.title)
        lay.addWidget(self.table)
        lay.addStretch(1)

        self.source_combo.currentIndexChanged.connect(self._emit)
        self.anchor_spin.valueChanged.connect(self._emit)
        self.roi_spin.valueChanged.connect(self._emit)
        self._sync_enabled()

    def source(self) -> str:
        return str(self.source_combo.currentData())

    def index(self) -> int:
        return int(self.anchor_spin.value() if self.source() == SOURCE_ANCHOR else self.roi_spin.value())

    def _sync_enabled(self) -> None:
        anchor = self.source() == SOURCE_ANCHOR
        self.anchor_spin.setEnabled(anchor and self.anchor_spin.maximum() > 0)
        self.roi_spin.setEnabled(not anchor and self.roi_spin.maximum() > 0)

    def _emit(self, *_: object) -> None:
        self._sync_enabled()
        self.pickChanged.emit(self.source(), self.index())

    def set_ranges(self, anchors: int, rois: int, anchor: int = 0, roi: int = 0) -> None:
        """A new trace: index ranges and the starting picks (no signal; the controller redraws)."""
        for spin, n, v in ((self.anchor_spin, anchors, anchor), (self.roi_spin, rois, roi)):
            spin.blockSignals(True)
            spin.setRange(0, max(0, n - 1))
            spin.setValue(max(0, min(v, max(0, n - 1))))
            spin.blockSignals(False)
        self._sync_enabled()

    def pick(self, source: str, index: int) -> None:
        """Select ``source`` and ``index`` as a user would (emits pickChanged once)."""
        for w in (self.source_combo, self.anchor_spin, self.roi_spin):
            w.blockSignals(True)
        self.source_combo.setCurrentIndex(self.source_combo.findData(source))
        (self.anchor_spin if source == SOURCE_ANCHOR else self.roi_spin).setValue(int(index))
        for w in (self.source_combo, self.anchor_spin, self.roi_spin):
            w.blockSignals(False)
        self._emit()

    def show_table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]],
                   colors: Sequence[QColor | None] | None = None, bold_row: int = -1) -> None:
        self.title.setText(title)
        self.table.clear()
        self.table.setColumnCount(len(columns))
        self.table.setHorizontalHeaderLabels(list(columns))
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                item = QTableWidgetItem(text)
                if c == 0 and colors is not None and colors[r] is not None:
                    item.setForeground(colors[r])
                if r == bold_row:
                    f = item.font()
                    f.setBold(True)
                    item.setFont(f)
                self.table.setItem(r, c, item)

    def set_status(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text))


__all__ = ["SOURCE_ANCHOR", "SOURCE_ROI", "RegressionPanel"]
