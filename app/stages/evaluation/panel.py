"""The evaluation view's panel: what to evaluate, the thresholds, progress, and the results side by side.

A plain widget: :class:`app.stages.evaluation.controller.EvaluationStage` fills it and reacts to its buttons.
Laid out for the wide, short bottom dock area: one row of controls, then the AP table, the PR curves and the
worst images / confusion matrix in three columns.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.stages.base import explanation_label
from app.stages.evaluation.curves import PrCurves
from app.stages.evaluation.jobs import ALL_IMAGES, FROM_FILE, FROM_MODEL
from app.stages.evaluation.tables import ConfusionTable, RowsTable
from models.detection.error_analysis import BY_ERRORS, BY_FALSE_POSITIVES, BY_MISSED

EXPLANATION = (
    "How good is the detector on this dataset, and where does it fail? AP per class (PASCAL VOC, and COCO's "
    "AP averaged over IoU 0.5–0.95), precision–recall curves, and a confusion matrix with background. Pick a "
    "class to list its worst images; click one to open it with detections against ground truth.")


def _spin(lo: float, hi: float, value: float, tip: str) -> QDoubleSpinBox:
    s = QDoubleSpinBox()
    s.setRange(lo, hi)
    s.setSingleStep(0.05)
    s.setDecimals(2)
    s.setValue(value)
    s.setToolTip(tip)
    return s


def _titled(title: str, body: QWidget, *buttons: QPushButton) -> QWidget:
    w = QWidget()
    lay = QVBoxLayout(w)
    lay.setContentsMargins(0, 0, 0, 0)
    row = QHBoxLayout()
    label = QLabel(f"<b>{title}</b>")
    row.addWidget(label, 1)
    for b in buttons:
        row.addWidget(b)
    lay.addLayout(row)
    lay.addWidget(body, 1)
    w.title_label = label  # type: ignore[attr-defined]
    return w


class EvaluationPanel(QWidget):
    """Controls and result widgets of the evaluation view."""

    #: The IoU or score threshold changed (re-score the detections already there).
    thresholdsChanged = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.source_combo = QComboBox()
        self.source_combo.addItem("the loaded model", FROM_MODEL)
        self.source_combo.addItem("a detections file", FROM_FILE)
        self.source_combo.setToolTip("Run the model of the Model panel, or score detections made elsewhere "
                                     "(a COCO results JSON or the JSON of `python main.py detect`)")
        self.file_button = QPushButton("Choose file…")
        self.file_label = QLabel("")
        self.images_combo = QComboBox()
        self.images_combo.setToolTip("The images to evaluate: a split of the dataset (its own, or the saved "
                                     "seeded split training uses), or all of them")
        self.iou_spin = _spin(0.05, 0.95, 0.5, "A true positive overlaps its object by MORE than this IoU "
                                               "(VOC: 0.5); AP, confusion matrix and worst images use it")
        self.score_spin = _spin(0.0, 1.0, 0.5, "The confusion matrix, the TP/FP/missed columns and the worst "
                                               "images count only detections scoring at least this (AP uses "
                                               "every detection)")
        self.eleven_box = QCheckBox("11-point AP")
        self.eleven_box.setToolTip("VOC2007's 11-point interpolation instead of the area under the curve")
        self.coco_box = QCheckBox("COCO AP")
        self.coco_box.setChecked(True)
        self.coco_box.setToolTip("Also compute COCO AP@[.5:.95] (pycocotools; seconds on large sets)")
        self.evaluate_button = QPushButton("Evaluate")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(True)
        self.progress.setFormat("")
        self.summary_label = QLabel("Nothing evaluated yet.")
        self.summary_label.setTextFormat(Qt.TextFormat.RichText)
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)

        self.ap_table = RowsTable()
        self.ap_table.setToolTip("Click a class to draw its curve thick and list its worst images")
        self.ap_export = QPushButton("CSV…")
        self.ap_export.setToolTip("Save the AP table as CSV")
        self.curves = PrCurves()
        self.png_button = QPushButton("PNG…")
        self.svg_button = QPushButton("SVG…")
        self.png_button.setToolTip("Save the curves as a PNG image")
        self.svg_button.setToolTip("Save the curves as an SVG drawing")
        self.worst_order = QComboBox()
        self.worst_order.addItem("most errors (FP + missed)", BY_ERRORS)
        self.worst_order.addItem("most false positives", BY_FALSE_POSITIVES)
        self.worst_order.addItem("most missed boxes", BY_MISSED)
        self.worst_table = RowsTable()
        self.worst_table.setToolTip("Click an image (or move with the arrow keys) to open it with the "
                                    "Detections layer on")
        self.worst_export = QPushButton("CSV…")
        self.worst_export.setToolTip("Save this list as CSV")
        self.confusion = ConfusionTable()
        self.confusion_export = QPushButton("CSV…")
        self.confusion_export.setToolTip("Save the confusion matrix as CSV")

        controls = QHBoxLayout()
        controls.addWidget(QLabel("Evaluate"))
        controls.addWidget(self.source_combo)
        controls.addWidget(self.file_button)
        controls.addWidget(self.file_label)
        controls.addWidget(QLabel("on"))
        controls.addWidget(self.images_combo)
        controls.addSpacing(8)
        controls.addWidget(QLabel("IoU >"))
        controls.addWidget(self.iou_spin)
        controls.addWidget(QLabel("score ≥"))
        controls.addWidget(self.score_spin)
        controls.addWidget(self.eleven_box)
        controls.addWidget(self.coco_box)
        controls.addWidget(self.evaluate_button)
        controls.addWidget(self.cancel_button)
        controls.addWidget(self.progress)
        controls.addStretch(1)

        worst_box = QWidget()
        wl = QVBoxLayout(worst_box)
        wl.setContentsMargins(0, 0, 0, 0)
        order_row = QHBoxLayout()
        self.worst_label = QLabel("Choose a class in the AP table.")
        order_row.addWidget(self.worst_label, 1)
        order_row.addWidget(self.worst_order)
        order_row.addWidget(self.worst_export)
        wl.addLayout(order_row)
        wl.addWidget(self.worst_table, 1)
        conf_box = QWidget()
        cl = QVBoxLayout(conf_box)
        cl.setContentsMargins(0, 0, 0, 0)
        conf_row = QHBoxLayout()
        self.confusion_label = QLabel("")
        self.confusion_label.setWordWrap(True)
        conf_row.addWidget(self.confusion_label, 1)
        conf_row.addWidget(self.confusion_export)
        cl.addLayout(conf_row)
        cl.addWidget(self.confusion, 1)
        self.tabs = QTabWidget()
        self.worst_tab = self.tabs.addTab(worst_box, "Worst images")
        self.confusion_tab = self.tabs.addTab(conf_box, "Confusion matrix")

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(_titled("AP per class", self.ap_table, self.ap_export))
        self.splitter.addWidget(_titled("Precision–recall", self.curves, self.png_button, self.svg_button))
        self.splitter.addWidget(self.tabs)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 1)
        self.splitter.setSizes([480, 480, 480])
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setMinimumHeight(160)

        lay = QVBoxLayout(self)
        lay.addWidget(explanation_label(EXPLANATION))
        lay.addLayout(controls)
        lay.addWidget(self.summary_label)
        lay.addWidget(self.status_label)
        lay.addWidget(self.splitter, 1)

        self.source_combo.currentIndexChanged.connect(self._sync_source)
        self.iou_spin.valueChanged.connect(lambda _v: self.thresholdsChanged.emit())
        self.score_spin.valueChanged.connect(lambda _v: self.thresholdsChanged.emit())
        self._sync_source()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        """Short: the bottom area shares the window's height with the canvas and the left tab row; the dock
        scrolls, and a user who wants the tables taller drags its edge."""
        return QSize(1200, 240)

    # --- reading the controls ------------------------------------------------------------------------------
    def mode(self) -> str:
        return str(self.source_combo.currentData())

    def set_mode(self, mode: str) -> None:
        self.source_combo.setCurrentIndex(max(0, self.source_combo.findData(mode)))

    def split(self) -> str:
        data = self.images_combo.currentData()
        return ALL_IMAGES if data is None else str(data)

    def set_splits(self, names: list[str], default: str = "test") -> None:
        """Offer ``names`` (splits) and "all images"; keep the current choice when it is still offered."""
        current = self.split() if self.images_combo.count() else default
        self.images_combo.blockSignals(True)
        self.images_combo.clear()
        for n in names:
            self.images_combo.addItem(f"split '{n}'", n)
        self.images_combo.addItem("all images", ALL_IMAGES)
        k = self.images_combo.findData(current)
        if k < 0:
            k = self.images_combo.findData(default)
        self.images_combo.setCurrentIndex(max(0, k))
        self.images_combo.blockSignals(False)

    def set_split(self, name: str) -> None:
        k = self.images_combo.findData(name)
        if k >= 0:
            self.images_combo.setCurrentIndex(k)

    def iou_threshold(self) -> float:
        return float(self.iou_spin.value())

    def score_threshold(self) -> float:
        return float(self.score_spin.value())

    def worst_by(self) -> str:
        return str(self.worst_order.currentData())

    # --- showing state --------------------------------------------------------------------------------------
    def _sync_source(self) -> None:
        from_file = self.mode() == FROM_FILE
        self.file_button.setVisible(from_file)
        self.file_label.setVisible(from_file)

    def set_running(self, running: bool) -> None:
        self.evaluate_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        for w in (self.source_combo, self.file_button, self.images_combo, self.eleven_box, self.coco_box):
            w.setEnabled(not running)
        if not running:
            self.progress.setValue(0)
            self.progress.setFormat("")

    def set_progress(self, fraction: float, text: str) -> None:
        self.progress.setValue(int(round(1000 * max(0.0, min(1.0, fraction)))))
        self.progress.setFormat(text)

    def set_status(self, text: str, error: bool = False) -> None:
        self.status_label.setStyleSheet("color: #d03030;" if error else "")
        self.status_label.setText(text)
        self.status_label.setVisible(bool(text))


__all__ = ["EvaluationPanel"]
