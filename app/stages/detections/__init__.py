"""The Detections stage: final boxes with class and score, scored against the ground truth (TP, FP with a
reason, missed), and "Load detections…" for results from elsewhere."""

from app.stages.detections.controller import DetectionsStage

__all__ = ["DetectionsStage"]
