"""Finished training runs listed and compared side by side (loss curves overlaid, AP per class)."""

from app.stages.runs.stage import RunsStage

__all__ = ["RunsStage"]
