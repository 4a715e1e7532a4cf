"""The Anchors stage: the anchor grid of the panel's parameters over the current image, labelled vs the GT.

No model is needed: the parameters alone define the anchors. With a model loaded, the panel starts from the
model's parameters and the anchors live where the model sees them, in its *network input* (the image resized
to ``min_size``); they are drawn mapped back onto the displayed image (:class:`app.stages.input_scale.InputScale`)
and the panel says at which scale. Without a model, network input = the displayed image.

Labelling (:func:`models.detection.anchor_labels.label_anchor_grid`) runs in a worker: 17,000 anchors × a few GT boxes
takes 1–5 ms on an idle machine, but a stride-8 map of a large image or many GT boxes takes 100 ms–1 s, and a
busy machine multiplies that. A :class:`app.proposal_tools.LatestRunner` keeps only the latest request. Nothing
is computed while the layer is hidden.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QWidget

from app.canvas import Canvas
from app.layers.anchors import MODE_BOXES, MODE_CELL, MODE_DOTS, AnchorLayer
from app.layers.base import OverlayLayer
from app.proposal_tools import LatestRunner
from app.stages.anchors.panel import SHOW_BOXES, SHOW_DOTS, SHOW_HOVER, AnchorsPanel
from app.stages.applicability import not_applicable, show_not_applicable
from app.stages.base import Stage, make_dock
from app.stages.detector_session import DetectorSession
from app.stages.input_scale import InputScale
from app.workers import Job, WorkerPool
from models.detection.anchor_labels import (
    KIND_NAMES,
    AnchorLabelling,
    AnchorSpec,
    input_geometry,
    label_anchor_grid,
    spec_from_model,
)
from models.detection.anchors import POSITIVE

#: Milliseconds the parameters must stay unchanged before relabelling (spin-box typing).
DEBOUNCE_MS = 150

_LAYER_MODE = {SHOW_DOTS: MODE_DOTS, SHOW_BOXES: MODE_BOXES}


@dataclass
class AnchorView:
    """A labelling plus what the layer needs in scene pixels (prepared in the worker)."""

    labelling: AnchorLabelling
    scale: InputScale
    boxes: np.ndarray  # [N, 4] scene pixels
    centres: np.ndarray  # [C, 2] scene pixels
    cell_kinds: np.ndarray
    #: For each GT box the labelling matched against, its index among the image's objects (crowd and
    #: difficult ones are regions to ignore, not matched), so the panel numbers them as the image does.
    gt_index: np.ndarray


def anchor_job(job: Job, spec: AnchorSpec, input_size: tuple[int, int], gt_input: np.ndarray,
               feature_size: tuple[int, int] | None, scale: InputScale, regions: np.ndarray | None = None,
               gt_index: np.ndarray | None = None) -> AnchorView:
    lab = label_anchor_grid(spec, input_size, gt_input, feature_size, ignore_regions=regions)
    job.check()
    index = np.arange(len(gt_input)) if gt_index is None else np.asarray(gt_index, np.int64)
    return AnchorView(lab, scale, scale.boxes_to_scene(lab.boxes), scale.points_to_scene(lab.centres()),
                      lab.cell_kinds(), index)


class AnchorsStage(Stage):
    """Anchors layer + panel, following the session's image, ground truth and model."""

    #: A new labelling is shown (the AnchorLabelling).
    labelsReady = Signal(object)
    #: The highlighted cell changed: (row, column), or None.
    cellChanged = Signal(object)

    def __init__(self, canvas: Canvas, session: DetectorSession, window: QWidget | None = None) -> None:
        super().__init__(window)
        self._canvas = canvas
        self._session = session
        self._closed = False
        self._key: tuple | None = None
        self._view: AnchorView | None = None
        #: A labelling was asked for and has not come back yet.
        self._pending = False
        self._selected: tuple[int, int] | None = None
        self._hover: tuple[int, int] | None = None
        self.layer = AnchorLayer()
        canvas.add_layer(self.layer)
        self.panel = AnchorsPanel()
        self._dock = make_dock("Anchors", "anchors_dock", self.panel, window)
        self._pool = WorkerPool(self)
        self.runner = LatestRunner(self._pool, anchor_job, self._on_view, on_error=self._on_error, parent=self)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.refresh)

        p = self.panel
        p.show_box.toggled.connect(self.layer.setVisible)
        self.layer.visibleChanged.connect(self._on_visibility)
        p.paramsChanged.connect(self._timer.start)
        p.showChanged.connect(self._on_show)
        p.kindsChanged.connect(self.layer.set_shown_kinds)
        p.resetRequested.connect(self.use_model_spec)
        session.modelChanged.connect(self._on_model)
        session.imageChanged.connect(self._on_image)
        session.groundTruthChanged.connect(self._timer.start)
        session.traceChanged.connect(self._on_trace)
        canvas.cursorMoved.connect(self._on_cursor)
        canvas.pointClicked.connect(self._on_click)
        self._on_show(p.show_mode())
        self._on_model(session.model)

    # --- Stage ---------------------------------------------------------------------------------------------
    def docks(self) -> list[QDockWidget]:
        return [self._dock]

    def actions(self) -> list[QAction]:
        return []

    def layers(self) -> list[OverlayLayer]:
        return [self.layer]

    def shutdown(self) -> None:
        self._closed = True
        self._timer.stop()
        self.runner.cancel()
        self._pool.shutdown()

    # --- state ---------------------------------------------------------------------------------------------
    @property
    def labelling(self) -> AnchorLabelling | None:
        """The labelling shown now (input pixels), or None."""
        return None if self._view is None else self._view.labelling

    @property
    def scale(self) -> InputScale:
        return InputScale() if self._view is None else self._view.scale

    @property
    def selected_cell(self) -> tuple[int, int] | None:
        return self._selected

    def use_model_spec(self) -> None:
        spec = spec_from_model(self._session.model)
        if spec is not None:
            self.panel.set_spec(spec)

    # --- computing -----------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Relabel now (no debounce) if the layer is visible and what is shown is stale."""
        self._timer.stop()
        if self.layer.isVisible():
            self.request()

    def _geometry(self) -> tuple[tuple[int, int], InputScale, tuple[int, int] | None, str]:
        """Network-input size, scene mapping, feature size (None: computed from the stride) and a note."""
        d = self._session.decoded
        assert d is not None
        model = self._session.model
        trace = self._session.trace
        if trace is not None and hasattr(trace, "input_size"):
            input_size = (int(trace.input_size[0]), int(trace.input_size[1]))
        elif model is not None and hasattr(model, "min_size"):
            input_size, _ = input_geometry(d.height, d.width, model.min_size, model.max_size)
        else:
            scale = InputScale()
            return (d.height, d.width), scale, None, (
                "No model loaded: anchors in the pixels of the displayed image "
                f"({d.width}×{d.height}). A model would first resize the image to its input size.")
        scale = InputScale.from_sizes(input_size, d.width, d.height)
        fs = None
        if trace is not None and getattr(getattr(trace, "anchors", None), "stride", None) == self.panel.stride_spin.value():
            fs = tuple(int(v) for v in trace.feature_size)
        note = (f"Anchors live in the model's network input, {input_size[1]}×{input_size[0]} px = "
                f"{scale.sx:.2f}× the displayed image ({d.width}×{d.height}); sizes are in input pixels and "
                f"drawn scaled back onto the image.")
        return input_size, scale, fs, note

    def request(self) -> int:
        """Label the anchors of the current parameters for the current image and GT, visible or not."""
        d = self._session.decoded
        if d is None or self._closed:
            self._clear("No image")
            return -1
        why = not_applicable(self._session.model, "anchors")
        if why:
            self._clear(why)
            return -1
        try:
            spec = self.panel.spec()
        except ValueError as exc:
            self._key = None
            self.panel.set_status(f"Cannot make anchors: {exc}")
            return -1
        input_size, scale, fs, note = self._geometry()
        boxes, regions, index = self._session.training_gt()
        gt, regions = scale.boxes_to_input(boxes), scale.boxes_to_input(regions)
        key = (id(d), spec, input_size, fs, scale, gt.tobytes(), regions.tobytes())
        if key == self._key:
            if self._view is not None and not self._pending:  # an edit of boxes left out: the note may change
                self._show_labelled()
            return self.runner.generation
        self._key = key
        self._pending = True
        self.panel.set_scale_note(note)
        self.panel.set_status("Labelling anchors…")
        return self.runner.request(spec, input_size, gt, fs, scale, regions, index)

    def _on_view(self, view: AnchorView) -> None:
        self._view = view
        self._pending = False
        lab = view.labelling
        self.layer.set_anchors(view.boxes, lab.kinds, view.centres, view.cell_kinds, lab.best_anchor, lab.best_iou,
                               (*lab.feature_size, lab.per_cell), view.gt_index + 1)
        self.panel.set_counts(lab.counts(), int(lab.kinds.size), lab.feature_size, lab.per_cell)
        self._show_best()
        fs = lab.feature_size
        if self._selected is not None and not (self._selected[0] < fs[0] and self._selected[1] < fs[1]):
            self._selected = None
        self._update_cell()
        self._show_labelled()
        self.labelsReady.emit(lab)

    def _show_labelled(self) -> None:
        """The status line of the labelling on screen, with the boxes it left out as the session has them now."""
        lab = self._view.labelling
        left_out = self._session.left_out_note()
        n_gt = lab.best_anchor.size
        self.panel.set_status(f"{lab.kinds.size} anchors labelled against {n_gt} ground-truth "
                              f"box{'' if n_gt == 1 else 'es'}." + (f" {left_out}." if left_out else ""))

    def _on_error(self, message: str) -> None:
        self._key = None
        self._pending = False
        first = message.splitlines()[0] if message else "error"
        self.panel.set_status(f"Labelling failed: {first}")
        self.message.emit(f"Anchors: {first}")

    def _clear(self, status: str) -> None:
        self._key = None
        self._view = None
        self._pending = False
        self._selected = self._hover = None
        self.runner.cancel()
        self.layer.clear()
        self.panel.set_counts(None)
        self.panel.show_cell("Click a cell on the image to list its anchors.", [], [])
        self.panel.set_best("")
        self.panel.set_status(status)

    # --- session -------------------------------------------------------------------------------------------
    def _on_model(self, model: Any) -> None:
        why = not_applicable(model, "anchors")
        show_not_applicable(self.panel, why)
        if why:
            self._clear(why)
            return
        spec = spec_from_model(model)
        self.panel.reset_button.setEnabled(spec is not None)
        if spec is not None:
            self.panel.set_spec(spec)  # emits paramsChanged → relabel
        else:
            self._timer.start()

    def _on_image(self) -> None:
        self._clear("Not computed" if self._session.decoded is not None else "No image")
        self.refresh()

    def _on_trace(self, _trace: Any) -> None:
        self._timer.start()  # the input size / feature size may now be the trace's own

    def _on_visibility(self) -> None:
        on = self.layer.isVisible()
        box = self.panel.show_box
        box.blockSignals(True)
        box.setChecked(on)
        box.blockSignals(False)
        if on:
            self.refresh()

    def _on_show(self, mode: str) -> None:
        self.layer.set_mode(_LAYER_MODE.get(mode, MODE_CELL))
        if mode != SHOW_HOVER:
            self._hover = None
        self._update_cell()

    # --- picking -------------------------------------------------------------------------------------------
    def cell_at(self, x: float, y: float) -> tuple[int, int] | None:
        """The cell under scene point (x, y), or None."""
        if self._view is None:
            return None
        return self._view.labelling.cell_at(*self._view.scale.point_to_input(x, y))

    def select_cell(self, cell: tuple[int, int] | None) -> None:
        self._selected = cell
        self._update_cell()

    def _on_click(self, x: float, y: float) -> None:
        if self.layer.isVisible() and self._view is not None:
            self.select_cell(self.cell_at(x, y))

    def _on_cursor(self, x: float, y: float, _value: object) -> None:
        if not self.layer.isVisible() or self._view is None or self.panel.show_mode() != SHOW_HOVER:
            return
        cell = self.cell_at(x, y)
        if cell != self._hover:
            self._hover = cell
            self._update_cell()

    def _update_cell(self) -> None:
        cell = self._hover if self._hover is not None else self._selected
        view = self._view
        if view is None or cell is None:
            self.layer.set_cell(np.zeros(0, np.int64), None)
            if view is not None:
                self.panel.show_cell("Click a cell on the image to list its anchors.", [], [])
            self.cellChanged.emit(None)
            return
        lab = view.labelling
        idx = lab.cell_indices(*cell)
        s = lab.spec.stride
        r, c = cell
        rect = view.scale.boxes_to_scene(np.array([[c * s, r * s, (c + 1) * s, (r + 1) * s]], np.float32))[0]
        self.layer.set_cell(idx, tuple(float(v) for v in rect))
        names = self._session.gt_names()
        boxes, max_iou, matched = lab.boxes, lab.max_iou, lab.matched
        rows, kinds = [], []
        for j, i in enumerate(idx.tolist()):
            size, ratio = lab.describe(i)
            x1, y1, x2, y2 = boxes[i]
            kind = int(lab.kinds[i])
            label = KIND_NAMES[kind] + (" (best of a GT)" if lab.forced[i] else "")
            m = int(matched[i])
            m = int(view.gt_index[m]) if 0 <= m < len(view.gt_index) else m
            gt = f"{m + 1} {names[m]}" if 0 <= m < len(names) else ("" if m < 0 else str(m + 1))
            rows.append((str(j), f"{size:g}", f"{ratio:g}", f"{x2 - x1:.0f}×{y2 - y1:.0f}", label,
                         f"{max_iou[i]:.2f}", gt))
            kinds.append(kind)
        self.panel.show_cell(f"Cell (row {r}, column {c}) · centre ({(c + 0.5) * s:.0f}, {(r + 0.5) * s:.0f}) input "
                             f"px · {len(rows)} anchors", rows, kinds)
        self.cellChanged.emit(cell)

    def _show_best(self) -> None:
        lab = self._view.labelling if self._view is not None else None
        if lab is None:
            self.panel.set_best("")
            return
        ignored = len(self._session.training_gt()[1])  # the regions training ignores (of the model's classes)
        regions = (f"{ignored} crowd or difficult box{'es' if ignored > 1 else ''}: no object to the RPN; the "
                   f"anchors overlapping one at IoU ≥ {lab.spec.negative_iou:.2f} are ignored, not negative."
                   if ignored else "")
        if lab.best_anchor.size == 0:
            self.panel.set_best(regions or "No ground-truth boxes on this image: every anchor inside it is negative.")
            return
        names = self._session.gt_names()
        fw = lab.feature_size[1]
        lines = [regions] if regions else []
        for j, (i, iou) in enumerate(zip(lab.best_anchor.tolist(), lab.best_iou.tolist(), strict=True)):
            g = int(self._view.gt_index[j]) if j < len(self._view.gt_index) else j
            name = names[g] if g < len(names) else ""
            if i < 0:
                lines.append(f"GT {g + 1} {name}: no anchor overlaps it — it cannot be learned by the RPN.")
                continue
            size, ratio = lab.describe(i)
            cell = i // lab.per_cell
            why = ("positive only by this rule" if lab.forced[i] else
                   "positive by its IoU" if lab.kinds[i] == POSITIVE else KIND_NAMES[int(lab.kinds[i])])
            lines.append(f"GT {g + 1} {name}: {size:g}² at {ratio:g}, cell ({cell // fw}, {cell % fw}), "
                         f"IoU <b>{iou:.2f}</b> → {why}")
        self.panel.set_best("<br>".join(lines))


__all__ = ["AnchorView", "AnchorsStage", "anchor_job"]
