"""The Anchors panel: anchor parameters, what to show, label counts, the chosen cell's anchors, best anchors.

A plain widget: it computes nothing. The controller (:mod:`app.stages.anchors.controller`) reads ``spec()``,
labels the anchors in a worker and fills the read-outs (``set_counts``, ``show_cell``, ``set_best``…).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.layers.anchors import KIND_COLORS
from app.stages.base import explanation_label
from models.detection.anchor_labels import KIND_NAMES, KINDS, AnchorSpec, format_numbers, parse_numbers

SHOW_HOVER = "hover"
SHOW_CLICKED = "clicked"
SHOW_DOTS = "dots"
SHOW_BOXES = "boxes"

EXPLANATION = (
    "Anchors are the reference boxes the Region Proposal Network scores and reshapes: every cell of the "
    "stride-s feature map gets one box per size × aspect ratio, centred on the cell. To train the RPN each anchor "
    "is labelled against the ground truth: positive at IoU ≥ the positive threshold (and the best anchor of "
    "every GT box, so none goes unlearned), negative below the negative threshold, ignored in between or when "
    "it crosses the image border.")

CELL_COLUMNS = ("#", "size", "ratio", "w×h", "label", "IoU", "GT")


def _swatch(kind: int) -> str:
    return f"<span style='color:{KIND_COLORS[kind].name()}'>■</span>"


class AnchorsPanel(QWidget):
    """Controls and read-outs of the Anchors stage."""

    #: Stride, sizes, ratios or thresholds changed (the controller debounces and relabels).
    paramsChanged = Signal()
    #: Which anchors to show (SHOW_*).
    showChanged = Signal(str)
    #: The set of label kinds to draw.
    kindsChanged = Signal(object)
    #: "Use the model's" pressed.
    resetRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        d = AnchorSpec()
        self.explanation = explanation_label(EXPLANATION)
        self.show_box = QCheckBox("Show anchors")
        self.show_combo = QComboBox()
        for text, key in (("cell under the cursor", SHOW_HOVER), ("clicked cell", SHOW_CLICKED),
                          ("all cell centres (dots)", SHOW_DOTS), ("all anchors (boxes)", SHOW_BOXES)):
            self.show_combo.addItem(text, key)
        self.show_combo.setCurrentIndex(self.show_combo.findData(SHOW_DOTS))
        self.show_combo.setToolTip("Click a cell on the image to list its anchors, in any display")

        self.stride_spin = QSpinBox()
        self.stride_spin.setRange(1, 256)
        self.stride_spin.setSuffix(" px")
        self.stride_spin.setValue(d.stride)
        self.stride_spin.setToolTip("Input pixels per feature-map cell (the backbone's total stride)")
        self.sizes_edit = QLineEdit(format_numbers(d.sizes))
        self.sizes_edit.setToolTip("√area of each anchor in network-input pixels, comma-separated")
        self.ratios_edit = QLineEdit(format_numbers(d.ratios))
        self.ratios_edit.setToolTip("Aspect ratios height / width, comma-separated")
        self.pos_spin = QDoubleSpinBox()
        self.neg_spin = QDoubleSpinBox()
        for spin, value in ((self.pos_spin, d.positive_iou), (self.neg_spin, d.negative_iou)):
            spin.setRange(0.0, 1.0)
            spin.setSingleStep(0.05)
            spin.setDecimals(2)
            spin.setValue(value)
        self.pos_spin.setToolTip("An anchor with IoU ≥ this with some GT box is positive")
        self.neg_spin.setToolTip("An anchor with IoU < this with every GT box is negative")
        self.cross_box = QCheckBox("ignore anchors crossing the image border")
        self.cross_box.setChecked(d.ignore_cross_boundary)
        self.reset_button = QPushButton("Use the model's")
        self.reset_button.setToolTip("Stride, sizes, ratios and thresholds of the loaded model")
        self.reset_button.setEnabled(False)

        self.kind_boxes: dict[int, QCheckBox] = {}
        kinds_row = QHBoxLayout()
        for k in KINDS:
            box = QCheckBox(KIND_NAMES[k])
            box.setChecked(True)
            box.setStyleSheet(f"QCheckBox {{ color: {KIND_COLORS[k].name()}; }}")
            box.toggled.connect(self._emit_kinds)
            self.kind_boxes[k] = box
            kinds_row.addWidget(box)
        kinds_row.addStretch(1)

        self.counts_label = QLabel("—")
        self.counts_label.setTextFormat(Qt.TextFormat.RichText)
        self.counts_label.setWordWrap(True)
        self.scale_label = QLabel("")
        self.scale_label.setWordWrap(True)
        self.cell_label = QLabel("Click a cell on the image to list its anchors.")
        self.cell_label.setWordWrap(True)
        self.cell_table = QTableWidget(0, len(CELL_COLUMNS))
        self.cell_table.setHorizontalHeaderLabels(list(CELL_COLUMNS))
        self.cell_table.verticalHeader().setVisible(False)
        self.cell_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.cell_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.cell_table.setMinimumHeight(120)
        self.best_label = QLabel("")
        self.best_label.setTextFormat(Qt.TextFormat.RichText)
        self.best_label.setWordWrap(True)
        self.status = QLabel("No image")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("show", self.show_combo)
        form.addRow("stride", self.stride_spin)
        form.addRow("sizes", self.sizes_edit)
        form.addRow("ratios (h/w)", self.ratios_edit)
        form.addRow("positive IoU ≥", self.pos_spin)
        form.addRow("negative IoU <", self.neg_spin)
        form.addRow("", self.cross_box)
        form.addRow("", self.reset_button)
        params = QGroupBox("Anchors")
        pl = QVBoxLayout(params)
        pl.addWidget(self.show_box)
        pl.addLayout(form)
        pl.addLayout(kinds_row)
        pl.addWidget(self.counts_label)
        pl.addWidget(self.scale_label)
        cell = QGroupBox("Cell")
        cl = QVBoxLayout(cell)
        cl.addWidget(self.cell_label)
        cl.addWidget(self.cell_table)
        best = QGroupBox("Best anchor of each ground-truth box")
        bl = QVBoxLayout(best)
        bl.addWidget(self.best_label)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(self.explanation)
        lay.addWidget(params)
        lay.addWidget(cell)
        lay.addWidget(best)
        lay.addWidget(self.status)
        lay.addStretch(1)

        self.stride_spin.valueChanged.connect(self.paramsChanged)
        self.sizes_edit.editingFinished.connect(self.paramsChanged)
        self.ratios_edit.editingFinished.connect(self.paramsChanged)
        self.pos_spin.valueChanged.connect(self.paramsChanged)
        self.neg_spin.valueChanged.connect(self.paramsChanged)
        self.cross_box.toggled.connect(self.paramsChanged)
        self.show_combo.currentIndexChanged.connect(lambda _i: self.showChanged.emit(self.show_mode()))
        self.reset_button.clicked.connect(self.resetRequested)

    # --- reading ---------------------------------------------------------------------------------------------
    def spec(self) -> AnchorSpec:
        """The parameters as entered; ValueError with a readable message when they are not usable."""
        spec = AnchorSpec(int(self.stride_spin.value()), parse_numbers(self.sizes_edit.text(), "anchor size"),
                          parse_numbers(self.ratios_edit.text(), "aspect ratio"), float(self.pos_spin.value()),
                          float(self.neg_spin.value()), bool(self.cross_box.isChecked()))
        spec.check()
        return spec

    def show_mode(self) -> str:
        return str(self.show_combo.currentData())

    def shown_kinds(self) -> set[int]:
        return {k for k, box in self.kind_boxes.items() if box.isChecked()}

    def _emit_kinds(self, *_: object) -> None:
        self.kindsChanged.emit(self.shown_kinds())

    # --- writing ---------------------------------------------------------------------------------------------
    def set_spec(self, spec: AnchorSpec) -> None:
        """Show ``spec`` (one paramsChanged at the end, not one per field)."""
        widgets = (self.stride_spin, self.sizes_edit, self.ratios_edit, self.pos_spin, self.neg_spin, self.cross_box)
        for w in widgets:
            w.blockSignals(True)
        self.stride_spin.setValue(int(spec.stride))
        self.sizes_edit.setText(format_numbers(spec.sizes))
        self.ratios_edit.setText(format_numbers(spec.ratios))
        self.pos_spin.setValue(spec.positive_iou)
        self.neg_spin.setValue(spec.negative_iou)
        self.cross_box.setChecked(spec.ignore_cross_boundary)
        for w in widgets:
            w.blockSignals(False)
        self.paramsChanged.emit()

    def set_counts(self, counts: dict[int, int] | None, total: int = 0, feature_size: tuple[int, int] = (0, 0),
                   per_cell: int = 0) -> None:
        if counts is None:
            self.counts_label.setText("—")
            return
        parts = [f"{_swatch(k)} {KIND_NAMES[k]} <b>{counts.get(k, 0)}</b>" for k in KINDS]
        self.counts_label.setText(" · ".join(parts) + f"<br>{total} anchors = {feature_size[0]}×{feature_size[1]} "
                                                       f"cells × {per_cell} per cell")

    def set_scale_note(self, text: str) -> None:
        self.scale_label.setText(text)

    def show_cell(self, title: str, rows: list[tuple[str, ...]], kinds: list[int]) -> None:
        """One row per anchor of the cell (CELL_COLUMNS), the label cell in its kind's colour."""
        self.cell_label.setText(title)
        self.cell_table.setRowCount(len(rows))
        for r, (row, kind) in enumerate(zip(rows, kinds, strict=True)):
            for c, text in enumerate(row):
                item = QTableWidgetItem(text)
                if CELL_COLUMNS[c] == "label":
                    item.setForeground(KIND_COLORS[kind])
                self.cell_table.setItem(r, c, item)

    def set_best(self, html: str) -> None:
        self.best_label.setText(html)

    def set_status(self, text: str) -> None:
        self.status.setText(text)


__all__ = ["CELL_COLUMNS", "SHOW_BOXES", "SHOW_CLICKED", "SHOW_DOTS", "SHOW_HOVER", "AnchorsPanel"]
