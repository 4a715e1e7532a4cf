"""Proposal-quality curves: recall vs IoU threshold and recall vs number of proposals, several runs overlaid.

Why curves and not two numbers: recall@0.5 hides how tight the boxes are, and a figure at one box count hides
what more boxes would buy. Drawn with pyqtgraph (the app's one plotting library): each run added becomes one
curve in each plot with a legend entry, so a user who changes a setting and runs again sees what it bought.
The points come from ``models.proposals.metrics.curve_points`` (plain lists), so the benchmark draws the same
plots from its JSON without a dialog.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QGridLayout, QLabel, QWidget

#: y choices of the proposals plot: (label, key in the curve points).
BUDGET_METRICS: tuple[tuple[str, str], ...] = (("average recall (AR, IoU .50:.05:.95)", "ar"),
                                               ("recall@0.5", "recall@0.5"), ("recall@0.7", "recall@0.7"),
                                               ("MABO", "mabo"))
#: Run colours, well apart from one another, readable on white.
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22")
#: Line styles per run beside the colour, so two runs still differ in a grey print.
STYLES = (Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine, Qt.PenStyle.DotLine, Qt.PenStyle.DashDotLine)


@dataclass
class CurveRun:
    """One run's points and the two plot items drawn for it."""

    name: str
    points: dict[str, list[float]]
    items: list[pg.PlotDataItem] = field(default_factory=list)


def _finite(xs: list[float], ys: list[float], positive_x: bool = False) -> tuple[list[float], list[float]]:
    """The points that can be drawn: finite (NaN means no ground truth), x > 0 on a log axis."""
    keep = [i for i, (x, y) in enumerate(zip(xs, ys, strict=True))
            if math.isfinite(x) and math.isfinite(y) and (x > 0 or not positive_x)]
    return [xs[i] for i in keep], [ys[i] for i in keep]


#: Tick labels of the log-scaled box axis (pyqtgraph's own crowd into each other between decades).
BOX_TICKS = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


def _plot(title: str, x_label: str, y_label: str, legend_offset: tuple[int, int]) -> pg.PlotWidget:
    """A white plot with black axes; the legend sits in the corner the curves leave free."""
    w = pg.PlotWidget(background="w")
    item = w.getPlotItem()
    item.setTitle(title, color="k")
    item.setLabel("bottom", x_label, color="k")
    item.setLabel("left", y_label, color="k")
    for axis in ("left", "bottom"):
        item.getAxis(axis).setPen(pg.mkPen("k"))
        item.getAxis(axis).setTextPen(pg.mkPen("k"))
        item.getAxis(axis).enableAutoSIPrefix(False)  # no "(x0.001)" on an IoU axis
    item.showGrid(x=True, y=True, alpha=0.25)
    item.addLegend(offset=legend_offset, labelTextColor="k", brush=pg.mkBrush(255, 255, 255, 210),
                   pen=pg.mkPen("#999999"))
    item.setMenuEnabled(False)
    return w


class ProposalCurves(QWidget):
    """Recall vs IoU (all boxes) beside a chosen metric vs boxes per image (log axis), one curve per run."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runs: list[CurveRun] = []
        # recall falls with the threshold (bottom left is free); it grows with the boxes (bottom right is)
        self.iou_plot = _plot("Recall vs IoU threshold (all boxes)", "IoU threshold", "recall", (10, -10))
        self.iou_plot.setXRange(0.5, 0.95, padding=0.02)
        self.iou_plot.setYRange(0.0, 1.0, padding=0.02)
        self.budget_plot = _plot("Recall vs number of proposals", "best-ranked boxes per image", "", (-10, -10))
        self.budget_plot.getPlotItem().setLogMode(x=True, y=False)
        self.budget_plot.getPlotItem().getAxis("bottom").setTicks(
            [[(math.log10(v), f"{v:,}") for v in BOX_TICKS], []])
        self.budget_plot.setYRange(0.0, 1.0, padding=0.02)
        self.metric_combo = QComboBox()
        for label, key in BUDGET_METRICS:
            self.metric_combo.addItem(label, key)
        self.metric_combo.setToolTip("What the right-hand plot shows at each box budget")
        self.metric_combo.currentIndexChanged.connect(self._redraw_budget)
        lay = QGridLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(QLabel("Right plot:"), 0, 0, Qt.AlignmentFlag.AlignRight)
        lay.addWidget(self.metric_combo, 0, 1)
        lay.addWidget(self.iou_plot, 1, 0)
        lay.addWidget(self.budget_plot, 1, 1)
        lay.setColumnStretch(0, 1)
        lay.setColumnStretch(1, 1)
        self._redraw_budget()

    def current_metric(self) -> str:
        return str(self.metric_combo.currentData())

    def add_run(self, name: str, points: dict[str, list[float]]) -> CurveRun:
        """Draw one run (``curve_points`` of its summary) in both plots; returns its record."""
        run = CurveRun(name, points)
        self.runs.append(run)
        self._draw(len(self.runs) - 1)
        return run

    def clear(self) -> None:
        """Remove every run's curves and legend entries."""
        self.iou_plot.getPlotItem().clear()
        self.budget_plot.getPlotItem().clear()
        self.runs.clear()

    def _pen(self, i: int) -> tuple[pg.QtGui.QPen, str]:
        color = PALETTE[i % len(PALETTE)]
        return pg.mkPen(color, width=2, style=STYLES[(i // len(PALETTE)) % len(STYLES)]), color

    def _draw(self, i: int) -> None:
        run = self.runs[i]
        pen, color = self._pen(i)
        p = run.points
        x, y = _finite(p["iou"], p["recall"])
        iou_item = self.iou_plot.plot(x, y, pen=pen, symbol="o", symbolSize=6, symbolBrush=color,
                                      symbolPen=color, name=run.name)
        run.items = [iou_item, self._budget_curve(i)]

    def _budget_curve(self, i: int) -> pg.PlotDataItem:
        run = self.runs[i]
        pen, color = self._pen(i)
        x, y = _finite(run.points["boxes"], run.points[self.current_metric()], positive_x=True)
        return self.budget_plot.plot(x, y, pen=pen, symbol="o", symbolSize=6, symbolBrush=color, symbolPen=color,
                                     name=run.name)

    def _redraw_budget(self, *_: object) -> None:
        label = self.metric_combo.currentText()
        self.budget_plot.getPlotItem().setLabel("left", label.split(" (")[0], color="k")
        self.budget_plot.getPlotItem().setTitle(f"{label.split(' (')[0]} vs number of proposals", color="k")
        if not self.runs:
            return
        self.budget_plot.getPlotItem().clear()
        for i, run in enumerate(self.runs):
            run.items[1] = self._budget_curve(i)

    def export_png(self, iou_path: Path | str, budget_path: Path | str, width: int = 900) -> None:
        """Write both plots as PNG files (pyqtgraph's exporter; no matplotlib)."""
        from pyqtgraph.exporters import ImageExporter

        for plot, path in ((self.iou_plot, iou_path), (self.budget_plot, budget_path)):
            exporter = ImageExporter(plot.getPlotItem())
            exporter.parameters()["width"] = int(width)
            exporter.export(str(path))


__all__ = ["BUDGET_METRICS", "CurveRun", "ProposalCurves"]
