"""Side panel of the RoI sampling stage: the head's sampling settings (editable), seed, re-sample, counts.

A plain widget: it computes nothing. The stage fills the settings from the loaded model
(:meth:`set_params`) and reads them back (:meth:`params`) whenever one changes.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.layers.roi_sampling import BG_COLOR, FG_COLOR
from app.stages.base import explanation_label

EXPLANATION = (
    "To train the detection head, each image contributes a small batch of RoIs: foreground ones (IoU with a "
    "ground-truth box above a threshold, learned as that box's class and regressed onto it) and background "
    "ones (lower IoU, learned as \"nothing here\"), with foreground capped at a fraction of the batch so the "
    "abundant background does not swamp it (Fast R-CNN 2.3). This is exactly what one training step of the "
    "loaded model would sample from this image's proposals and ground truth; re-sample to draw another batch.")


def _iou_spin(value: float) -> QDoubleSpinBox:
    s = QDoubleSpinBox()
    s.setRange(0.0, 1.0)
    s.setSingleStep(0.05)
    s.setDecimals(2)
    s.setValue(value)
    return s


class RoiSamplingPanel(QWidget):
    """Sampling settings + seed + counts; ``paramsChanged`` when any setting or the seed changes."""

    paramsChanged = Signal()
    #: "Model's settings" pressed: the stage puts the loaded model's values back.
    resetRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.domain_label = QLabel()
        self.domain_label.setWordWrap(True)
        self.domain_label.setStyleSheet("color: #d06000;")
        self.domain_label.setVisible(False)
        self.show_box = QCheckBox("Show sampled RoIs")
        self.fg_spin = _iou_spin(0.5)
        self.fg_spin.setToolTip("A RoI is foreground when its IoU with some ground-truth box is at least this")
        self.bg_low_spin = _iou_spin(0.0)
        self.bg_high_spin = _iou_spin(0.5)
        self.bg_low_spin.setToolTip("Background: best IoU in [low, high). Fast R-CNN used [0.1, 0.5), Faster "
                                    "R-CNN [0, 0.5)")
        self.bg_high_spin.setToolTip(self.bg_low_spin.toolTip())
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 4096)
        self.batch_spin.setValue(128)
        self.batch_spin.setToolTip("RoIs sampled per image")
        self.fraction_spin = _iou_spin(0.25)
        self.fraction_spin.setToolTip("At most this fraction of the batch is foreground; background fills the rest")
        self.mode_combo = QComboBox()
        self.mode_combo.addItem("random (the paper)", "random")
        self.mode_combo.addItem("per object (each GT box its share)", "per_object")
        self.source_combo = QComboBox()
        self.source_combo.addItem("RPN proposals with its training settings", "train")
        self.source_combo.addItem("the trace's test-time proposals", "test")
        self.source_combo.setToolTip("Training samples from the RPN's training-time proposals (more of them); the "
                                     "trace holds the fewer test-time ones")
        self.add_gt_box = QCheckBox("ground-truth boxes join the candidates")
        self.add_gt_box.setChecked(True)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.resample_button = QPushButton("Re-sample")
        self.resample_button.setToolTip("Draw another batch (next seed)")
        self.reset_button = QPushButton("Model's settings")
        self.reset_button.setToolTip("Put back the sampling settings the loaded model trains with")
        self.counts = QLabel("No model trace: load a model and run it on this image.")
        self.counts.setWordWrap(True)
        self.legend = QLabel(f"<span style='color:{FG_COLOR.name()}'>■</span> foreground (dashed: a ground-truth "
                             f"box) &nbsp; <span style='color:{BG_COLOR.name()}'>■</span> background")
        self.legend.setWordWrap(True)

        bg_row = QHBoxLayout()
        bg_row.addWidget(self.bg_low_spin)
        bg_row.addWidget(QLabel("≤ IoU <"))
        bg_row.addWidget(self.bg_high_spin)
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed_spin, 1)
        seed_row.addWidget(self.resample_button)
        form = QFormLayout()
        form.addRow("foreground IoU ≥", self.fg_spin)
        form.addRow("background", bg_row)
        form.addRow("RoIs per image", self.batch_spin)
        form.addRow("foreground fraction", self.fraction_spin)
        form.addRow("foreground sampling", self.mode_combo)
        form.addRow("candidates", self.source_combo)
        form.addRow("", self.add_gt_box)
        form.addRow("seed", seed_row)
        lay = QVBoxLayout(self)
        lay.addWidget(explanation_label(EXPLANATION))
        lay.addWidget(self.domain_label)
        lay.addWidget(self.show_box)
        lay.addLayout(form)
        lay.addWidget(self.reset_button)
        lay.addWidget(self.legend)
        lay.addWidget(self.counts)
        lay.addStretch(1)
        for s in (self.fg_spin, self.bg_low_spin, self.bg_high_spin, self.fraction_spin):
            s.valueChanged.connect(self.paramsChanged)
        self.batch_spin.valueChanged.connect(self.paramsChanged)
        self.seed_spin.valueChanged.connect(self.paramsChanged)
        self.mode_combo.currentIndexChanged.connect(self.paramsChanged)
        self.add_gt_box.toggled.connect(self.paramsChanged)
        self.source_combo.currentIndexChanged.connect(self.paramsChanged)
        self.resample_button.clicked.connect(lambda: self.seed_spin.setValue(self.seed_spin.value() + 1))
        self.reset_button.clicked.connect(self.resetRequested)

    def set_domain_note(self, note: str) -> None:
        """The session's domain note ("" hides it): the model does not know this image's classes."""
        self.domain_label.setText(note)
        self.domain_label.setVisible(bool(note))

    def params(self) -> dict:
        """Keyword arguments for :func:`models.detection.detectors.roi_heads.sample_rois`."""
        return dict(fg_iou=self.fg_spin.value(), bg_iou_high=self.bg_high_spin.value(),
                    bg_iou_low=self.bg_low_spin.value(), batch_size=self.batch_spin.value(),
                    positive_fraction=self.fraction_spin.value(), positive_sampling=self.mode_combo.currentData(),
                    add_gt_as_proposals=self.add_gt_box.isChecked())

    def source(self) -> str:
        """"train": the RPN's training-time proposals; "test": the trace's own."""
        return self.source_combo.currentData()

    def seed(self) -> int:
        return self.seed_spin.value()

    def set_params(self, p: dict) -> None:
        """Show ``p`` (as :meth:`params` returns) without emitting ``paramsChanged`` once per widget."""
        widgets = (self.fg_spin, self.bg_low_spin, self.bg_high_spin, self.batch_spin, self.fraction_spin,
                   self.mode_combo, self.add_gt_box)
        for w in widgets:
            w.blockSignals(True)
        self.fg_spin.setValue(float(p["fg_iou"]))
        self.bg_low_spin.setValue(float(p["bg_iou_low"]))
        self.bg_high_spin.setValue(float(p["bg_iou_high"]))
        self.batch_spin.setValue(int(p["batch_size"]))
        self.fraction_spin.setValue(float(p["positive_fraction"]))
        i = self.mode_combo.findData(p["positive_sampling"])
        self.mode_combo.setCurrentIndex(max(i, 0))
        self.add_gt_box.setChecked(bool(p["add_gt_as_proposals"]))
        for w in widgets:
            w.blockSignals(False)
        self.paramsChanged.emit()


__all__ = ["EXPLANATION", "RoiSamplingPanel"]
