"""The stages the main window hosts, in menu order. Add a stage here; the window needs no other change."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from app.canvas import Canvas
from app.stages.base import Stage
from app.stages.detections import DetectionsStage
from app.stages.detector_session import DetectorSession
from app.stages.nms import NmsStage
from app.stages.suggestions import SuggestionsStage


def build_stages(canvas: Canvas, session: DetectorSession, window: QWidget | None) -> list[Stage]:
    """Every detector stage, built once per window. Each adds its own layers to ``canvas``."""
    stages: list[Stage] = []
    stages.append(NmsStage(canvas, session, window))
    stages.append(DetectionsStage(canvas, session, window))
    stages.append(SuggestionsStage(canvas, session, window))
    return stages
