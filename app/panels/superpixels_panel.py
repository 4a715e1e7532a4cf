"""Side-panel controls of the superpixels layer: Felzenszwalb's k, sigma, min_size, colour space, display.

A plain widget: it owns no computation. ``paramsChanged`` fires on every edit; the controller
(``app.proposal_tools``) debounces it and runs the segmentation in a worker, then calls ``set_status``.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.layers.superpixels import BOUNDARIES, FILL_MEAN, FILL_RANDOM
from models.proposals.color_spaces import COLOR_SPACES

STYLE_LABELS = {FILL_RANDOM: "Random colours", FILL_MEAN: "Mean colours", BOUNDARIES: "Boundaries"}


@dataclass(frozen=True)
class SuperpixelParams:
    """What one segmentation request needs (``max_side`` bounds the working resolution)."""

    k: float = 100.0
    sigma: float = 0.8
    min_size: int = 100
    color_space: str = "hsv"
    max_side: int = 500


class SuperpixelsPanel(QWidget):
    """Controls for the superpixels layer; read them with ``params()``."""

    paramsChanged = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        d = SuperpixelParams()
        self.show_box = QCheckBox("Show superpixels")
        self.show_box.setToolTip("Compute and draw the Felzenszwalb–Huttenlocher regions of the current image")
        self.k_spin = QDoubleSpinBox()
        self.k_spin.setRange(1.0, 10000.0)
        self.k_spin.setDecimals(0)
        self.k_spin.setSingleStep(25.0)
        self.k_spin.setValue(d.k)
        self.k_spin.setToolTip("k (scikit-image's scale): larger k → fewer, larger regions")
        self.sigma_spin = QDoubleSpinBox()
        self.sigma_spin.setRange(0.0, 10.0)
        self.sigma_spin.setDecimals(2)
        self.sigma_spin.setSingleStep(0.1)
        self.sigma_spin.setValue(d.sigma)
        self.sigma_spin.setToolTip("Gaussian smoothing before segmenting, in working pixels")
        self.min_size_spin = QSpinBox()
        self.min_size_spin.setRange(1, 100000)
        self.min_size_spin.setSingleStep(10)
        self.min_size_spin.setValue(d.min_size)
        self.min_size_spin.setToolTip("Regions smaller than this (working pixels) are merged into a neighbour")
        self.space_combo = QComboBox()
        for name in COLOR_SPACES:
            self.space_combo.addItem(name, name)
        self.space_combo.setCurrentIndex(self.space_combo.findData(d.color_space))
        self.space_combo.setToolTip("Colour space the pixel differences are measured in")
        self.max_side_spin = QSpinBox()
        self.max_side_spin.setRange(16, 8000)
        self.max_side_spin.setSingleStep(50)
        self.max_side_spin.setValue(d.max_side)
        self.max_side_spin.setSuffix(" px")
        self.max_side_spin.setToolTip("Segment a copy reduced to at most this many pixels on its longer side")
        self.style_combo = QComboBox()
        for key, text in STYLE_LABELS.items():
            self.style_combo.addItem(text, key)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(55)
        self.opacity_slider.setToolTip("Opacity of the superpixels layer")
        self.status = QLabel("Not computed")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("k (scale)", self.k_spin)
        form.addRow("sigma", self.sigma_spin)
        form.addRow("min size", self.min_size_spin)
        form.addRow("colour space", self.space_combo)
        form.addRow("max side", self.max_side_spin)
        form.addRow("draw as", self.style_combo)
        form.addRow("opacity", self.opacity_slider)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(self.show_box)
        lay.addLayout(form)
        lay.addWidget(self.status)
        lay.addStretch(1)

        self.k_spin.valueChanged.connect(self.paramsChanged)
        self.sigma_spin.valueChanged.connect(self.paramsChanged)
        self.min_size_spin.valueChanged.connect(self.paramsChanged)
        self.space_combo.currentIndexChanged.connect(self.paramsChanged)
        self.max_side_spin.valueChanged.connect(self.paramsChanged)

    def params(self) -> SuperpixelParams:
        return SuperpixelParams(float(self.k_spin.value()), float(self.sigma_spin.value()),
                                int(self.min_size_spin.value()), str(self.space_combo.currentData()),
                                int(self.max_side_spin.value()))

    def style(self) -> str:
        return str(self.style_combo.currentData())

    def set_status(self, text: str) -> None:
        self.status.setText(text)


__all__ = ["STYLE_LABELS", "SuperpixelParams", "SuperpixelsPanel"]
