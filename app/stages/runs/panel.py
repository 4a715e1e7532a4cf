"""The Runs panel: the table of runs and, beside it, the comparison of the runs selected.

A plain widget: it computes nothing. :class:`app.stages.runs.stage.RunsStage` lists the runs and evaluates
them in workers and fills the table and the comparison.
"""

from __future__ import annotations

import math

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.stages.base import explanation_label
from app.stages.runs.comparison import ApComparison, LossComparison
from models.detection.runs import RunRecord, format_duration

EXPLANATION = (
    "Every training run in the runs folder, with its settings, training time and figures. Select two runs "
    "(Ctrl+click), or two generations, to overlay their loss curves and read their AP per class side by side; "
    "AP is computed on the open dataset's test split, once, and kept beside the checkpoint.")

COLUMNS = ("run", "model", "status", "epochs", "training time", "final loss", "mAP@0.5", "settings")
SETTINGS = COLUMNS.index("settings")
#: Colours of the status cell.
STATUS_COLORS = {"finished": "#2ca02c", "cancelled": "#ff7f0e", "failed": "#d62728", "unreadable": "#d62728",
                 "incomplete": "#7f7f7f"}
#: Row data role: the run's checkpoint path.
PATH_ROLE = Qt.ItemDataRole.UserRole + 2
#: Runs compared at most (more colours than this stop being readable).
MAX_COMPARED = 4


class RunsPanel(QWidget):
    """Table of runs (left) and the comparison of the selected ones (right)."""

    #: The selection changed: the selected runs' checkpoint paths, in table order.
    selectionChanged = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.records: list[RunRecord] = []
        self._order: list[str] = []
        self.folder_label = QLabel("")
        self.folder_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("List the runs folder again (it is also watched)")
        self.add_button = QPushButton("Add a Checkpoint…")
        self.add_button.setToolTip("List any detector checkpoint (.pt), e.g. a shipped model, beside the runs")
        self.remove_button = QPushButton("Remove from List")
        self.remove_button.setToolTip("Stop listing the selected added checkpoints (files are not deleted)")
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)  # the settings: long, last
        self.table.setWordWrap(False)
        self.table.itemSelectionChanged.connect(self._selection_changed)

        self.compare_label = QLabel("Select one or two runs to compare.")
        self.compare_label.setWordWrap(True)
        self.losses = LossComparison()
        self.ap_table = ApComparison()
        self.eval_label = QLabel("")
        self.eval_label.setWordWrap(True)
        self.cancel_eval_button = QPushButton("Cancel")
        self.cancel_eval_button.setToolTip("Stop computing AP (nothing partial is kept)")
        self.cancel_eval_button.setVisible(False)

        buttons = QHBoxLayout()
        buttons.addWidget(self.refresh_button)
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        left = QWidget()
        left_lay = QVBoxLayout(left)
        left_lay.setContentsMargins(0, 0, 0, 0)
        left_lay.addWidget(self.folder_label)
        left_lay.addLayout(buttons)
        left_lay.addWidget(self.table, 1)
        left_lay.addWidget(self.status_label)

        ap_box = QWidget()
        ap_lay = QVBoxLayout(ap_box)
        ap_lay.setContentsMargins(0, 0, 0, 0)
        ap_lay.addWidget(QLabel("AP per class (VOC, IoU 0.5)"))
        ap_lay.addWidget(self.ap_table, 1)
        eval_row = QHBoxLayout()
        eval_row.addWidget(self.eval_label, 1)
        eval_row.addWidget(self.cancel_eval_button)
        ap_lay.addLayout(eval_row)
        plot_box = QWidget()
        plot_lay = QVBoxLayout(plot_box)
        plot_lay.setContentsMargins(0, 0, 0, 0)
        plot_lay.addWidget(self.compare_label)
        plot_lay.addWidget(self.losses, 1)

        # table | loss curves | AP table, in shares of the width (set once the panel has its width)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        for w in (left, plot_box, ap_box):
            self.splitter.addWidget(w)
        self._shares = (0.34, 0.36, 0.30)
        self._sized = False
        lay = QVBoxLayout(self)
        lay.addWidget(explanation_label(EXPLANATION))
        lay.addWidget(self.splitter, 1)

    def heightForWidth(self, width: int) -> int:
        """None preferred (-1): the dock's scroll area would otherwise size the panel by the height its wrapped
        labels ask for at that width, the plot's preferred height included, and push the AP table's lower
        rows below the fold. The panel fills the dock's height instead, down to its minimum."""
        return -1

    def showEvent(self, event) -> None:  # noqa: ANN001 - QShowEvent
        super().showEvent(event)
        if not self._sized:
            self._sized = True
            QTimer.singleShot(0, self._apply_shares)  # after the layout has given the splitter its width

    def _apply_shares(self) -> None:
        w = self.splitter.width()
        if w > 100:
            self.splitter.setSizes([int(w * f) for f in self._shares])

    # ----------------------------------------------------------------------------------------- table

    def set_records(self, records: list[RunRecord], maps: dict[str, tuple[float, str]] | None = None) -> None:
        """Fill the table, keeping the selection (by path). ``maps``: path → (mAP, where it comes from)."""
        order = self.selected_paths()
        selected = set(order)
        self.records = list(records)
        self.table.blockSignals(True)
        self.table.setRowCount(len(records))
        for row, r in enumerate(records):
            self._fill_row(row, r, (maps or {}).get(str(r.path)))
        self.table.clearSelection()
        for row, r in enumerate(records):
            if str(r.path) in selected:
                self._add_row_to_selection(row)
        self._order = [p for p in order if any(str(r.path) == p for r in records)]
        self.table.blockSignals(False)
        if set(self.selected_paths()) != selected:
            self._selection_changed()

    def _add_row_to_selection(self, row: int) -> None:
        from PySide6.QtCore import QItemSelectionModel

        index = self.table.model().index(row, 0)
        self.table.selectionModel().select(index, QItemSelectionModel.SelectionFlag.Select
                                           | QItemSelectionModel.SelectionFlag.Rows)

    def _fill_row(self, row: int, r: RunRecord, mapped: tuple[float, str] | None) -> None:
        def put(col: int, text: str, tip: str = "", align_right: bool = False) -> QTableWidgetItem:
            item = QTableWidgetItem(text)
            item.setData(PATH_ROLE, str(r.path))
            item.setToolTip(tip or text)
            if align_right:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, col, item)
            return item

        put(0, r.name, f"{r.path}" + (f"\nstarted {r.started_at}" if r.started_at else ""))
        if not r.readable:
            put(1, "")
            status = put(2, "unreadable", r.error or "")
            status.setForeground(QBrush(QColor(STATUS_COLORS["unreadable"])))
            for col in range(3, len(COLUMNS) - 1):
                put(col, "")
            put(SETTINGS, r.error or "", r.error or "")
            return
        put(1, f"{r.generation} · {r.backbone}" + (f" · {r.preset}" if r.preset else ""),
            f"{r.generation}, backbone {r.backbone}" + (f", preset {r.preset}" if r.preset else ", no preset"))
        status = put(2, r.status, r.message or r.status)
        status.setForeground(QBrush(QColor(STATUS_COLORS.get(r.status, "#000000"))))
        planned = "" if r.epochs_planned is None else f"/{r.epochs_planned}"
        put(3, f"{r.epochs_completed}{planned}", align_right=True)
        put(4, format_duration(r.train_seconds), align_right=True)
        total = r.final_losses.get("total")
        put(5, "" if total is None else f"{total:.3f}", "mean loss of the last epoch", align_right=True)
        if mapped is not None and math.isfinite(mapped[0]):
            put(6, f"{mapped[0]:.3f}", mapped[1], align_right=True)
        else:
            put(6, "")
        put(SETTINGS, r.summary, r.summary + (f"\ndevice {r.device}" if r.device else ""))

    def selected_paths(self) -> list[str]:
        """The selected runs in the order they were selected (the first clicked is compared first)."""
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        now = [str(self.records[r].path) for r in rows if r < len(self.records)]
        kept = [p for p in self._order if p in now]
        self._order = kept + [p for p in now if p not in kept]
        return list(self._order)

    def select_paths(self, paths: list[str]) -> None:
        """Select the rows of ``paths`` (for the host and tests: what Ctrl+click does)."""
        self.table.clearSelection()
        self._order = []
        for p in paths:
            for row, r in enumerate(self.records):
                if str(r.path) == p:
                    self._add_row_to_selection(row)
                    self.selected_paths()

    def record(self, path: str) -> RunRecord | None:
        return next((r for r in self.records if str(r.path) == path), None)

    def _selection_changed(self) -> None:
        self.selectionChanged.emit(self.selected_paths())


__all__ = ["COLUMNS", "MAX_COMPARED", "RunsPanel"]
