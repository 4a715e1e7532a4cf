"""The Model stage's folder inference: the loaded model run on every image of the open dataset in a worker
(progress, cancel), the result stored in the detector session for the other stages, and saved as a ``detect``
JSON.

A part of :class:`app.stages.model.controller.ModelStage` (a mixin: the panel, pool, session and actions are
the stage's), kept apart from loading a model and tracing the image shown.
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from app.stages.model.class_map import renamed
from app.stages.model.jobs import LOW_SCORE_THRESHOLD, FolderResult, folder_job
from app.workers import Worker, error_summary


class FolderInference:
    """Mixed into :class:`app.stages.model.controller.ModelStage` (which owns every attribute used here)."""

    @property
    def folder_running(self) -> bool:
        return self._folder_worker is not None

    @property
    def folder_result(self) -> FolderResult | None:
        return self._folder_result

    def run_folder(self) -> Worker | None:
        """Run the model on every image of the open dataset in the background (None when it cannot start)."""
        model, source = self.session.model, self._source
        if self._closed or model is None or source is None or not source.entries or self._folder_worker:
            return None
        paths = [(str(e.path), e.name) for e in source.entries]
        self.panel.set_folder_running(True)
        self.panel.set_folder_progress(0.0, f"0/{len(paths)}")
        self.panel.set_folder_status(f"Running {self._model_name()} on {len(paths)} images…")
        self._folder_worker = self._pool.start(
            folder_job, model, paths, LOW_SCORE_THRESHOLD, on_progress=self._on_folder_progress,
            on_result=self._on_folder_result, on_error=self._on_folder_error, on_finished=self._on_folder_finished)
        self._sync_actions()
        return self._folder_worker

    def cancel_folder(self) -> None:
        if self._folder_worker is not None:
            self._folder_worker.cancel()
            self.panel.set_folder_status("Cancelling…")

    def _on_folder_progress(self, fraction: float, text: str) -> None:
        self.panel.set_folder_progress(fraction, text)

    def _on_folder_result(self, result: FolderResult) -> None:
        names = self.shown_class_names()
        for det in result.by_path.values():
            renamed(det, names)
        self._folder_result = result
        self.session.set_stored_detections(result.by_path, f"folder inference with {self._model_name()}")
        failed = f"; {len(result.failed)} could not be read ({result.failed[0]})" if result.failed else ""
        self.panel.set_folder_status(f"{len(result.by_path)} of {result.n_images} images, {result.n_boxes} "
                                     f"detections ≥ {LOW_SCORE_THRESHOLD:g} in {result.seconds:.1f} s{failed}.",
                                     error=bool(result.failed))
        self.message.emit(f"Folder inference: {result.n_boxes} detections in {len(result.by_path)} images")
        self._folder_outcome = result

    def _on_folder_error(self, message: str) -> None:
        if message == "cancelled":
            self.panel.set_folder_status("Cancelled; no detections were stored.")
        else:
            text = error_summary(message)
            self.panel.set_folder_status(f"Folder inference failed: {text}", error=True)
            self.message.emit(f"Folder inference: {text}")
        self._folder_outcome = None

    def _on_folder_finished(self) -> None:
        self._folder_worker = None
        self._sync_actions()
        outcome, self._folder_outcome = self._folder_outcome, None
        self.folderFinished.emit(outcome)

    def _sync_actions(self) -> None:
        has_model = self.session.model is not None
        can_run = has_model and self._source is not None and bool(self._source.entries)
        running = self._folder_worker is not None
        can_save = self._folder_result is not None and bool(self._folder_result.records)
        self.act_run_folder.setEnabled(can_run and not running)
        self.act_cancel_folder.setEnabled(running)
        self.act_save.setEnabled(can_save and not running)
        self.panel.set_folder_running(running, can_run=can_run, can_save=can_save)

    # --- saving ---------------------------------------------------------------------------------------------
    def _ask_save_file(self) -> str:
        start = str(Path(self._source.root) / "detections.json") if self._source is not None else "detections.json"
        path, _ = QFileDialog.getSaveFileName(self._window, "Save detections", start, "Detections (*.json)")
        return path

    def ask_save_detections(self) -> None:
        if self._folder_result is None:
            return
        path = self.choose_save_file()
        if path:
            self.save_detections(path)

    def save_detections(self, path: str | Path) -> bool:
        """Write the last folder inference as a ``detect`` JSON (one image per line), atomically."""
        from models.data.annotations.atomic import atomic_write_text

        result = self._folder_result
        if result is None:
            return False
        names = self.shown_class_names()
        own = list(getattr(self.session.model, "class_names", []) or [])
        rename = dict(zip(own, names, strict=False))
        records = [dict(r, labels=[rename.get(n, n) for n in r["labels"]]) if "labels" in r else r
                   for r in result.records]
        body = ",\n  ".join(json.dumps(r, ensure_ascii=False) for r in records)
        text = ('{"images": [\n  ' + body + "\n]}\n") if body else '{"images": []}\n'
        target = Path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(target, text)
        except OSError as exc:
            self.panel.set_folder_status(f"Cannot write {target}: {exc.strerror or exc}", error=True)
            return False
        self.panel.set_folder_status(f"Saved {len(records)} images' detections to {target}.")
        self.message.emit(f"Detections saved to {target}")
        return True
