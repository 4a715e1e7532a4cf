"""The state the detector stages share: which model is loaded, the image it looks at, and what it saw there.

One :class:`DetectorSession` per window. It follows the canvas (the image shown and the annotation model's
boxes as ground truth) and holds the latest trace of the loaded model on that image, so every detector stage
(anchors, RPN, box regression, RoI sampling, RoI grid, NMS, detections) draws from the same result object and
none re-runs the network for itself. Loading and running models in workers is the detector stage's job; this
object only holds the outcome and announces changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from app.canvas import Canvas
from models.data.io import DecodedImage


def of_classes(names: list[str], classes: Iterable[str]) -> np.ndarray:
    """Which of ``names`` (ground-truth objects) are among ``classes`` (what a model learnt, what detections
    can name), [N] bool; all of them where none is, since there is then no subset to pick (an image outside
    the model's domain, a results file that numbers its categories)."""
    known = set(classes)
    inside = np.asarray([n in known for n in names], bool).reshape(-1)
    return inside if inside.any() else np.ones(len(names), bool)


def left_out_sentence(names: list[str], kept: np.ndarray, why: str) -> str:
    """"N ground-truth boxes of tie (1), dining table (2) ``why``": the objects of ``names`` not ``kept``,
    counted per class, for a panel that says what it left out; "" where nothing was."""
    counts: dict[str, int] = {}
    for name in (n for n, keep in zip(names, kept, strict=True) if not keep):
        counts[name] = counts.get(name, 0) + 1
    if not counts:
        return ""
    n = sum(counts.values())
    return (f"{n} ground-truth box{'es' if n > 1 else ''} of "
            f"{', '.join(f'{k} ({v})' for k, v in sorted(counts.items()))} {why}")


class DetectorSession(QObject):
    """Loaded model + current image + ground truth + latest trace, with change signals."""

    #: The loaded model changed (the model object, or None when unloaded).
    modelChanged = Signal(object)
    #: A new trace for the current image (the trace object, or None when cleared: new image or new model).
    traceChanged = Signal(object)
    #: The canvas shows another image (or none).
    imageChanged = Signal()
    #: The ground-truth boxes of the current image changed (an edit, undo, another image).
    groundTruthChanged = Signal()
    #: Detections stored per image path changed (folder inference, or a results file loaded).
    storedDetectionsChanged = Signal()
    #: The domain note changed, or whether detections are shown despite it (the note, "" when none).
    domainNoteChanged = Signal(str)
    #: A one-line message for the status bar.
    message = Signal(str)

    def __init__(self, canvas: Canvas, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._canvas = canvas
        self._model: Any = None
        self._model_path: str = ""
        self._trace: Any = None
        self._decoded: DecodedImage | None = canvas.image_layer.decoded
        self._stored: dict[str, Any] = {}
        self._stored_source = ""
        self._domain_note = ""
        self._show_out_of_domain = False
        self._model_classes: tuple[str, ...] = ()
        canvas.image_layer.changed.connect(self._on_image)
        canvas.model.changed.connect(self.groundTruthChanged)
        canvas.model.annotationReset.connect(self.groundTruthChanged)

    # --- the model -------------------------------------------------------------------------------------------
    @property
    def model(self) -> Any:
        """The loaded :class:`models.detection.detectors.base.Detector` (eval mode), or None."""
        return self._model

    @property
    def model_path(self) -> str:
        return self._model_path

    def set_model(self, model: Any, path: str = "") -> None:
        """Use ``model`` from now on; the old trace no longer describes it and is cleared."""
        self._model = model
        self._model_path = str(path)
        self.modelChanged.emit(model)
        self.set_trace(None)

    # --- the image and its ground truth ----------------------------------------------------------------------
    @property
    def canvas(self) -> Canvas:
        return self._canvas

    @property
    def decoded(self) -> DecodedImage | None:
        return self._decoded

    @property
    def pixels(self) -> np.ndarray | None:
        """The current image as H×W×3 uint8 RGB, or None. May be a reduced preview of a huge image:
        ``decoded.scale`` maps its pixels to the displayed (scene) pixels that boxes and layers use."""
        return None if self._decoded is None else self._decoded.pixels

    def gt_boxes(self) -> np.ndarray:
        """Ground-truth boxes of the current image, [N, 4] float32 xyxy image pixels (edits included)."""
        objs = self._canvas.model.objects
        if not objs:
            return np.zeros((0, 4), np.float32)
        return np.asarray([o.box for o in objs], np.float32).reshape(-1, 4)

    def gt_names(self) -> list[str]:
        """Class names of :meth:`gt_boxes`, same order."""
        return [o.name for o in self._canvas.model.objects]

    def gt_ignored(self) -> np.ndarray:
        """Which of :meth:`gt_boxes` are crowd or difficult, [N] bool: training takes them as regions to ignore,
        not as objects (models/detection/ignore_regions.py), and the anchor and RoI views do the same."""
        return np.asarray([bool(o.difficult or o.crowd) for o in self._canvas.model.objects], bool)

    def set_model_classes(self, names: list[str]) -> None:
        """The loaded model's classes under the names this dataset uses (the Model stage's class mapping
        applied); () with no model. Training left the other classes' objects out (``train --classes``), so
        :meth:`learnt` and :meth:`training_gt` do too."""
        names = tuple(str(n) for n in names)
        if names != self._model_classes:
            self._model_classes = names
            self.groundTruthChanged.emit()

    def learnt(self) -> np.ndarray:
        """Which of :meth:`gt_boxes` are of a class the loaded model learnt, [N] bool: all of them without a
        model, or where none is (the image is outside the model's domain, :attr:`domain_note`; its views then
        show the boxes as they are rather than none)."""
        return of_classes(self.gt_names(), self._model_classes)

    def training_gt(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(boxes, regions, index)`` as training takes the ground truth: the ordinary boxes, the crowd and
        difficult ones (regions to ignore), and each ordinary box's index among the image's objects; objects
        of classes the loaded model did not learn are left out, as its training left them out."""
        boxes, ignored, learnt = self.gt_boxes(), self.gt_ignored(), self.learnt()
        return boxes[learnt & ~ignored], boxes[learnt & ignored], np.flatnonzero(learnt & ~ignored)

    def left_out_note(self) -> str:
        """What :meth:`training_gt` leaves out, in a sentence for the panels that label against it: "" where
        nothing is (no model, or every object of a learnt class)."""
        return left_out_sentence(self.gt_names(), self.learnt(), "left out: the model did not learn these classes")

    def _on_image(self) -> None:
        decoded = self._canvas.image_layer.decoded
        if decoded is self._decoded:
            return
        self._decoded = decoded
        self.set_trace(None)
        self.imageChanged.emit()

    # --- the trace ------------------------------------------------------------------------------------------
    @property
    def trace(self) -> Any:
        """The loaded model's trace on the current image (e.g. :class:`FasterRCNNTrace`), or None."""
        return self._trace

    def set_trace(self, trace: Any) -> None:
        self._trace = trace
        self.traceChanged.emit(trace)

    # --- detections stored per image (folder inference, a results file) --------------------------------------
    @property
    def stored_source(self) -> str:
        """Where the stored detections came from ("folder inference with X.pt", "results.json"), or ""."""
        return self._stored_source

    def set_stored_detections(self, by_path: dict[str, Any], source: str) -> None:
        """Replace the stored detections: resolved image path (str) → :class:`models.detection.detectors.base.Detections`
        in that image's displayed pixels. Used for images without a live trace."""
        self._stored = dict(by_path)
        self._stored_source = str(source)
        self.storedDetectionsChanged.emit()

    def stored_detections(self, path: str | None = None) -> Any:
        """Stored detections of ``path`` (default: the current image), or None."""
        if path is None:
            if self._decoded is None or self._decoded.path is None:
                return None
            path = str(self._decoded.path.resolve())
        return self._stored.get(str(path))

    def current_detections(self) -> Any:
        """What the detections views show for the current image: the live trace's final detections when the
        model ran on it, else the stored ones, else None."""
        trace_dets = getattr(self._trace, "detections", None)
        return trace_dets if trace_dets is not None else self.stored_detections()

    # --- does the model apply to this image? -----------------------------------------------------------------
    @property
    def domain_note(self) -> str:
        """Why the loaded model's results do not apply to the current image ("" when they do, or nobody knows).

        Set by the Model stage when the image's ground-truth classes share none with the model's, e.g. the
        bundled photographs under the shapes model: its boxes there would be nonsense, so the detector
        layers show this note instead of detections (unless the user asks to see them anyway)."""
        return self._domain_note

    def set_domain_note(self, note: str) -> None:
        note = str(note or "")
        if note == self._domain_note:
            return
        self._domain_note = note
        self.domainNoteChanged.emit(note)

    @property
    def show_out_of_domain(self) -> bool:
        """The user asked to see detections even where :attr:`domain_note` says they mean nothing."""
        return self._show_out_of_domain

    def set_show_out_of_domain(self, on: bool) -> None:
        if bool(on) == self._show_out_of_domain:
            return
        self._show_out_of_domain = bool(on)
        self.domainNoteChanged.emit(self._domain_note)

    @property
    def detections_hidden(self) -> bool:
        """Detection-like layers (detections, NMS candidates, class boxes) should draw nothing but the note:
        there is a :attr:`domain_note` and the user has not asked to show them anyway. Geometry-only layers
        (anchors, RoI grids) may still draw, with the note in their panel."""
        return bool(self._domain_note) and not self._show_out_of_domain
