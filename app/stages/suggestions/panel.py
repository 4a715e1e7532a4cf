"""The model-assisted labelling panel: which detections are offered as ground truth, and accept / reject.

A plain widget; :class:`app.stages.suggestions.controller.SuggestionsStage` fills the list and acts on it.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from app.stages.base import explanation_label

EXPLANATION = (
    "Label faster by correcting a detector instead of drawing every box: detections scoring at least the "
    "threshold are offered as dashed suggestions. Accept one (select it on the canvas or in the list, then Y), "
    "accept all (Shift+Y) or reject (N); accepting is an ordinary edit you can undo. A detection overlapping a "
    "box you drew of the same class at IoU ≥ 0.5 is never offered, so your boxes are never duplicated.")

SCORE_STEPS = 100


class SuggestionsPanel(QWidget):
    """Controls of the suggestions; ``suggestions_list`` rows carry the detection index as user data."""

    paramsChanged = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.suggest_box = QCheckBox("Suggest boxes from detections")
        self.threshold_slider = QSlider(Qt.Orientation.Horizontal)
        self.threshold_slider.setRange(0, SCORE_STEPS)
        self.threshold_slider.setValue(70)
        self.threshold_slider.setToolTip("Only detections scoring at least this are offered")
        self.threshold_value = QLabel()
        self.suggestions_list = QListWidget()
        self.suggestions_list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.suggestions_list.setMinimumHeight(120)
        self.accept_button = QPushButton("Accept (Y)")
        self.accept_all_button = QPushButton("Accept all (Shift+Y)")
        self.reject_button = QPushButton("Reject (N)")
        self.reject_all_button = QPushButton("Reject all")
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        trow = QHBoxLayout()
        trow.addWidget(self.threshold_slider, 1)
        trow.addWidget(self.threshold_value)
        form = QFormLayout()
        form.addRow("Score ≥", trow)
        brow = QHBoxLayout()
        for b in (self.accept_button, self.accept_all_button):
            brow.addWidget(b)
        brow2 = QHBoxLayout()
        for b in (self.reject_button, self.reject_all_button):
            brow2.addWidget(b)
        lay = QVBoxLayout(self)
        lay.addWidget(explanation_label(EXPLANATION))
        lay.addWidget(self.suggest_box)
        lay.addLayout(form)
        lay.addWidget(self.suggestions_list, 1)
        lay.addLayout(brow)
        lay.addLayout(brow2)
        lay.addWidget(self.status_label)

        self._show_threshold()
        self.threshold_slider.valueChanged.connect(self._show_threshold)
        self.threshold_slider.valueChanged.connect(lambda _v: self.paramsChanged.emit())

    def _show_threshold(self) -> None:
        self.threshold_value.setText(f"{self.threshold():.2f}")

    def threshold(self) -> float:
        return self.threshold_slider.value() / SCORE_STEPS

    def set_threshold(self, value: float) -> None:
        self.threshold_slider.setValue(int(round(float(value) * SCORE_STEPS)))
