"""Two (or a few) runs side by side: their loss curves overlaid, and AP per class in one table.

Plain widgets that draw what they are given: the loss points come from ``models.detection.runs.loss_curves``
(read when the runs were listed) and the AP from ``models.detection.runs.evaluate_run`` (computed by the stage
in a worker). Curves are drawn with pyqtgraph, the app's one plotting library, in the colours and line styles
of the proposal curves, so "run 1 is blue" holds across the app.
"""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.proposal_curves import PALETTE, STYLES, _plot
from models.detection.runs import TOTAL, RunEvaluation, RunRecord

#: Item data role holding the number behind an AP cell (NaN: class without ground truth; None: not known).
VALUE_ROLE = Qt.ItemDataRole.UserRole + 1


def run_pen(i: int) -> tuple[pg.QtGui.QPen, str]:
    """Colour (and, past the palette, line style) of the i-th run compared."""
    color = PALETTE[i % len(PALETTE)]
    return pg.mkPen(color, width=2, style=STYLES[(i // len(PALETTE)) % len(STYLES)]), color


class LossComparison(QWidget):
    """One loss of each run against training progress (epochs or optimiser steps), overlaid."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runs: list[RunRecord] = []
        #: The curve drawn for each run, by run name (for tests and the legend).
        self.items: dict[str, pg.PlotDataItem] = {}
        self.loss_combo = QComboBox()
        self.loss_combo.setToolTip("Which loss to overlay (total: the sum the optimiser minimises)")
        self.axis_combo = QComboBox()
        self.axis_combo.addItem("epochs", "epochs")
        self.axis_combo.addItem("steps", "steps")
        self.axis_combo.setToolTip("Epochs line up runs with different batch sizes; steps are what the "
                                   "optimiser took")
        self.plot = _plot("Training loss", "epoch", "loss", (-10, 10))
        self.plot.setMinimumHeight(120)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: palette(placeholder-text);")
        top = QHBoxLayout()
        top.addWidget(QLabel("Loss:"))
        top.addWidget(self.loss_combo)
        top.addWidget(QLabel("against"))
        top.addWidget(self.axis_combo)
        top.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.note)
        self.loss_combo.currentIndexChanged.connect(self._redraw)
        self.axis_combo.currentIndexChanged.connect(self._redraw)

    def current_loss(self) -> str:
        return str(self.loss_combo.currentData() or TOTAL)

    def set_runs(self, runs: list[RunRecord]) -> None:
        """Draw ``runs`` (in this order: colour i for run i); the loss list is the union of theirs."""
        self.runs = list(runs)
        keep = self.current_loss()
        names: list[str] = []
        for r in self.runs:
            names += [n for n in r.curves.names if n not in names]
        self.loss_combo.blockSignals(True)
        self.loss_combo.clear()
        for n in names:
            self.loss_combo.addItem(n, n)
        i = self.loss_combo.findData(keep)
        self.loss_combo.setCurrentIndex(i if i >= 0 else 0)
        self.loss_combo.blockSignals(False)
        self._redraw()

    def _redraw(self, *_: object) -> None:
        item = self.plot.getPlotItem()
        item.clear()
        self.items = {}
        loss = self.current_loss()
        by_steps = self.axis_combo.currentData() == "steps"
        item.setLabel("bottom", "optimiser step" if by_steps else "epoch", color="k")
        item.setTitle(f"Training loss: {loss}" if self.runs else "Training loss", color="k")
        notes = []
        for i, run in enumerate(self.runs):
            c = run.curves
            ys = c.losses.get(loss)
            if not ys:
                notes.append(f"{run.name} has no '{loss}' loss")
                continue
            xs = c.steps if by_steps else c.epochs
            pts = [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)
                   if x is not None and math.isfinite(float(y))]
            if by_steps and len(pts) < len(ys):
                notes.append(f"{run.name}: steps per epoch unknown, drawn against epochs only")
            pen, color = run_pen(i)
            self.items[run.name] = self.plot.plot(
                [p[0] for p in pts], [p[1] for p in pts], pen=pen, name=run.name,
                symbol=None if c.per_step else "o", symbolSize=6, symbolBrush=color, symbolPen=color)
        means = [r.name for r in self.runs if not r.curves.per_step]
        if means:
            notes.append(f"One point per epoch (the means its checkpoint keeps; no training log beside it): "
                         f"{', '.join(means)}")
        self.note.setText("\n".join(notes))
        self.note.setVisible(bool(notes))


class ApComparison(QTableWidget):
    """AP per class (VOC, IoU 0.5) with one column per run; mAP, COCO AP and the image count below; with two
    runs a last column holds the difference (second − first)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, 0, parent)
        self.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        self.verticalHeader().setVisible(False)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.horizontalHeader().setStretchLastSection(True)
        self.runs: list[RunRecord] = []
        #: Per column: the evaluation shown (a RunEvaluation's result dict), a text saying why not, and
        #: where it comes from.
        self.results: list[dict | None] = []
        self.states: list[str] = []

    def set_runs(self, runs: list[RunRecord]) -> None:
        self.runs = list(runs)
        self.results = [None] * len(runs)
        self.states = ["…"] * len(runs)
        self._rebuild()

    def set_result(self, column: int, result: dict | None, state: str = "") -> None:
        """Column ``column`` shows ``result`` (``EvaluationResult.to_dict()``), or ``state`` ("computing 40 %",
        "failed: …") in its cells when there is none."""
        if 0 <= column < len(self.runs):
            self.results[column] = result
            self.states[column] = state
            self._rebuild()

    def value(self, class_name: str, column: int) -> float | None:
        """The number in a cell (None: not computed; NaN: no ground truth of that class)."""
        for row in range(self.rowCount()):
            if self.item(row, 0).text() == class_name:
                cell = self.item(row, column + 1)
                return None if cell is None else cell.data(VALUE_ROLE)
        return None

    def _classes(self) -> list[str]:
        names: list[str] = []
        for res, run in zip(self.results, self.runs, strict=True):
            names += [c for c in ((res or {}).get("AP") or {}) if c not in names]
            names += [c for c in run.class_names if c not in names]
        return names

    def _rebuild(self) -> None:
        two = len(self.runs) == 2
        headers = ["class"] + [f"{r.name}\n{r.generation}" for r in self.runs] + (["2nd − 1st"]
                                                                                     if two else [])
        classes = self._classes()
        rows = [(c, "AP") for c in classes] + [("mAP@0.5", "mAP"), ("COCO AP", "coco_AP"),
                                                ("images", "images")]
        self.clear()
        self.setColumnCount(len(headers))
        self.setRowCount(len(rows))
        self.setHorizontalHeaderLabels(headers)
        for col in range(len(self.runs)):
            _, color = run_pen(col)
            head = self.horizontalHeaderItem(col + 1)
            head.setForeground(QBrush(QColor(color)))
            tip = self.states[col] if self.results[col] is None else self.states[col] or "computed"
            head.setToolTip(f"{self.runs[col].path}\n{tip}")
        for row, (label, key) in enumerate(rows):
            head = QTableWidgetItem(label)
            if key != "AP":
                font = head.font()
                font.setBold(True)
                head.setFont(font)
            self.setItem(row, 0, head)
            values: list[float | None] = []
            for col, res in enumerate(self.results):
                v = self._number(res, label, key)
                values.append(v)
                text = self.states[col] if res is None else self._text(v, key)
                cell = QTableWidgetItem(text)
                cell.setData(VALUE_ROLE, v)
                cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.setItem(row, col + 1, cell)
            if two:
                a, b = values
                diff = None if a is None or b is None or key == "images" or not (math.isfinite(a) and
                                                                                  math.isfinite(b)) else b - a
                cell = QTableWidgetItem("" if diff is None else f"{diff:+.3f}")
                cell.setData(VALUE_ROLE, diff)
                cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if diff is not None and abs(diff) >= 0.0005:
                    cell.setForeground(QBrush(QColor("#2ca02c" if diff > 0 else "#d62728")))
                self.setItem(row, 3, cell)

    @staticmethod
    def _number(res: dict | None, label: str, key: str) -> float | None:
        if res is None:
            return None
        v = (res.get("AP") or {}).get(label, math.nan) if key == "AP" else res.get(key)
        return math.nan if v is None else float(v)

    @staticmethod
    def _text(v: float | None, key: str) -> str:
        if v is None or not math.isfinite(v):
            return "n/a"
        return f"{int(v)}" if key == "images" else f"{v:.3f}"


def evaluation_state(evaluation: RunEvaluation) -> str:
    """Tooltip line of a computed column: where the numbers come from."""
    parts = [f"{evaluation.split} split of {evaluation.data}", "from the cache" if evaluation.cached else "computed"]
    if evaluation.overlap:
        parts.append(f"warning: {evaluation.overlap} of these images were used to train this model")
    return "; ".join(parts)


__all__ = ["ApComparison", "LossComparison", "VALUE_ROLE", "evaluation_state", "run_pen"]
