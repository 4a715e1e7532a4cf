"""The Model stage: load a detector, run it on the image shown, on the whole dataset, and say when it does not fit.

``ModelStage`` owns the Model panel and dock, the canvas notice, the "Detector" menu's model actions and
three kinds of background work (``app.stages.model.jobs``):

- loading a checkpoint (latest request wins; the previous model stays until the new one is ready, and a
  corrupt or foreign file leaves it in place with the reason in the panel);
- tracing the loaded model on the current image whenever the image, its ground truth or the model changes
  (debounced, latest wins; stale traces are dropped) — the result goes to ``DetectorSession.set_trace`` on
  the GUI thread, where every other detector stage picks it up;
- running the model on every image of the open dataset (progress, cancel), stored with
  ``DetectorSession.set_stored_detections`` and savable as a ``detect`` JSON.

It also decides whether the model applies to the image: when the image's labelled classes share none with
the model's, ``DetectorSession.domain_note`` says so (panel, canvas banner) and detection layers hide.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QFileDialog, QMenu, QWidget

from app.canvas import Canvas
from app.proposal_tools import LatestRunner
from app.settings import Settings
from app.stages.base import Stage, make_dock
from app.stages.detector_session import DetectorSession
from app.stages.model.class_map import ClassMapDialog, match_text, renamed, shown_names, suggest
from app.stages.model.folder_inference import FolderInference
from app.stages.model.jobs import (
    LOW_SCORE_THRESHOLD,
    FolderResult,
    LoadedModel,
    TraceResult,
    dataset_classes_job,
    load_model_job,
    trace_job,
)
from app.stages.model.notice import CanvasNotice
from app.stages.model.panel import ModelPanel
from app.workers import Worker, WorkerPool, error_summary
from models.data.datasets import DatasetSource

#: Milliseconds the image or ground truth must stay unchanged before the model runs (an image change and the
#: reset of its boxes arrive as two events; box edits can come in bursts).
TRACE_DEBOUNCE_MS = 80


def default_model_path() -> Path:
    from resources.models import SHIPPED_MODEL

    return SHIPPED_MODEL


class ModelStage(FolderInference, Stage):
    """See the module docstring."""

    menu_title = "Detector"

    #: A model finished loading (the :class:`LoadedModel`).
    modelLoaded = Signal(object)
    #: A model could not be loaded (the message shown).
    loadFailed = Signal(str)
    #: Folder inference ended: the :class:`FolderResult`, or None when cancelled or failed.
    folderFinished = Signal(object)

    def __init__(self, canvas: Canvas, session: DetectorSession, window: QWidget | None = None,
                 settings: Settings | None = None, devices: list[tuple[str, str]] | None = None) -> None:
        super().__init__(window)
        self.canvas = canvas
        self.session = session
        self._window = window
        self.settings = settings or getattr(window, "settings", None) or Settings()
        self._loaded: LoadedModel | None = None
        self._source: DatasetSource | None = None
        self._dataset_classes: list[str] = []
        self._mapping: dict[str, str] = {}
        self._fallbacks: list[str] = []
        self._loading = ""
        self._folder_worker: Worker | None = None
        self._folder_result: FolderResult | None = None
        self._folder_outcome: FolderResult | None = None
        self._closed = False
        self._dock: QDockWidget | None = None
        #: File choosers (tests replace them): () -> path or "".
        self.choose_model_file: Callable[[], str] = self._ask_model_file
        self.choose_save_file: Callable[[], str] = self._ask_save_file

        self.panel = ModelPanel(devices)
        self.notice = CanvasNotice(canvas)
        self._pool = WorkerPool(self)
        self.load_runner = LatestRunner(self._pool, load_model_job, self._on_loaded, on_error=self._on_load_error,
                                        on_idle=lambda: self.panel.set_busy(False), parent=self)
        self.trace_runner = LatestRunner(self._pool, trace_job, self._on_trace, on_error=self._on_trace_error,
                                         parent=self)
        self.classes_runner = LatestRunner(self._pool, dataset_classes_job, self._on_dataset_classes, parent=self)
        self._trace_timer = QTimer(self)
        self._trace_timer.setSingleShot(True)
        self._trace_timer.setInterval(TRACE_DEBOUNCE_MS)
        self._trace_timer.timeout.connect(self.request_trace)

        self._make_actions()
        self.panel.set_recent(self.settings.recent_models())
        self._choose_initial_device()
        self._connect()
        self._update_domain()

    # --- construction ---------------------------------------------------------------------------------------
    def _make_actions(self) -> None:
        parent = self._window or self
        self.act_load = QAction("&Load Model…", parent)
        self.act_load.setToolTip("Open a detector checkpoint")
        self.act_load.triggered.connect(self.ask_load)
        self.recent_menu = QMenu("Recent &Models")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self.act_recent = self.recent_menu.menuAction()
        self.act_run_folder = QAction("Run Model on &All Images", parent)
        self.act_run_folder.triggered.connect(self.run_folder)
        self.act_cancel_folder = QAction("&Cancel Folder Inference", parent)
        self.act_cancel_folder.triggered.connect(self.cancel_folder)
        self.act_save = QAction("&Save Detections as JSON…", parent)
        self.act_save.triggered.connect(self.ask_save_detections)
        self.act_map = QAction("&Map Model Classes…", parent)
        self.act_map.triggered.connect(self.ask_map_classes)
        self._sync_actions()

    def _connect(self) -> None:
        p, s = self.panel, self.session
        p.loadRequested.connect(self.ask_load)
        p.recentChosen.connect(lambda path: self.load_model(path))
        p.deviceChosen.connect(self.set_device)
        p.mapClassesRequested.connect(self.ask_map_classes)
        p.showAnywayToggled.connect(self.set_show_anyway)
        p.runFolderRequested.connect(self.run_folder)
        p.cancelFolderRequested.connect(self.cancel_folder)
        p.saveDetectionsRequested.connect(self.ask_save_detections)
        self.notice.linkClicked.connect(lambda href: self.set_show_anyway(href == "show"))
        s.imageChanged.connect(self._on_image)
        s.groundTruthChanged.connect(self._on_ground_truth)
        s.domainNoteChanged.connect(self._on_domain_note)

    def _choose_initial_device(self) -> None:
        wanted = self.settings.model_device()
        devices = self.panel.devices()
        if wanted == "auto" or not self.panel.set_device(wanted):
            self.panel.set_device(devices[0] if devices else "cpu")  # CUDA, then MPS, then CPU

    # --- Stage API ------------------------------------------------------------------------------------------
    def docks(self) -> list[QDockWidget]:
        if self._dock is None:
            self._dock = make_dock("Model", "model_dock", self.panel, self._window)
        return [self._dock]

    def actions(self) -> list[QAction]:
        return [self.act_load, self.act_recent, self.act_map, self.act_run_folder, self.act_cancel_folder,
                self.act_save]

    def set_dataset(self, source: DatasetSource | None) -> None:
        self._source = source
        self._dataset_classes = []
        self._update_class_match()
        if source is not None and not self._closed:
            self.classes_runner.request(source)
        self._sync_actions()

    def shutdown(self) -> None:
        self._closed = True
        self._trace_timer.stop()
        for runner in (self.load_runner, self.trace_runner, self.classes_runner):
            runner.cancel()
        if self._folder_worker is not None:
            self._folder_worker.cancel()
        self._pool.shutdown()

    # --- loading --------------------------------------------------------------------------------------------
    @property
    def loaded(self) -> LoadedModel | None:
        return self._loaded

    def ask_load(self) -> None:
        path = self.choose_model_file()
        if path:
            self.load_model(path)

    def _ask_model_file(self) -> str:
        start = str(Path(self.session.model_path).parent) if self.session.model_path else ""
        path, _ = QFileDialog.getOpenFileName(self._window, "Load a detector checkpoint", start,
                                              "Checkpoints (*.pt *.pth);;All files (*)")
        return path

    def load_model(self, path: str | Path, device: str | None = None) -> int:
        """Load ``path`` on ``device`` (default: the panel's) in the background; returns the request number."""
        if self._closed:
            return -1
        device = device or self.panel.device()
        self._loading = str(path)
        self.panel.set_status(f"Loading {Path(path).name} on {device}…")
        self.panel.set_busy(True)
        return self.load_runner.request(str(path), device)

    def load_startup_model(self) -> bool:
        """Load the most recent model, else the shipped one (``make run``); False when there is neither."""
        candidates = [p for p in self.settings.recent_models()[:1] if Path(p).is_file()]
        shipped = default_model_path()
        if shipped.is_file() and str(shipped) not in candidates:
            candidates.append(str(shipped))
        if not candidates:
            return False
        self._fallbacks = candidates[1:]
        self.load_model(candidates[0])
        return True

    def set_device(self, device: str) -> None:
        """Use ``device`` from now on (remembered); a loaded model is reloaded there."""
        self.settings.set_model_device(device)
        self.panel.set_device(device)
        if self._loaded is not None and self._loaded.device != device:
            self.load_model(self._loaded.path, device)

    def _on_loaded(self, lm: LoadedModel) -> None:
        self._fallbacks = []
        self._loaded = lm
        self.cancel_folder()
        self._folder_result = None
        names = list(lm.model.class_names)
        self._mapping = {m: d for m, d in suggest(names, self._dataset_classes).items() if m != d}
        self.session.set_show_out_of_domain(False)
        self.session.set_model(lm.model, lm.path)
        self.settings.add_recent_model(lm.path)
        self.panel.set_recent(self.settings.recent_models())
        self.panel.set_info(lm.summary.to_html())
        self.panel.set_status(f"Loaded on {lm.device}.")
        self._update_class_match()
        self._update_domain()
        self._sync_actions()
        self.message.emit(f"Model {lm.summary.name} loaded on {lm.device}")
        self.modelLoaded.emit(lm)
        self.request_trace()

    def _on_load_error(self, message: str) -> None:
        text = error_summary(message)
        name = Path(self._loading).name
        keep = f" {Path(self._loaded.path).name} stays loaded." if self._loaded is not None else ""
        self.panel.set_status(f"Could not load {name}: {text}.{keep}", error=True)
        self.message.emit(f"Model: {text}")
        self.loadFailed.emit(text)
        if self._fallbacks:
            self.load_model(self._fallbacks.pop(0))

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        paths = self.settings.recent_models()
        for p in paths:
            act = self.recent_menu.addAction(p)
            act.triggered.connect(lambda _c=False, path=p: self.load_model(path))
        if not paths:
            self.recent_menu.addAction("(none)").setEnabled(False)

    # --- tracing the current image --------------------------------------------------------------------------
    def _on_image(self) -> None:
        self._update_domain()
        self._trace_timer.start()

    def _on_ground_truth(self) -> None:
        self._update_domain()
        self._trace_timer.start()

    def request_trace(self) -> int:
        """Run the model on the current image now (no debounce); -1 when there is no model or image."""
        self._trace_timer.stop()
        model, decoded = self.session.model, self.session.decoded
        if self._closed or model is None or decoded is None:
            self.trace_runner.cancel()
            return -1
        token = (id(decoded), id(model))
        self.panel.set_status(f"Running {self._model_name()} on the image…")
        learnt = self.session.learnt()  # the anchors and RoIs are labelled against what the model was taught
        return self.trace_runner.request(token, model, decoded.pixels, float(decoded.scale),
                                         self.session.gt_boxes()[learnt], LOW_SCORE_THRESHOLD,
                                         self.session.gt_ignored()[learnt])

    def _on_trace(self, result: TraceResult) -> None:
        if result.token != (id(self.session.decoded), id(self.session.model)):
            return  # an answer about another image or model
        trace = result.trace
        names = self.shown_class_names()
        renamed(getattr(trace, "detections", None), names)
        renamed(getattr(trace, "candidates", None), names)
        n = len(getattr(trace, "detections", []) or [])
        decoded = self.session.decoded
        where = decoded.path.name if decoded is not None and decoded.path is not None else "the image"
        self.panel.set_status(f"Ran on {where} in {1000 * result.seconds:.0f} ms on {self._loaded.device if self._loaded else '?'}: "
                              f"{n} detections ≥ {LOW_SCORE_THRESHOLD:g}.")
        self.session.set_trace(trace)

    def _on_trace_error(self, message: str) -> None:
        text = error_summary(message)
        self.panel.set_status(f"The model failed on this image: {text}", error=True)
        self.message.emit(f"Model: {text}")

    def _model_name(self) -> str:
        return Path(self.session.model_path).name if self.session.model_path else "the model"

    # --- classes: the dataset's, the mapping, the domain note -----------------------------------------------
    def shown_class_names(self) -> list[str]:
        model = self.session.model
        return shown_names(list(getattr(model, "class_names", []) or []), self._mapping)

    @property
    def mapping(self) -> dict[str, str]:
        return dict(self._mapping)

    def set_mapping(self, mapping: dict[str, str]) -> None:
        """Show the model's classes under these dataset names; re-applies to the trace and stored detections."""
        self._mapping = {m: d for m, d in mapping.items() if d and d != m}
        names = self.shown_class_names()
        trace = self.session.trace
        if trace is not None:
            renamed(getattr(trace, "detections", None), names)
            renamed(getattr(trace, "candidates", None), names)
        if self._folder_result is not None:
            for det in self._folder_result.by_path.values():
                renamed(det, names)
            self.session.set_stored_detections(self._folder_result.by_path, self.session.stored_source)
        self._update_class_match()
        self._update_domain()
        if trace is not None:
            self.session.set_trace(trace)

    def ask_map_classes(self) -> None:
        model = self.session.model
        if model is None:
            return
        dialog = ClassMapDialog(list(model.class_names), self._dataset_classes, self._mapping, self._window)
        if dialog.exec():
            self.set_mapping(dialog.mapping())

    def _on_dataset_classes(self, names: list[str]) -> None:
        self._dataset_classes = list(names)
        model = self.session.model
        if model is not None and not self._mapping:
            mapping = {m: d for m, d in suggest(list(model.class_names), names).items() if m != d}
            if mapping:  # renames the trace, and the note and the classes the views judge by follow
                self.set_mapping(mapping)
                return
        self._update_class_match()

    def _update_class_match(self) -> None:
        model = self.session.model
        names = list(getattr(model, "class_names", []) or [])
        text, can_map = match_text(names, self._dataset_classes, self._mapping)
        self.panel.set_class_match(text, can_map)
        self.act_map.setEnabled(model is not None and bool(self._dataset_classes))

    def _update_domain(self) -> None:
        model = self.session.model
        self.session.set_model_classes(self.shown_class_names() if model is not None else [])
        note = ""
        if model is not None:
            names = self.shown_class_names()
            labelled = sorted(set(self.session.gt_names()))
            if labelled and not set(labelled) & set(names):
                trained = ""
                if self._loaded is not None and self._loaded.summary.trained_on:
                    trained = f" (trained on {self._loaded.summary.trained_on.split(' (')[0]})"
                shown = ", ".join(labelled[:6]) + ("…" if len(labelled) > 6 else "")
                note = (f"This model knows only {', '.join(names)}{trained}. None of the classes labelled on "
                        f"this image ({shown}) is one of them, so its detections here would be meaningless.")
        self.session.set_domain_note(note)
        self._on_domain_note(note)

    def set_show_anyway(self, on: bool) -> None:
        """Show (or hide again) detections on an image the model knows nothing about. The detection stages
        read ``session.detections_hidden`` when they redraw; the trace is re-announced so that they do."""
        if bool(on) == self.session.show_out_of_domain:
            return
        self.session.set_show_out_of_domain(on)
        if self.session.domain_note and self.session.trace is not None:
            self.session.set_trace(self.session.trace)

    def _on_domain_note(self, note: str) -> None:
        anyway = self.session.show_out_of_domain
        self.panel.set_domain_note(note + ("" if anyway else " Detections are hidden.") if note else "", anyway)
        if not note:
            self.notice.set_note("")
        elif anyway:
            self.notice.set_note(f"Detections shown anyway: {note} <a href='hide'>Hide them</a>")
        else:
            self.notice.set_note(f"{note} Detections are hidden. <a href='show'>Show them anyway</a>")


__all__ = ["TRACE_DEBOUNCE_MS", "ModelStage", "default_model_path"]
