"""The Runs stage: finished runs listed, two compared side by side (loss curves overlaid, AP per class).

``RunsStage`` owns the Runs panel (a bottom dock: it needs width) and two kinds of background work:

- listing the runs folder (``app.settings.data_dir()/runs``, where the training panel writes
  ``<timestamp>-<generation>/model.pt``) plus the checkpoints the user added; a run whose files did not
  change is not read again. It runs on Refresh, when the folder changes (watched, debounced), and when the
  training panel calls :meth:`RunsStage.run_finished`;
- evaluating the selected runs on the open dataset's test split, one run at a time, with progress and
  cancel; results come from ``<checkpoint>.eval.json`` when nothing changed
  (``models.detection.runs.evaluate_run``). Without a dataset the AP a checkpoint records about itself is shown
  (the shipped models carry theirs), labelled as such.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import QFileSystemWatcher, QTimer, Signal, Slot
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QFileDialog, QWidget

from app.stages.base import Stage, make_dock
from app.stages.runs.comparison import evaluation_state
from app.stages.runs.panel import MAX_COMPARED, RunsPanel
from app.workers import Job, Worker, WorkerPool, error_summary
from models.data.datasets import DatasetSource
from models.detection.runs import RunEvaluation, RunRecord, evaluate_run, list_runs

#: Milliseconds the runs folder must stay quiet before it is listed again (a checkpoint write is a burst).
WATCH_DEBOUNCE_MS = 700


def default_runs_root() -> Path:
    from app.settings import data_dir

    return data_dir() / "runs"


def list_job(job: Job, root: Path, extra: list[str], previous: list[RunRecord]) -> list[RunRecord]:
    job.progress(0.0, "listing runs")
    return list_runs(root, extra, previous, check=job.check)


def evaluate_job(job: Job, path: str, source: DatasetSource, device: str) -> RunEvaluation:
    return evaluate_run(path, source, "test", device=device, progress=job.progress,
                        cancelled=lambda: job.cancelled)


class RunsStage(Stage):
    """See the module docstring."""

    menu_title = "Training"
    dock_area = "bottom"

    #: The runs were listed (the list of :class:`RunRecord`).
    runsListed = Signal(list)
    #: An evaluation ended: checkpoint path, and the :class:`RunEvaluation` (None when it failed).
    evaluationFinished = Signal(str, object)

    def __init__(self, canvas: Any = None, session: Any = None, window: QWidget | None = None,
                 root: str | Path | None = None, settings: Any = None) -> None:
        super().__init__(window)
        self.window = window
        self.root = Path(root) if root is not None else default_runs_root()
        self.settings = settings if settings is not None else getattr(window, "settings", None)
        self.added: list[str] = list(self.settings.run_checkpoints()) if self.settings is not None else []
        self.device = self.settings.model_device() if self.settings is not None else "auto"
        self.source: DatasetSource | None = None
        self.records: list[RunRecord] = []
        #: (path, signature, dataset root) → evaluation / failure message.
        self.evaluations: dict[tuple, RunEvaluation] = {}
        self.failures: dict[tuple, str] = {}
        self.pool = WorkerPool(self)
        self._list_worker: Worker | None = None
        self._list_again = False
        self._eval_worker: Worker | None = None
        self._eval_key: tuple | None = None
        self._eval_fraction = 0.0

        self.panel = RunsPanel()
        self.panel.folder_label.setText(f"Runs in {self.root}")
        self.dock = make_dock("Runs", "runs_dock", self.panel, window)
        self.panel.refresh_button.clicked.connect(self.refresh)
        self.panel.add_button.clicked.connect(self._ask_checkpoint)
        self.panel.remove_button.clicked.connect(self._remove_selected)
        self.panel.cancel_eval_button.clicked.connect(self.cancel_evaluation)
        self.panel.selectionChanged.connect(self._selection_changed)

        self.watcher = QFileSystemWatcher(self)
        self.watcher.directoryChanged.connect(self._folder_changed)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(WATCH_DEBOUNCE_MS)
        self._debounce.timeout.connect(self.refresh)

        self.refresh_action = QAction("Refresh Runs", self)
        self.refresh_action.triggered.connect(self.refresh)
        self.add_action = QAction("Add a Checkpoint to Runs…", self)
        self.add_action.triggered.connect(self._ask_checkpoint)
        self._shut = False
        #: True while the Training stage runs a training (see :meth:`training_started`).
        self._training = False
        QTimer.singleShot(0, self.refresh)

    # ------------------------------------------------------------------------------------- Stage API

    def docks(self) -> list[QDockWidget]:
        return [self.dock]

    def actions(self) -> list[QAction]:
        return [self.refresh_action, self.add_action]

    def set_dataset(self, source: DatasetSource | None) -> None:
        self.source = source
        self.cancel_evaluation()
        self._show_table()
        self._compare(self.panel.selected_paths())

    def shutdown(self) -> None:
        """Stop the workers, then free this stage's Qt objects here, in the GUI thread.

        Why not leave them to Python: the stage sits in reference cycles (the workers' callbacks hold it), so
        it is freed by a garbage-collection pass, and such a pass runs in whichever thread happens to allocate
        — often a worker thread evaluating a run. A QFileSystemWatcher destroyed there leaves the GUI thread's
        event loop spinning on an invalid inotify socket ("QSocketNotifier: Invalid socket", a flood of
        warnings), and widgets destroyed there crash the process (seen in the test suite as a segfault in
        the event loop, some tests after a parentless stage had been dropped)."""
        if self._shut:
            return
        self._shut = True
        self._debounce.stop()
        # Both jobs stop at their next check (a checkpoint read, an image); the long wait is for a loaded
        # machine: a thread left running when its pool goes away would take the process down.
        self.pool.shutdown(timeout_ms=120_000)
        paths = self.watcher.files() + self.watcher.directories()
        if paths:
            self.watcher.removePaths(paths)
        shiboken6.delete(self.watcher)
        if self.window is None:
            # No window owns the dock (and the panel in it) nor this stage: delete them now / at the next
            # turn of the GUI thread's event loop, never in a collector's thread.
            if shiboken6.isValid(self.dock):
                shiboken6.delete(self.dock)
            self.deleteLater()

    # --------------------------------------------------------------------------------------- listing

    def refresh(self) -> None:
        """List the runs again in a worker (a second call while one runs lists once more after it)."""
        if self._shut:
            return
        if self._list_worker is not None:
            self._list_again = True
            return
        self.panel.status_label.setText("Listing runs…")
        self._list_worker = self.pool.start(list_job, self.root, list(self.added), list(self.records),
                                            on_result=self._listed, on_error=self._list_failed,
                                            on_finished=self._list_done)

    def run_finished(self, checkpoint: str | Path | None = None, show: bool = True) -> None:
        """For the training panel: a run ended (its checkpoint, if any, is listed on the next refresh; one
        outside the runs folder is added to the list). ``show`` opens the Runs dock and brings it forward."""
        if show:
            self.show_runs()
        if checkpoint is not None and not self._under_root(Path(checkpoint)):
            self.add_checkpoint(checkpoint)
            return
        self.refresh()

    @Slot(object)
    def training_started(self, _config: Any = None) -> None:
        """Connected to the Training stage's ``runStarted``: while a run trains, its folder changes every epoch
        (checkpoint, log); listing then would read that checkpoint in this process — CPU and the GIL taken
        from the window and from nothing else, since the run is listed when it ends. Folder changes wait."""
        self._training = True
        self._debounce.stop()

    @Slot(object)
    def training_ended(self, result: Any = None) -> None:
        """Connected to the Training stage's ``runFinished``/``runFailed`` (both emitted in the GUI thread):
        the run is listed at once, whatever its end (a failed run is listed from its log). The Runs tab is
        not brought forward: the user is reading the training panel's last plots and message."""
        self._training = False
        checkpoint = getattr(result, "checkpoint", None)
        if checkpoint is not None and not Path(checkpoint).is_file():
            checkpoint = None
        self.run_finished(checkpoint, show=False)

    def show_runs(self) -> None:
        """Open the Runs dock and bring its tab forward."""
        self.dock.show()
        self.dock.raise_()

    def add_checkpoint(self, path: str | Path) -> None:
        """List ``path`` beside the runs (kept in the settings across sessions)."""
        p = str(Path(path).resolve())
        if p not in self.added and not self._under_root(Path(p)):
            self.added.append(p)
            self._save_added()
        self.refresh()

    def _under_root(self, path: Path) -> bool:
        try:
            path.resolve().relative_to(self.root.resolve())
            return True
        except (ValueError, OSError):
            return False

    def _save_added(self) -> None:
        if self.settings is not None:
            self.settings.set_run_checkpoints(self.added)

    def _ask_checkpoint(self) -> None:
        from resources.models import SHIPPED_MODEL

        start = str(Path(SHIPPED_MODEL).parent)
        paths, _ = QFileDialog.getOpenFileNames(self.window, "Add Checkpoints to Runs", start,
                                                "Detector checkpoints (*.pt);;All files (*)")
        for p in paths:
            self.add_checkpoint(p)

    def _remove_selected(self) -> None:
        chosen = {str(Path(p).resolve()) for p in self.panel.selected_paths()}
        kept = [p for p in self.added if p not in chosen]
        if len(kept) == len(self.added):
            self.panel.status_label.setText("Only added checkpoints can be removed from the list; runs in the "
                                            "runs folder are listed as long as their files are there.")
            return
        self.added = kept
        self._save_added()
        self.refresh()

    def _listed(self, records: list[RunRecord]) -> None:
        if self._shut:  # queued before shutdown; the widgets may be gone
            return
        self.records = records
        self._watch()
        self._show_table()
        bad = sum(1 for r in records if not r.readable)
        text = f"{len(records)} run{'s' if len(records) != 1 else ''}"
        if bad:
            text += f"; {bad} unreadable (see its row)"
        if not records:
            text = (f"No runs yet in {self.root}: train one from the Training panel, or add a checkpoint "
                    "(e.g. the shipped models).")
        self.panel.status_label.setText(text)
        self._compare(self.panel.selected_paths())
        self.runsListed.emit(records)

    def _list_failed(self, message: str) -> None:
        if self._shut:  # queued before shutdown; the widgets may be gone
            return
        self.panel.status_label.setText(f"Could not list the runs: {error_summary(message)}")

    def _list_done(self) -> None:
        self._list_worker = None
        if self._list_again:
            self._list_again = False
            self.refresh()

    def _watch(self) -> None:
        """Watch the runs folder and its run folders (a new run folder, a checkpoint written each epoch)."""
        want = [str(self.root)] if self.root.is_dir() else []
        if self.root.is_dir():
            want += [str(p) for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        have = set(self.watcher.directories())
        new = [d for d in want if d not in have]
        if new:
            self.watcher.addPaths(new)

    def _folder_changed(self, _path: str) -> None:
        if self._shut:  # queued before shutdown; the widgets may be gone
            return
        if not self._training:  # a training run's own writes: it is listed when it ends
            self._debounce.start()

    # ---------------------------------------------------------------------------------------- figures

    def _dataset_root(self) -> str | None:
        return None if self.source is None else str(Path(self.source.root).resolve())

    def _key(self, record: RunRecord) -> tuple | None:
        root = self._dataset_root()
        return None if root is None or not record.has_checkpoint else (str(record.path), record.signature, root)

    def _shown_map(self, record: RunRecord) -> tuple[float, str] | None:
        key = self._key(record)
        if key is not None and key in self.evaluations:
            ev = self.evaluations[key]
            return ev.mAP, f"test split of the open dataset ({evaluation_state(ev)})"
        rec = record.recorded_evaluation
        if rec and rec.get("mAP") is not None:
            return float(rec["mAP"]), "recorded in the checkpoint: " + _recorded_where(rec)
        return None

    def _show_table(self) -> None:
        maps = {str(r.path): m for r in self.records if (m := self._shown_map(r)) is not None}
        self.panel.set_records(self.records, maps)

    def _selection_changed(self, paths: list[str]) -> None:
        # a run whose evaluation was cancelled is evaluated again when the user selects it again
        self.failures = {k: v for k, v in self.failures.items() if not v.startswith("cancelled")}
        self._compare(paths)

    def _compare(self, paths: list[str]) -> None:
        """Show the selected runs side by side and start computing the AP they lack."""
        records = [r for p in paths if (r := self.panel.record(p)) is not None]
        bad = [r for r in records if not r.readable]
        ok = [r for r in records if r.readable][:MAX_COMPARED]
        notes = []
        if not records:
            notes.append("Select one or two runs to compare (Ctrl+click for the second).")
        elif len([r for r in records if r.readable]) > MAX_COMPARED:
            notes.append(f"Comparing the first {MAX_COMPARED} selected runs.")
        notes += [f"{r.name} cannot be compared: {r.error}" for r in bad]
        if ok:
            notes.insert(0, "  vs  ".join(f"{r.name} ({r.generation}, {r.status})" for r in ok))
        self.panel.compare_label.setText("\n".join(notes))
        self.panel.losses.set_runs(ok)
        self.panel.ap_table.set_runs(ok)
        for col, r in enumerate(ok):
            self._fill_column(col, r)
        self._next_evaluation()

    def _fill_column(self, col: int, r: RunRecord) -> None:
        key = self._key(r)
        table = self.panel.ap_table
        if not r.has_checkpoint:
            table.set_result(col, None, "no checkpoint")
        elif key is None:
            rec = r.recorded_evaluation
            if rec and isinstance(rec.get("AP"), dict):
                table.set_result(col, dict(rec), "recorded in the checkpoint: " + _recorded_where(rec))
            else:
                table.set_result(col, None, "open a dataset")
        elif key in self.evaluations:
            ev = self.evaluations[key]
            table.set_result(col, ev.result, evaluation_state(ev))
        elif key in self.failures:
            table.set_result(col, None, "failed: " + self.failures[key])
        elif key == self._eval_key:
            table.set_result(col, None, f"computing {self._eval_fraction:.0%}")
        else:
            table.set_result(col, None, "waiting")

    def _compared(self) -> list[RunRecord]:
        return list(self.panel.ap_table.runs)

    def _next_evaluation(self) -> None:
        """Evaluate the first compared run that has no AP yet on the open dataset (one at a time)."""
        if self._shut or self.source is None:
            self._update_eval_label()
            return
        compared = self._compared()
        if self._eval_worker is not None:
            if self._eval_key not in [self._key(r) for r in compared]:
                self._eval_worker.cancel()  # no longer asked for; the next starts when it stops
            self._update_eval_label()
            return
        for r in compared:
            key = self._key(r)
            if key is not None and key not in self.evaluations and key not in self.failures:
                self._eval_key = key
                self._eval_fraction = 0.0
                self._eval_worker = self.pool.start(
                    evaluate_job, str(r.path), self.source, self.device,
                    on_progress=lambda f, m, k=key: self._eval_progress(k, f, m),
                    on_result=lambda ev, k=key: self._evaluated(k, ev),
                    on_error=lambda msg, k=key: self._eval_failed(k, msg),
                    on_finished=self._eval_done)
                break
        self._update_eval_label()

    def _update_eval_label(self) -> None:
        busy = self._eval_worker is not None
        self.panel.cancel_eval_button.setVisible(busy)
        if busy and self._eval_key is not None:
            name = Path(self._eval_key[0]).parent.name if Path(self._eval_key[0]).stem == "model" else \
                Path(self._eval_key[0]).name
            self.panel.eval_label.setText(f"Computing AP of {name} on the test split: {self._eval_fraction:.0%}")
        elif self.source is None:
            recorded = any(r.recorded_evaluation for r in self._compared())
            self.panel.eval_label.setText(
                ("Showing the AP each checkpoint records about itself (its own test data, in the column's "
                 "tooltip). " if recorded else "") + "Open a dataset to compute AP on its test split.")
        else:
            self.panel.eval_label.setText(f"AP on the test split of {self.source.root}")

    def _column_of(self, key: tuple) -> int:
        for col, r in enumerate(self._compared()):
            if self._key(r) == key:
                return col
        return -1

    def _eval_progress(self, key: tuple, fraction: float, _message: str) -> None:
        if self._shut:  # queued before shutdown; the widgets may be gone
            return
        if key != self._eval_key:
            return
        self._eval_fraction = fraction
        col = self._column_of(key)
        if col >= 0:
            self.panel.ap_table.set_result(col, None, f"computing {fraction:.0%}")
        self._update_eval_label()

    def _evaluated(self, key: tuple, evaluation: RunEvaluation) -> None:
        if self._shut:  # queued before shutdown; the widgets may be gone
            return
        self.evaluations[key] = evaluation
        col = self._column_of(key)
        if col >= 0:
            self.panel.ap_table.set_result(col, evaluation.result, evaluation_state(evaluation))
        self._show_table()
        self.evaluationFinished.emit(key[0], evaluation)

    def _eval_failed(self, key: tuple, message: str) -> None:
        if self._shut:  # queued before shutdown; the widgets may be gone
            return
        if message == "cancelled" or "EvaluationCancelled" in message.splitlines()[0]:
            col = self._column_of(key)
            if col >= 0:
                self.panel.ap_table.set_result(col, None, "cancelled")
            self.failures[key] = "cancelled (select the run again to retry)"
            return
        self.failures[key] = error_summary(message)
        col = self._column_of(key)
        if col >= 0:
            self.panel.ap_table.set_result(col, None, "failed: " + self.failures[key])
        self.panel.status_label.setText(f"AP of {Path(key[0]).name}: {self.failures[key]}")
        self.evaluationFinished.emit(key[0], None)

    def _eval_done(self) -> None:
        self._eval_worker = None
        self._eval_key = None
        self._next_evaluation()

    def cancel_evaluation(self) -> None:
        """Stop the evaluation running (nothing partial is kept or cached)."""
        if self._eval_worker is not None:
            self._eval_worker.cancel()


def _recorded_where(rec: dict) -> str:
    parts = [str(rec[k]) for k in ("split", "data") if rec.get(k)]
    return " of ".join(parts) if parts else "data not recorded"


__all__ = ["RunsStage", "default_runs_root", "evaluate_job", "list_job"]
