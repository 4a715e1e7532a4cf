"""The RPN panel: objectness heat map, the top-N proposals before/after NMS, N and the NMS threshold live.

A plain widget; the controller (:mod:`app.stages.rpn.controller`) fills the read-outs.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.stages.base import explanation_label

EXPLANATION = (
    "The Region Proposal Network slides a small network over the feature map and gives every anchor an "
    "objectness score and four box deltas. The heat map shows, per feature-map cell, the best objectness of its "
    "anchors. The highest-scoring anchors, moved by their deltas and clipped to the image, enter non-maximum "
    "suppression; its survivors are the proposals the detection head classifies.")

#: Slider units per 1.0 of IoU.
THRESHOLD_STEPS = 100

BEFORE_COLOR = "#4d8dff"
AFTER_COLOR = "#ff8c00"


class RpnPanel(QWidget):
    """Controls and read-outs of the RPN stage."""

    #: N or the NMS threshold changed: (N, threshold).
    selectionChanged = Signal(int, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.explanation = explanation_label(EXPLANATION)
        self.heat_box = QCheckBox("Show objectness heat map")
        self.heat_opacity = QSlider(Qt.Orientation.Horizontal)
        self.heat_opacity.setRange(0, 100)
        self.heat_opacity.setValue(60)
        self.heat_opacity.setToolTip("Opacity of the heat map")
        self.stretch_box = QCheckBox("stretch colours to this image's range")
        self.stretch_box.setToolTip("Map the lowest cell to dark and the highest to bright (off: 0 → dark, 1 → "
                                    "bright), to see structure when all scores are close")
        self.heat_label = QLabel("")
        self.heat_label.setWordWrap(True)

        self.proposals_box = QCheckBox("Show proposals")
        self.before_box = QCheckBox("top N before NMS")
        self.before_box.setStyleSheet(f"QCheckBox {{ color: {BEFORE_COLOR}; }}")
        self.before_box.setChecked(True)
        self.after_box = QCheckBox("top N after NMS")
        self.after_box.setStyleSheet(f"QCheckBox {{ color: {AFTER_COLOR}; }}")
        self.after_box.setChecked(True)
        self.n_slider = QSlider(Qt.Orientation.Horizontal)
        self.n_slider.setRange(1, 1)
        self.n_spin = QSpinBox()
        self.n_spin.setRange(1, 1)
        self.n_slider.setToolTip("How many proposals to show (the model keeps its post-NMS top-N at test time)")
        self.thr_slider = QSlider(Qt.Orientation.Horizontal)
        self.thr_slider.setRange(0, THRESHOLD_STEPS)
        self.thr_slider.setValue(70)
        self.thr_slider.setToolTip("NMS IoU threshold: a box overlapping a better one by more than this is removed")
        self.thr_label = QLabel("0.70")
        self.readout = QLabel("")
        self.readout.setWordWrap(True)
        self.readout.setTextFormat(Qt.TextFormat.RichText)
        self.hover_label = QLabel("")
        self.status = QLabel("")
        self.status.setWordWrap(True)

        heat = QGroupBox("Objectness")
        hl = QVBoxLayout(heat)
        hl.addWidget(self.heat_box)
        row = QHBoxLayout()
        row.addWidget(QLabel("opacity"))
        row.addWidget(self.heat_opacity, 1)
        hl.addLayout(row)
        hl.addWidget(self.stretch_box)
        hl.addWidget(self.heat_label)
        hl.addWidget(self.hover_label)

        n_row = QHBoxLayout()
        n_row.addWidget(self.n_slider, 1)
        n_row.addWidget(self.n_spin)
        thr_row = QHBoxLayout()
        thr_row.addWidget(self.thr_slider, 1)
        thr_row.addWidget(self.thr_label)
        form = QFormLayout()
        form.addRow("top N", n_row)
        form.addRow("NMS IoU >", thr_row)
        props = QGroupBox("Proposals")
        pl = QVBoxLayout(props)
        pl.addWidget(self.proposals_box)
        which = QHBoxLayout()
        which.addWidget(self.before_box)
        which.addWidget(self.after_box)
        which.addStretch(1)
        pl.addLayout(which)
        pl.addLayout(form)
        pl.addWidget(self.readout)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(self.explanation)
        lay.addWidget(self.status)
        lay.addWidget(heat)
        lay.addWidget(props)
        lay.addStretch(1)

        self.n_slider.valueChanged.connect(self.n_spin.setValue)
        self.n_spin.valueChanged.connect(self.n_slider.setValue)
        self.n_slider.valueChanged.connect(self._emit)
        self.thr_slider.valueChanged.connect(self._emit)
        self.set_available(False)

    def top_n(self) -> int:
        return int(self.n_slider.value())

    def threshold(self) -> float:
        return self.thr_slider.value() / THRESHOLD_STEPS

    def _emit(self, *_: object) -> None:
        self.thr_label.setText(f"{self.threshold():.2f}")
        self.selectionChanged.emit(self.top_n(), self.threshold())

    def set_choices(self, candidates: int, top_n: int, threshold: float) -> None:
        """A new trace: N spans 1..candidates (starting at ``top_n``), the threshold at the model's."""
        for w in (self.n_slider, self.n_spin, self.thr_slider):
            w.blockSignals(True)
        for w in (self.n_slider, self.n_spin):
            w.setRange(1, max(1, candidates))
            w.setValue(max(1, min(int(top_n), max(1, candidates))))
        self.thr_slider.setValue(round(float(threshold) * THRESHOLD_STEPS))
        for w in (self.n_slider, self.n_spin, self.thr_slider):
            w.blockSignals(False)
        self._emit()

    def set_available(self, on: bool) -> None:
        """Enable the controls that need a trace."""
        for w in (self.n_slider, self.n_spin, self.thr_slider):
            w.setEnabled(on)

    def set_status(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text))


__all__ = ["AFTER_COLOR", "BEFORE_COLOR", "THRESHOLD_STEPS", "RpnPanel"]
