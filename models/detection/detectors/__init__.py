"""Detector generations behind one interface, built by name so training and checkpoints stay generic.

``register(name, build, rebuild)``: ``build(class_names, **kwargs)`` makes a fresh model for training (keyword
settings, or ``config=`` a :class:`~models.detection.config.DetectorConfig`), ``rebuild(class_names, config,
version)`` makes one from a checkpoint's ``model_config`` of that format version; nothing else in training or
checkpoints needs to change for a new generation.
"""

from __future__ import annotations

from collections.abc import Callable

from models.detection.detectors.base import Detections, Detector


class UnknownGeneration(ValueError):
    """A generation name that no registered detector has (a typo, or a checkpoint of a newer version)."""


_BUILDERS: dict[str, tuple[Callable[..., Detector], Callable[..., Detector]]] = {}


def register(name: str, build: Callable[..., Detector], rebuild: Callable[..., Detector]) -> None:
    _BUILDERS[name] = (build, rebuild)


def generations() -> list[str]:
    _ensure_builtin()
    return sorted(_BUILDERS)


def _ensure_builtin() -> None:
    if "faster-rcnn" not in _BUILDERS:
        from models.detection.detectors.faster_rcnn import FasterRCNN
        register("faster-rcnn", FasterRCNN.build, FasterRCNN.from_config)
    if "fast-rcnn" not in _BUILDERS:
        from models.detection.detectors.fast_rcnn import FastRCNN
        register("fast-rcnn", FastRCNN.build, FastRCNN.from_config)
    if "rcnn" not in _BUILDERS:
        from models.detection.detectors.rcnn import RCNN
        register("rcnn", RCNN.build, RCNN.from_config)
    if "cls-loc" not in _BUILDERS:
        from models.detection.detectors.cls_loc import ClsLoc
        register("cls-loc", ClsLoc.build, ClsLoc.from_config)


def build_detector(generation: str, class_names: list[str], **kwargs) -> Detector:
    """A fresh detector of ``generation``; :class:`UnknownGeneration` names the generations that exist."""
    return _builders(generation)[0](class_names, **kwargs)


def rebuild_detector(generation: str, class_names: list[str], config: dict, version: int = 2) -> Detector:
    """The detector a checkpoint's ``model_config`` describes (``version``: the checkpoint's format version;
    1 is the flat layout, migrated by :func:`models.detection.config.migrate_v1`), weights not loaded."""
    return _builders(generation)[1](class_names, config, version)


def _builders(generation: str) -> tuple[Callable[..., Detector], Callable[..., Detector]]:
    _ensure_builtin()
    if generation not in _BUILDERS:
        raise UnknownGeneration(f"unknown detector generation {generation!r} "
                                f"(available: {', '.join(sorted(_BUILDERS))})")
    return _BUILDERS[generation]


__all__ = ["Detections", "Detector", "UnknownGeneration", "build_detector", "generations",
           "rebuild_detector", "register"]
