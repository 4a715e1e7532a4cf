"""The Box regression stage: one anchor (RPN) or one RoI (head) before and after its predicted deltas.

Reads the session's trace only (:mod:`models.detection.rpn_views` decodes one box at a time: microseconds, so on the
GUI thread). A click on the image picks, when the layer is visible: the best-scoring anchor of the cell under
it (RPN), or the best-scoring RoI containing it (head). Drawn in displayed-image pixels; the table gives the
boxes in network-input pixels, where the deltas apply.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDockWidget, QWidget

from app.canvas import Canvas
from app.layers.base import OverlayLayer, class_color
from app.layers.regression import REFERENCE_COLOR, RESULT_COLOR, RegressionLayer
from app.stages.applicability import not_applicable, show_not_applicable
from app.stages.base import Stage, make_dock
from app.stages.detector_session import DetectorSession
from app.stages.input_scale import InputScale
from app.stages.regression.panel import SOURCE_ANCHOR, SOURCE_ROI, RegressionPanel
from models.detection.rpn_views import (
    AnchorRegression,
    RoIRegression,
    anchor_regression,
    best_anchor_in_cell,
    roi_at,
    roi_regression,
)

#: Per-class boxes drawn for a RoI (the best-scoring classes); the table lists every class.
MAX_CLASS_BOXES = 5

NO_TRACE = ("Nothing to show yet: load a Faster R-CNN and run it on this image (Model panel); the deltas come "
            "from that run.")


def _box_text(b: np.ndarray) -> str:
    x1, y1, x2, y2 = (float(v) for v in b)
    return f"({x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}) {x2 - x1:.0f}×{y2 - y1:.0f}"


class RegressionStage(Stage):
    """Box regression layer + panel, following the session's trace."""

    #: What is shown changed: an AnchorRegression, a RoIRegression, or None.
    shown = Signal(object)

    def __init__(self, canvas: Canvas, session: DetectorSession, window: QWidget | None = None) -> None:
        super().__init__(window)
        self._canvas = canvas
        self._session = session
        self._trace: Any = None
        self._scale = InputScale()
        self.current: AnchorRegression | RoIRegression | None = None
        self.layer = RegressionLayer()
        canvas.add_layer(self.layer)
        self.panel = RegressionPanel()
        self._dock = make_dock("Box regression", "box_regression_dock", self.panel, window)
        p = self.panel
        p.show_box.toggled.connect(self.layer.setVisible)
        self.layer.visibleChanged.connect(self._on_visibility)
        p.pickChanged.connect(self._show)
        session.traceChanged.connect(self._on_trace)
        if hasattr(session, "domainNoteChanged"):
            session.domainNoteChanged.connect(self._on_note)
        canvas.pointClicked.connect(self._on_click)
        self._on_trace(session.trace)

    def docks(self) -> list[QDockWidget]:
        return [self._dock]

    def layers(self) -> list[OverlayLayer]:
        return [self.layer]

    @property
    def scale(self) -> InputScale:
        return self._scale

    def _on_visibility(self) -> None:
        box = self.panel.show_box
        box.blockSignals(True)
        box.setChecked(self.layer.isVisible())
        box.blockSignals(False)

    def _on_trace(self, trace: Any) -> None:
        d = self._session.decoded
        why = not_applicable(self._session.model, "regression")
        show_not_applicable(self.panel, why)
        usable = not why and trace is not None and d is not None and all(
            hasattr(trace, a) for a in ("anchors", "rpn_deltas", "proposals", "class_boxes"))
        if not usable:
            self._trace = None
            self.current = None
            self.layer.clear()
            self.panel.set_ranges(0, 0)
            self.panel.show_table("", [], [])
            self.panel.set_status(why or (NO_TRACE if trace is None else "The loaded model has no RPN and head to show."))
            self.shown.emit(None)
            return
        self._trace = trace
        self._scale = InputScale.from_sizes(trace.input_size, d.width, d.height)
        best = int(np.argmax(trace.objectness)) if trace.objectness.size else 0
        self.panel.set_ranges(int(trace.anchors.boxes.shape[0]), int(trace.proposals.shape[0]), best, 0)
        self.panel.set_status(getattr(self._session, "domain_note", ""))
        self._show(self.panel.source(), self.panel.index())

    def _on_note(self, *_: object) -> None:
        if self._trace is not None:
            self.panel.set_status(getattr(self._session, "domain_note", ""))
            self._show(self.panel.source(), self.panel.index())

    # --- picking -------------------------------------------------------------------------------------------
    def _on_click(self, x: float, y: float) -> None:
        if not self.layer.isVisible() or self._trace is None:
            return
        xi, yi = self._scale.point_to_input(x, y)
        if self.panel.source() == SOURCE_ANCHOR:
            aset = self._trace.anchors
            fh, fw = aset.feature_size
            row, col = math.floor(yi / aset.stride), math.floor(xi / aset.stride)
            if 0 <= row < fh and 0 <= col < fw:
                self.panel.pick(SOURCE_ANCHOR, best_anchor_in_cell(self._trace.objectness, aset.per_cell, row, col, fw))
        else:
            i = roi_at(self._trace.proposals, self._trace.proposal_scores, xi, yi)
            if i >= 0:
                self.panel.pick(SOURCE_ROI, i)

    # --- showing -------------------------------------------------------------------------------------------
    def _show(self, source: str, index: int) -> None:
        t = self._trace
        if t is None:
            return
        if source == SOURCE_ANCHOR and t.anchors.boxes.shape[0]:
            self._show_anchor(anchor_regression(t.anchors, t.rpn_deltas, t.objectness, index))
        elif source == SOURCE_ROI and t.proposals.shape[0]:
            self._show_roi(roi_regression(t.proposals, t.proposal_scores, t.class_scores, t.class_boxes, index))
        else:
            self.current = None
            self.layer.clear()
            self.panel.show_table("No RoIs in this trace.", [], [])
            self.shown.emit(None)

    def _show_anchor(self, r: AnchorRegression) -> None:
        self.current = r
        sc = self._scale
        self.layer.set_view(sc.boxes_to_scene(r.anchor)[0], sc.boxes_to_scene(r.box),
                            [RESULT_COLOR], [f"after deltas · objectness {r.objectness:.2f}"], 0,
                            reference_label=f"anchor {r.size:g}² · ratio {r.ratio:g}")
        dx, dy, dw, dh = (float(v) for v in r.deltas)
        aw, ah = float(r.anchor[2] - r.anchor[0]), float(r.anchor[3] - r.anchor[1])
        rows = [("anchor", _box_text(r.anchor), ""),
                ("dx", f"{dx:+.3f}", f"centre x {dx * aw:+.1f} px"),
                ("dy", f"{dy:+.3f}", f"centre y {dy * ah:+.1f} px"),
                ("dw", f"{dw:+.3f}", f"width × {math.exp(min(dw, 20)):.3f}"),
                ("dh", f"{dh:+.3f}", f"height × {math.exp(min(dh, 20)):.3f}"),
                ("after deltas", _box_text(r.box), "before clipping to the image")]
        self.panel.show_table(
            f"Anchor #{r.index}: cell (row {r.cell[0]}, column {r.cell[1]}), {r.size:g}² at ratio {r.ratio:g}, "
            f"objectness <b>{r.objectness:.3f}</b> (network-input pixels)", ("", "value", "meaning"), rows,
            [REFERENCE_COLOR, None, None, None, None, RESULT_COLOR])
        self.shown.emit(r)

    def _class_names(self) -> list[str]:
        t = self._trace
        names = list(getattr(getattr(t, "detections", None), "class_names", []) or [])
        if not names:
            names = list(getattr(self._session.model, "class_names", []) or [])
        k = int(t.class_scores.shape[1]) - 1
        return names[:k] + [f"class {i + 1}" for i in range(len(names), k)]

    def _show_roi(self, r: RoIRegression) -> None:
        self.current = r
        if getattr(self._session, "detections_hidden", False):
            # Per-class boxes are detections in all but name: on an image outside the model's domain only the
            # RoI is drawn, and the panel's note says why (the Detections panel can show them anyway).
            self.layer.set_view(self._scale.boxes_to_scene(r.roi)[0], np.zeros((0, 4), np.float32),
                                reference_label=f"RoI #{r.index} · RPN score {r.roi_score:.2f}")
            self.panel.show_table(f"RoI #{r.index} {_box_text(r.roi)}: class boxes hidden on this image.", [], [])
            self.shown.emit(r)
            return
        names = ["background"] + self._class_names()
        order = [int(c) for c in np.argsort(-r.class_scores[1:], kind="stable") + 1]
        drawn = order[:MAX_CLASS_BOXES]
        sc = self._scale
        colors = [class_color(names[c]) for c in drawn]
        self.layer.set_view(sc.boxes_to_scene(r.roi)[0], sc.boxes_to_scene(r.class_boxes[drawn]), colors,
                            [f"{names[c]} {r.class_scores[c]:.2f}" for c in drawn], 0,
                            reference_label=f"RoI #{r.index} · RPN score {r.roi_score:.2f}")
        rows, row_colors = [], []
        for c in order:
            dx, dy, dw, dh = (float(v) for v in r.deltas[c])
            rows.append((names[c], f"{r.class_scores[c]:.3f}", _box_text(r.class_boxes[c]), f"{dx:+.2f}",
                         f"{dy:+.2f}", f"{dw:+.2f}", f"{dh:+.2f}"))
            row_colors.append(class_color(names[c]))
        rows.append(("background", f"{r.class_scores[0]:.3f}", "", "", "", "", ""))
        row_colors.append(None)
        self.panel.show_table(
            f"RoI #{r.index} {_box_text(r.roi)} (network-input pixels): each class has its own regressed box; "
            f"best <b>{names[r.best_class]}</b> {r.class_scores[r.best_class]:.2f}. Deltas are re-encoded from the "
            f"clipped boxes (head normalisation 0.1, 0.1, 0.2, 0.2).",
            ("class", "score", "box", "dx", "dy", "dw", "dh"), rows, row_colors, bold_row=0)
        self.shown.emit(r)


__all__ = ["MAX_CLASS_BOXES", "RegressionStage"]
