"""Small dialogs of the main window: brightness/contrast for dark images, and job progress."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QProgressDialog,
    QSlider,
    QVBoxLayout,
    QWidget,
)


class BrightnessContrastDialog(QDialog):
    """Display-only adjustment (the pixels a model sees never change); live while sliding."""

    changed = Signal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Brightness and contrast")
        self.brightness = QSlider(Qt.Orientation.Horizontal)
        self.brightness.setRange(-100, 100)
        self.contrast = QSlider(Qt.Orientation.Horizontal)
        self.contrast.setRange(20, 400)  # gain ×0.2 … ×4, in percent
        self.contrast.setValue(100)
        self.values = QLabel()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Reset | QDialogButtonBox.StandardButton.Close)
        buttons.button(QDialogButtonBox.StandardButton.Reset).clicked.connect(self.reset)
        buttons.rejected.connect(self.close)
        form = QFormLayout()
        form.addRow("Brightness", self.brightness)
        form.addRow("Contrast", self.contrast)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.values)
        lay.addWidget(buttons)
        self.brightness.valueChanged.connect(self._emit)
        self.contrast.valueChanged.connect(self._emit)
        self._emit()

    def value(self) -> tuple[float, float]:
        return self.brightness.value() / 100.0, self.contrast.value() / 100.0

    def reset(self) -> None:
        self.brightness.setValue(0)
        self.contrast.setValue(100)

    def _emit(self) -> None:
        b, c = self.value()
        self.values.setText(f"brightness {b:+.2f}, contrast ×{c:.2f}")
        self.changed.emit(b, c)


def progress_dialog(title: str, parent: QWidget | None) -> QProgressDialog:
    """A window-modal progress dialog in 0–1000 steps; the caller connects ``canceled``."""
    dlg = QProgressDialog(title, "Cancel", 0, 1000, parent)
    dlg.setWindowTitle(title)
    dlg.setWindowModality(Qt.WindowModality.WindowModal)
    dlg.setMinimumDuration(300)
    dlg.setAutoClose(False)
    dlg.setAutoReset(False)
    dlg.setValue(0)
    return dlg
