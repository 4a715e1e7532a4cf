"""The layers panel: one row per canvas layer with a visibility checkbox and an opacity slider.

Why it listens both ways: later issues add layers at run time (proposals, anchors, detections) and code may
hide a layer itself (e.g. while a job runs), so rows are created on ``Canvas.layerAdded`` and follow the
layer's own ``visibleChanged``/``opacityChanged`` signals instead of keeping a private copy of the state.
Rows are ordered top layer first (highest z), like every paint program.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from app.canvas import Canvas
from app.layers.base import OverlayLayer


class _LayerRow(QWidget):
    def __init__(self, layer: OverlayLayer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layer = layer
        self.checkbox = QCheckBox(layer.name)
        self.checkbox.setToolTip(f"Show or hide the {layer.name} layer")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 100)
        self.slider.setToolTip(f"Opacity of the {layer.name} layer")
        self.slider.setMinimumWidth(60)
        self.percent = QLabel()
        self.percent.setMinimumWidth(36)
        self.percent.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(2, 1, 2, 1)
        lay.addWidget(self.checkbox, 2)
        lay.addWidget(self.slider, 3)
        lay.addWidget(self.percent)
        self._sync()
        self.checkbox.toggled.connect(self._on_checked)
        self.slider.valueChanged.connect(self._on_slider)
        layer.visibleChanged.connect(self._sync)
        layer.opacityChanged.connect(self._sync)

    def _on_checked(self, on: bool) -> None:
        self.layer.setVisible(on)

    def _on_slider(self, value: int) -> None:
        self.layer.setOpacity(value / 100.0)
        self.percent.setText(f"{value}%")

    def _sync(self) -> None:
        """Show the layer's real state without echoing it back."""
        for w in (self.checkbox, self.slider):
            w.blockSignals(True)
        self.checkbox.setChecked(self.layer.isVisible())
        value = round(self.layer.opacity() * 100)
        self.slider.setValue(value)
        self.percent.setText(f"{value}%")
        self.slider.setEnabled(self.layer.isVisible())
        for w in (self.checkbox, self.slider):
            w.blockSignals(False)


class LayersPanel(QWidget):
    """Lists ``canvas.layers()``; rows appear and disappear with ``layerAdded``/``layerRemoved``."""

    def __init__(self, canvas: Canvas, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._canvas = canvas
        self._rows: list[_LayerRow] = []
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(4, 4, 4, 4)
        self._layout.setSpacing(2)
        self._layout.addStretch(1)
        for layer in canvas.layers():
            self._add_row(layer)
        canvas.layerAdded.connect(self._add_row)
        canvas.layerRemoved.connect(self._remove_row)

    def _add_row(self, layer: OverlayLayer) -> None:
        if any(r.layer is layer for r in self._rows):
            return
        row = _LayerRow(layer, self)
        # Insert keeping highest z first; equal z: later-added (painted on top) first.
        pos = 0
        while pos < len(self._rows) and self._rows[pos].layer.zValue() > layer.zValue():
            pos += 1
        self._rows.insert(pos, row)
        self._layout.insertWidget(pos, row)

    def _remove_row(self, layer: OverlayLayer) -> None:
        for row in list(self._rows):
            if row.layer is layer:
                self._rows.remove(row)
                self._layout.removeWidget(row)
                row.deleteLater()

    def layers(self) -> list[OverlayLayer]:
        """The layers as listed, top first."""
        return [r.layer for r in self._rows]

    def row_widgets(self, layer: OverlayLayer) -> tuple[QCheckBox, QSlider]:
        """The visibility checkbox and opacity slider of ``layer`` (for tests and keyboard wiring)."""
        for r in self._rows:
            if r.layer is layer:
                return r.checkbox, r.slider
        raise KeyError(layer.name)
