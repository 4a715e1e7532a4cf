"""The Detections stage's panel: score threshold, colouring, matching IoU, and the TP/FP/missed counts.

A plain widget: it computes nothing; :class:`app.stages.detections.controller.DetectionsStage` fills it.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from app.stages.base import explanation_label
from models.detection.matching import (
    BACKGROUND,
    DUPLICATE,
    IGNORED,
    LOCALISATION,
    OUTCOME_TEXT,
    TP,
    WRONG_CLASS,
)

EXPLANATION = (
    "The detector's final answer: each box with a class and a score. Scored against the ground truth as "
    "PASCAL VOC does, a box is a true positive when it overlaps an unclaimed object of its class by more than "
    "the IoU threshold; every other box is a false positive, tagged with why (found twice, wrong class, "
    "poorly placed, or on background), and objects no box found are missed. A box on a difficult object, or "
    "with at least the IoU threshold of its area inside a crowd box (COCO's rule: one of the crowd's unboxed "
    "objects), is ignored: neither right nor wrong.")

COLOR_BY_CLASS = "class"
COLOR_BY_OUTCOME = "outcome"

#: Colours of the outcomes (and of missed ground truth) when boxes are coloured by outcome.
OUTCOME_COLORS: dict[str, QColor] = {
    TP: QColor(40, 200, 80),
    DUPLICATE: QColor(255, 150, 0),
    WRONG_CLASS: QColor(220, 60, 230),
    LOCALISATION: QColor(255, 225, 0),
    BACKGROUND: QColor(255, 45, 45),
    IGNORED: QColor(160, 160, 160),
}
MISSED_COLOR = QColor(0, 200, 255)
#: A classification + localisation model's second look: the window the image was cut to, and the first look's box.
WINDOW_COLOR = QColor(170, 120, 255)
FIRST_LOOK_COLOR = QColor(255, 120, 190)
SECOND_LOOK_TIP = (
    "This classification + localisation model takes a second look (cls_loc_head.test_glimpse): its first look "
    "at the whole image only finds the object (dotted box), the image is then cut to a window around that box "
    "(dashed) so the object fills more of the network's small input square, and the answer shown (the box with "
    "the class and score) is the second look's. Where the first and the final box differ, the second look corrected the first.")
SCORE_STEPS = 100


def swatch(color: QColor) -> str:
    return f"<span style='color:{color.name()}'>■</span>"


class DetectionsPanel(QWidget):
    """Controls and read-outs of the Detections stage."""

    paramsChanged = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.show_box = QCheckBox("Show detections")
        self.show_box.setChecked(True)
        self.source_label = QLabel("No detections")
        self.source_label.setWordWrap(True)
        self.load_button = QPushButton("Load detections…")
        self.load_button.setToolTip("A COCO results JSON or the JSON of `python main.py detect`")
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.score_slider = QSlider(Qt.Orientation.Horizontal)
        self.score_slider.setRange(0, SCORE_STEPS)
        self.score_slider.setValue(50)
        self.score_slider.setToolTip("Boxes scoring below this are not shown nor scored (no network re-run)")
        self.score_value = QLabel()
        self.color_combo = QComboBox()
        self.color_combo.addItem("Class (one colour per class)", COLOR_BY_CLASS)
        self.color_combo.addItem("Outcome (TP / FP reason / missed)", COLOR_BY_OUTCOME)
        self.iou_spin = QDoubleSpinBox()
        self.iou_spin.setRange(0.05, 0.95)
        self.iou_spin.setSingleStep(0.05)
        self.iou_spin.setDecimals(2)
        self.iou_spin.setValue(0.5)
        self.iou_spin.setToolTip("A true positive overlaps its object by MORE than this IoU (VOC: 0.5)")
        self.missed_box = QCheckBox("Show missed ground truth (dashed)")
        self.missed_box.setChecked(True)
        self.labels_box = QCheckBox("Class and score tags")
        self.labels_box.setChecked(True)
        self.second_look_box = QCheckBox("Show the second look (first box, window)")
        self.second_look_box.setChecked(True)
        self.second_look_box.setToolTip(SECOND_LOOK_TIP)
        self.second_look_legend = QLabel(
            f"{swatch(FIRST_LOOK_COLOR)} first look (dotted) · {swatch(WINDOW_COLOR)} second look's window "
            "(dashed) · the box with class and score is the answer, from the second look")
        self.second_look_legend.setWordWrap(True)
        self.second_look_legend.setToolTip(SECOND_LOOK_TIP)
        self.set_second_look_shown(False)
        self.counts_label = QLabel("")
        self.counts_label.setWordWrap(True)
        self.counts_label.setTextFormat(Qt.TextFormat.RichText)
        self.counts_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        srow = QHBoxLayout()
        srow.addWidget(self.score_slider, 1)
        srow.addWidget(self.score_value)
        form = QFormLayout()
        form.addRow("Score ≥", srow)
        form.addRow("Colour by", self.color_combo)
        form.addRow("Match IoU >", self.iou_spin)
        lay = QVBoxLayout(self)
        lay.addWidget(explanation_label(EXPLANATION))
        lay.addWidget(self.show_box)
        lay.addWidget(self.source_label)
        lay.addWidget(self.load_button)
        lay.addWidget(self.status_label)
        lay.addLayout(form)
        lay.addWidget(self.missed_box)
        lay.addWidget(self.labels_box)
        lay.addWidget(self.second_look_box)
        lay.addWidget(self.second_look_legend)
        lay.addWidget(self.counts_label)
        legend = QLabel(self.legend())
        legend.setWordWrap(True)
        lay.addWidget(legend)
        lay.addStretch(1)

        self._show_score()
        self.score_slider.valueChanged.connect(self._show_score)
        self.score_slider.valueChanged.connect(lambda _v: self.paramsChanged.emit())
        self.color_combo.currentIndexChanged.connect(lambda _i: self.paramsChanged.emit())
        self.iou_spin.valueChanged.connect(lambda _v: self.paramsChanged.emit())
        for box in (self.missed_box, self.labels_box, self.second_look_box):
            box.toggled.connect(lambda _on: self.paramsChanged.emit())

    @staticmethod
    def legend() -> str:
        parts = [f"{swatch(c)} {OUTCOME_TEXT[k]}" for k, c in OUTCOME_COLORS.items()]
        parts.append(f"{swatch(MISSED_COLOR)} missed")
        return "Outcome colours: " + " · ".join(parts)

    def set_second_look_shown(self, shown: bool) -> None:
        """Offer the second-look check box and its legend only while the model shown took a second look."""
        self.second_look_box.setHidden(not shown)
        self.second_look_legend.setHidden(not shown)

    def _show_score(self) -> None:
        self.score_value.setText(f"{self.score_threshold():.2f}")

    def score_threshold(self) -> float:
        return self.score_slider.value() / SCORE_STEPS

    def set_score_threshold(self, value: float) -> None:
        self.score_slider.setValue(int(round(float(value) * SCORE_STEPS)))

    def color_by(self) -> str:
        return str(self.color_combo.currentData())

    def iou_threshold(self) -> float:
        return float(self.iou_spin.value())

    def set_status(self, text: str, error: bool = False) -> None:
        self.status_label.setStyleSheet("color: #d03030;" if error else "")
        self.status_label.setText(text)
