"""Proposal quality over the whole open dataset: a dialog, and the measurement it runs in a worker thread.

The figures are those of ``python main.py eval-proposals`` (recall at IoU 0.5 / 0.7, average recall over
IoU 0.50:0.05:0.95 and MABO pooled over the ground-truth boxes, difficult and crowd objects left out; boxes
per image; median seconds per image counting the proposal computation on the decoded image, not the
decoding), so a number seen in the app can be reproduced headless. Images or annotation files that cannot be
read are listed and skipped, never fatal.

Every run adds a row to the results table and a curve to each plot (recall vs IoU, recall vs number of
proposals; ``app.proposal_curves``), so runs with other modes or settings compare side by side.

``measure_dataset`` is plain Python (no Qt): it calls ``progress`` and polls ``cancelled`` between images
and, through Selective Search's own hooks, between groupings, so Cancel answers within a fraction of a second.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.proposal_curves import ProposalCurves
from app.workers import Cancelled as JobCancelled
from app.workers import Job, Worker, WorkerPool
from models.data.datasets import DatasetSource
from models.proposals.metrics import CURVE_BUDGETS, ProposalSummary, curve_points, evaluate_dataset
from models.proposals.selective_search import (
    MODES,
    NEAR_DUPLICATES,
    Cancelled,
    default_near_duplicates,
    warm_up,
)

#: Size the dialog opens at: the plots need room, and it must fit a 1400×1000 screen with its frame.
DEFAULT_SIZE = (1120, 820)


@dataclass
class QualityReport:
    """Dataset-level proposal figures plus what was left out and why."""

    images: int = 0
    gt_boxes: int = 0
    boxes_per_image: float = float("nan")
    recall_05: float = float("nan")
    recall_07: float = float("nan")
    mabo: float = float("nan")
    seconds_per_image: float = float("nan")  # median
    skipped: list[str] = field(default_factory=list)
    unannotated: int = 0
    total: int = 0
    mode: str = "fast"
    average_recall: float = float("nan")
    #: The pooled figures behind the numbers above, with every IoU threshold and box budget (the curves).
    summary: ProposalSummary | None = None
    #: The settings of the run in words (the legend and the table's first column).
    label: str = ""

    def as_dict(self) -> dict[str, float | int | None]:
        def fin(v: float) -> float | None:
            return None if isinstance(v, float) and math.isnan(v) else v

        return {"images": self.images, "gt_boxes": self.gt_boxes, "boxes_per_image": fin(self.boxes_per_image),
                "recall@0.5": fin(self.recall_05), "recall@0.7": fin(self.recall_07), "mabo": fin(self.mabo),
                "seconds_per_image": fin(self.seconds_per_image), "ar": fin(self.average_recall)}


def measure_dataset(source: DatasetSource, mode: str = "fast", max_side: int | None = 500, top: int | None = None,
                    seed: int = 0, progress: Callable[[float, str], None] | None = None,
                    cancelled: Callable[[], bool] | None = None,
                    near_duplicates: str | float | None = None) -> QualityReport:
    """Run Selective Search on every image of ``source`` and score it against its annotation.

    Raises ``models.proposals.selective_search.Cancelled`` when ``cancelled()`` turns True.
    """
    warm_up()  # numba compile / cache load: kept out of the per-image seconds
    n = len(source.entries)

    def step(done: int, total: int, name: str) -> None:
        if progress is not None:
            progress(done / max(total, 1), f"{done}/{total} {name}")

    result = evaluate_dataset(source, mode, max_side=max_side, top=top, seed=seed, budgets=CURVE_BUDGETS,
                              near_duplicate_iou=near_duplicates, progress=step, cancelled=cancelled)
    summary = result.summary
    label = f"{mode} · {max_side or 'full'} px" + (f" · top {top}" if top else "") + (f" · seed {seed}" if seed else "")
    if near_duplicates is not None:
        label += f" · {near_duplicates}"
    report = QualityReport(total=n, mode=mode, skipped=list(result.skipped), unannotated=result.unannotated,
                           summary=summary, label=label)
    report.images = summary.images
    report.gt_boxes = summary.gt_boxes
    report.boxes_per_image = summary.boxes_per_image if summary.images else float("nan")
    report.recall_05 = summary.recall[0.5]
    report.recall_07 = summary.recall[0.7]
    report.mabo = summary.mabo
    report.average_recall = summary.average_recall
    report.seconds_per_image = result.seconds_per_image
    if progress is not None:
        progress(1.0, "done")
    return report


def _job(job: Job, source: DatasetSource, mode: str, max_side: int | None, top: int | None, seed: int,
         near_duplicates: str | None = None) -> QualityReport:
    try:
        return measure_dataset(source, mode, max_side, top, seed, job.progress, lambda: job.cancelled,
                               near_duplicates)
    except Cancelled as exc:
        raise JobCancelled() from exc


def _fmt(v: float, digits: int = 4) -> str:
    return "—" if math.isnan(v) else f"{v:.{digits}f}"


#: Columns of the results table: (header, how to read it from a report).
COLUMNS: tuple[tuple[str, Callable[[QualityReport], str]], ...] = (
    ("run", lambda r: r.label),
    ("images", lambda r: str(r.images)),
    ("GT boxes", lambda r: str(r.gt_boxes)),
    ("boxes/img", lambda r: _fmt(r.boxes_per_image, 1)),
    ("recall@0.5", lambda r: _fmt(r.recall_05)),
    ("recall@0.7", lambda r: _fmt(r.recall_07)),
    ("AR", lambda r: _fmt(r.average_recall)),
    ("MABO", lambda r: _fmt(r.mabo)),
    ("s/img (median)", lambda r: _fmt(r.seconds_per_image, 3)),
)


class DatasetQualityDialog(QDialog):
    """Non-modal: choose mode / max side / top N / seed, Start, watch progress, Cancel; read the figures.

    Each finished run adds a table row and a curve to both plots; "Clear" starts the comparison afresh.
    """

    finished_report = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Proposal quality over dataset")
        self.setModal(False)
        self._source: DatasetSource | None = None
        self._pool = WorkerPool(self)
        self._worker: Worker | None = None
        self.report: QualityReport | None = None
        self.reports: list[QualityReport] = []

        # A read-only line edit, not a wrapping label: a long path without spaces cannot wrap and was clipped.
        self.source_edit = QLineEdit("No dataset open")
        self.source_edit.setReadOnly(True)
        self.mode_combo = QComboBox()
        for m in MODES:
            self.mode_combo.addItem(m, m)
        self.mode_combo.setCurrentIndex(self.mode_combo.findData("fast"))
        self.max_side_spin = QSpinBox()
        self.max_side_spin.setRange(16, 8000)
        self.max_side_spin.setValue(500)
        self.max_side_spin.setSuffix(" px")
        self.top_spin = QSpinBox()
        self.top_spin.setRange(0, 100000)
        self.top_spin.setSpecialValueText("all")
        self.top_spin.setToolTip("Score only the N best-ranked boxes of each image (all: every box)")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.dedup_combo = QComboBox()
        for name, iou in NEAR_DUPLICATES.items():
            self.dedup_combo.addItem(f"{name} ({iou:g})", name)
        self._select_mode_dedup()
        self.mode_combo.currentIndexChanged.connect(self._select_mode_dedup)
        self.dedup_combo.setToolTip("Near-duplicates: a box overlapping a better-ranked one at least this much is "
                                    "dropped. compact: fewer boxes, same recall@0.5; balanced; budget: fast mode's default "
                                    "(OpenCV-fast's box count); localise: tighter boxes; "
                                    "exact: the paper's exact deduplication only")
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("dataset", self.source_edit)
        settings_row = QHBoxLayout()
        for text, w in (("mode", self.mode_combo), ("max side", self.max_side_spin), ("top N", self.top_spin),
                        ("seed", self.seed_spin), ("near-duplicates", self.dedup_combo)):
            settings_row.addWidget(QLabel(text))
            settings_row.addWidget(w)
            settings_row.addSpacing(8)
        settings_row.addStretch(1)
        form.addRow("settings", settings_row)

        self.start_button = QPushButton("Start")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.clear_button = QPushButton("Clear runs")
        self.clear_button.setToolTip("Remove every run from the table and the plots")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress_label = QLabel("")
        self.progress_label.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.start_button)
        row.addWidget(self.cancel_button)
        row.addWidget(self.clear_button)
        row.addWidget(self.progress, 1)

        self.curves = ProposalCurves()
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([c for c, _ in COLUMNS])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for c in range(1, len(COLUMNS)):
            self.table.horizontalHeader().setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        self.result_label = QLabel("")  # the last run's figures in one line (also in the table)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result_label.setWordWrap(True)
        self.skipped_text = QPlainTextEdit()
        self.skipped_text.setReadOnly(True)
        self.skipped_text.setPlaceholderText("Unreadable images and annotation files are listed here")
        self.skipped_text.setMaximumHeight(90)
        # room for the header and four runs before the table scrolls: the last result row is never cut off
        rows = self.table.verticalHeader().defaultSectionSize()
        self.table.setMinimumHeight(self.table.horizontalHeader().sizeHint().height() + 4 * rows
                                    + 2 * self.table.frameWidth() + 4)
        lower = QWidget()
        ll = QVBoxLayout(lower)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.table, 3)
        ll.addWidget(self.result_label)
        ll.addWidget(QLabel("Skipped:"))
        ll.addWidget(self.skipped_text)
        # Plots above, table and skipped files below; the user moves the divide (nothing is cut off).
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.curves)
        split.addWidget(lower)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 0)
        split.setChildrenCollapsible(False)
        split.setSizes([520, 240])
        note = QLabel("Difficult (VOC) and crowd (COCO) objects are left out of recall, AR and MABO; images "
                      "without annotations are left out. Same figures as `main.py eval-proposals`.")
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)

        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addLayout(row)
        lay.addWidget(self.progress_label)
        lay.addWidget(split, 1)
        lay.addWidget(note)
        lay.addWidget(buttons)
        self.resize(*DEFAULT_SIZE)

        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.clear_button.clicked.connect(self.clear_runs)
        self._update_buttons()

    @property
    def running(self) -> bool:
        return self._worker is not None

    def set_source(self, source: DatasetSource | None) -> None:
        """The dataset to measure; a run in progress on the previous one is cancelled, earlier runs cleared."""
        if source is not self._source:
            self.cancel()
            if self._source is not None:
                self.clear_runs()  # curves of another dataset do not compare
        self._source = source
        if source is None:
            self.source_edit.setText("No dataset open")
        else:
            self.source_edit.setText(f"{source.root} ({source.kind}, {len(source.entries)} images)")
            self.source_edit.setCursorPosition(0)
        self.source_edit.setToolTip(self.source_edit.text())
        self._update_buttons()

    def clear_runs(self) -> None:
        self.reports.clear()
        self.table.setRowCount(0)
        self.curves.clear()
        self.result_label.setText("")

    def _update_buttons(self) -> None:
        ok = self._source is not None and bool(self._source.entries)
        self.start_button.setEnabled(ok and not self.running)
        self.cancel_button.setEnabled(self.running)
        for w in (self.mode_combo, self.max_side_spin, self.top_spin, self.seed_spin, self.dedup_combo,
                  self.clear_button):
            w.setEnabled(not self.running)

    def _select_mode_dedup(self) -> None:
        """Show the chosen mode's own near-duplicate default (fast: budget, single: localise, quality: exact)."""
        default = default_near_duplicates(str(self.mode_combo.currentData()))
        self.dedup_combo.setCurrentIndex(self.dedup_combo.findData(
            next(n for n, v in NEAR_DUPLICATES.items() if v == default)))

    def start(self) -> None:
        if self._source is None or self.running:
            return
        self.report = None
        self.skipped_text.clear()
        self.progress.setValue(0)
        self.progress_label.setText("starting (compiling kernels on first use)…")
        top = int(self.top_spin.value()) or None
        dedup = str(self.dedup_combo.currentData())
        mode = str(self.mode_combo.currentData())
        self._worker = self._pool.start(_job, self._source, mode,
                                        int(self.max_side_spin.value()), top, int(self.seed_spin.value()),
                                        None if NEAR_DUPLICATES[dedup] == default_near_duplicates(mode) else dedup,
                                        on_progress=self._on_progress, on_result=self._on_result,
                                        on_error=self._on_error, on_finished=self._on_finished)
        self._update_buttons()

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self.progress_label.setText("cancelling…")

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(round(1000 * fraction))
        self.progress_label.setText(message)

    def _on_result(self, report: QualityReport) -> None:
        self.report = report
        report.label = f"{len(self.reports) + 1}. {report.label}"  # two runs with one setting stay apart
        self.reports.append(report)
        self.progress.setValue(1000)
        extra = f", {report.unannotated} without annotations left out" if report.unannotated else ""
        self.progress_label.setText(f"{report.images} of {report.total} images measured "
                                    f"({len(report.skipped)} skipped{extra})")
        row = self.table.rowCount()
        self.table.insertRow(row)
        for c, (_, read) in enumerate(COLUMNS):
            item = QTableWidgetItem(read(report))
            if c:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, c, item)
        self.table.scrollToItem(self.table.item(row, 0))
        self.result_label.setText(" · ".join(f"{name} {read(report)}" for name, read in COLUMNS[1:]))
        if report.summary is not None and report.summary.gt_boxes:
            self.curves.add_run(report.label, curve_points(report.summary))
        self.skipped_text.setPlainText("\n".join(report.skipped))
        self.finished_report.emit(report)

    def _on_error(self, message: str) -> None:
        self.progress_label.setText("cancelled" if message == "cancelled" else f"failed: {message.splitlines()[0]}")

    def _on_finished(self) -> None:
        self._worker = None
        self._update_buttons()

    def shutdown(self) -> None:
        """Cancel a run and wait for its thread (called when the window closes)."""
        self._pool.shutdown()
        self._worker = None

    def closeEvent(self, event) -> None:  # noqa: N802, ANN001 - Qt's name
        self.cancel()
        super().closeEvent(event)


__all__ = ["DatasetQualityDialog", "QualityReport", "measure_dataset"]
