"""The Dataset Statistics stage: measures the open dataset in a worker and shows it in a bottom dock.

The measurement (``models.data.box_stats``: every annotation and image header read once, then the anchor
coverage of each anchor set on offer) runs in a :class:`app.workers.LatestRunner` thread: a 10,000-image set
takes seconds and must never freeze the window; a new dataset or Recompute replaces a running measurement.
Anchor sets on offer: the loaded model's (when the Model stage has one), the settings ``train`` would choose
from this data with no preset (``models.detection.auto_settings``), and the papers' (128–512 at stride 16).
A click on a problem box opens its image through the window's document and selects the box. The dock starts
hidden and reads nothing until it is shown.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QWidget

from app.canvas import Canvas
from app.stages.base import Stage, make_dock
from app.stages.dataset_stats.panel import AnchorChoice, DatasetStatsPanel
from app.stages.detector_session import DetectorSession
from app.workers import Cancelled, Job, LatestRunner, WorkerPool
from models.data.box_stats import BoxStats, StatsCancelled, anchor_coverage, compute_box_stats
from models.data.datasets import DatasetSource
from models.data.synthetic import is_synthetic_root
from models.detection.anchor_labels import spec_from_model
from models.detection.auto_settings import choose_settings

PAPER = AnchorChoice("paper", "the papers' (VGG scale)", (128.0, 256.0, 512.0), (0.5, 1.0, 2.0), 16, 600, 1000)


@dataclass
class StatsResult:
    """What the worker hands back: the statistics and the anchor sets measured against them."""

    source: DatasetSource
    stats: BoxStats
    choices: list[AnchorChoice]


def _measured(stats: BoxStats, choice: AnchorChoice, job: Job) -> AnchorChoice:
    if not len(stats.boxes):
        return choice
    try:
        cov = anchor_coverage(stats, choice.sizes, choice.ratios, choice.stride, choice.min_size, choice.max_size,
                              cancelled=lambda: job.cancelled)
    except StatsCancelled as exc:
        raise Cancelled() from exc
    return replace(choice, unmatched_share=cov.unmatched_share)


def stats_job(job: Job, source: DatasetSource, model_choice: AnchorChoice | None) -> StatsResult:
    """Read and measure ``source``; coverage of the model's, the data-chosen and the papers' anchors."""
    try:
        stats = compute_box_stats(source, progress=job.progress, cancelled=lambda: job.cancelled)
    except StatsCancelled as exc:
        raise Cancelled() from exc
    choices: list[AnchorChoice] = []
    if model_choice is not None:
        choices.append(model_choice)
    if len(stats.boxes):
        auto = choose_settings(stats, synthetic=is_synthetic_root(Path(source.root)), coverage=False)
        choices.append(AnchorChoice("data", "chosen from this data (train with no preset)",
                                    tuple(auto.anchor_sizes), tuple(auto.anchor_ratios),
                                    int(auto.model["small_stride"]), auto.min_size, auto.max_size))
    choices.append(PAPER)
    job.progress(1.0, "measuring anchor coverage")
    return StatsResult(source, stats, [_measured(stats, c, job) for c in choices])


def coverage_job(job: Job, stats: BoxStats, choice: AnchorChoice) -> AnchorChoice:
    return _measured(stats, choice, job)


def model_choice(model: Any) -> AnchorChoice | None:
    """The loaded detector's anchors and training size, or None (no model, or one without an RPN)."""
    spec = spec_from_model(model)
    if spec is None or not hasattr(model, "min_size"):
        return None
    return AnchorChoice("model", "the loaded model's", tuple(spec.sizes), tuple(spec.ratios), int(spec.stride),
                        int(model.min_size), int(model.max_size))


class DatasetStatsStage(Stage):
    """Bottom dock with the statistics of the open dataset."""

    menu_title = "View"
    dock_area = "bottom"

    #: New statistics are shown (the BoxStats).
    statsReady = Signal(object)
    #: The drawn anchor set changed or got its coverage (the AnchorChoice).
    anchorsShown = Signal(object)

    def __init__(self, canvas: Canvas, session: DetectorSession, window: QWidget | None = None) -> None:
        super().__init__(window)
        self._canvas = canvas
        self._session = session
        self._window = window
        self._source: DatasetSource | None = None
        self.result: StatsResult | None = None
        self.current_key = "data"
        self.panel = DatasetStatsPanel()
        self._dock = make_dock("Dataset Statistics", "dataset_stats_dock", self.panel, window)
        self._pool = WorkerPool(self)
        self._runner = LatestRunner(self._pool, stats_job, self._on_result, self._on_error, self._on_progress,
                                    parent=self)
        self._coverage = LatestRunner(self._pool, coverage_job, self._on_coverage, self._on_error, parent=self)
        self.act_recompute = QAction("Recompute Dataset Statistics", self)
        self.act_recompute.triggered.connect(self.recompute)
        self.panel.recomputeRequested.connect(self.recompute)
        self.panel.anchorsChosen.connect(self.choose_anchors)
        self.panel.problemActivated.connect(self.open_problem)
        session.modelChanged.connect(self._on_model)
        # The host keeps bottom docks closed until asked for (View ▸ Dataset Statistics); nothing is read while
        # nobody looks.
        self._stale = False
        self._dock.visibilityChanged.connect(self._on_visibility)

    def docks(self) -> list[QDockWidget]:
        return [self._dock]

    def actions(self) -> list[QAction]:
        return [self.act_recompute]

    @property
    def busy(self) -> bool:
        return self._runner.busy or self._coverage.busy

    # --- measuring -------------------------------------------------------------------------------------------
    def set_dataset(self, source: DatasetSource | None) -> None:
        self._source = source
        self.result = None
        self._runner.cancel()
        self.panel.show_stats(None, None, None)
        if source is None:
            self.panel.set_busy(False, "No dataset open")
            return
        if self._dock.isVisible():
            self.recompute()
        else:
            self._stale = True
            self.panel.set_busy(False, "Not read yet")

    def _on_visibility(self, visible: bool) -> None:
        if visible and self._stale:
            self.recompute()

    def recompute(self) -> None:
        if self._source is None:
            self.message.emit("Dataset statistics: no dataset open")
            return
        self._stale = False
        self.panel.set_busy(True, f"Reading {len(self._source.entries)} annotations…")
        self._runner.request(self._source, model_choice(self._session.model))

    def _on_progress(self, fraction: float, message: str) -> None:
        self.panel.set_progress(fraction, message)

    def _on_error(self, text: str) -> None:
        if text == "cancelled":
            return
        self.panel.set_busy(False, f"Statistics failed: {text.splitlines()[0]}")
        self.message.emit(f"Dataset statistics failed: {text.splitlines()[0]}")

    def _on_result(self, result: StatsResult) -> None:
        if result.source is not self._source:
            return
        self.result = result
        keys = [c.key for c in result.choices]
        if "model" in keys:
            self.current_key = "model"
        elif self.current_key not in keys:
            self.current_key = keys[0]
        st = result.stats
        unread = f"; {len(st.unreadable)} unreadable (skipped)" if st.unreadable else ""
        self.panel.set_busy(False, f"{st.n_images} images ({st.n_annotated} with boxes), {st.n_boxes} boxes in "
                                   f"{len(st.class_names)} classes, {len(st.problems)} problem boxes{unread}")
        self.panel.set_choices(result.choices, self.current_key)
        self._draw()
        self.statsReady.emit(st)

    def _choice(self) -> AnchorChoice | None:
        if self.result is None:
            return None
        return next((c for c in self.result.choices if c.key == self.current_key), None)

    def _draw(self) -> None:
        choice = self._choice()
        stats = self.result.stats if self.result is not None else None
        scales = stats.training_scales(choice.min_size, choice.max_size) if stats is not None and choice else None
        self.panel.show_stats(stats, choice, scales)
        if choice is not None:
            self.anchorsShown.emit(choice)

    def choose_anchors(self, key: str) -> None:
        self.current_key = str(key)
        self._draw()

    def _on_model(self, model: Any) -> None:
        """A model was loaded: measure its anchors against the statistics already read (no re-reading)."""
        if self.result is None:
            return
        choice = model_choice(model)
        self.result.choices = [c for c in self.result.choices if c.key != "model"]
        if choice is None:
            if self.current_key == "model":
                self.current_key = self.result.choices[0].key
            self.panel.set_choices(self.result.choices, self.current_key)
            self._draw()
            return
        self._coverage.request(self.result.stats, choice)

    def _on_coverage(self, choice: AnchorChoice) -> None:
        if self.result is None:
            return
        self.result.choices = [choice] + [c for c in self.result.choices if c.key != choice.key]
        self.current_key = choice.key
        self.panel.set_choices(self.result.choices, self.current_key)
        self._draw()

    # --- click-through ---------------------------------------------------------------------------------------
    def open_problem(self, row: int) -> bool:
        """Open the image of problem ``row`` and select its box (a box the reader does not show: none)."""
        if not 0 <= row < len(self.panel.problems):
            return False
        p = self.panel.problems[row]
        document = getattr(self._window, "document", None)
        if document is None or document.source is not self._source:
            self.message.emit(f"{p.image_name}: open this dataset in the window to go to the box")
            return False
        if not document.go_to(p.image_index):
            return False
        if p.box_index >= 0:
            self._canvas.model.select([p.box_index])
            self._dock.raise_()
        what = "box" if p.box_index < 0 else f"box {p.box_index + 1}"
        self.message.emit(f"{p.image_name}, {what}: {p.detail}")
        return True

    def shutdown(self) -> None:
        self._runner.cancel()
        self._coverage.cancel()
        self._pool.shutdown()
