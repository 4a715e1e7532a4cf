"""The Training stage: train a detector on the open dataset in worker processes, with live plots."""

from app.stages.training.stage import TrainingStage

__all__ = ["TrainingStage"]
