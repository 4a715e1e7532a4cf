"""Precision–recall curves per class, drawn with pyqtgraph, exported as PNG or SVG.

One curve per class in the class's canvas colour, the legend giving its AP; the chosen class is drawn thick
and the others thin, so one class can be read while the rest stay for comparison. A dot marks each curve's
operating point: the last detection scoring at least the view's score threshold (where the confusion matrix
and the worst-images counts are taken). Clicking a curve chooses its class.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from app.layers.base import class_color


def _plot() -> pg.PlotWidget:
    w = pg.PlotWidget(background="w")
    item = w.getPlotItem()
    item.setTitle("Precision–recall per class", color="k")
    item.setLabel("bottom", "recall", color="k")
    item.setLabel("left", "precision", color="k")
    for axis in ("left", "bottom"):
        item.getAxis(axis).setPen(pg.mkPen("k"))
        item.getAxis(axis).setTextPen(pg.mkPen("k"))
        item.getAxis(axis).enableAutoSIPrefix(False)
    item.showGrid(x=True, y=True, alpha=0.25)
    item.setXRange(0.0, 1.0, padding=0.02)
    item.setYRange(0.0, 1.0, padding=0.02)
    item.addLegend(offset=(10, -10), labelTextColor="k", brush=pg.mkBrush(255, 255, 255, 210),
                   pen=pg.mkPen("#999999"))
    item.setMenuEnabled(False)
    return w


class PrCurves(QWidget):
    """The PR curves of one evaluation (see the module docstring)."""

    #: A curve was clicked (its class name).
    classClicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = _plot()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot)
        #: class → its curve (only classes with ground truth have one).
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.points: dict[str, pg.ScatterPlotItem] = {}
        self._chosen = ""

    def clear(self) -> None:
        self.plot.getPlotItem().clear()
        legend = self.plot.getPlotItem().legend
        if legend is not None:
            legend.clear()
        self.curves.clear()
        self.points.clear()

    def show_result(self, result, score_threshold: float, chosen: str = "") -> None:  # noqa: ANN001
        """Draw ``result.curves`` (a :class:`models.detection.evaluation.EvaluationResult`)."""
        self.clear()
        self._chosen = chosen
        for cls, (rec, prec) in result.curves.items():
            ap = result.AP.get(cls, float("nan"))
            label = f"{cls} (AP {ap:.3f})" if not math.isnan(ap) else cls
            # Start at (0, first precision) so a curve with one point is still a line.
            x = np.concatenate(([0.0], rec)) if len(rec) else np.zeros(0)
            y = np.concatenate(([prec[0]], prec)) if len(prec) else np.zeros(0)
            curve = self.plot.plot(x, y, pen=self._pen(cls), name=label)
            curve.setCurveClickable(True, width=8)
            curve.sigClicked.connect(lambda _item, _ev=None, c=cls: self.classClicked.emit(c))
            self.curves[cls] = curve
            scores = result.curve_scores.get(cls)
            if scores is not None and len(scores):
                above = np.flatnonzero(np.asarray(scores) >= score_threshold)
                if above.size:
                    k = int(above[-1])
                    color = class_color(cls)
                    dot = pg.ScatterPlotItem([float(rec[k])], [float(prec[k])], size=9, brush=pg.mkBrush(color),
                                             pen=pg.mkPen("k"))
                    dot.setToolTip(f"{cls}: score ≥ {score_threshold:g} → recall {rec[k]:.3f}, "
                                   f"precision {prec[k]:.3f}")
                    self.plot.addItem(dot)
                    self.points[cls] = dot

    def _pen(self, cls: str) -> pg.QtGui.QPen:
        color = class_color(cls)
        if self._chosen and cls != self._chosen:
            color.setAlpha(110)
            return pg.mkPen(color, width=1.5)
        return pg.mkPen(color, width=3.5 if cls == self._chosen else 2)

    def choose(self, cls: str) -> None:
        """Draw ``cls`` thick and the others faint (an unknown name: all normal)."""
        self._chosen = cls if cls in self.curves else ""
        for c, curve in self.curves.items():
            curve.setPen(self._pen(c))
            if c == self._chosen:
                curve.setZValue(10)
            else:
                curve.setZValue(0)

    def export(self, path: str | Path, width: int = 900) -> None:
        """Write the plot as PNG (any suffix but .svg; pyqtgraph's ImageExporter) or SVG.

        SVG is drawn by Qt's QSvgGenerator from the widget: pyqtgraph 0.14's SVGExporter fails on every plot
        with this Qt (it cannot parse the path data Qt 6 writes), so it is not used.
        """
        path = Path(path)
        if path.suffix.lower() == ".svg":
            self._export_svg(path)
            return
        from pyqtgraph.exporters import ImageExporter

        exporter = ImageExporter(self.plot.getPlotItem())
        exporter.parameters()["width"] = int(width)
        exporter.export(str(path))

    def _export_svg(self, path: Path) -> None:
        from PySide6.QtCore import QRect, QSize
        from PySide6.QtGui import QPainter
        from PySide6.QtSvg import QSvgGenerator

        size = self.plot.size()
        if size.width() < 200 or size.height() < 150:  # a hidden or squeezed dock: draw at a readable size
            self.plot.resize(QSize(max(size.width(), 640), max(size.height(), 480)))
            size = self.plot.size()
        gen = QSvgGenerator()
        gen.setFileName(str(path))
        gen.setSize(size)
        gen.setViewBox(QRect(0, 0, size.width(), size.height()))
        gen.setTitle("Precision–recall per class")
        painter = QPainter(gen)
        try:
            self.plot.render(painter)
        finally:
            painter.end()
        if not path.is_file():
            raise OSError(f"{path}: the SVG could not be written")


__all__ = ["PrCurves"]
