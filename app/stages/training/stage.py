"""The Training stage: trains a detector on the open dataset in worker processes and plots it live.

Wiring only: the panel's choices become a ``TrainConfig`` (:mod:`app.stages.training.options`), a
:class:`~app.stages.training.run.TrainingRun` runs it out of the window's process, its events go to the plots
and the status line, and a finished run's checkpoint can be loaded into the Model stage. Each run writes
``<data dir>/runs/<timestamp>-<generation>/model.pt`` (and ``model.pt.log.jsonl`` beside it), where the
finished-runs list finds it.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDockWidget, QFileDialog, QWidget

from app.stages.base import Stage, make_dock
from app.stages.training import options
from app.stages.training.augmentation_dialog import AugmentationPreview
from app.stages.training.panel import TrainingPanel
from app.stages.training.run import TrainingRun
from app.workers import Job, WorkerPool, error_summary
from models.data.datasets import DatasetSource
from models.detection.training_process import choose_processes, usable_cores


def _summary_job(job: Job, source: DatasetSource) -> options.DatasetSummary:
    return options.summarise_dataset(source, lambda: job.cancelled)


def _auto_settings_job(job: Job, source: DatasetSource, processes: int, stats: Any = None) -> Any:
    """What ``train`` with no preset chooses for this dataset's training split and process count (the same
    function the command calls), as ``(settings, box statistics)``. The first call reads every training box;
    ``stats`` from an earlier call for another process count skips that read. A worker's job either way."""
    from models.detection.auto_settings import split_auto_settings

    return split_auto_settings(source, processes=processes, stats=stats)


def _preview_job(job: Job, config: Any, source: DatasetSource, index: int, epochs: int) -> list:
    """The image as the run's first epochs show it (reads and resizes it once per epoch: a worker's job)."""
    from models.detection.augmentation_preview import augmented_views

    return augmented_views(config, source, index, epochs)


def _checkpoint_config_job(job: Job, path: str) -> tuple[dict, int]:
    from models.detection.checkpoints import load_checkpoint

    payload = load_checkpoint(path)
    return dict(payload.get("config") or {}), int(payload.get("epoch", 0))


class TrainingStage(Stage):
    """Signals: ``runStarted(TrainConfig)``, ``runFinished(TrainResult)``, ``runFailed(str)``;
    ``autoSettingsShown(AutoSettings)`` when the table shows settings chosen from the data,
    ``autoSettingsFailed(str)`` when they cannot be chosen (the message)."""

    menu_title = "Detector"
    dock_area = "bottom"

    runStarted = Signal(object)
    runFinished = Signal(object)
    runFailed = Signal(str)
    autoSettingsShown = Signal(object)
    autoSettingsFailed = Signal(str)

    def __init__(self, canvas: Any = None, session: Any = None, window: QWidget | None = None,
                 load_model: Callable[[str], Any] | None = None) -> None:
        super().__init__(window)
        self._window = window
        self._load_model = load_model
        self.source: DatasetSource | None = None
        self.summary: options.DatasetSummary | None = None
        self.run: TrainingRun | None = None
        self.last_checkpoint: str | None = None
        self._closed = False
        #: Stop after this many steps (tests and quick looks; None: the epochs decide).
        self.max_steps: int | None = None
        #: torch threads per training process (None: one each with two processes, else torch's default).
        self.threads: int | None = None
        #: File chooser for "continue from checkpoint" (tests replace it): () -> path or "".
        self.choose_checkpoint: Callable[[], str] = self._ask_checkpoint
        self._pool = WorkerPool(self)
        #: Settings chosen from the data for the open dataset, by process count (they size batch and epochs).
        self._auto: dict[int, Any] = {}
        self._auto_error: str | None = None
        #: The latest request for settings from the data (an older result that arrives later is dropped).
        self._auto_request = 0
        #: The process count whose settings are being read now (None: no read in flight).
        self._auto_inflight: int | None = None
        #: The training split's box statistics from the first read (another process count reuses them).
        self._auto_stats: Any = None
        #: The user's changes to the table, kept while the boxes are read again for another process count.
        self._pending_edits: dict[str, dict[str, Any]] = {}
        self.panel = TrainingPanel()
        self._dock: QDockWidget | None = None
        #: The augmentation preview window, made on first use (tests read its thumbnails).
        self.preview: AugmentationPreview | None = None
        #: Epochs the preview shows.
        self.preview_epochs = 6
        #: The latest preview asked for (an older one that finishes later is dropped).
        self._preview_request = 0

        self.panel.set_backbones(options.backbone_choices(),
                                 {n: options.backbone_tooltip(n) for n in [c[0] for c in options.backbone_choices()]})
        self.panel.set_devices(options.device_choices())
        self.panel.set_generations(options.generation_choices(None))
        self._generation_shown = ""
        self._on_generation()
        self._update_two_processes()

        self.panel.trainRequested.connect(self.start)
        self.panel.pauseToggled.connect(self._on_pause_toggled)
        self.panel.cancelRequested.connect(self.cancel)
        self.panel.continueRequested.connect(self.ask_continue)
        self.panel.loadRequested.connect(self.load_result)
        self.panel.previewRequested.connect(self.preview_augmentation)
        self.panel.presetChosen.connect(lambda _name: self._on_preset())
        self.panel.presetChosen.connect(lambda _name: self._update_two_processes())
        self.panel.generation.currentTextChanged.connect(lambda _g: self._on_generation())
        self.panel.deviceChosen.connect(lambda _d: self._update_two_processes())
        self.panel.two_processes.toggled.connect(self._on_processes_changed)

    # --- Stage --------------------------------------------------------------------------------------------
    def docks(self) -> list[QDockWidget]:
        if self._dock is None:
            # No minimum height forced on it: with the left column's docks as they are, a tall minimum made the
            # window grow past the height asked for; a short dock scrolls instead.
            self._dock = make_dock("Training", "dock_training", self.panel, self._window)
        return [self._dock]

    def set_dataset(self, source: DatasetSource | None) -> None:
        self.source = source
        self.summary = None
        self._auto = {}
        self._auto_stats = None
        self._auto_error = None
        self._auto_request += 1
        self._auto_inflight = None
        self.panel.set_generations(options.generation_choices(None) if source is None else
                                   [(g, "reading the dataset's boxes…") for g, _ in options.generation_choices(None)])
        self._on_generation()
        if source is None and self.panel.data_chosen():
            self._on_preset()  # "open a dataset", not the last dataset's settings
        if source is not None:
            self._pool.start(_summary_job, source, on_result=lambda s, src=source: self._on_summary(s, src),
                             on_error=lambda m: self.panel.set_status(f"Cannot read the dataset: {m}", error=True))

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.run is not None and self.run.running:
            self.run.shutdown()
        self._pool.shutdown()

    # --- choices ------------------------------------------------------------------------------------------
    def _on_summary(self, summary: options.DatasetSummary, source: DatasetSource) -> None:
        if self._closed or source is not self.source:  # a dataset opened since: its own summary is coming
            return
        self.summary = summary
        self.panel.set_generations(options.generation_choices(summary))
        self._on_generation()
        if summary.boxes:
            self.panel.set_status(f"{summary.labelled_images} labelled images of {summary.images}, "
                                  f"{summary.boxes} boxes, {len(summary.class_names)} classes")
        if self.panel.data_chosen():
            self._on_preset()

    def _on_generation(self) -> None:
        """A preset is one generation's recipe: the list follows the generation (its first preset chosen)."""
        generation = self.panel.generation.currentText()
        if generation == self._generation_shown:
            return
        self._generation_shown = generation
        self.panel.set_generation_about(*options.generation_note(generation))
        self.panel.set_presets(options.preset_names(generation) if generation else [],
                               from_data=generation == "faster-rcnn")
        self._on_preset()
        self._update_two_processes()

    def _on_preset(self) -> None:
        """Show the preset's settings in full; its epochs and backbone go to their own widgets."""
        self.panel.set_auto_note("")
        if self.panel.data_chosen():
            self._show_auto(keep_edits=False)
            return
        preset = self.panel.preset_name()
        generation = self.panel.generation.currentText() or "faster-rcnn"
        try:
            self.panel.set_settings(options.describe_settings(preset, generation))
        except (KeyError, ValueError) as exc:
            self.panel.set_status(f"Preset {preset}: {exc}", error=True)
            return
        epochs = options.preset_epochs(preset)
        if epochs:
            self.panel.epochs.setValue(epochs)
        backbone = options.preset_backbone(preset) or "small"
        i = self.panel.backbone.findData(backbone)
        if i >= 0:
            self.panel.backbone.setCurrentIndex(i)

    # --- settings from the data ---------------------------------------------------------------------------
    def auto_settings(self) -> Any:
        """The settings chosen from the open dataset for the panel's process count (None until read)."""
        return self._auto.get(self.panel.processes())

    def _show_auto(self, keep_edits: bool) -> None:
        """Fill the table with what ``train`` would choose from the data, reading the boxes in a worker first
        when they are not read for this process count; ``keep_edits``: the user's changes stay."""
        for_generation = self.panel.generation.currentText() or "faster-rcnn"
        if keep_edits:  # kept over a read of the boxes (the table is empty meanwhile)
            try:
                current = self.panel.overrides()
            except ValueError:
                current = {}
            if current:
                self._pending_edits = current
        else:
            self._pending_edits = {}
        if self.source is None:
            self.panel.set_settings({})
            self.panel.set_auto_note("Open a dataset: the settings are chosen from its boxes.")
            return
        if self._auto_error is not None:
            self.panel.set_settings({})
            self.panel.set_auto_note(f"Cannot choose settings from the data: {self._auto_error}", error=True)
            return
        auto = self.auto_settings()
        if auto is None:
            self._request_auto()
            return
        edits, self._pending_edits = self._pending_edits, {}
        self.panel.set_settings(options.describe_settings(None, for_generation, auto))
        self.panel.set_setting_reasons(options.auto_reasons(auto))
        for part, values in edits.items():
            for name, value in values.items():
                if self.panel.setting_item(part, name) is not None:
                    self.panel.set_setting_text(part, name, options.format_value(value, (part, name)))
        self.panel.epochs.setValue(int(auto.epochs))
        self.panel.epochs.setToolTip(f"Chosen from the data — {auto.reasons.get('epochs', '')}")
        i = self.panel.backbone.findData("small")
        if i >= 0:
            self.panel.backbone.setCurrentIndex(i)
        # One short line (the dock is ~230 px tall); every choice with its reason in the tooltip.
        self.panel.set_auto_note("As `train` with no preset; hover blue for why",
                                 "Chosen from the training split's boxes:\n" + "\n".join(auto.lines()))
        self.autoSettingsShown.emit(auto)

    def _request_auto(self) -> None:
        processes = self.panel.processes()
        self.panel.set_settings({})
        self.panel.set_auto_note("Reading the boxes to choose the settings…")
        if self._auto_inflight == processes:  # that read's result will show
            return
        self._auto_inflight = processes
        self._auto_request += 1
        request = self._auto_request
        source = self.source
        self._pool.start(_auto_settings_job, source, processes, self._auto_stats,
                         on_result=lambda r, n=processes, q=request: self._on_auto(r, n, q),
                         on_error=lambda m, q=request: self._on_auto_error(m, q))

    def _on_auto(self, result: Any, processes: int, request: int) -> None:
        if self._closed or request != self._auto_request:
            return
        self._auto_inflight = None
        self._auto[processes], self._auto_stats = result[0], result[1]
        if self.panel.data_chosen() and self.panel.processes() == processes:
            self._show_auto(keep_edits=True)

    def _on_auto_error(self, message: str, request: int) -> None:
        if self._closed or request != self._auto_request:
            return
        self._auto_inflight = None
        self._auto_error = message
        if self.panel.data_chosen():
            self._show_auto(keep_edits=False)
            self.panel.set_status(f"Cannot choose settings from the data: {message}", error=True)
        self.autoSettingsFailed.emit(message)

    def _on_processes_changed(self, _checked: bool) -> None:
        """The data's settings depend on the process count (images per step, epochs per process)."""
        if self.panel.data_chosen() and not self.running:
            self._show_auto(keep_edits=True)

    def _update_two_processes(self) -> None:
        """Whether two processes are possible, and ticked by default: the ``train`` command's rule
        (:func:`models.detection.training_process.choose_processes`) — two on a CPU with two or more usable
        cores with "Settings from the data" for a Faster R-CNN, one for a preset or the paper's — until the user ticks or unticks
        the box themselves."""
        device = self.panel.device.currentText() or "auto"
        on_cpu = options.resolves_to_cpu(device)
        if usable_cores() < 2:
            self.panel.set_two_processes_allowed(False, "this machine has one usable CPU core")
        elif not on_cpu:
            self.panel.set_two_processes_allowed(False, "only for training on the CPU")
        else:
            self.panel.set_two_processes_allowed(True)
        choice = choose_processes(data_chosen=self.panel.data_chosen()
                                  and self.panel.generation.currentText() == "faster-rcnn",
                                  on_cpu=on_cpu, env={})
        self.panel.set_two_processes_default(choice.processes > 1, choice.reason)

    def choices(self) -> options.RunChoices:
        """What the panel says now (raises ValueError for a setting that does not parse)."""
        processes = self.panel.processes()
        threads = self.threads
        if threads is None and processes > 1:  # as ``train --processes N``: the usable cores shared out
            threads = choose_processes(data_chosen=True, requested=processes, cores=usable_cores(),
                                       env={}).threads
        return options.RunChoices(
            data=str(self.source.root) if self.source is not None else "",
            generation=self.panel.generation.currentText(), backbone=self.panel.backbone_name(),
            preset=self.panel.preset_name(), epochs=self.panel.epochs.value(),
            device=self.panel.device.currentText() or "auto", overrides=self.panel.overrides(),
            processes=processes, threads=threads, val_images=self.panel.val_images.value(),
            max_steps=self.max_steps, auto=self.auto_settings() if self.panel.data_chosen() else None)

    def _data_path(self) -> str | None:
        """The dataset path ``open_dataset`` reads back: a COCO JSON itself, else the root folder."""
        if self.source is None:
            return None
        json_path = getattr(getattr(self.source.store, "dataset", None), "path", None)
        if self.source.kind == "coco" and json_path is not None:
            return str(json_path)
        return str(self.source.root)

    # --- running ------------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.run is not None and self.run.running

    def start(self) -> TrainingRun | None:
        """Train with the panel's choices on the open dataset; None (with a message) when that cannot be."""
        if self.running or self._closed:
            return None
        data = self._data_path()
        generation = self.panel.generation.currentText()
        problem = options.generation_problem(generation, self.summary) if generation else "no generation"
        if data is None or problem is not None:
            self.panel.set_status(f"Cannot train {generation or ''}: {problem or 'open a dataset first'}",
                                  error=True)
            return None
        if self.panel.data_chosen() and self.auto_settings() is None:
            self.panel.set_status("Cannot train yet: " + (
                f"no settings from the data ({self._auto_error}); choose a preset" if self._auto_error
                else "still reading the boxes to choose the settings"), error=True)
            return None
        try:
            choices = self.choices()
            choices.data = data
            out = options.new_run_path(generation)
            config = options.build_config(choices, out)
        except (ValueError, KeyError, TypeError) as exc:
            self.panel.set_status(f"Cannot train: {exc}", error=True)
            return None
        return self._launch(config, choices.processes, f"Training {generation} on {Path(data).name}…")

    def preview_augmentation(self) -> None:
        """Show the window's current image as the first epochs of the run set in the panel would see it."""
        document = getattr(self._window, "document", None)
        index = getattr(document, "index", -1)
        if self.source is None or document is None or document.source is not self.source or index < 0:
            self.panel.set_status("Open a dataset and an image of it to preview the augmentation", error=True)
            return
        try:
            config = options.build_config(self.choices(), Path(self.source.root) / "preview.pt")
        except ValueError as exc:
            self.panel.set_status(f"Cannot preview: {exc}", error=True)
            return
        name = self.source.entries[index].name
        self._save_open_edits()  # boxes drawn a moment ago are in the file the preview reads
        self._preview_request += 1
        request = self._preview_request
        self.panel.set_status(f"Drawing {self.preview_epochs} epochs of augmentation of {name}…")
        self._pool.start(_preview_job, config, self.source, index, self.preview_epochs,
                         on_result=lambda views, q=request: self._show_preview(name, views, q),
                         on_error=lambda message, q=request: self._on_preview_error(message, q))

    def _show_preview(self, name: str, views: list, request: int) -> None:
        if self._closed or request != self._preview_request:  # a newer preview was asked for since
            return
        if self.preview is None:
            self.preview = AugmentationPreview(self._window)
        self.preview.show_views(f"<b>{html.escape(name)}</b> as the first {len(views)} epochs of this run show "
                                "it (the boxes are the training targets after the crop and flip)", views)
        self.preview.show()
        self.panel.set_status(f"Augmentation of {name}: {len(views)} epochs shown")

    def _on_preview_error(self, message: str, request: int) -> None:
        if self._closed or request != self._preview_request or message == "cancelled":
            return
        self.panel.set_status(f"Cannot preview: {error_summary(message)}", error=True)

    def ask_continue(self) -> None:
        path = self.choose_checkpoint()
        if path:
            self.continue_from(path)

    def _ask_checkpoint(self) -> str:
        start = str(options.runs_dir()) if options.runs_dir().is_dir() else ""
        path, _ = QFileDialog.getOpenFileName(self._window, "Continue training from a checkpoint", start,
                                              "Checkpoints (*.pt *.pth);;All files (*)")
        return path

    def continue_from(self, path: str | Path) -> None:
        """Resume the run saved in ``path`` (same file, its settings and split) up to the panel's epochs."""
        if self.running or self._closed:
            return
        self.panel.set_status(f"Reading {Path(path).name}…")
        self._pool.start(_checkpoint_config_job, str(path), on_result=lambda r: self._continue(str(path), *r),
                         on_error=lambda m: self.panel.set_status(f"Cannot continue from {path}: {m}", error=True))

    def _continue(self, path: str, saved: dict, epoch: int) -> None:
        from models.detection.presets import resumed_train_config

        if self.running or self._closed:
            return
        epochs = max(self.panel.epochs.value(), int(saved.get("epochs", 0) or 0))
        if epochs <= epoch:
            self.panel.set_status(f"{Path(path).name} has trained {epoch} epochs already; set Epochs above {epoch} "
                                  "to train it further", error=True)
            return
        data = self._data_path() or saved.get("data")
        if not data:
            self.panel.set_status("Open the dataset to continue training on", error=True)
            return
        processes = self.panel.processes()
        here = {"epochs": epochs, "device": self.panel.device.currentText() or "auto",
                "val_images": self.panel.val_images.value()}
        if self.max_steps is not None:
            here["max_steps"] = self.max_steps
        if processes > 1:
            here["threads"] = 1
        try:  # the run's own settings as saved, as `train --resume` takes them
            config = resumed_train_config(saved, path, data, path, here)
        except ValueError as exc:
            self.panel.set_status(f"Cannot continue from {path}: {exc}", error=True)
            return
        self._launch(config, processes, f"Continuing {config.generation} from epoch {epoch} of {Path(path).name}…")

    def _launch(self, config: Any, processes: int, text: str) -> TrainingRun | None:
        self._save_open_edits()
        Path(config.out).parent.mkdir(parents=True, exist_ok=True)
        self.panel.plots.clear()
        self.panel.set_progress(0, 1)
        self.panel.load_button.setEnabled(False)
        run = TrainingRun(config, processes, parent=self)
        run.event.connect(self._on_event)
        run.pausedChanged.connect(self._on_paused)
        run.finished.connect(self._on_finished)
        run.failed.connect(self._on_failed)
        self.run = run
        try:
            run.start()
        except (OSError, RuntimeError, ValueError) as exc:
            self.run = None
            self.panel.set_status(f"Cannot start training: {exc}", error=True)
            return None
        self.panel.set_running(True)
        self.panel.set_status(text + (f" ({processes} processes)" if processes > 1 else ""))
        self.runStarted.emit(config)
        return run

    def _save_open_edits(self) -> None:
        """Boxes drawn a moment ago must be in the files the training processes read."""
        document = getattr(self._window, "document", None)
        if document is not None and hasattr(document, "save_pending"):
            document.save_pending()

    def cancel(self) -> None:
        if self.running:
            self.run.cancel()
            self.panel.set_status("Cancelling after this step…")

    def pause(self) -> None:
        if self.running:
            self.run.pause()
            self.panel.set_status("Pausing after this step…")

    def resume(self) -> None:
        if self.running:
            self.run.resume()

    def _on_pause_toggled(self, paused: bool) -> None:
        self.pause() if paused else self.resume()

    def _on_paused(self, paused: bool) -> None:
        self.panel.set_paused(paused)
        self.panel.set_status("Paused (Resume to go on)" if paused else "Training…")

    # --- events -------------------------------------------------------------------------------------------
    def _on_event(self, ev: Any) -> None:
        self.panel.plots.add_event(ev)
        if ev.kind == "step":
            self.panel.set_progress(ev.global_step, ev.total_steps)
        elif ev.kind == "proposals":
            what = {"codes": "R-CNN feature pass", "svm": "R-CNN SVMs",
                    "calibration prototypes": "Score calibration's ImageNet prototypes"}.get(
                ev.message, "Selective Search proposals")
            self.panel.set_progress(ev.step, ev.total_steps)
            self.panel.set_status(f"{what}: {ev.step}/{ev.total_steps}")
        elif ev.kind in ("message", "start"):
            self.panel.set_status(ev.message)
        elif ev.kind == "validation":
            value = ev.metrics.get("mAP", float("nan"))
            if math.isfinite(value):
                self.panel.set_status(f"epoch {ev.epoch} validation on {int(ev.metrics.get('images', 0))} images: "
                                      + self.panel.plots.validation_text(ev.metrics))
        elif ev.kind == "checkpoint":
            self.last_checkpoint = ev.checkpoint

    def _on_finished(self, result: Any) -> None:
        self.panel.plots.flush()
        self.panel.set_running(False)
        checkpoint = result.checkpoint if result.checkpoint and Path(result.checkpoint).is_file() else None
        self.last_checkpoint = checkpoint
        self.panel.load_button.setEnabled(checkpoint is not None and self._load_model is not None)
        text = {"completed": "Finished", "cancelled": "Cancelled", "diverged": "Stopped"}.get(result.status, "Ended")
        offer = " — load it into the Model stage to see it on the image" if checkpoint and self._load_model else ""
        self.panel.set_status(f"{text}: {result.message}{offer}", error=result.status == "diverged")
        self.runFinished.emit(result)

    def _on_failed(self, message: str) -> None:
        self.panel.plots.flush()
        self.panel.set_running(False)
        self.panel.set_status(f"Training failed: {message}", error=True)
        self.runFailed.emit(message)

    def load_result(self) -> None:
        """Load the last run's checkpoint into the Model stage."""
        if self.last_checkpoint and self._load_model is not None:
            self._load_model(self.last_checkpoint)
            self.message.emit(f"Loading {self.last_checkpoint} into the Model stage")

