"""The RPN stage: objectness heat map and the proposals before/after NMS, from the session's trace.

It never runs the network: the Model stage traces the loaded Faster R-CNN on the image and the session hands
the trace over. Changing N or the NMS threshold re-runs NMS on the trace's stored pre-NMS boxes
(:func:`models.detection.rpn_views.select_proposals`) in a worker through a :class:`app.proposal_tools.LatestRunner`:
6,000 boxes at a high threshold take from a few ms to ~0.5 s on a busy 2-core machine, too long for the GUI
thread while a slider is dragged. Boxes are drawn mapped from network-input pixels to the displayed image.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QDockWidget, QWidget

from app.canvas import Canvas
from app.layers.base import OverlayLayer
from app.layers.box_groups import BoxGroup, BoxGroupsLayer
from app.layers.heatmap import HeatmapLayer
from app.proposal_tools import LatestRunner
from app.stages.applicability import not_applicable, show_not_applicable
from app.stages.base import Stage, make_dock
from app.stages.detector_session import DetectorSession
from app.stages.input_scale import InputScale
from app.stages.rpn.panel import AFTER_COLOR, BEFORE_COLOR, RpnPanel
from app.workers import Job, WorkerPool
from models.detection.rpn_views import ProposalSelection, objectness_grid, select_proposals

NO_TRACE = ("No RPN to show yet: load a Faster R-CNN and run it on this image (Model panel). The RPN's outputs "
            "come from that run.")
NO_RPN = "The loaded model has no Region Proposal Network (R-CNN and Fast R-CNN take external proposals)."


def selection_job(job: Job, boxes: np.ndarray, scores: np.ndarray, top_n: int, threshold: float) -> ProposalSelection:
    return select_proposals(boxes, scores, top_n, threshold)


def has_rpn(trace: Any) -> bool:
    return trace is not None and all(hasattr(trace, a) for a in ("objectness", "proposals_pre_nms", "anchors"))


class RpnStage(Stage):
    """Objectness heat map + RPN proposals, following the session's trace."""

    #: A new proposal selection is drawn (the ProposalSelection).
    selectionReady = Signal(object)

    def __init__(self, canvas: Canvas, session: DetectorSession, window: QWidget | None = None) -> None:
        super().__init__(window)
        self._canvas = canvas
        self._session = session
        self._closed = False
        self._trace: Any = None
        self._scale = InputScale()
        self._selection: ProposalSelection | None = None
        self._grid: np.ndarray | None = None
        self.heat_layer = HeatmapLayer("RPN objectness")
        self.proposals_layer = BoxGroupsLayer("RPN proposals")
        for layer in (self.heat_layer, self.proposals_layer):
            canvas.add_layer(layer)
        self.panel = RpnPanel()
        self._dock = make_dock("RPN", "rpn_dock", self.panel, window)
        self._pool = WorkerPool(self)
        self.runner = LatestRunner(self._pool, selection_job, self._on_selection, on_error=self._on_error,
                                   parent=self)
        p = self.panel
        p.heat_box.toggled.connect(self.heat_layer.setVisible)
        self.heat_layer.visibleChanged.connect(lambda: self._sync(p.heat_box, self.heat_layer.isVisible()))
        p.heat_opacity.valueChanged.connect(lambda v: self.heat_layer.setOpacity(v / 100.0))
        p.stretch_box.toggled.connect(self._show_heat)
        p.proposals_box.toggled.connect(self.proposals_layer.setVisible)
        self.proposals_layer.visibleChanged.connect(
            lambda: self._sync(p.proposals_box, self.proposals_layer.isVisible()))
        p.before_box.toggled.connect(self._redraw)
        p.after_box.toggled.connect(self._redraw)
        p.selectionChanged.connect(self.request)
        session.traceChanged.connect(self._on_trace)
        if hasattr(session, "domainNoteChanged"):
            session.domainNoteChanged.connect(self._show_note)
        canvas.cursorMoved.connect(self._on_cursor)
        self._on_trace(session.trace)

    # --- Stage ---------------------------------------------------------------------------------------------
    def docks(self) -> list[QDockWidget]:
        return [self._dock]

    def layers(self) -> list[OverlayLayer]:
        return [self.heat_layer, self.proposals_layer]

    def shutdown(self) -> None:
        self._closed = True
        self.runner.cancel()
        self._pool.shutdown()

    @property
    def selection(self) -> ProposalSelection | None:
        """The selection drawn now (indices into the trace's pre-NMS boxes), or None."""
        return self._selection

    @property
    def scale(self) -> InputScale:
        return self._scale

    # --- trace ---------------------------------------------------------------------------------------------
    @staticmethod
    def _sync(box: Any, on: bool) -> None:
        box.blockSignals(True)
        box.setChecked(on)
        box.blockSignals(False)

    def _on_trace(self, trace: Any) -> None:
        self.runner.cancel()
        self._selection = None
        self.proposals_layer.set_groups([])
        d = self._session.decoded
        why = not_applicable(self._session.model, "rpn")
        show_not_applicable(self.panel, why)
        if why or not has_rpn(trace) or d is None:
            self._trace = None
            self._grid = None
            self.heat_layer.set_map(None)
            self.panel.set_available(False)
            self.panel.readout.setText("")
            self.panel.heat_label.setText("")
            self.panel.set_status(why or (NO_TRACE if trace is None else NO_RPN))
            return
        self._trace = trace
        self._scale = InputScale.from_sizes(trace.input_size, d.width, d.height)
        aset = trace.anchors
        self._grid = grid = objectness_grid(trace.objectness, trace.feature_size, aset.per_cell)
        self._show_heat()
        fh, fw = grid.shape
        self.panel.heat_label.setText(
            f"{fh}×{fw} cells × {aset.per_cell} anchors; cell maximum from {grid.min():.2f} to {grid.max():.2f}. "
            f"Bright: some anchor of the cell is likely an object.")
        self._show_note()
        self.panel.set_available(True)
        model = self._session.model
        rpn = getattr(model, "rpn", None)
        top_n = int(rpn.post_nms_top_n["test"]) if rpn is not None else 300
        self.panel.set_choices(int(trace.proposals_pre_nms.shape[0]), top_n,
                               float(trace.proposal_nms.iou_threshold))  # emits selectionChanged → request

    def _show_note(self, *_: object) -> None:
        """On an image the model knows nothing about (the session's domain note) the RPN still draws: its
        scores are what the network computes, and the panel says why they mean little."""
        if self._trace is not None:
            note = getattr(self._session, "domain_note", "")
            self.panel.set_status(note)

    @property
    def objectness(self) -> np.ndarray | None:
        """[fh, fw] best objectness per cell of the current trace (what the heat map shows), or None."""
        return self._grid

    def _show_heat(self, *_: object) -> None:
        grid, trace = self._grid, self._trace
        if grid is None or trace is None:
            self.heat_layer.set_map(None)
            return
        fh, fw = grid.shape
        s = trace.anchors.stride
        rect = self._scale.boxes_to_scene(np.array([[0, 0, fw * s, fh * s]], np.float32))[0]
        values = grid
        if self.panel.stretch_box.isChecked():
            lo, hi = float(grid.min()), float(grid.max())
            values = (grid - lo) / (hi - lo) if hi > lo else np.zeros_like(grid)
        self.heat_layer.set_map(values, tuple(float(v) for v in rect))

    # --- selection -----------------------------------------------------------------------------------------
    def request(self, top_n: int | None = None, threshold: float | None = None) -> int:
        """Re-run NMS on the trace's pre-NMS boxes with N and threshold (default: the panel's)."""
        if self._trace is None or self._closed:
            return -1
        n = self.panel.top_n() if top_n is None else int(top_n)
        thr = self.panel.threshold() if threshold is None else float(threshold)
        return self.runner.request(self._trace.proposals_pre_nms, self._trace.proposal_scores_pre_nms, n, thr)

    def _on_selection(self, sel: ProposalSelection) -> None:
        if self._trace is None:
            return
        self._selection = sel
        self._redraw()
        self.panel.readout.setText(
            f"<span style='color:{BEFORE_COLOR}'>■</span> the {sel.before.size} best of {sel.candidates} boxes "
            f"entering NMS · <span style='color:{AFTER_COLOR}'>■</span> NMS at IoU {sel.iou_threshold:.2f} keeps "
            f"<b>{sel.survivors}</b>; the best <b>{sel.kept.size}</b> are shown")
        self.selectionReady.emit(sel)

    def _redraw(self, *_: object) -> None:
        sel, trace = self._selection, self._trace
        if sel is None or trace is None:
            self.proposals_layer.set_groups([])
            return
        boxes = self._scale.boxes_to_scene(trace.proposals_pre_nms)
        groups = []
        if self.panel.before_box.isChecked():
            groups.append(BoxGroup(boxes[sel.before], QColor(BEFORE_COLOR), 1.5, name="before NMS"))
        if self.panel.after_box.isChecked():
            groups.append(BoxGroup(boxes[sel.kept], QColor(AFTER_COLOR), 2.0, name="after NMS"))
        self.proposals_layer.set_groups(groups)

    def _on_error(self, message: str) -> None:
        first = message.splitlines()[0] if message else "error"
        self.panel.set_status(f"NMS failed: {first}")
        self.message.emit(f"RPN: {first}")

    def _on_cursor(self, x: float, y: float, _value: object) -> None:
        if not self.heat_layer.isVisible():
            return
        if self._grid is None or self._trace is None:
            return
        xi, yi = self._scale.point_to_input(x, y)
        s = self._trace.anchors.stride
        r, c = int(yi // s), int(xi // s)
        inside = 0 <= r < self._grid.shape[0] and 0 <= c < self._grid.shape[1]
        self.panel.hover_label.setText(f"objectness of cell ({r}, {c}): {self._grid[r, c]:.3f}" if inside else "")


__all__ = ["NO_RPN", "NO_TRACE", "RpnStage", "has_rpn", "selection_job"]
