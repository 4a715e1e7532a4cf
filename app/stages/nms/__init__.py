"""The NMS stage: candidate boxes before and after non-maximum suppression, a live IoU slider, a step mode."""

from app.stages.nms.controller import NmsStage

__all__ = ["NmsStage"]
