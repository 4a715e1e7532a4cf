"""The stages the main window hosts, in menu order. Add a stage here; the window needs no other change."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from app.canvas import Canvas
from app.canvas_export import CanvasExport
from app.stages.anchors.controller import AnchorsStage
from app.stages.base import Stage
from app.stages.dataset_stats import DatasetStatsStage
from app.stages.detections import DetectionsStage
from app.stages.detector_session import DetectorSession
from app.stages.evaluation import EvaluationStage
from app.stages.features import FeaturesStage
from app.stages.model import ModelStage
from app.stages.nms import NmsStage
from app.stages.regression.controller import RegressionStage
from app.stages.roi_grid.stage import RoiGridStage
from app.stages.roi_sampling.stage import RoiSamplingStage
from app.stages.rpn.controller import RpnStage
from app.stages.runs import RunsStage
from app.stages.suggestions import SuggestionsStage
from app.stages.training import TrainingStage


def build_stages(canvas: Canvas, session: DetectorSession, window: QWidget | None) -> list[Stage]:
    """Every detector stage, built once per window. Each adds its own layers to ``canvas``."""
    stages: list[Stage] = []
    # The Model stage first: it loads the model and produces the trace every later stage draws from.
    model_stage = ModelStage(canvas, session, window)
    stages.append(model_stage)
    stages.append(AnchorsStage(canvas, session, window))
    stages.append(RpnStage(canvas, session, window))
    stages.append(RegressionStage(canvas, session, window))
    stages.append(RoiSamplingStage(canvas, session, window))
    stages.append(RoiGridStage(canvas, session, window))
    stages.append(NmsStage(canvas, session, window))
    detections = DetectionsStage(canvas, session, window)
    stages.append(detections)
    stages.append(SuggestionsStage(canvas, session, window))
    # Bottom dock area: evaluation of the model (or a detections file) on the dataset; opens worst images with
    # the Detections layer set to its thresholds.
    stages.append(EvaluationStage(canvas, session, window, detections=detections,
                                  class_map=lambda: model_stage.mapping))
    stages.append(FeaturesStage(canvas, session, window))  # bottom area: CNN codes and their neighbours
    stages.append(DatasetStatsStage(canvas, session, window))  # bottom dock: counts, sizes vs anchors
    # Bottom dock area: trains in worker processes; a finished run loads into the Model stage.
    training = TrainingStage(canvas, session, window, load_model=model_stage.load_model)
    stages.append(training)
    runs = RunsStage(canvas, session, window)  # bottom dock: finished runs side by side
    stages.append(runs)
    # A run that ends is listed at once (both live in the GUI thread: a direct call to a QObject's slot).
    training.runStarted.connect(runs.training_started)
    training.runFinished.connect(runs.training_ended)
    training.runFailed.connect(runs.training_ended)
    stages.append(CanvasExport(canvas, window))  # View menu: export the canvas with its visible layers
    return stages
