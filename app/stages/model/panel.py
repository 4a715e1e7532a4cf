"""The Model panel: which detector is loaded, on which device, whether it fits the data, and folder inference.

A plain widget: it owns no computation and no model. The controller (``app.stages.model.controller``)
fills it and listens to its signals.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.stages.base import explanation_label

EXPLANATION = (
    "A detector is a network trained on labelled boxes. Load a checkpoint and it runs on the image shown, "
    "in the background, whenever the image, its boxes or the model change; every detector stage (anchors, "
    "RPN, RoI pooling, NMS, detections) draws from that one run, so none of them recomputes the network. "
    "A model only knows the classes it was trained on.")

ERROR_STYLE = "color: #c62828;"
NOTE_STYLE = "background: #fff3cd; color: #5c4400; border: 1px solid #e0b84a; border-radius: 4px; padding: 4px;"


def available_devices() -> list[tuple[str, str]]:
    """(device, label) the model can run on here: CUDA (each GPU), Apple MPS, CPU — in the default order."""
    import torch

    out: list[tuple[str, str]] = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            out.append((f"cuda:{i}" if torch.cuda.device_count() > 1 else "cuda",
                        f"CUDA: {torch.cuda.get_device_name(i)}"))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append(("mps", "Apple MPS"))
    out.append(("cpu", "CPU"))
    return out


class ModelPanel(QWidget):
    """Controls and read-outs of the Model stage."""

    loadRequested = Signal()
    recentChosen = Signal(str)
    deviceChosen = Signal(str)
    mapClassesRequested = Signal()
    showAnywayToggled = Signal(bool)
    runFolderRequested = Signal()
    cancelFolderRequested = Signal()
    saveDetectionsRequested = Signal()

    def __init__(self, devices: list[tuple[str, str]] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.explanation = explanation_label(EXPLANATION)
        self.load_button = QPushButton("Load model…")
        self.load_button.setToolTip("Open a checkpoint written by `python main.py train` (read as weights only: "
                                    "opening a file cannot run code)")
        self.recent_combo = QComboBox()
        self.recent_combo.setToolTip("Models loaded before, newest first")
        self.recent_combo.setMinimumContentsLength(12)
        self.recent_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.device_combo = QComboBox()
        self.device_combo.setToolTip("Where the network runs: CUDA by default where present, then Apple MPS, "
                                     "else the CPU. Changing it reloads the model there.")
        for dev, label in devices if devices is not None else available_devices():
            self.device_combo.addItem(label, dev)
        self.info = QLabel("No model loaded.")
        self.info.setWordWrap(True)
        self.info.setTextFormat(Qt.TextFormat.RichText)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.class_match = QLabel("")
        self.class_match.setWordWrap(True)
        self.map_button = QPushButton("Map classes…")
        self.map_button.setToolTip("Say which of the dataset's classes each of the model's classes means "
                                   "(or keep the model's own names)")
        self.domain = QLabel("")
        self.domain.setWordWrap(True)
        self.domain.setStyleSheet(NOTE_STYLE)
        self.show_anyway = QCheckBox("Show detections anyway")
        self.show_anyway.setToolTip("Draw the model's detections even on images whose labelled classes it "
                                    "was never trained on")

        top = QHBoxLayout()
        top.addWidget(self.load_button)
        top.addWidget(self.recent_combo, 1)
        form = QFormLayout()
        form.addRow("Device", self.device_combo)
        match_row = QHBoxLayout()
        match_row.addWidget(self.class_match, 1)
        match_row.addWidget(self.map_button, 0, Qt.AlignmentFlag.AlignTop)

        # folder inference
        self.folder_box = QGroupBox("All images of the dataset")
        self.run_folder_button = QPushButton("Run on all images")
        self.run_folder_button.setToolTip("Detect objects in every image of the open dataset, in the background; "
                                          "the detections views then show them for images without a live run")
        self.cancel_folder_button = QPushButton("Cancel")
        self.save_button = QPushButton("Save detections…")
        self.save_button.setToolTip("Write the folder's detections as a `detect` JSON "
                                    "(readable by `python main.py evaluate --detections`)")
        self.folder_progress = QProgressBar()
        self.folder_progress.setRange(0, 1000)
        self.folder_progress.setTextVisible(True)
        self.folder_status = QLabel("")
        self.folder_status.setWordWrap(True)
        fl = QVBoxLayout(self.folder_box)
        row = QHBoxLayout()
        row.addWidget(self.run_folder_button)
        row.addWidget(self.cancel_folder_button)
        fl.addLayout(row)
        fl.addWidget(self.save_button, 0, Qt.AlignmentFlag.AlignLeft)
        fl.addWidget(self.folder_progress)
        fl.addWidget(self.folder_status)

        lay = QVBoxLayout(self)
        lay.addWidget(self.explanation)
        lay.addLayout(top)
        lay.addLayout(form)
        lay.addWidget(self.domain)  # first after the controls: why nothing is drawn on this image
        lay.addWidget(self.show_anyway)
        lay.addWidget(self.status)
        lay.addWidget(self.info)
        lay.addLayout(match_row)
        lay.addWidget(self.folder_box)
        lay.addStretch(1)

        self.load_button.clicked.connect(self.loadRequested)
        self.recent_combo.activated.connect(self._on_recent)
        self.device_combo.activated.connect(lambda _i: self.deviceChosen.emit(self.device()))
        self.map_button.clicked.connect(self.mapClassesRequested)
        self.show_anyway.toggled.connect(self.showAnywayToggled)
        self.run_folder_button.clicked.connect(self.runFolderRequested)
        self.cancel_folder_button.clicked.connect(self.cancelFolderRequested)
        self.save_button.clicked.connect(self.saveDetectionsRequested)
        self.set_class_match("", False)
        self.set_domain_note("", False)
        self.set_folder_running(False, can_run=False, can_save=False)

    # --- filling --------------------------------------------------------------------------------------------
    def device(self) -> str:
        return str(self.device_combo.currentData() or "cpu")

    def devices(self) -> list[str]:
        return [str(self.device_combo.itemData(i)) for i in range(self.device_combo.count())]

    def set_device(self, device: str) -> bool:
        i = self.device_combo.findData(device)
        if i < 0 and device.startswith("cuda"):
            i = next((k for k, d in enumerate(self.devices()) if d.startswith("cuda")), -1)
        if i >= 0:
            self.device_combo.setCurrentIndex(i)
        return i >= 0

    def set_recent(self, paths: list[str]) -> None:
        self.recent_combo.blockSignals(True)
        self.recent_combo.clear()
        if not paths:
            self.recent_combo.addItem("(no recent models)", "")
        for p in paths:
            self.recent_combo.addItem(Path(p).name, p)
            self.recent_combo.setItemData(self.recent_combo.count() - 1, p, Qt.ItemDataRole.ToolTipRole)
        self.recent_combo.setEnabled(bool(paths))
        self.recent_combo.blockSignals(False)

    def _on_recent(self, index: int) -> None:
        path = str(self.recent_combo.itemData(index) or "")
        if path:
            self.recentChosen.emit(path)

    def set_info(self, html_text: str) -> None:
        self.info.setText(html_text)

    def set_status(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet(ERROR_STYLE if error else "")
        self.status.setText(text)

    def set_busy(self, busy: bool) -> None:
        """While a model loads, loading another one is still allowed (the latest request wins)."""
        self.device_combo.setEnabled(not busy or self.device_combo.count() > 1)

    def set_class_match(self, text: str, can_map: bool) -> None:
        self.class_match.setText(text)
        self.class_match.setVisible(bool(text))
        self.map_button.setVisible(can_map)

    def set_domain_note(self, note: str, shown_anyway: bool) -> None:
        self.domain.setText(note)
        self.domain.setVisible(bool(note))
        self.show_anyway.setVisible(bool(note))
        self.show_anyway.blockSignals(True)
        self.show_anyway.setChecked(shown_anyway)
        self.show_anyway.blockSignals(False)

    def set_folder_running(self, running: bool, can_run: bool = True, can_save: bool = False) -> None:
        self.run_folder_button.setEnabled(can_run and not running)
        self.cancel_folder_button.setEnabled(running)
        self.save_button.setEnabled(can_save and not running)
        self.folder_progress.setVisible(running)
        if running:
            self.folder_progress.setValue(0)

    def set_folder_progress(self, fraction: float, text: str = "") -> None:
        self.folder_progress.setValue(round(1000 * max(0.0, min(1.0, fraction))))
        if text:
            self.folder_progress.setFormat(text)

    def set_folder_status(self, text: str, error: bool = False) -> None:
        self.folder_status.setStyleSheet(ERROR_STYLE if error else "")
        self.folder_status.setText(text)
