"""Side-panel controls for Selective Search: proposals (mode, seed, top N, colouring, recall read-out) and
the hierarchy playback (strategy, step slider, the similarity terms of the merge at that step).

The two live on two tabs, not one above the other: the dock shares the left side with others and is ~400 px
tall in a 1280×800 window, and stacked, the playback controls sat below the fold behind a scroll bar.
Steps are counted from one everywhere the user reads them (the spin box and "Step N of M"); the slider and
the controller keep the 0-based merge index.

A plain widget: it computes nothing. The controller (``app.proposal_tools``) listens to its signals, runs
Selective Search in a worker and fills the read-outs (``set_recall``, ``set_hover``, ``show_merge``...).
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.layers.proposals import COLOR_BY_IOU, COLOR_BY_RANK, IOU_BANDS
from models.proposals.selective_search import MODES, TERMS, Hierarchy, Merge

#: Boxes shown when a new proposal set arrives (the slider goes up to all of them).
DEFAULT_TOP = 200
#: Milliseconds between two steps while the playback runs.
PLAY_INTERVAL_MS = 120


@dataclass(frozen=True)
class ProposalParams:
    mode: str = "fast"
    seed: int = 0
    max_side: int = 500


def _iou_legend() -> str:
    parts = []
    bounds = [b for b, _, _ in IOU_BANDS] + [1.0]
    for (lo, color, _), hi in zip(IOU_BANDS, bounds[1:], strict=True):
        rng = f"&lt; {hi:g}" if lo == 0 else (f"≥ {lo:g}" if hi >= 1.0 else f"{lo:g}–{hi:g}")
        parts.append(f"<span style='color:{color.name()}'>■</span> IoU {rng}")
    return " &nbsp; ".join(parts)


class ProposalsPanel(QWidget):
    """Proposal and playback controls; the controller reads ``params()``, ``top_n()`` and the widgets."""

    paramsChanged = Signal()
    #: Boxes to show: 0 means all.
    topChanged = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        d = ProposalParams()
        # --- proposals -----------------------------------------------------------------------------------
        self.show_box = QCheckBox("Show proposals")
        self.show_box.setToolTip("Compute Selective Search on the current image and draw its boxes")
        self.mode_combo = QComboBox()
        for m in MODES:
            self.mode_combo.addItem(m, m)
        self.mode_combo.setCurrentIndex(self.mode_combo.findData(d.mode))
        self.mode_combo.setToolTip("single: HSV, one k · fast: HSV/Lab × 3 k × 2 similarity sets, plus Lab "
                                   "k 200 merged by fill (13 groupings) · quality: 5 colour spaces × 6 k × 4 "
                                   "sets (slow)")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setValue(d.seed)
        self.seed_spin.setToolTip("Seed of the randomised ranking: same seed, same order")
        self.max_side_spin = QSpinBox()
        self.max_side_spin.setRange(16, 8000)
        self.max_side_spin.setSingleStep(50)
        self.max_side_spin.setSuffix(" px")
        self.max_side_spin.setValue(d.max_side)
        self.max_side_spin.setToolTip("Work on a copy reduced to at most this many pixels on its longer side")
        self.all_box = QCheckBox("all")
        self.all_box.setToolTip("Show every proposal")
        self.top_slider = QSlider(Qt.Orientation.Horizontal)
        self.top_slider.setRange(1, 1)
        self.top_spin = QSpinBox()
        self.top_spin.setRange(1, 1)
        self.top_slider.setToolTip("Show the N best-ranked proposals")
        self.color_combo = QComboBox()
        self.color_combo.addItem("rank", COLOR_BY_RANK)
        self.color_combo.addItem("best IoU with ground truth", COLOR_BY_IOU)
        self.legend = QLabel()
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setWordWrap(True)
        self.recall_label = QLabel("Recall: —")
        self.recall_label.setWordWrap(True)
        self.recall_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hover_label = QLabel("")
        self.hover_label.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setVisible(False)
        self.status = QLabel("Not computed")
        self.status.setWordWrap(True)

        top_row = QHBoxLayout()
        top_row.addWidget(self.top_slider, 1)
        top_row.addWidget(self.top_spin)
        top_row.addWidget(self.all_box)
        form = QFormLayout()
        form.addRow("mode", self.mode_combo)
        form.addRow("seed", self.seed_spin)
        form.addRow("max side", self.max_side_spin)
        form.addRow("top N", top_row)
        form.addRow("colour by", self.color_combo)
        props_box = QWidget()
        pl = QVBoxLayout(props_box)
        pl.addWidget(self.show_box)
        pl.addLayout(form)
        pl.addWidget(self.legend)
        pl.addWidget(self.recall_label)
        pl.addWidget(self.hover_label)
        pl.addWidget(self.progress)
        pl.addWidget(self.status)

        # --- playback ------------------------------------------------------------------------------------
        self.playback_box = QCheckBox("Show hierarchy playback")
        self.playback_box.setToolTip("Replay how one strategy grouped the regions, merge by merge")
        self.strategy_combo = QComboBox()
        self.strategy_combo.setToolTip("Which grouping (colour space, k, similarity set) to replay")
        self.step_slider = QSlider(Qt.Orientation.Horizontal)
        self.step_slider.setRange(0, 0)
        self.step_spin = QSpinBox()  # 1-based: shows step_slider.value() + 1
        self.step_spin.setRange(1, 1)
        self.step_spin.setToolTip("Merge step, counted from 1")
        self.play_button = QPushButton("Play")
        self.play_button.setCheckable(True)
        self.merge_label = QLabel("")
        self.merge_label.setWordWrap(True)
        self.merge_label.setTextFormat(Qt.TextFormat.RichText)
        grid = QGridLayout()
        self.term_labels: dict[str, QLabel] = {}
        for row, name in enumerate((*TERMS, "total")):
            name_label = QLabel(name)
            value = QLabel("—")
            value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            grid.addWidget(name_label, row, 0)
            grid.addWidget(value, row, 1)
            self.term_labels[name] = value
        step_row = QHBoxLayout()
        step_row.addWidget(self.step_slider, 1)
        step_row.addWidget(self.step_spin)
        step_row.addWidget(self.play_button)
        play_form = QFormLayout()  # the step controls first: they stay on screen in a short dock
        play_form.addRow("step", step_row)
        play_form.addRow("strategy", self.strategy_combo)
        terms_box = QGroupBox("Similarity of the merged pair")
        terms_box.setLayout(grid)
        self.playback_page = QWidget()
        gl = QVBoxLayout(self.playback_page)
        gl.addLayout(play_form)
        gl.addWidget(self.playback_box)
        gl.addWidget(self.merge_label)
        gl.addWidget(terms_box)
        gl.addStretch(1)
        pl.addStretch(1)
        self.proposals_page = props_box

        self.tabs = QTabWidget()
        self.tabs.addTab(self.proposals_page, "Proposals")
        self.tabs.addTab(self.playback_page, "Hierarchy playback")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.tabs)

        self._timer = QTimer(self)
        self._timer.setInterval(PLAY_INTERVAL_MS)
        self._timer.timeout.connect(self._advance)

        self.mode_combo.currentIndexChanged.connect(self.paramsChanged)
        self.seed_spin.valueChanged.connect(self.paramsChanged)
        self.max_side_spin.valueChanged.connect(self.paramsChanged)
        self.top_slider.valueChanged.connect(self.top_spin.setValue)
        self.top_spin.valueChanged.connect(self.top_slider.setValue)
        self.top_slider.valueChanged.connect(self._emit_top)
        self.all_box.toggled.connect(self._emit_top)
        self.color_combo.currentIndexChanged.connect(self._update_legend)
        self.step_slider.valueChanged.connect(self._slider_to_spin)
        self.step_spin.valueChanged.connect(self._spin_to_slider)
        self.playback_box.toggled.connect(self._reveal_playback)
        self.play_button.toggled.connect(self._on_play)
        self._update_legend()
        self.set_count(0)

    # --- proposals -----------------------------------------------------------------------------------------
    def params(self) -> ProposalParams:
        return ProposalParams(str(self.mode_combo.currentData()), int(self.seed_spin.value()),
                              int(self.max_side_spin.value()))

    def color_by(self) -> str:
        return str(self.color_combo.currentData())

    def top_n(self) -> int:
        """Boxes to show; 0 = all."""
        return 0 if self.all_box.isChecked() else int(self.top_slider.value())

    def set_count(self, n: int) -> None:
        """A new proposal set of ``n`` boxes: the slider spans 1..n, keeping the chosen N where it fits."""
        keep = self.top_slider.value() if self.top_slider.maximum() > 1 else DEFAULT_TOP
        for w in (self.top_slider, self.top_spin):
            w.blockSignals(True)
            w.setRange(1, max(1, n))
            w.setValue(min(max(1, keep), max(1, n)))
            w.blockSignals(False)
        enabled = n > 0 and not self.all_box.isChecked()
        self.top_slider.setEnabled(enabled)
        self.top_spin.setEnabled(enabled)
        self._emit_top()

    def _emit_top(self, *_: object) -> None:
        self.top_slider.setEnabled(not self.all_box.isChecked() and self.top_slider.maximum() > 1)
        self.top_spin.setEnabled(self.top_slider.isEnabled())
        self.topChanged.emit(self.top_n())

    def _update_legend(self, *_: object) -> None:
        if self.color_by() == COLOR_BY_IOU:
            self.legend.setText(_iou_legend())
        else:
            self.legend.setText("<span style='color:#ff2020'>■</span> best ranked → "
                                "<span style='color:#a040ff'>■</span> last shown")

    def set_recall(self, text: str) -> None:
        self.recall_label.setText(text)

    def set_hover(self, text: str) -> None:
        self.hover_label.setText(text)

    def set_status(self, text: str) -> None:
        self.status.setText(text)

    def set_progress(self, fraction: float | None) -> None:
        """Show a fraction 0..1, or hide the bar with None."""
        self.progress.setVisible(fraction is not None)
        if fraction is not None:
            self.progress.setValue(round(100 * max(0.0, min(1.0, fraction))))

    # --- playback ------------------------------------------------------------------------------------------
    def set_hierarchies(self, hierarchies: list[Hierarchy]) -> None:
        """Fill the strategy combo (keeping the chosen index when it still exists)."""
        keep = max(0, self.strategy_combo.currentIndex())
        self.strategy_combo.blockSignals(True)
        self.strategy_combo.clear()
        for i, h in enumerate(hierarchies):
            self.strategy_combo.addItem(f"{i + 1}. {h.strategy.name} ({h.n_initial} regions)", i)
        self.strategy_combo.setCurrentIndex(min(keep, len(hierarchies) - 1) if hierarchies else -1)
        self.strategy_combo.blockSignals(False)

    def reveal_playback(self) -> None:
        """Bring the playback tab to the front (when playback is switched on from anywhere)."""
        self.tabs.setCurrentWidget(self.playback_page)

    def _reveal_playback(self, on: bool) -> None:
        if on:
            self.reveal_playback()

    def _slider_to_spin(self, step: int) -> None:
        self.step_spin.setValue(step + 1)

    def _spin_to_slider(self, shown: int) -> None:
        self.step_slider.setValue(shown - 1)

    def set_steps(self, n_steps: int) -> None:
        """Slider range 0..n_steps-1 (merge index), spin box 1..n_steps (as read); back to the first step."""
        self.play_button.setChecked(False)
        last = max(0, n_steps - 1)
        for w, lo in ((self.step_slider, 0), (self.step_spin, 1)):
            w.blockSignals(True)
            w.setRange(lo, last + lo)
            w.setValue(lo)
            w.blockSignals(False)
        self.step_slider.setEnabled(n_steps > 0)
        self.step_spin.setEnabled(n_steps > 0)
        self.play_button.setEnabled(n_steps > 1)

    def show_merge(self, merge: Merge | None, hierarchy: Hierarchy | None, region_count: int) -> None:
        """The read-out of merge step ``merge.step``: which pair, how similar by each term, the new box."""
        if merge is None or hierarchy is None:
            self.merge_label.setText("No merge to show" if hierarchy is not None else "")
            for v in self.term_labels.values():
                v.setText("—")
            return
        x1, y1, x2, y2 = merge.box
        self.merge_label.setText(
            f"Step {merge.step + 1} of {hierarchy.n_steps} · {region_count} regions → {region_count - 1}<br>"
            f"merging <b style='color:#ff8c00'>{merge.a}</b> + <b style='color:#00d2ff'>{merge.b}</b> → "
            f"{merge.new_region}, box {x2 - x1:.0f}×{y2 - y1:.0f} px")
        flags = hierarchy.strategy.flags
        for i, name in enumerate(TERMS):
            used = "" if flags[i] else " (unused)"
            self.term_labels[name].setText(f"{merge.terms[name]:.3f}{used}")
        self.term_labels["total"].setText(f"{merge.similarity:.3f}")

    def _on_play(self, on: bool) -> None:
        self.play_button.setText("Pause" if on else "Play")
        if on:
            if self.step_slider.value() >= self.step_slider.maximum():
                self.step_slider.setValue(0)
            self._timer.start()
        else:
            self._timer.stop()

    def _advance(self) -> None:
        if self.step_slider.value() >= self.step_slider.maximum():
            self.play_button.setChecked(False)
            return
        self.step_slider.setValue(self.step_slider.value() + 1)


__all__ = ["DEFAULT_TOP", "ProposalParams", "ProposalsPanel"]
