"""The evaluation view (bottom dock): AP per class, PR curves, confusion matrix and worst images of a model or a
detections file on the open dataset, each worst image one click away."""

from app.stages.evaluation.controller import EvaluationStage

__all__ = ["EvaluationStage"]
