"""The CNN-codes panel: which network, the dataset's index, the selected box's code strip and its neighbours,
and a tab for the linear classifier trained on the codes (its held-out score beside raw pixels')."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.layers.image_layer import rgb_to_qimage
from app.stages.base import explanation_label

#: (key, label) of the networks offered; the key is what the controller builds an extractor for.
EXTRACTORS = (
    ("imagenet", "EfficientNet-Lite0, ImageNet weights"),
    ("random", "EfficientNet-Lite0, random weights (control)"),
)
THUMB = 72


class FeaturesPanel(QWidget):
    """Widgets only; the stage controller fills them."""

    indexRequested = Signal()
    cancelRequested = Signal()
    neighbourActivated = Signal(int)  # position in the neighbour list
    classifierRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        left = QVBoxLayout()
        layout.addLayout(left, 1)
        left.addWidget(explanation_label(
            "A CNN code is the vector of a network's last hidden layer for one box crop (warped to 224 px, as "
            "R-CNN does). Select a labelled box: its code is drawn as a strip (one column per dimension, with "
            "its nearest neighbours' codes below) and the dataset's boxes with the nearest codes (Euclidean "
            "distance) are listed. With ImageNet weights the neighbours are mostly of the same kind; with "
            "random weights, same network, they share colour and brightness rather than kind."))
        row = QHBoxLayout()
        row.addWidget(QLabel("Network"))
        self.extractor_combo = QComboBox()
        for key, label in EXTRACTORS:
            self.extractor_combo.addItem(label, key)
        row.addWidget(self.extractor_combo, 1)
        row.addWidget(QLabel("Neighbours"))
        self.k_spin = QSpinBox()
        self.k_spin.setRange(1, 32)
        self.k_spin.setValue(8)
        row.addWidget(self.k_spin)
        left.addLayout(row)
        row = QHBoxLayout()
        self.index_button = QPushButton("Index the dataset's boxes")
        self.index_button.clicked.connect(self.indexRequested)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancelRequested)
        row.addWidget(self.index_button)
        row.addWidget(self.cancel_button)
        left.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setVisible(False)
        left.addWidget(self.progress)
        self.status = QLabel("Open a dataset with labelled boxes, then index it.")
        self.status.setWordWrap(True)
        left.addWidget(self.status)
        self.strip = pg.PlotWidget(background="w")
        self.strip.setMinimumHeight(110)
        self.strip.setMouseEnabled(x=True, y=False)
        self.strip.getPlotItem().hideAxis("left")
        self.strip.getPlotItem().setLabel("bottom", "code dimension")
        self.strip_image = pg.ImageItem()
        self.strip_image.setColorMap(pg.colormap.get("viridis"))
        self.strip.addItem(self.strip_image)
        left.addWidget(self.strip, 1)
        self.neighbours = QListWidget()
        self.neighbours.setViewMode(QListWidget.ViewMode.IconMode)
        self.neighbours.setIconSize(QSize(THUMB, THUMB))
        self.neighbours.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.neighbours.setMovement(QListWidget.Movement.Static)
        self.neighbours.setWordWrap(True)
        self.neighbours.setGridSize(QSize(THUMB + 40, THUMB + 44))
        self.neighbours.setMinimumWidth(3 * (THUMB + 40))
        self.neighbours.itemActivated.connect(lambda item: self.neighbourActivated.emit(self.neighbours.row(item)))
        self.tabs = QTabWidget()
        self.tabs.addTab(self.neighbours, "Nearest boxes")
        self.tabs.addTab(self._classifier_tab(), "Linear classifier")
        layout.addWidget(self.tabs, 1)

    def _classifier_tab(self) -> QWidget:
        tab = QWidget()
        box = QVBoxLayout(tab)
        box.addWidget(explanation_label(
            "Softmax regression on the indexed codes of the five most frequent classes (with 5 boxes or more): "
            "trained on 70% of the images, scored on the other 30% (balanced accuracy: mean per-class recall), "
            "beside the same classifier on the boxes' raw 32×32 pixels."))
        row = QHBoxLayout()
        self.classifier_button = QPushButton("Train on the indexed codes")
        self.classifier_button.setEnabled(False)
        self.classifier_button.clicked.connect(self.classifierRequested)
        row.addWidget(self.classifier_button, 1)
        row.addWidget(QLabel("Split seed"))
        self.split_seed = QSpinBox()
        self.split_seed.setRange(0, 999)
        self.split_seed.setToolTip("Which images are held out: another seed, another split (the spread of the "
                                   "score over seeds is how much to trust one figure)")
        row.addWidget(self.split_seed)
        box.addLayout(row)
        self.classifier_status = QLabel("Index the dataset's boxes first.")
        self.classifier_status.setWordWrap(True)
        box.addWidget(self.classifier_status)
        self.recall_plot = pg.PlotWidget(background="w")
        self.recall_plot.setMinimumHeight(120)
        self.recall_plot.setMouseEnabled(x=False, y=False)
        item = self.recall_plot.getPlotItem()
        item.setLabel("left", "held-out recall")
        item.setYRange(0, 1, padding=0.02)
        item.addLegend(offset=(-5, 5))
        box.addWidget(self.recall_plot, 1)
        return tab

    @property
    def extractor_key(self) -> str:
        return str(self.extractor_combo.currentData())

    def set_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setEnabled(busy)
        self.index_button.setEnabled(not busy)
        if busy:
            self.progress.setValue(0)

    def set_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(round(1000 * max(0.0, min(1.0, fraction)))))
        self.status.setText(message)

    def show_codes(self, query: np.ndarray | None, neighbour_codes: np.ndarray | None) -> None:
        """Row 0 (top): the selected box's code; below it one row per neighbour, in neighbour order."""
        if query is None:
            self.strip_image.clear()
            return
        rows = [np.asarray(query, np.float32)]
        if neighbour_codes is not None and len(neighbour_codes):
            rows += [np.asarray(c, np.float32) for c in neighbour_codes]
        # ImageItem's first axis is x: transpose so dimensions run left to right and row 0 is on top.
        stacked = np.stack(rows)[::-1]
        # Codes are sparse with a few large peaks: colour levels from the 2nd–98th percentiles show the
        # pattern instead of a dark strip with a few bright lines.
        lo, hi = np.percentile(stacked, [2, 98])
        self.strip_image.setImage(stacked.T, levels=(float(lo), float(max(hi, lo + 1e-6))))
        self.strip.getPlotItem().setRange(xRange=(0, stacked.shape[1]), yRange=(0, stacked.shape[0]), padding=0)

    def show_recalls(self, classes: list[str], series: list[tuple[str, np.ndarray]]) -> None:
        """One group of bars per class: each of ``series`` (name, per-class held-out recall) side by side; a
        class with no held-out box (NaN) gets no bar and says so under its name. An empty ``classes`` clears
        the plot."""
        item = self.recall_plot.getPlotItem()
        item.clear()
        if item.legend is not None:
            item.legend.clear()
        if not classes:
            item.getAxis("bottom").setTicks(None)
            return
        colours = ("#1f77b4", "#bbbbbb")
        width = 0.8 / max(1, len(series))
        for k, (name, recall) in enumerate(series):
            recall = np.asarray(recall, float)
            shown = ~np.isnan(recall)
            x = (np.arange(len(classes)) - 0.4 + width * (k + 0.5))[shown]
            item.addItem(pg.BarGraphItem(x=x, height=recall[shown], width=width, brush=colours[k % 2], name=name))
        unscored = np.isnan(np.asarray(series[0][1], float)) if series else np.zeros(len(classes), bool)
        item.getAxis("bottom").setTicks([[(i, f"{c} (none held out)" if unscored[i] else c)
                                          for i, c in enumerate(classes)]])
        item.setXRange(-0.6, len(classes) - 0.4, padding=0)
        item.setYRange(0, 1, padding=0.02)

    def show_neighbours(self, entries: list[tuple[np.ndarray, str, float]]) -> None:
        """``entries``: (thumbnail RGB, class, distance) nearest first."""
        self.neighbours.clear()
        for thumb, name, distance in entries:
            item = QListWidgetItem(QIcon(QPixmap.fromImage(rgb_to_qimage(thumb))), f"{name}\nd = {distance:.1f}")
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter)
            item.setToolTip(f"{name}: distance {distance:.2f} (double-click to open)")
            self.neighbours.addItem(item)
