"""Live plots of a training run: every loss, validation mAP per epoch, learning rate, images per second.

Drawn with pyqtgraph (the app's one plotting library; made for plots that grow while you watch). Events are
appended to plain lists as they arrive and the curves are redrawn at most :data:`REDRAW_MS` apart, so a burst
of a hundred step events costs one ``setData`` per curve, not a hundred. R-CNN's stages after fine-tuning
(the feature pass over the training set, then the SVM rounds per class) get their own progress plot, which
appears only when a run has them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtWidgets import QGraphicsItem, QGridLayout, QHBoxLayout, QLabel, QWidget

from app.proposal_curves import PALETTE

REDRAW_MS = 250
# When a redraw must create curves or move a plot's axes (a new layout and a full repaint of that plot), the
# other plots wait this long, so each such repaint happens in its own turn of the event loop.
STAGGER_MS = 15
#: Headroom kept above the highest point, so the y axis is not rescaled at every new maximum.
Y_HEADROOM = 1.05
#: Room on the x axis past the last step (the axis then ends at the next round number, or the run's end).
X_HEADROOM = 1.1
#: Fixed colours for the losses every generation reports, so a curve keeps its colour across runs.
LOSS_COLOURS = {"total": "#000000", "rpn_objectness": PALETTE[0], "rpn_box": PALETTE[1], "cls": PALETTE[2],
                "box": PALETTE[3]}


@dataclass
class Series:
    """Points of one curve and the item drawing them."""

    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)
    item: Any = None
    drawn: int = -1  # len(xs) when last drawn
    top: float = -math.inf  # highest and lowest y so far (the axis range, without a pass over the points)
    bottom: float = math.inf

    def add(self, x: float, y: float) -> None:
        if math.isfinite(y):
            self.xs.append(float(x))
            self.ys.append(float(y))
            self.top = max(self.top, float(y))
            self.bottom = min(self.bottom, float(y))


#: Title size: the bottom dock is about 220 px tall in a 950-px window, and each line of text is a line less
#: of curve.
TITLE_SIZE = "9pt"


def _plot(title: str, legend: bool = True) -> pg.PlotWidget:
    """A compact white plot (the bottom dock is short): title, no axis titles, a small legend top right
    (``legend=False``: none; the loss plot names its curves in its title instead, see ``_loss_title``)."""
    w = pg.PlotWidget(background="w")
    item = w.getPlotItem()
    item.setTitle(title, color="k", size=TITLE_SIZE)
    for axis in ("left", "bottom"):
        item.getAxis(axis).setPen(pg.mkPen("k"))
        item.getAxis(axis).setTextPen(pg.mkPen("k"))
        # Each redraw of the curves repaints the view, axes included; from a pixmap that is a copy, not a
        # replay of every tick text (about a quarter of a redraw's GUI-thread time).
        item.getAxis(axis).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
    item.getAxis("bottom").enableAutoSIPrefix(False)
    item.showGrid(x=True, y=True, alpha=0.25)
    if legend:
        legend = item.addLegend(offset=(-5, 5), labelTextColor="k", labelTextSize="8pt", verticalSpacing=-6,
                                brush=pg.mkBrush(255, 255, 255, 200), pen=pg.mkPen("#999999"))
        legend.setColumnCount(3)  # two short rows instead of a tall column over the curves
    item.setMenuEnabled(False)
    return w


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k at or above ``value`` (> 0): an axis end that changes rarely."""
    if not math.isfinite(value) or value <= 0:
        return 1.0
    base = 10.0 ** math.floor(math.log10(value))
    for f in (1.0, 2.0, 2.5, 5.0, 10.0):
        if f * base >= value * (1 - 1e-9):
            return f * base
    return 10.0 * base


def format_seconds(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "–"
    s = int(round(s))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class TrainingPlots(QWidget):
    """Four live plots (five for R-CNN); :meth:`add_event` takes TrainEvents, :meth:`clear` starts over."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # No legend box on the loss plot: at the bottom dock's height a legend of five curves covered the top
        # third of the curves (and its first name was cut); a line under the plots names them in their colours.
        self.loss_plot = _plot("Losses, per step", legend=False)
        self.map_plot = _plot("Val. mAP@0.5", legend=False)
        self.map_plot.setYRange(0.0, 1.0, padding=0.02)
        self.lr_plot = _plot("Learning rate", legend=False)
        self.speed_plot = _plot("Images / second", legend=False)
        self.stage_plot = _plot("R-CNN after fine-tuning (fraction done vs s)")
        self.stage_plot.setYRange(0.0, 1.0, padding=0.02)
        self.stage_plot.hide()
        for w in (self.loss_plot, self.map_plot, self.lr_plot, self.speed_plot, self.stage_plot):
            w.setMinimumSize(140, 120)  # fits the bottom dock of a 950-px window with its axes shown
            w.getPlotItem().setClipToView(True)
            w.getPlotItem().setDownsampling(auto=True, mode="peak")
        # Why the step plots do not auto-range: every new point would move both axes, and a moved axis is
        # laid out and painted again (tick texts) — most of the GUI thread's time while training. Their axes
        # end at round numbers (1, 2, 2.5, 5 × 10^k) above the last step (at most the run's total) and above
        # the highest point, so they change a dozen times per run and a redraw paints only the curves.
        self._ranged = (self.loss_plot, self.lr_plot, self.speed_plot)
        for w in self._ranged:
            w.getPlotItem().disableAutoRange()
        self._ranges: dict[int, tuple[float, float, float, float]] = {}
        self.total_steps = 0
        self._eta_text = ""
        self.eta_label = QLabel("")
        self.loss_legend = QLabel("")
        self.loss_legend.setObjectName("loss_legend")
        self.loss_legend.setTextFormat(Qt.TextFormat.RichText)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        # One row: the bottom dock area is wide and short. The loss plot gets the most room.
        grid.addWidget(self.loss_plot, 0, 0)
        grid.addWidget(self.map_plot, 0, 1)
        grid.addWidget(self.lr_plot, 0, 2)
        grid.addWidget(self.speed_plot, 0, 3)
        grid.addWidget(self.stage_plot, 0, 4)
        self._grid = grid
        grid.setColumnStretch(0, 2)
        for c in range(1, 4):
            grid.setColumnStretch(c, 1)
        self.loss_plot.setMinimumWidth(240)  # the curves that matter most; the others share what is left
        below = QHBoxLayout()
        below.setContentsMargins(0, 0, 0, 0)
        below.addWidget(self.loss_legend)
        below.addStretch(1)
        below.addWidget(self.eta_label)
        grid.addLayout(below, 1, 0, 1, 5)
        self.losses: dict[str, Series] = {}
        self.val: dict[str, Series] = {}
        self.lr = Series()
        self.speed = Series()
        self.stages: dict[str, Series] = {}
        self._stage_t0: float | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self._redraw_in_turns)
        self.steps_seen = 0

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        """Short by default: pyqtgraph asks 600×480 per plot, which would make the bottom dock scroll. A dock's
        scroll area sizes a panel with wrapped text by its *preferred* height, so this is what decides whether
        the bottom dock of a 950-px window (about 210 px inside) shows the plots whole; they grow with it."""
        return QSize(900, 175)

    # --- data ---------------------------------------------------------------------------------------------
    def clear(self) -> None:
        for plot in (self.loss_plot, self.map_plot, self.lr_plot, self.speed_plot, self.stage_plot):
            plot.getPlotItem().clear()
        self.losses.clear()
        self.loss_legend.setText("")
        self.val.clear()
        self.lr = Series()
        self.speed = Series()
        self.stages.clear()
        self._stage_t0 = None
        self.stage_plot.hide()
        self._grid.setColumnStretch(4, 0)
        self.eta_label.setText("")
        self._eta_text = ""
        self.steps_seen = 0
        self.total_steps = 0
        self._ranges.clear()

    def add_event(self, ev: Any) -> None:
        """Take one TrainEvent; the plots follow within :data:`REDRAW_MS`."""
        if ev.kind == "start":
            self.map_plot.setXRange(0.5, max(1, ev.epochs) + 0.5, padding=0)
            return
        if ev.kind == "step":
            self.steps_seen += 1
            for name, value in ev.losses.items():
                self.losses.setdefault(name, Series()).add(ev.global_step, value)
            self.lr.add(ev.global_step, ev.lr)
            rate = ev.metrics.get("images_per_s")
            if rate is not None:
                self.speed.add(ev.global_step, rate)
            self.total_steps = max(self.total_steps, int(ev.total_steps or 0))
            # shown with the curves (at most every REDRAW_MS), not at every step
            self._eta_text = (f"epoch {ev.epoch}/{ev.epochs} · step {ev.global_step}/{ev.total_steps} · "
                              + (f"{rate:.2f} images/s · " if rate is not None else "")
                              + f"ETA {format_seconds(ev.eta_s)}")
        elif ev.kind == "validation":
            for name, value in ev.metrics.items():
                if name == "mAP" or name.startswith("AP "):
                    self.val.setdefault(name, Series()).add(ev.epoch, value)
        elif ev.kind == "proposals" and ev.message in ("codes", "svm"):
            # R-CNN's stages after fine-tuning report (stage, done, count): the feature pass, then the SVMs.
            import time

            now = time.monotonic()
            if self._stage_t0 is None:
                self._stage_t0 = now
                self.stage_plot.show()
                self._grid.setColumnStretch(4, 1)
            label = "feature pass (images)" if ev.message == "codes" else "SVMs (classes)"
            self.stages.setdefault(label, Series()).add(now - self._stage_t0, ev.step / max(1, ev.total_steps))
        elif ev.kind == "classifiers":
            negatives = {k[len("negatives_"):]: v for k, v in ev.metrics.items() if k.startswith("negatives_")}
            if negatives:
                text = ", ".join(f"{c} {int(v)}" for c, v in negatives.items())
                self.stage_plot.getPlotItem().setTitle(f"R-CNN SVMs: hard-negative cache per class: {text}",
                                                       color="k")
        else:
            return
        if not self._timer.isActive():
            self._timer.start()

    # --- drawing ------------------------------------------------------------------------------------------
    def flush(self) -> None:
        """Redraw everything that has new points now (tests call it to skip the wait)."""
        self._timer.stop()
        self._timer.setInterval(REDRAW_MS)
        while self._redraw_step():
            pass

    def _redraw_in_turns(self) -> None:
        """The timer's redraw. Why in turns: the first redraw of a run creates every curve and sets every
        plot's axes, and all plots repainted in one go held the GUI thread ~70 ms (bench/gui_training.py);
        one plot's structural change per turn keeps each repaint short."""
        if self._redraw_step():
            self._timer.start(STAGGER_MS)
        else:
            self._timer.setInterval(REDRAW_MS)

    def _redraw_step(self) -> bool:
        """Redraw the plots in order, stopping after the first one whose curves were created or whose axes
        moved; True when it stopped early (call again for the rest)."""
        if self._eta_text and self.eta_label.text() != self._eta_text:
            self.eta_label.setText(self._eta_text)
        steps = (
            lambda: self._fit(self.loss_plot, list(self.losses.values())) | self._draw_losses(),
            lambda: self._fit(self.lr_plot, [self.lr]) | self._draw_all(
                self.lr_plot, [(self.lr, "lr", PALETTE[0], 1, None)]),
            lambda: self._fit(self.speed_plot, [self.speed]) | self._draw_all(
                self.speed_plot, [(self.speed, "images/s", PALETTE[2], 1, None)]),
            lambda: self._draw_all(self.map_plot, [(s, name, self.val_colour(name), 2 if name == "mAP" else 1, "o")
                                                   for name, s in self.val.items()]),
            lambda: self._draw_all(self.stage_plot, [(s, name, PALETTE[i % len(PALETTE)], 1, None)
                                                     for i, (name, s) in enumerate(self.stages.items())]),
        )
        for k, step in enumerate(steps):
            if step() and k < len(steps) - 1:
                return True
        return False

    def loss_colour(self, name: str) -> str:
        """The fixed colour of a loss every generation reports, else the next free one of the palette."""
        if name in LOSS_COLOURS:
            return LOSS_COLOURS[name]
        i = list(self.losses).index(name) if name in self.losses else len(self.losses)
        return PALETTE[(i + 4) % len(PALETTE)]

    def _draw_losses(self) -> bool:
        created = self._draw_all(self.loss_plot, [(s, name, self.loss_colour(name), 2 if name == "total" else 1,
                                                   None) for name, s in self.losses.items()])
        if created:
            self.loss_legend.setText(self.legend_text())
        return created

    def legend_text(self) -> str:
        """The loss plot's legend as rich text: each curve's name in its colour, the total first and bold."""
        names = sorted(self.losses, key=lambda n: n != "total")
        return "losses: " + " ".join(
            f"<span style='color:{self.loss_colour(n)}'>━ {'<b>' + n + '</b>' if n == 'total' else n}</span>"
            for n in names) if names else ""

    def _draw_all(self, plot: pg.PlotWidget, curves: list[tuple[Series, str, str, int, str | None]]) -> bool:
        """Draw each (series, name, colour, width, symbol) on ``plot``; True when a curve was created."""
        created = False
        for s, name, colour, width, symbol in curves:
            created |= self._draw(plot, s, name, colour, width=width, symbol=symbol)
        return created

    def _fit(self, plot: pg.PlotWidget, series: list[Series]) -> bool:
        """Set ``plot``'s range to hold ``series`` (from 0 to round numbers past the last step and the top
        point), touching the axes only when that range changed; True when it did."""
        series = [s for s in series if s.xs]
        if not series:
            return False
        last_x = max(s.xs[-1] for s in series)
        x_end = nice_ceiling(last_x * X_HEADROOM)
        if self.total_steps >= last_x:
            x_end = min(x_end, float(self.total_steps))
        low = min(0.0, min(s.bottom for s in series))
        y_end = nice_ceiling(max(s.top for s in series) * Y_HEADROOM)
        wanted = (0.0, x_end, low, y_end)
        key = id(plot)
        if self._ranges.get(key) == wanted:
            return False
        self._ranges[key] = wanted
        plot.getPlotItem().getViewBox().setRange(xRange=(0.0, x_end), yRange=(low, y_end), padding=0.02)
        return True

    def val_colour(self, name: str) -> str:
        """mAP black; each class's AP its own colour (in the order the classes first appeared)."""
        if name == "mAP":
            return "#000000"
        names = [n for n in self.val if n != "mAP"]
        i = names.index(name) if name in names else len(names)
        return PALETTE[i % len(PALETTE)]

    def validation_text(self, metrics: dict[str, float]) -> str:
        """The validation figures as rich text, each class in its curve's colour (the plot has no room for a
        legend)."""
        parts = [f"<b>mAP@0.5 {metrics.get('mAP', float('nan')):.3f}</b>"]
        for name, value in metrics.items():
            if name.startswith("AP ") and math.isfinite(value):
                parts.append(f"<span style='color:{self.val_colour(name)}'>{name[3:]} {value:.3f}</span>")
        return " · ".join(parts)

    @staticmethod
    def _draw(plot: pg.PlotWidget, s: Series, name: str, colour: str, width: int = 1,
              symbol: str | None = None) -> bool:
        """Give ``s``'s new points to its curve; True when the curve had to be created first."""
        if s.drawn == len(s.xs):
            return False
        created = s.item is None
        if created:
            s.item = plot.getPlotItem().plot([], [], pen=pg.mkPen(colour, width=width), name=name,
                                             symbol=symbol, symbolSize=6, symbolBrush=colour, symbolPen=colour)
        s.item.setData(s.xs, s.ys)
        s.drawn = len(s.xs)
        return created

    def point_count(self, loss: str = "total") -> int:
        """Points drawn on the loss plot for ``loss`` (what a test checks against the steps logged)."""
        s = self.losses.get(loss)
        if s is None or s.item is None:
            return 0
        xs = s.item.xData  # the data given, not the downsampled view
        return 0 if xs is None else len(xs)
