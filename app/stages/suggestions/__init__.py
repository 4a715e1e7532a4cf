"""Model-assisted labelling: detections offered as ground-truth boxes to accept or reject, undoably."""

from app.stages.suggestions.controller import SuggestionsStage

__all__ = ["SuggestionsStage"]
