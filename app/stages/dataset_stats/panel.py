"""The Dataset Statistics panel: counts per class, box-size and aspect-ratio histograms with the anchors drawn
over them, the share of boxes no anchor fits, and the problem boxes (a click opens one).

Pure view: it draws a :class:`models.data.box_stats.BoxStats` and an :class:`AnchorChoice` handed to it by the
stage controller, and says which problem row the user activated; it computes nothing but bar heights' layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.stages.base import explanation_label
from models.data.box_stats import BoxStats, ProblemBox, log_histogram

EXPLANATION = ("Boxes per class; box sizes (√area in network-input pixels at the training size) and shapes "
               "(height / width) with the anchors in red: a box far from every line has no anchor at IoU ≥ 0.7, "
               "the RPN's positive threshold, and is learned poorly. Click a problem box to open it.")

KIND_TEXT = {"degenerate": "zero size", "duplicate": "duplicate", "out_of_image": "outside the image"}
BAR_COLOUR = "#4c78a8"
ANCHOR_COLOUR = "#d62728"


@dataclass
class AnchorChoice:
    """One anchor set the panel can draw: where it comes from, its parameters, and how many boxes it misses."""

    key: str  # "model", "data", "paper"
    label: str
    sizes: tuple[float, ...]
    ratios: tuple[float, ...]
    stride: int
    min_size: int
    max_size: int
    unmatched_share: float = float("nan")

    def describe(self, with_share: bool = True) -> str:
        miss = "" if math.isnan(self.unmatched_share) or not with_share else (
            f" — {self.unmatched_share:.1%} of the boxes have no anchor at IoU ≥ 0.7")
        return (f"anchors {', '.join(f'{v:g}' for v in self.sizes)} × ratios {', '.join(f'{v:g}' for v in self.ratios)}"
                f", stride {self.stride}, training size {self.min_size}/{self.max_size}{miss}")


class _Plot(pg.PlotWidget):
    """A plot that asks for little height: the bottom dock is short, and the scroll area sizes its panel from
    the preferred heights (pyqtgraph's default, 480 px, would push the plots' axes out of view)."""

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(420, 160)


def _plot(title: str, x_label: str) -> pg.PlotWidget:
    w = _Plot(background="w")
    item = w.getPlotItem()
    item.setTitle(title, color="k", size="9pt")
    item.setLabel("bottom", x_label, color="k")
    item.setLabel("left", "boxes", color="k")
    for axis in ("left", "bottom"):
        item.getAxis(axis).setPen(pg.mkPen("k"))
        item.getAxis(axis).setTextPen(pg.mkPen("k"))
        item.getAxis(axis).enableAutoSIPrefix(False)
    item.setLogMode(x=True, y=False)
    item.showGrid(x=True, y=True, alpha=0.2)
    item.setMenuEnabled(False)
    w.setMinimumSize(160, 120)
    return w


def _log_ticks(lo: float, hi: float, values: tuple[float, ...]) -> list[tuple[float, str]]:
    """Readable ticks on a log axis: the given values (anchors) when they are few, else powers of two."""
    marks = [v for v in values if lo <= v <= hi] if 0 < len(values) <= 8 else []
    if len(marks) < 2:
        marks = [2.0 ** k for k in range(math.floor(math.log2(lo)), math.ceil(math.log2(hi)) + 1)]
    return [(math.log10(v), f"{v:g}") for v in marks]


class DatasetStatsPanel(QWidget):
    """Counts table | two histograms | coverage and problem list."""

    #: The user asked for a fresh measurement.
    recomputeRequested = Signal()
    #: Another anchor set was chosen (its key).
    anchorsChosen = Signal(str)
    #: A problem box was activated: its row in :attr:`problems`.
    problemActivated = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.stats: BoxStats | None = None
        self.choice: AnchorChoice | None = None
        self.problems: list[ProblemBox] = []
        self._lines: list[pg.InfiniteLine] = []

        self.recompute_button = QPushButton("Recompute")
        self.recompute_button.setToolTip("Read every annotation again (after edits)")
        self.anchors_combo = QComboBox()
        self.anchors_combo.setToolTip("Which anchors to draw over the histograms and measure the boxes against")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(180)
        self.progress.setVisible(False)
        self.status = QLabel("No dataset open")
        self.status.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.recompute_button)
        top.addWidget(QLabel("anchors:"))
        top.addWidget(self.anchors_combo, 1)
        top.addWidget(self.status, 2)
        top.addWidget(self.progress)

        self.counts = QTableWidget(0, 4)
        self.counts.setHorizontalHeaderLabels(["class", "images", "boxes", "difficult"])
        self.counts.verticalHeader().setVisible(False)
        self.counts.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.counts.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.counts.setMinimumWidth(150)

        self.size_plot = _plot("Box size at the training size", "√area (input pixels)")
        self.ratio_plot = _plot("Box shape", "height / width")
        self.size_bars = pg.PlotDataItem(stepMode="center", fillLevel=0, brush=pg.mkBrush(BAR_COLOUR),
                                         pen=pg.mkPen(BAR_COLOUR))
        self.ratio_bars = pg.PlotDataItem(stepMode="center", fillLevel=0, brush=pg.mkBrush(BAR_COLOUR),
                                          pen=pg.mkPen(BAR_COLOUR))
        self.size_plot.addItem(self.size_bars)
        self.ratio_plot.addItem(self.ratio_bars)
        plots = QSplitter(Qt.Orientation.Horizontal)
        plots.addWidget(self.size_plot)
        plots.addWidget(self.ratio_plot)

        self.coverage = QLabel("")
        self.coverage.setWordWrap(True)
        self.problem_table = QTableWidget(0, 5)
        self.problem_table.setHorizontalHeaderLabels(["problem", "image", "box", "class", "detail"])
        self.problem_table.verticalHeader().setVisible(False)
        self.problem_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.problem_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.problem_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.problem_table.horizontalHeader().setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        self.problem_table.setToolTip("Click a row to open its image with the box selected")
        right = QWidget()
        right.setMinimumWidth(200)
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.coverage)
        self.problems_label = QLabel("Problem boxes")
        rl.addWidget(self.problems_label)
        rl.addWidget(self.problem_table, 1)

        body = QSplitter(Qt.Orientation.Horizontal)
        body.addWidget(self.counts)
        body.addWidget(plots)
        body.addWidget(right)
        body.setStretchFactor(0, 1)
        body.setStretchFactor(1, 4)
        body.setStretchFactor(2, 2)
        body.setSizes([240, 900, 420])
        # Take whatever height the dock has (a bottom dock is short) rather than asking for the tables' and
        # plots' preferred heights, which would hide the plots' x axes below the scroll area's edge.
        body.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Ignored)
        body.setMinimumHeight(170)

        layout = QVBoxLayout(self)
        layout.addWidget(explanation_label(EXPLANATION))
        layout.addLayout(top)
        layout.addWidget(body, 1)

        self.recompute_button.clicked.connect(self.recomputeRequested)
        self.anchors_combo.activated.connect(lambda i: self.anchorsChosen.emit(self.anchors_combo.itemData(i)))
        self.problem_table.cellClicked.connect(lambda row, _c: self.problemActivated.emit(row))
        self.problem_table.cellActivated.connect(lambda row, _c: self.problemActivated.emit(row))

    # --- progress -------------------------------------------------------------------------------------------
    def set_busy(self, busy: bool, message: str = "") -> None:
        self.progress.setVisible(busy)
        self.recompute_button.setEnabled(not busy)
        if message:
            self.status.setText(message)

    def set_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(1000 * max(0.0, min(1.0, fraction))))
        if message:
            self.status.setText(f"Reading annotations: {message}")

    # --- anchors ---------------------------------------------------------------------------------------------
    def set_choices(self, choices: list[AnchorChoice], current: str) -> None:
        self.anchors_combo.blockSignals(True)
        self.anchors_combo.clear()
        for c in choices:
            self.anchors_combo.addItem(c.label, c.key)
        i = self.anchors_combo.findData(current)
        self.anchors_combo.setCurrentIndex(max(0, i))
        self.anchors_combo.blockSignals(False)

    # --- drawing ---------------------------------------------------------------------------------------------
    def show_stats(self, stats: BoxStats | None, choice: AnchorChoice | None, scales: np.ndarray | None) -> None:
        """Draw ``stats`` with ``choice``'s anchors; ``scales``: per box, original → training pixels."""
        self.stats, self.choice = stats, choice
        self._fill_counts(stats)
        self._fill_problems(stats)
        for line in self._lines:
            line.getViewBox().removeItem(line) if line.getViewBox() is not None else None
        self._lines = []
        if stats is None or not len(stats.boxes):
            self.size_bars.setData([], [])
            self.ratio_bars.setData([], [])
            self.coverage.setText("" if stats is None else "No well-formed boxes to measure.")
            return
        sq = stats.sqrt_areas * (scales if scales is not None else 1.0)
        self._histogram(self.size_plot, self.size_bars, sq, choice.sizes if choice else ())
        self._histogram(self.ratio_plot, self.ratio_bars, stats.ratios, choice.ratios if choice else ())
        if choice is not None:
            self.size_plot.getPlotItem().setTitle(
                f"Box size at shorter side {choice.min_size} (longer ≤ {choice.max_size}); red: anchor sizes",
                color="k", size="9pt")
            self.ratio_plot.getPlotItem().setTitle("Box shape; red: anchor ratios", color="k", size="9pt")
            self.coverage.setText(f"<b>{choice.unmatched_share:.1%}</b> of the {len(stats.boxes)} boxes have no "
                                  f"anchor at IoU ≥ 0.7 — {choice.label}: {choice.describe(False)}."
                                  if not math.isnan(choice.unmatched_share) else choice.describe())

    def _histogram(self, plot: pg.PlotWidget, bars: pg.PlotDataItem, values: np.ndarray,
                   anchors: tuple[float, ...]) -> None:
        edges, counts = log_histogram(values, per_octave=4)
        bars.setData(edges, counts.astype(float))  # log x mode: pyqtgraph takes log10 of the edges itself
        lo = min([float(edges[0])] + [a for a in anchors if a > 0])
        hi = max([float(edges[-1])] + [a for a in anchors if a > 0])
        for a in anchors:
            if a > 0:
                line = pg.InfiniteLine(pos=math.log10(a), angle=90, pen=pg.mkPen(ANCHOR_COLOUR, width=2))
                plot.addItem(line)
                self._lines.append(line)
        plot.getPlotItem().getAxis("bottom").setTicks([_log_ticks(lo, hi, anchors)])
        plot.getPlotItem().setXRange(math.log10(lo) - 0.05, math.log10(hi) + 0.05, padding=0)
        plot.getPlotItem().setYRange(0, max(1.0, float(counts.max())) * 1.05, padding=0)

    def _fill_counts(self, stats: BoxStats | None) -> None:
        rows = [] if stats is None else [(n, stats.images_per_class.get(n, 0), stats.boxes_per_class.get(n, 0),
                                          stats.difficult_per_class.get(n, 0)) for n in stats.class_names]
        if stats is not None:
            rows.append(("all classes", stats.n_annotated, stats.n_boxes, sum(stats.difficult_per_class.values())))
        self.counts.setRowCount(len(rows))
        for r, values in enumerate(rows):
            for c, v in enumerate(values):
                item = QTableWidgetItem(str(v))
                if c:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if r == len(rows) - 1:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.counts.setItem(r, c, item)
        self.counts.resizeColumnsToContents()

    def _fill_problems(self, stats: BoxStats | None) -> None:
        self.problems = [] if stats is None else list(stats.problems)
        self.problem_table.setRowCount(len(self.problems))
        for r, p in enumerate(self.problems):
            values = (KIND_TEXT.get(p.kind, p.kind), p.image_name, "—" if p.box_index < 0 else str(p.box_index + 1),
                      p.class_name, p.detail)
            for c, v in enumerate(values):
                item = QTableWidgetItem(v)
                item.setToolTip(f"{p.image_name}: {p.detail}")
                self.problem_table.setItem(r, c, item)
        self.problem_table.resizeColumnsToContents()
        n = len(self.problems)
        self.problems_label.setText("No problem boxes" if not n else
                                    f"{n} problem box{'es' if n > 1 else ''} (click one to open it)")
