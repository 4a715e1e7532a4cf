"""The NMS stage: the candidate boxes before and after non-maximum suppression, live, and step by step.

Input: the model's candidates (every class score above the trace's threshold, before per-class NMS) when the
model ran on the current image, else detections stored for it (a results file or folder inference; those are
after their detector's NMS already, and the slider applies a further NMS). Moving the IoU slider re-runs
:func:`models.detection.nms.nms_trace` on those boxes, never the network: a few hundred boxes take a millisecond or two,
so it runs right here on each slider move. The trace says who suppressed whom; the step mode walks the
score-sorted list with it.

A model that merges its test passes by vote or average (``input.test_merge``) does more after this NMS: each
surviving box moves to its voters' weighted mean and, for average, takes the mean score over the passes, and
the threshold and cap then apply to those scores. At the model's own IoU and per class (the NMS it ran), the
kept boxes are drawn as that merge left them (:func:`~app.stages.scene_boxes.scene_merge`), so what this stage
keeps is what the model returns; the walk and other thresholds show plain NMS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QDockWidget, QWidget

from app.canvas import Canvas
from app.layers.base import OverlayLayer, class_color
from app.layers.labelled_boxes import INSIDE_BOTTOM, INSIDE_TOP, BoxStyle, LabelledBoxesLayer
from app.stages.applicability import not_applicable, show_not_applicable
from app.stages.base import Stage, make_dock
from app.stages.detector_session import DetectorSession
from app.stages.nms.panel import NmsPanel
from app.stages.scene_boxes import (
    FROM_MODEL,
    SceneBoxes,
    SceneMerge,
    no_boxes_text,
    scene_calibration,
    scene_candidates,
    scene_merge,
)
from models.detection.nms import NmsTrace, nms_trace

# Style kinds; a style key is kind * KIND + class id, so every kind has one colour per class.
KIND = 1000
PENDING, SUPPRESSED, KEPT, VICTIM, SUPPRESSOR, CURRENT = range(6)
PAINT_ORDER_KINDS = (PENDING, SUPPRESSED, KEPT, VICTIM, SUPPRESSOR, CURRENT)
PENDING_COLOR = QColor(200, 200, 200)
VICTIM_COLOR = QColor(255, 40, 40)
SUPPRESSOR_COLOR = QColor(255, 220, 0)
CURRENT_COLOR = QColor(255, 255, 255)


@dataclass
class StepState:
    """What step ``step`` of the walk shows: box ``current`` (an input index) at rank ``step``; if it was kept,
    the boxes it suppressed (``victims``, with ``victim_iou``); if it had been removed, ``suppressor`` (-1 when
    kept) and the IoU that removed it."""

    step: int
    current: int
    kept: bool
    suppressor: int
    suppressor_iou: float
    victims: list[int]
    victim_iou: list[float]


class NmsStage(Stage):
    """Controller of the NMS stage (see the module docstring)."""

    def __init__(self, canvas: Canvas, session: DetectorSession, window: QWidget | None = None) -> None:
        super().__init__(window)
        self._canvas = canvas
        self._session = session
        self._window = window
        self._cand: SceneBoxes | None = None
        self._merge: SceneMerge | None = None
        self._trace: NmsTrace | None = None
        self._order = np.zeros(0, np.int64)
        self._rank = np.zeros(0, np.int64)
        self._dock: QDockWidget | None = None
        self.layer = LabelledBoxesLayer("NMS", z=32)
        self.layer.setVisible(False)
        canvas.add_layer(self.layer)
        self.panel = NmsPanel()
        p = self.panel
        p.show_box.toggled.connect(self.layer.setVisible)
        self.layer.visibleChanged.connect(lambda: self._sync_check())
        p.paramsChanged.connect(self.recompute)
        p.stepChanged.connect(lambda _s: self._redraw())
        session.modelChanged.connect(self._on_model)
        session.traceChanged.connect(lambda _t: self.reload())
        session.storedDetectionsChanged.connect(self.reload)
        session.imageChanged.connect(self.reload)
        session.domainNoteChanged.connect(lambda _n: self.reload())
        self.reload()

    # --- host API --------------------------------------------------------------------------------------------
    def docks(self) -> list[QDockWidget]:
        if self._dock is None:
            self._dock = make_dock("NMS", "nms_dock", self.panel, self._window)
        return [self._dock]

    def layers(self) -> list[OverlayLayer]:
        return [self.layer]

    # --- state for tests and other stages ----------------------------------------------------------------------
    @property
    def candidates(self) -> SceneBoxes | None:
        """The boxes NMS runs on (scene pixels), or None."""
        return self._cand

    @property
    def nms(self) -> NmsTrace | None:
        """The latest NMS trace over :attr:`candidates` with the panel's threshold and grouping."""
        return self._trace

    @property
    def score_order(self) -> np.ndarray:
        """Candidate indices by descending score (ties in input order): the order NMS and the walk visit them."""
        return self._order

    def kept_boxes(self) -> np.ndarray:
        """[K, 4] scene boxes surviving NMS, best first."""
        if self._cand is None or self._trace is None:
            return np.zeros((0, 4), np.float32)
        return self._cand.boxes[self._trace.kept]

    def merged(self) -> SceneMerge | None:
        """The model's vote/average merge when the panel runs the NMS the model ran (its IoU, per class), else
        None: then the kept boxes are drawn as that merge left them."""
        m = self._merge
        if m is None or self._trace is None or not self.panel.per_class():
            return None
        return m if abs(self._trace.iou_threshold - m.iou_threshold) < 1e-6 else None

    # --- input ---------------------------------------------------------------------------------------------
    def _on_model(self, model: object) -> None:
        # A model's own box NMS threshold is where the slider starts for its candidates (the user's later
        # choice then holds from image to image).
        thr = getattr(getattr(model, "roi_heads", None), "nms_threshold", None)
        if thr is not None:
            self.panel.iou_slider.blockSignals(True)
            self.panel.set_iou_threshold(float(thr))
            self.panel._show_iou()
            self.panel.iou_slider.blockSignals(False)

    def reload(self) -> None:
        """Take the session's candidates for the current image and run NMS on them."""
        why = not_applicable(self._session.model, "nms")
        show_not_applicable(self.panel, why)
        self._cand = None if why else scene_candidates(self._session)
        self._merge = None if why or self._cand is None else scene_merge(self._session)
        n = 0 if self._cand is None else len(self._cand)
        if self._cand is None:
            self.panel.source_label.setText(why or no_boxes_text(self._session))
        else:
            self.panel.source_label.setText(f"{n} boxes: {self._cand.description}")
        self._order = (np.argsort(-self._cand.scores, kind="stable") if n else np.zeros(0, np.int64))
        self._rank = np.empty(n, np.int64)
        self._rank[self._order] = np.arange(n)
        self.panel.set_steps(n)
        self.recompute()

    def recompute(self) -> None:
        """NMS over the candidates with the panel's threshold and grouping, then redraw."""
        c = self._cand
        if c is None or len(c) == 0:
            self._trace = None
            self.panel.counts_label.setText("")
            self._redraw()
            return
        groups = c.labels if self.panel.per_class() else None
        self._trace = nms_trace(c.boxes, c.scores, self.panel.iou_threshold(), groups=groups)
        n, k = len(c), int(self._trace.kept.size)
        mode = "per class" if groups is not None else "class-agnostic"
        extra = "" if c.origin == FROM_MODEL else " (on detections already after their detector's NMS)"
        text = (f"<b>{n}</b> boxes → <b>{k}</b> kept, {n - k} suppressed at IoU > "
                f"{self._trace.iou_threshold:.2f}, {mode}{extra}")
        m = self._merge
        if m is not None:
            how = ("boxes voted" if m.method == "vote"
                   else f"boxes voted and scores averaged over the {m.passes} passes")
            if self.merged() is not None:
                text += (f"; then {how}: <b>{len(m.detections)}</b> detections, drawn where the merge put them "
                         f"(the model's result)")
            else:
                text += (f"; the model's merge then has {how} at IoU {m.iou_threshold:.2f}, per class: set the "
                         f"slider there to draw its result")
        if c.origin == FROM_MODEL and scene_calibration(self._session) is not None:
            text += ("; after NMS the model calibrates the scores by ImageNet prototypes and re-ranks (the "
                     "Detections stage shows them)")
        self.panel.counts_label.setText(text)
        self._redraw()

    # --- the walk ------------------------------------------------------------------------------------------
    def step_state(self, step: int | None = None) -> StepState | None:
        """What the walk shows at ``step`` (default: the panel's), or None without a trace."""
        t, c = self._trace, self._cand
        if t is None or c is None or len(c) == 0:
            return None
        step = self.panel.step_slider.value() if step is None else int(step)
        step = min(max(step, 0), len(c) - 1)
        cur = int(self._order[step])
        sup = int(t.suppressed_by[cur])
        if sup < 0:
            victims = t.suppressed(cur)
            return StepState(step, cur, True, -1, 0.0, victims, [float(t.iou_with_suppressor[v]) for v in victims])
        return StepState(step, cur, False, sup, float(t.iou_with_suppressor[cur]), [], [])

    def _describe(self, i: int) -> str:
        c = self._cand
        assert c is not None
        return f"#{int(self._rank[i]) + 1} {c.names[i]} {c.scores[i]:.2f}"

    def _step_text(self, s: StepState) -> str:
        assert self._trace is not None and self._cand is not None
        n = len(self._cand)
        head = f"Step {s.step + 1} of {n}: <b>{self._describe(s.current)}</b> "
        thr = self._trace.iou_threshold
        if not s.kept:
            return (head + f"had already been removed at step {int(self._rank[s.suppressor]) + 1} by "
                    f"<b>{self._describe(s.suppressor)}</b> (IoU {s.suppressor_iou:.2f} &gt; {thr:.2f}).")
        if not s.victims:
            return head + "is kept; it overlaps no remaining box by more than the threshold."
        parts = ", ".join(f"{self._describe(v)} (IoU {u:.2f})" for v, u in zip(s.victims, s.victim_iou, strict=True))
        return head + f"is kept and removes {len(s.victims)}: {parts}."

    # --- drawing -------------------------------------------------------------------------------------------
    def _redraw(self) -> None:
        c, t = self._cand, self._trace
        if c is None or t is None or len(c) == 0:
            self.layer.clear()
            self.panel.step_label.setText("")
            return
        n = len(c)
        labels_on = self.panel.labels_box.isChecked()
        show_sup = self.panel.show_suppressed_box.isChecked()
        kind = np.where(t.suppressed_by < 0, KEPT, SUPPRESSED)
        names = c.names
        boxes, scores = c.boxes, c.scores
        merged = self.merged()
        if merged is not None and not self.panel.stepping():  # the model's vote/average result in place
            boxes, scores = boxes.copy(), scores.copy()
            boxes[merged.kept_index] = merged.detections.boxes
            scores[merged.kept_index] = merged.detections.scores
            final = np.zeros(n, bool)
            final[merged.kept_index] = True
            kind = np.where((kind == KEPT) & ~final, SUPPRESSED, kind)  # under the threshold after scoring
        texts = [f"{names[i]} {scores[i]:.2f}" if labels_on and kind[i] == KEPT else "" for i in range(n)]
        visible = np.ones(n, bool) if show_sup else kind == KEPT
        if self.panel.stepping():
            s = self.step_state()
            assert s is not None
            rank_now = s.step
            sup = t.suppressed_by
            removed = (sup >= 0) & (self._rank[np.maximum(sup, 0)] <= rank_now)
            processed = self._rank <= rank_now
            kind = np.where(processed & (sup < 0), KEPT, np.where(removed, SUPPRESSED, PENDING))
            visible = np.ones(n, bool) if show_sup else kind != SUPPRESSED
            texts = [f"{names[i]} {c.scores[i]:.2f}" if labels_on and kind[i] == KEPT else "" for i in range(n)]
            if s.kept:
                for v, u in zip(s.victims, s.victim_iou, strict=True):
                    kind[v], visible[v] = VICTIM, True
                    texts[v] = f"IoU {u:.2f} · {names[v]} {c.scores[v]:.2f}"
            else:
                kind[s.suppressor], visible[s.suppressor] = SUPPRESSOR, True
                texts[s.suppressor] = f"suppressor {self._describe(s.suppressor)}"
            kind[s.current], visible[s.current] = CURRENT, True
            texts[s.current] = (f"{self._describe(s.current)}" if s.kept
                                else f"{self._describe(s.current)} · IoU {s.suppressor_iou:.2f}")
            self.panel.step_label.setText(self._step_text(s))
        else:
            self.panel.step_label.setText("")
        idx = np.flatnonzero(visible)
        keys = kind[idx] * KIND + c.labels[idx]
        styles: dict[int, BoxStyle] = {}
        for key in np.unique(keys).tolist():
            k, lab = divmod(int(key), KIND)
            styles[int(key)] = self._style(k, c.class_names[lab - 1] if 1 <= lab <= len(c.class_names) else str(lab))
        order = sorted(styles, key=lambda key: (PAINT_ORDER_KINDS.index(key // KIND), key))
        fills = [self._tag_color(int(kind[i]), names[i]) for i in idx.tolist()]
        places = np.where(kind[idx] == VICTIM, INSIDE_BOTTOM, INSIDE_TOP)
        self.layer.set_boxes(boxes[idx], keys, styles, [texts[i] for i in idx.tolist()], fills, order, places)

    @staticmethod
    def _style(kind: int, name: str) -> BoxStyle:
        if kind == PENDING:
            return BoxStyle(PENDING_COLOR, 1.0, Qt.PenStyle.DotLine)
        if kind == SUPPRESSED:
            return BoxStyle(class_color(name), 1.0, Qt.PenStyle.DashLine)
        if kind == VICTIM:
            return BoxStyle(VICTIM_COLOR, 2.0, Qt.PenStyle.DashLine)
        if kind == SUPPRESSOR:
            return BoxStyle(SUPPRESSOR_COLOR, 3.0)
        if kind == CURRENT:
            return BoxStyle(CURRENT_COLOR, 3.5)
        return BoxStyle(class_color(name), 2.0)

    @staticmethod
    def _tag_color(kind: int, name: str) -> QColor:
        return {VICTIM: VICTIM_COLOR, SUPPRESSOR: SUPPRESSOR_COLOR, CURRENT: CURRENT_COLOR}.get(kind, class_color(name))

    def _sync_check(self) -> None:
        box = self.panel.show_box
        box.blockSignals(True)
        box.setChecked(self.layer.isVisible())
        box.blockSignals(False)


__all__ = ["NmsStage", "StepState"]
