"""The evaluation view: AP per class, PR curves, confusion matrix and worst images of a model or a detections
file on the open dataset (or one of its splits), with a click from each worst image to the image itself.

Work happens in workers (:mod:`app.stages.evaluation.jobs`): running the model over the images (progress,
cancel), reading a detections file, and re-scoring at another IoU or score threshold (latest request wins;
the network is not run again). Scoring is :mod:`models.detection.evaluation_report`: the AP is
``evaluate``'s, and the per-image counts come from the matching the Detections view uses — so when a worst
image opens, this view sets the Detections view to the same score threshold and IoU, and its TP/FP/missed
counts for the class are the ones listed here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QFileDialog, QWidget

from app.canvas import Canvas
from app.proposal_tools import LatestRunner
from app.stages.base import Stage, make_dock
from app.stages.detector_session import DetectorSession
from app.stages.evaluation.jobs import (
    FROM_FILE,
    FROM_MODEL,
    EvaluationOutcome,
    EvaluationRequest,
    evaluation_job,
    rescore_job,
)
from app.stages.evaluation.panel import EvaluationPanel
from app.workers import Worker, WorkerPool, error_summary
from models.data.datasets import DatasetSource
from models.data.edited_source import with_annotations
from models.detection.error_analysis import WorstImage
from models.detection.evaluation_report import (
    EvaluationReport,
    ap_table_rows,
    pr_curve_rows,
    worst_rows,
    write_csv,
)


def unsaved_annotations(document: Any, source: DatasetSource | None) -> dict[Path, Any]:
    """Image path → in-memory annotation of every image of ``source`` the window's document holds unsaved
    edits for (none when the document shows another dataset)."""
    if document is None or source is None or getattr(document, "source", None) is None:
        return {}
    if Path(document.source.root).resolve() != Path(source.root).resolve():
        return {}
    entries = document.entries
    return {entries[i].path: st.annotation for i, st in sorted(document.states.items())
            if st.dirty and 0 <= i < len(entries)}


def _fmt(v: float | None) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


class EvaluationStage(Stage):
    """Controller of the evaluation view (see the module docstring)."""

    menu_title = "Detector"
    dock_area = "bottom"

    #: An evaluation ended and is shown (the :class:`EvaluationReport`), or None (cancelled, failed).
    evaluated = Signal(object)
    #: A re-score at new thresholds is shown (the new report).
    rescored = Signal(object)

    def __init__(self, canvas: Canvas, session: DetectorSession, window: QWidget | None = None,
                 detections: Any = None, class_map: Callable[[], dict[str, str]] | None = None) -> None:
        super().__init__(window)
        #: The Model stage's mapping of the model's class names onto the dataset's (model name → dataset
        #: name), read when an evaluation starts: the view scores what the Detections view shows.
        self._class_map = class_map
        self._canvas = canvas
        self._session = session
        self._window = window
        #: The Detections stage, set up to match this view when a worst image opens (None in bare tests).
        self._detections = detections
        self._source: DatasetSource | None = None
        self._dock: QDockWidget | None = None
        self._worker: Worker | None = None
        self._outcome: EvaluationOutcome | None = None
        self._ended: EvaluationReport | None = None
        self.report: EvaluationReport | None = None
        self.file_path = ""
        self._class = ""
        self._worst: list[WorstImage] = []
        self._pool = WorkerPool(self)
        self._rescorer = LatestRunner(self._pool, rescore_job, self._on_rescored, on_error=self._on_rescore_error,
                                      parent=self)
        self.panel = EvaluationPanel()
        self.evaluate_action = QAction("&Evaluate on the Dataset…", window or self)
        self.evaluate_action.setToolTip("AP per class, PR curves, confusion matrix and worst images of the loaded "
                                        "model on the open dataset (bottom panel)")
        self.evaluate_action.triggered.connect(self._evaluate_from_menu)
        p = self.panel
        p.evaluate_button.clicked.connect(self.evaluate)
        p.cancel_button.clicked.connect(self.cancel)
        p.file_button.clicked.connect(self.ask_file)
        p.thresholdsChanged.connect(self._request_rescore)
        p.ap_table.itemSelectionChanged.connect(self._on_ap_selection)
        p.worst_table.itemSelectionChanged.connect(self._on_worst_selection)
        p.worst_order.currentIndexChanged.connect(lambda _i: self._fill_worst())
        p.confusion.cellClicked.connect(self._on_confusion_click)
        p.curves.classClicked.connect(self.select_class)
        p.ap_export.clicked.connect(lambda: self._ask_save("AP table", "evaluation_ap.csv", self.export_ap_csv))
        p.worst_export.clicked.connect(lambda: self._ask_save("worst images", "evaluation_worst.csv",
                                                              self.export_worst_csv))
        p.confusion_export.clicked.connect(lambda: self._ask_save("confusion matrix", "evaluation_confusion.csv",
                                                                  self.export_confusion_csv))
        p.png_button.clicked.connect(lambda: self._ask_save("curves", "pr_curves.png", self.export_curves))
        p.svg_button.clicked.connect(lambda: self._ask_save("curves", "pr_curves.svg", self.export_curves))
        session.modelChanged.connect(lambda _m: self._sync())
        self._sync()

    # --- host API --------------------------------------------------------------------------------------------
    def docks(self) -> list[QDockWidget]:
        if self._dock is None:
            self._dock = make_dock("Evaluation", "evaluation_dock", self.panel, self._window)
        return [self._dock]

    def actions(self) -> list[QAction]:
        return [self.evaluate_action]

    def set_dataset(self, source: DatasetSource | None) -> None:
        self._source = source
        names = sorted(source.splits) if source is not None and source.splits else ["test", "train"]
        self.panel.set_splits(names)
        self._sync()

    def shutdown(self) -> None:
        self._rescorer.cancel()
        self._pool.shutdown()
        self._worker = None

    # --- state ----------------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._worker is not None

    @property
    def chosen_class(self) -> str:
        return self._class

    @property
    def worst(self) -> list[WorstImage]:
        """The worst-images list shown (for :attr:`chosen_class`)."""
        return list(self._worst)

    def _sync(self) -> None:
        has_data = self._source is not None and bool(self._source.entries)
        self.evaluate_action.setEnabled(has_data and self._session.model is not None and not self.running)
        for b in (self.panel.ap_export, self.panel.worst_export, self.panel.confusion_export,
                  self.panel.png_button, self.panel.svg_button):
            b.setEnabled(self.report is not None)

    # --- running --------------------------------------------------------------------------------------------
    def ask_file(self) -> None:
        start = str(self._source.root) if self._source is not None else ""
        path, _ = QFileDialog.getOpenFileName(self._window, "Detections to evaluate", start,
                                              "Detections (*.json);;All files (*)")
        if path:
            self.set_file(path)

    def set_file(self, path: str | Path) -> None:
        """Evaluate detections from ``path`` from now on (a COCO results JSON or a ``detect`` JSON)."""
        self.file_path = str(path)
        self.panel.set_mode(FROM_FILE)
        self.panel.file_label.setText(Path(path).name)
        self.panel.file_label.setToolTip(str(path))

    def _evaluate_from_menu(self) -> None:
        if self._dock is not None:
            self._dock.show()
            self._dock.raise_()
        self.panel.set_mode(FROM_MODEL)
        self.evaluate()

    def evaluate(self) -> Worker | None:
        """Start evaluating what the panel says, in a worker (None, with the reason shown, when it cannot)."""
        if self.running:
            return None
        mode = self.panel.mode()
        if self._source is None or not self._source.entries:
            self.panel.set_status("Open a dataset with ground truth first.", error=True)
            return None
        if mode == FROM_MODEL and self._session.model is None:
            self.panel.set_status("No model is loaded: load one in the Model panel (Detector menu), or choose "
                                  "'a detections file'.", error=True)
            return None
        if mode == FROM_FILE and not self.file_path:
            self.panel.set_status("Choose a detections file first.", error=True)
            return None
        model_name = Path(self._session.model_path).name if self._session.model_path else "the model"
        # Ground truth as the user sees it: edits not yet written (autosave pending, a read-only folder)
        # replace those images' files, copied now so that editing on while the worker reads is safe.
        edits = unsaved_annotations(getattr(self._window, "document", None), self._source)
        source = with_annotations(self._source, edits)
        mapping = dict(self._class_map() or {}) if self._class_map is not None and mode == FROM_MODEL else {}
        req = EvaluationRequest(mode, source, self.panel.split(), self._session.model, model_name,
                                self.file_path, self.panel.iou_threshold(), self.panel.score_threshold(),
                                self.panel.eleven_box.isChecked(), self.panel.coco_box.isChecked(),
                                class_map=mapping, unsaved_images=len(edits))
        self._rescorer.cancel()
        self.panel.set_running(True)
        self.panel.set_progress(0.0, "starting")
        what = model_name if mode == FROM_MODEL else Path(self.file_path).name
        self.panel.set_status(f"Evaluating {what}…")
        self._worker = self._pool.start(evaluation_job, req, on_progress=self.panel.set_progress,
                                        on_result=self._on_result, on_error=self._on_error,
                                        on_finished=self._on_finished)
        self._sync()
        return self._worker

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self.panel.set_status("Cancelling…")

    def _on_result(self, outcome: EvaluationOutcome) -> None:
        self._outcome = outcome
        if outcome.loaded is not None:
            # The Detections view shows the file's boxes on each image, as scored here.
            self._session.set_stored_detections(outcome.loaded.by_path, Path(outcome.loaded.path).name)
        problems = outcome.report.inputs.problems
        status = (f"{len(problems)} note(s): {problems[0]}" if problems else "")
        if outcome.notes:
            status = " ".join(outcome.notes + ([status] if status else []))
        self.panel.set_status(status, error=False)
        self.show_report(outcome.report)
        r = outcome.report.result
        self.message.emit(f"Evaluation: mAP@{r.iou_threshold:g} {_fmt(r.mAP)} on {r.n_images} images "
                          f"in {outcome.seconds:.1f} s")
        self._ended = outcome.report

    def _on_error(self, message: str) -> None:
        if message == "cancelled":
            self.panel.set_status("Cancelled; the previous results (if any) are still shown.")
        else:
            text = error_summary(message)
            self.panel.set_status(f"Evaluation failed: {text}", error=True)
            self.message.emit(f"Evaluation failed: {text}")
        self._ended = None

    def _on_finished(self) -> None:
        """The worker is gone: the panel is usable again, then ``evaluated`` (so a handler may start more)."""
        self._worker = None
        self.panel.set_running(False)
        self._sync()
        ended, self._ended = self._ended, None
        if ended is not None and (ended.iou_threshold != self.panel.iou_threshold()
                                  or ended.score_threshold != self.panel.score_threshold()):
            self._request_rescore()  # the thresholds were changed while the model ran
        self.evaluated.emit(ended)

    # --- re-scoring -----------------------------------------------------------------------------------------
    def _request_rescore(self) -> None:
        if self.report is None or self.running:
            return
        self._rescorer.request(self.report, self.panel.iou_threshold(), self.panel.score_threshold())

    def _on_rescored(self, report: EvaluationReport) -> None:
        self.show_report(report)
        self.rescored.emit(report)

    def _on_rescore_error(self, message: str) -> None:
        self.panel.set_status(f"Re-scoring failed: {error_summary(message)}", error=True)

    # --- showing --------------------------------------------------------------------------------------------
    def show_report(self, report: EvaluationReport) -> None:
        """Fill the table, the curves, the matrix and the worst images from ``report``."""
        self.report = report
        r = report.result
        p = self.panel
        coco = (f" · COCO AP@[.5:.95] <b>{_fmt(r.coco_AP)}</b>, AP50 {_fmt(r.coco_AP50)}, AP75 {_fmt(r.coco_AP75)}"
                if r.coco_AP is not None else "")
        took = f" · {self._outcome.seconds:.1f} s" if self._outcome is not None else ""
        p.summary_label.setText(f"<b>mAP@{r.iou_threshold:g}</b> ({r.interpolation}) <b>{_fmt(r.mAP)}</b>"
                                f"{coco} — {report.description}{took}")
        p.ap_table.set_rows(ap_table_rows(report))
        cm = report.analysis.confusion
        p.confusion.set_matrix(cm.rows())
        p.confusion_label.setText(f"Detections scoring ≥ {cm.score_threshold:g}, matched at IoU > "
                                  f"{cm.iou_threshold:g} (background: IoU < {cm.background_iou:g} with every "
                                  "object). Rows: ground truth; columns: predicted class or missed.")
        classes = report.classes
        chosen = self._class if self._class in classes else self._default_class(report)
        p.curves.show_result(r, report.score_threshold, chosen)
        self._class = ""
        self.select_class(chosen)
        self._sync()

    @staticmethod
    def _default_class(report: EvaluationReport) -> str:
        """The evaluated class with the lowest AP: where a user wants to look first."""
        r = report.result
        evaluated = [c for c in r.classes_evaluated if not math.isnan(r.AP[c])]
        return min(evaluated, key=lambda c: r.AP[c]) if evaluated else (report.classes[0] if report.classes else "")

    def select_class(self, name: str) -> None:
        """Choose ``name``: its row selected, its curve thick, its worst images listed."""
        if self.report is None or name not in self.report.classes:
            return
        self._class = name
        row = self.report.classes.index(name)
        self.panel.ap_table.select_row_silently(row)
        self.panel.curves.choose(name)
        self._fill_worst()
        self.panel.tabs.setCurrentIndex(self.panel.worst_tab)

    def _fill_worst(self) -> None:
        p = self.panel
        if self.report is None or not self._class:
            self._worst = []
            p.worst_table.set_rows([])
            return
        self._worst = self.report.worst_images(self._class, p.worst_by())
        p.worst_table.set_rows(worst_rows(self._worst))
        p.worst_table.setColumnHidden(1, True)  # the class: the same on every row, named in the label above
        p.worst_label.setText(f"Worst images of <b>{self._class}</b>: {len(self._worst)} with errors "
                              f"(score ≥ {self.report.score_threshold:g})")

    def _on_ap_selection(self) -> None:
        row = self.panel.ap_table.current_row()
        if self.report is not None and 0 <= row < len(self.report.classes):
            self.select_class(self.report.classes[row])

    def _on_confusion_click(self, row: int, column: int) -> None:
        if self.report is None:
            return
        classes = self.report.analysis.confusion.classes
        name = classes[row] if row < len(classes) else (classes[column] if column < len(classes) else "")
        if name:
            self.select_class(name)

    def _on_worst_selection(self) -> None:
        row = self.panel.worst_table.current_row()
        if 0 <= row < len(self._worst):
            self.open_worst(row)

    def open_worst(self, row: int) -> None:
        """Show worst image ``row`` in the window with the Detections layer on, set to this view's thresholds."""
        if not 0 <= row < len(self._worst) or self.report is None:
            return
        w = self._worst[row]
        self._set_up_detections_view()
        self.imageRequested.emit(w.index)
        self.message.emit(f"{w.name}: {w.false_positives} false positive(s) and {w.missed} missed "
                          f"{w.class_name} (score ≥ {self.report.score_threshold:g}, IoU > "
                          f"{self.report.iou_threshold:g})")

    def _set_up_detections_view(self) -> None:
        stage = self._detections
        if stage is None or self.report is None:
            return
        from app.stages.detections.panel import COLOR_BY_OUTCOME

        dp = stage.panel
        dp.set_score_threshold(self.report.score_threshold)
        dp.iou_spin.setValue(self.report.iou_threshold)
        dp.color_combo.setCurrentIndex(max(0, dp.color_combo.findData(COLOR_BY_OUTCOME)))
        dp.missed_box.setChecked(True)
        dp.show_box.setChecked(True)
        stage.layer.setVisible(True)

    # --- export ---------------------------------------------------------------------------------------------
    def _ask_save(self, what: str, default: str, write: Any) -> None:
        if self.report is None:
            return
        start = str(Path(self._source.root) / default) if self._source is not None else default
        suffix = Path(default).suffix.lower()
        filters = {".csv": "CSV (*.csv)", ".png": "PNG image (*.png)", ".svg": "SVG drawing (*.svg)"}[suffix]
        path, _ = QFileDialog.getSaveFileName(self._window, f"Save the {what}", start, filters)
        if path:
            if not Path(path).suffix:
                path += suffix
            try:
                write(path)
            except OSError as exc:
                self.panel.set_status(f"Could not save {path}: {exc.strerror or exc}", error=True)
                return
            self.message.emit(f"Saved the {what} to {path}")

    def export_ap_csv(self, path: str | Path) -> None:
        assert self.report is not None
        write_csv(path, ap_table_rows(self.report))

    def export_worst_csv(self, path: str | Path) -> None:
        write_csv(path, worst_rows(self._worst))

    def export_confusion_csv(self, path: str | Path) -> None:
        assert self.report is not None
        write_csv(path, self.report.analysis.confusion.rows())

    def export_pr_csv(self, path: str | Path, class_name: str) -> None:
        assert self.report is not None
        write_csv(path, pr_curve_rows(self.report.result, class_name))

    def export_curves(self, path: str | Path) -> None:
        """The PR curves as PNG or SVG (by the suffix)."""
        self.panel.curves.export(path)


__all__ = ["EvaluationStage"]
