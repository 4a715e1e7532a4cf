"""Controller of the CNN-codes view: indexes the dataset's labelled boxes in a worker, answers the selected box,
and trains the linear classifier on the index in a worker (its held-out score, and the selected box's class
probabilities once trained).

The network is built lazily in the worker (EfficientNet-Lite0 takes a second to build and load) and reused;
codes go through the product's one CNN-code cache, so re-indexing, or indexing boxes R-CNN or the linear
classifier already saw, costs no network pass. Selecting a box asks for its code and nearest neighbours
(latest selection wins); double-clicking a neighbour opens its image with that box selected.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
from PySide6.QtWidgets import QDockWidget, QWidget

from app.canvas import Canvas
from app.stages.base import Stage, make_dock
from app.stages.detector_session import DetectorSession
from app.stages.features.panel import FeaturesPanel
from app.workers import Job, LatestRunner, WorkerPool, error_summary
from models.data.datasets import DatasetSource
from models.detection.code_classifier import CodeClassifierReport, train_code_classifier
from models.detection.code_neighbours import (
    BoxQuery,
    CodeIndex,
    IndexCancelled,
    build_code_index,
    query_box,
)
from models.detection.features import (
    CnnCodeExtractor,
    FeatureCache,
    random_efficientnet_extractor,
    shared_imagenet_extractor,
)

#: Crops are warped with R-CNN's 16 px of context at the network's 224-px input.
CONTEXT = 16
_EXTRACTORS: dict[str, CnnCodeExtractor] = {}


def extractor_for(key: str) -> CnnCodeExtractor:
    """The network behind ``key`` (built once per process; the worker thread builds it, not the GUI)."""
    if key not in _EXTRACTORS:
        _EXTRACTORS[key] = (shared_imagenet_extractor() if key == "imagenet"  # the calibration's network too
                            else random_efficientnet_extractor(context=CONTEXT))
    return _EXTRACTORS[key]


def missing_weights(key: str) -> str | None:
    """Why the network behind ``key`` cannot be built here (its weights package is not installed), in words
    for this dock; None when it can. Checked before a worker starts, so the dock says what to install
    instead of failing half-way."""
    if key != "imagenet":
        return None
    from models.detection.efficientnet import WeightsPackageMissing, weights_path

    try:
        weights_path()
    except WeightsPackageMissing as exc:  # not installed, or installed without its file: it says which
        return f"{exc}. The random-weights control works without it."
    return None


def index_job(job: Job, source: DatasetSource, key: str, cache_path: str | None) -> CodeIndex:
    extractor = extractor_for(key)
    with FeatureCache(cache_path) as cache:
        try:
            return build_code_index(source, extractor, cache, progress=job.progress, cancelled=lambda: job.cancelled)
        except IndexCancelled:
            job.check()
            raise


def query_job(job: Job, index: CodeIndex, key: str, image: str, pixels: Any, box: tuple, k: int,
              scale: float, cache_path: str | None) -> BoxQuery:
    job.check()
    with FeatureCache(cache_path) as cache:
        return query_box(index, extractor_for(key), image, pixels, box, k, cache, pixel_scale=scale)


def classifier_job(job: Job, index: CodeIndex, seed: int) -> CodeClassifierReport:
    try:
        return train_code_classifier(index, seed=seed, cancelled=lambda: job.cancelled, progress=job.progress)
    except InterruptedError:
        job.check()
        raise


def classifier_summary(report: CodeClassifierReport) -> str:
    """The classifier's result in one paragraph (rich text): classes, split, both scores against chance."""
    n_test = int(report.test.sum())
    codes = report.codes
    names = html.escape(", ".join(report.classes))
    scored = int(np.sum(~np.isnan(codes.recall)))
    over = "" if scored == len(report.classes) else f" (over the {scored} classes with a held-out box)"
    text = (f"{names}: {len(report.rows) - n_test} boxes of {report.train_images} images to train, {n_test} "
            f"boxes of {report.test_images} other images held out (split seed {report.seed}). Balanced accuracy "
            f"on them{over}: <b>{codes.balanced_accuracy:.2f}</b> from the CNN codes (plain accuracy "
            f"{codes.accuracy:.2f}, L2 {codes.l2:g})")
    if report.pixels is not None:
        text += f", {report.pixels.balanced_accuracy:.2f} from raw pixels"
    text += f"; chance {report.chance:.2f}."
    if report.pixels_problem:
        text += f" No baseline: {html.escape(report.pixels_problem)}."
    if report.left_out:
        text += f" {report.left_out} boxes of rarer classes took no part."
    return text


class FeaturesStage(Stage):
    """See the module docstring."""

    menu_title = "Detector"
    dock_area = "bottom"

    def __init__(self, canvas: Canvas, session: DetectorSession, window: QWidget | None = None,
                 cache_path: str | None = None) -> None:
        super().__init__(window)
        self._canvas = canvas
        self._session = session
        self._window = window
        self._cache_path = cache_path
        self._source: DatasetSource | None = None
        self.index: CodeIndex | None = None
        self._index_key = ""
        self.query: BoxQuery | None = None
        self.classifier: CodeClassifierReport | None = None
        self._classifier_index: CodeIndex | None = None  # the index the running classifier job was given
        self.panel = FeaturesPanel()
        self._dock = make_dock("CNN codes", "cnn_codes_dock", self.panel, window)
        self._pool = WorkerPool(self)
        self.index_runner = LatestRunner(self._pool, index_job, self._on_index, on_error=self._on_index_error,
                                         on_progress=self.panel.set_progress, on_idle=self._on_index_idle,
                                         parent=self)
        self.query_runner = LatestRunner(self._pool, query_job, self._on_query, on_error=self._on_query_error,
                                         parent=self)
        self.classifier_runner = LatestRunner(self._pool, classifier_job, self._on_classifier,
                                              on_error=self._on_classifier_error,
                                              on_progress=self._on_classifier_progress, parent=self)
        self.panel.classifierRequested.connect(self.train_classifier)
        self.panel.indexRequested.connect(self.start_index)
        self.panel.cancelRequested.connect(self.cancel_index)
        self.panel.neighbourActivated.connect(self.open_neighbour)
        self.panel.k_spin.valueChanged.connect(self.ask_selected)
        self.panel.extractor_combo.currentIndexChanged.connect(self._on_extractor_changed)
        canvas.model.selectionChanged.connect(self.ask_selected)

    def docks(self) -> list[QDockWidget]:
        return [self._dock]

    def set_dataset(self, source: DatasetSource | None) -> None:
        self._source = source
        self.index_runner.cancel()
        self._set_index(None)  # drops the query too
        self.panel.set_busy(False)
        self.panel.status.setText("Index the dataset's labelled boxes to see neighbours." if source is not None
                                  else "Open a dataset with labelled boxes, then index it.")

    # --- indexing -------------------------------------------------------------------------------------------
    def start_index(self) -> None:
        if self._source is None:
            self.panel.status.setText("Open a dataset first.")
            return
        missing = missing_weights(self.panel.extractor_key)
        if missing:  # the index of the other network, if any, stays usable
            self.panel.status.setText(f"Cannot index: {missing}")
            return
        self._set_index(None)
        self._index_key = self.panel.extractor_key
        self.panel.set_busy(True)
        self.panel.status.setText("Building the network and computing codes…")
        self.index_runner.request(self._source, self._index_key, self._cache_path)

    def cancel_index(self) -> None:
        self.index_runner.cancel()
        self.panel.set_busy(False)
        self.panel.status.setText("Indexing cancelled.")

    def _on_extractor_changed(self) -> None:
        if self.index is not None or self.index_runner.busy:
            self.start_index()  # another network: another index (from the cache when seen before)

    def _set_index(self, index: CodeIndex | None) -> None:
        """A new index (or none) drops what was answered from the old one: the selected box's query and the
        classifier trained on it."""
        self.index = index
        self.query_runner.cancel()
        self._show_query(None)
        self.classifier_runner.cancel()
        self.classifier = None
        self._classifier_index = None
        self.panel.show_recalls([], [])
        self.panel.classifier_button.setEnabled(index is not None)
        self.panel.classifier_status.setText("Train the classifier on this index." if index is not None
                                             else "Index the dataset's boxes first.")

    def _on_index(self, index: CodeIndex) -> None:
        self._set_index(index)
        self.panel.set_busy(False)
        problems = f"; {len(index.problems)} image(s) could not be read" if index.problems else ""
        self.panel.status.setText(f"{len(index)} labelled boxes indexed ({index.from_cache} from the cache), "
                                  f"{index.description}{problems}. Select a box.")
        self.message.emit(f"CNN codes: {len(index)} boxes indexed")
        self.ask_selected()

    def _on_index_error(self, message: str) -> None:
        self.panel.set_busy(False)
        text = error_summary(message)
        self.panel.status.setText(f"Indexing failed: {text}")
        self.message.emit(f"CNN codes: {text}")

    def _on_index_idle(self) -> None:
        if self.index is None and not self.index_runner.busy:
            self.panel.set_busy(False)

    # --- the linear classifier -----------------------------------------------------------------------------
    def train_classifier(self) -> None:
        if self.index is None:
            self.panel.classifier_status.setText("Index the dataset's boxes first.")
            return
        self.panel.classifier_button.setEnabled(False)
        self.panel.classifier_status.setText("Training the classifier on the codes and on raw pixels…")
        self._classifier_index = self.index
        self.classifier_runner.request(self.index, self.panel.split_seed.value())

    def _on_classifier_progress(self, fraction: float, message: str) -> None:
        self.panel.classifier_status.setText(message)

    def _on_classifier(self, report: CodeClassifierReport) -> None:
        self.panel.classifier_button.setEnabled(self.index is not None)
        if self.index is None or self._classifier_index is not self.index:
            return  # trained on an index since replaced
        self.classifier = report
        self.panel.classifier_status.setText(classifier_summary(report))
        series = [(f"CNN codes ({report.codes.balanced_accuracy:.2f})", report.codes.recall)]
        if report.pixels is not None:
            series.append((f"raw pixels ({report.pixels.balanced_accuracy:.2f})", report.pixels.recall))
        self.panel.show_recalls(report.classes, series)
        self.message.emit(f"CNN codes: linear classifier, balanced accuracy {report.codes.balanced_accuracy:.2f}")
        if self.query is not None:
            self._show_query(self.query)

    def _on_classifier_error(self, message: str) -> None:
        self.panel.classifier_button.setEnabled(self.index is not None)
        self.panel.classifier_status.setText(f"Could not train the classifier: {error_summary(message)}")

    # --- the selected box -----------------------------------------------------------------------------------
    def ask_selected(self) -> None:
        """Ask for the code and neighbours of the canvas's selected box (the first, if several)."""
        model = self._canvas.model
        decoded = self._session.decoded
        selected = model.selected_indices
        if self.index is None or decoded is None or decoded.path is None:
            return
        if not selected:
            self.query_runner.cancel()
            self._show_query(None)  # nothing selected: no neighbours of a box no longer chosen
            return
        box = tuple(float(v) for v in model.object(selected[0]).box)
        self.query_runner.request(self.index, self._index_key, str(decoded.path), decoded.pixels, box,
                                  self.panel.k_spin.value(), float(decoded.scale), self._cache_path)

    def _on_query(self, query: BoxQuery) -> None:
        self._show_query(query)

    def _on_query_error(self, message: str) -> None:
        self.panel.status.setText(f"Could not compute the box's code: {error_summary(message)}")

    def _show_query(self, query: BoxQuery | None) -> None:
        self.query = query
        if query is None:
            self.panel.show_codes(None, None)
            self.panel.show_neighbours([])
            return
        self.panel.show_codes(query.code, query.neighbour_codes)
        self.panel.show_neighbours([(t, nb.box.class_name, nb.distance)
                                    for t, nb in zip(query.thumbnails, query.neighbours, strict=True)])
        same = 0
        model = self._canvas.model
        if model.selected_indices:
            name = model.object(model.selected_indices[0]).name
            same = sum(nb.box.class_name == name for nb in query.neighbours)
        origin = "its code from the index" if query.from_index else "its code computed now (box not in the index)"
        self.panel.status.setText(f"{same} of {len(query.neighbours)} nearest boxes share its class; {origin}."
                                  + self._classifier_says(query))

    def _classifier_says(self, query: BoxQuery) -> str:
        """The trained classifier's likely classes for the query's box (1% or more, at most three), and how
        that box stands to it: held out, trained on, of a class it does not know, or not in the index."""
        report = self.classifier
        if report is None or self.index is None:
            return ""
        likely = [(name, p) for name, p in report.probabilities(query.code) if p >= 0.01][:3]
        top = ", ".join(f"{name} {p:.0%}" for name, p in likely)
        if query.row is None:
            return f" Classifier: {top} (a box not in the index)."
        name = self.index.boxes[query.row].class_name
        if name not in report.classes:
            return f" Classifier: {top} (it knows {', '.join(report.classes)}, not {name})."
        held = report.held_out(query.row)
        return f" Classifier: {top} ({'a held-out box' if held else 'a box it was trained on'})."

    def open_neighbour(self, position: int) -> bool:
        """Open the image of neighbour ``position`` and select its box."""
        if self.query is None or not 0 <= position < len(self.query.neighbours):
            return False
        target = self.query.neighbours[position].box
        document = getattr(self._window, "document", None)
        if document is None or document.source is not self._source:
            self.message.emit("Open the indexed dataset in the window to go to a neighbour.")
            return False
        if not document.go_to(target.entry_index):
            return False
        self._canvas.model.select([target.object_index])
        self._dock.raise_()
        return True

    def shutdown(self) -> None:
        self.classifier_runner.cancel()
        self.index_runner.cancel()
        self.query_runner.cancel()
        self._pool.shutdown()



