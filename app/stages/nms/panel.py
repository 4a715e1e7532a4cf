"""The NMS stage's panel: IoU threshold, per-class toggle, what to draw, and the step-by-step walk.

A plain widget: it computes nothing. The controller (:class:`app.stages.nms.controller.NmsStage`) reads its
widgets and fills the read-outs.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from app.stages.base import explanation_label

EXPLANATION = (
    "A detector scores many overlapping boxes for the same object. Non-maximum suppression (NMS) keeps the "
    "best-scoring box and removes every other box that overlaps it by more than the IoU threshold, then "
    "repeats with the next box still standing. Per class, only boxes of the same class suppress each other "
    "(Fast/Faster R-CNN); class-agnostic, any box can.")

#: The slider runs over 0.00 … 1.00 in steps of 0.01.
IOU_STEPS = 100


class NmsPanel(QWidget):
    """Controls and read-outs of the NMS stage."""

    #: IoU threshold, per-class or drawing options changed.
    paramsChanged = Signal()
    #: Step mode on/off or another step chosen (the step index, in score order).
    stepChanged = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.show_box = QCheckBox("Show NMS")
        self.show_box.setToolTip("Draw the boxes before and after non-maximum suppression")
        self.source_label = QLabel("No detections: load a model and run it, or load a detections file")
        self.source_label.setWordWrap(True)
        self.iou_slider = QSlider(Qt.Orientation.Horizontal)
        self.iou_slider.setRange(0, IOU_STEPS)
        self.iou_slider.setValue(30)
        self.iou_slider.setToolTip("Boxes overlapping a kept box by MORE than this IoU are removed")
        self.iou_value = QLabel()
        self.per_class_box = QCheckBox("Per class (only boxes of one class suppress each other)")
        self.per_class_box.setChecked(True)
        self.show_suppressed_box = QCheckBox("Show suppressed boxes (dashed)")
        self.show_suppressed_box.setChecked(True)
        self.labels_box = QCheckBox("Class and score tags")
        self.labels_box.setChecked(True)
        self.counts_label = QLabel("")
        self.counts_label.setWordWrap(True)
        iou_row = QHBoxLayout()
        iou_row.addWidget(self.iou_slider, 1)
        iou_row.addWidget(self.iou_value)
        form = QFormLayout()
        form.addRow("IoU threshold", iou_row)

        self.step_box = QGroupBox("Step through (score order)")
        self.step_box.setCheckable(True)
        self.step_box.setChecked(False)
        self.step_slider = QSlider(Qt.Orientation.Horizontal)
        self.step_slider.setRange(0, 0)
        self.prev_button = QPushButton("◀")
        self.next_button = QPushButton("▶")
        for b in (self.prev_button, self.next_button):
            b.setFixedWidth(36)
        self.step_label = QLabel("")
        self.step_label.setWordWrap(True)
        self.step_label.setTextFormat(Qt.TextFormat.RichText)
        srow = QHBoxLayout()
        srow.addWidget(self.prev_button)
        srow.addWidget(self.step_slider, 1)
        srow.addWidget(self.next_button)
        sl = QVBoxLayout(self.step_box)
        sl.addLayout(srow)
        sl.addWidget(self.step_label)

        lay = QVBoxLayout(self)
        lay.addWidget(explanation_label(EXPLANATION))
        lay.addWidget(self.show_box)
        lay.addWidget(self.source_label)
        lay.addLayout(form)
        lay.addWidget(self.per_class_box)
        lay.addWidget(self.show_suppressed_box)
        lay.addWidget(self.labels_box)
        lay.addWidget(self.counts_label)
        lay.addWidget(self.step_box)
        lay.addStretch(1)

        self._show_iou()
        self.iou_slider.valueChanged.connect(self._show_iou)
        self.iou_slider.valueChanged.connect(lambda _v: self.paramsChanged.emit())
        for box in (self.per_class_box, self.show_suppressed_box, self.labels_box):
            box.toggled.connect(lambda _on: self.paramsChanged.emit())
        self.step_box.toggled.connect(lambda _on: self.stepChanged.emit(self.step_slider.value()))
        self.step_slider.valueChanged.connect(self.stepChanged)
        self.prev_button.clicked.connect(lambda: self.step_slider.setValue(self.step_slider.value() - 1))
        self.next_button.clicked.connect(lambda: self.step_slider.setValue(self.step_slider.value() + 1))

    def _show_iou(self) -> None:
        self.iou_value.setText(f"{self.iou_threshold():.2f}")

    def iou_threshold(self) -> float:
        return self.iou_slider.value() / IOU_STEPS

    def set_iou_threshold(self, value: float) -> None:
        self.iou_slider.setValue(int(round(float(value) * IOU_STEPS)))

    def per_class(self) -> bool:
        return self.per_class_box.isChecked()

    def stepping(self) -> bool:
        return self.step_box.isChecked()

    def set_steps(self, n: int) -> None:
        """``n`` boxes to walk (the slider's range is 0 … n-1)."""
        self.step_slider.blockSignals(True)
        self.step_slider.setRange(0, max(0, n - 1))
        self.step_slider.blockSignals(False)
        self.step_box.setEnabled(n > 0)
