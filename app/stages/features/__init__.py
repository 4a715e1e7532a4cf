"""What CNN codes capture: a selected box's code and its nearest labelled boxes (issue 17)."""

from app.stages.features.controller import FeaturesStage

__all__ = ["FeaturesStage"]
