"""Side panel of the RoI pooling grid: which RoI, which channel, the read-out and two heat maps.

A plain widget: it computes nothing. The stage (``app.stages.roi_grid.stage``) fills it from a
:class:`models.detection.roi_explain.RoiPoolingExplanation` through :meth:`RoiGridPanel.show_explanation`.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QCheckBox, QFormLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from app.layers.heat_map import HeatMapWidget
from app.layers.roi_grid import ARGMAX_COLOR, BIN_COLOR, REGION_COLOR, ROI_COLOR, SAMPLE_COLOR
from app.stages.base import explanation_label
from models.detection.roi_explain import ChannelView, RoiPoolingExplanation

EXPLANATION = (
    "RoI pooling turns a proposal of any size into the fixed H×W grid the detection head's fully connected "
    "layers need, reading the backbone's feature map once for all proposals instead of re-running the "
    "network on every crop (Fast R-CNN). Max pooling divides the RoI by the stride, rounds it to whole "
    "feature cells and keeps each bin's maximum; RoIAlign rounds nothing and averages bilinear samples at "
    "fractional positions, so small objects are not shifted by up to a cell. Click a RoI on the image.")


class RoiGridPanel(QWidget):
    """RoI and channel selectors, the geometry read-out, the feature map under the RoI and the pooled output."""

    #: The RoI index (into the trace's proposals) chosen in the spin box.
    roiChosen = Signal(int)
    #: The channel to show: -1 for the mean over channels.
    channelChosen = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.domain_label = QLabel()
        self.domain_label.setWordWrap(True)
        self.domain_label.setStyleSheet("color: #d06000;")
        self.domain_label.setVisible(False)
        self.show_box = QCheckBox("Show RoI grid (click a RoI on the image to pick it)")
        self.others_box = QCheckBox("Outline every RoI faintly")
        self.roi_spin = QSpinBox()
        self.roi_spin.setRange(0, 0)
        self.roi_spin.setEnabled(False)
        self.roi_spin.setToolTip("Step through the RoIs the head pooled (the proposals, best objectness first)")
        self.channel_spin = QSpinBox()
        self.channel_spin.setRange(-1, 0)
        self.channel_spin.setValue(-1)
        self.channel_spin.setSpecialValueText("mean of all channels")
        self.channel_spin.setToolTip("Feature-map channel shown; the lowest value shows the mean over channels")
        self.readout = QLabel("No model trace: load a model and run it on this image.")
        self.readout.setWordWrap(True)
        self.readout.setTextFormat(self.readout.textFormat().RichText)
        self.feature_map = HeatMapWidget("Feature map under the RoI")
        self.pooled_map = HeatMapWidget("Pooled output")
        self.feature_map.setMinimumHeight(240)
        self.pooled_map.setMinimumHeight(180)
        self.legend = QLabel(self._legend())
        self.legend.setWordWrap(True)

        form = QFormLayout()
        form.addRow("RoI", self.roi_spin)
        form.addRow("channel", self.channel_spin)
        lay = QVBoxLayout(self)
        lay.addWidget(explanation_label(EXPLANATION))
        lay.addWidget(self.domain_label)
        lay.addWidget(self.show_box)
        lay.addWidget(self.others_box)
        lay.addLayout(form)
        lay.addWidget(self.readout)
        lay.addWidget(self.legend)
        lay.addWidget(self.feature_map, 2)
        lay.addWidget(self.pooled_map, 1)
        lay.addStretch(0)
        self.roi_spin.valueChanged.connect(self.roiChosen)
        self.channel_spin.valueChanged.connect(self.channelChosen)

    @staticmethod
    def _legend() -> str:
        def sw(c: QColor, text: str) -> str:
            return f"<span style='color:{c.name()}'>■</span> {text}"
        return " &nbsp; ".join([sw(ROI_COLOR, "RoI"), sw(REGION_COLOR, "region the bins divide"),
                                sw(BIN_COLOR, "bins"), sw(ARGMAX_COLOR, "arg-max cell / sample point"),
                                "<span style='color:#ff8c00'>■</span> cell read by several bins (count)"])

    # --- state from the stage ------------------------------------------------------------------------------
    def set_domain_note(self, note: str) -> None:
        """The session's domain note ("" hides it): the model does not know this image's classes."""
        self.domain_label.setText(note)
        self.domain_label.setVisible(bool(note))

    def set_roi_count(self, n: int) -> None:
        """How many RoIs there are to choose from (0: none, the spin box is disabled)."""
        self.roi_spin.blockSignals(True)
        self.roi_spin.setRange(0, max(n - 1, 0))
        self.roi_spin.setEnabled(n > 0)
        self.roi_spin.blockSignals(False)

    def set_roi_index(self, index: int) -> None:
        """Show ``index`` in the spin box without asking for it again."""
        self.roi_spin.blockSignals(True)
        self.roi_spin.setValue(index)
        self.roi_spin.blockSignals(False)

    def set_channel_count(self, c: int) -> None:
        self.channel_spin.blockSignals(True)
        self.channel_spin.setRange(-1, max(c - 1, -1))
        self.channel_spin.blockSignals(False)

    def channel(self) -> int | None:
        v = self.channel_spin.value()
        return None if v < 0 else v

    def set_message(self, text: str) -> None:
        self.readout.setText(text)
        self.feature_map.clear()
        self.pooled_map.clear()

    def show_explanation(self, e: RoiPoolingExplanation, view: ChannelView, index: int, total: int,
                         score: float | None = None) -> None:
        """Fill the read-out and both heat maps for RoI ``index`` of ``total``."""
        text = readout_text(e, index, total, score)
        if view.argmax_share is not None and view.channel is None:
            ok = view.argmax_cells[..., 0] >= 0
            share = float(view.argmax_share[ok].mean()) if ok.any() else 0.0
            text += (f"<br>Red squares: in each bin, the cell most channels take their maximum from "
                     f"({100 * share:.0f}% of channels on average); pick a channel to see its own.")
        self.readout.setText(text)
        ch = "mean of all channels" if view.channel is None else f"channel {view.channel}"
        wx1, wy1 = e.window[0], e.window[1]
        fm = self.feature_map
        fm.set_title(f"Feature map under the RoI ({ch})")
        fm.set_map(view.window_map, origin=(wx1, wy1))
        fm.add_rects(e.region[None], REGION_COLOR, 1.5)
        fm.add_rects(e.bins.reshape(-1, 4), BIN_COLOR, 1.0)
        wy2, wx2 = wy1 + view.window_map.shape[0], wx1 + view.window_map.shape[1]
        fm.set_cell_numbers(e.bins_per_cell[wy1:wy2, wx1:wx2])
        if view.argmax_cells is not None:
            ok = view.argmax_cells[..., 0] >= 0
            fm.add_markers(view.argmax_cells[ok].astype(np.float64) + 0.5, ARGMAX_COLOR, kind="cell")
        if e.sample_points is not None:
            fm.add_markers(e.sample_points.reshape(-1, 2), SAMPLE_COLOR, 5.0)
        op = self.pooled_map
        ph, pw = e.output_size
        what = "max" if e.method == "pool" else f"mean of {e.sampling_ratio}×{e.sampling_ratio} samples"
        mean = "; mean over channels" if view.channel is None else ""
        op.set_title(f"Pooled {ph}×{pw} output (each bin's {what}{mean})")
        op.set_map(view.pooled, show_values=True)


def readout_text(e: RoiPoolingExplanation, index: int, total: int, score: float | None = None) -> str:
    """The geometry of one explanation in a few lines (rich text)."""
    stride = 1.0 / e.spatial_scale
    x1, y1, x2, y2 = (float(v) for v in e.roi)
    f = e.roi_on_features
    ph, pw = e.output_size
    r = e.region
    lines = [f"<b>RoI {index + 1} of {total}</b>" + (f" · objectness {score:.2f}" if score is not None else ""),
             f"input pixels ({x1:.1f}, {y1:.1f}) – ({x2:.1f}, {y2:.1f}), {x2 - x1:.0f}×{y2 - y1:.0f}",
             f"÷ stride {stride:g} → cells ({f[0]:.2f}, {f[1]:.2f}) – ({f[2]:.2f}, {f[3]:.2f})"]
    if e.method == "pool":
        lines.append(f"RoI max pooling rounds to cells x {r[0]:.0f}..{r[2] - 1:.0f}, y {r[1]:.0f}..{r[3] - 1:.0f} "
                     f"({r[2] - r[0]:.0f}×{r[3] - r[1]:.0f} cells) → {ph}×{pw} bins")
    else:
        lines.append(f"RoIAlign keeps ({r[0]:.2f}, {r[1]:.2f}) – ({r[2]:.2f}, {r[3]:.2f}): "
                     f"{(r[2] - r[0]) / pw:.2f}×{(r[3] - r[1]) / ph:.2f} cells per bin, "
                     f"{e.sampling_ratio}×{e.sampling_ratio} bilinear samples each")
    if e.shared_cells:
        lines.append(f"<span style='color:#ff8c00'>{e.shared_cells} cells are read by more than one bin "
                     f"(up to {int(e.bins_per_cell.max())})</span>"
                     + (": the RoI is smaller than the grid, neighbouring bins repeat the same values"
                        if (r[2] - r[0]) < pw or (r[3] - r[1]) < ph else ""))
    if e.empty_bins:
        lines.append(f"{e.empty_bins} bins lie off the feature map and give 0")
    return "<br>".join(lines)


__all__ = ["EXPLANATION", "RoiGridPanel", "readout_text"]
