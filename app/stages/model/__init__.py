"""The Model stage: load a detector checkpoint, run it on the image shown and on the whole dataset, and say
when it does not fit the data (see :mod:`app.stages.model.controller`)."""

from app.stages.model.controller import ModelStage

__all__ = ["ModelStage"]
