"""Model-assisted labelling: the current image's detections offered as ground-truth boxes for review.

Which detections are offered is :func:`models.detection.matching.suggest_boxes` (score ≥ threshold, no
same-class ground-truth box at IoU ≥ 0.5, no better same-class suggestion at IoU ≥ 0.5). Accepting pushes one
``AddObjectsCommand`` on the image's undo stack, so it is undone like any drawn box; the accepted box is then
ground truth, which takes it off the offer by the same rule. Rejected suggestions are remembered until the
detections or the image change. Nothing here ever changes or removes a box the user has.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QColor
from PySide6.QtWidgets import QDockWidget, QListWidgetItem, QWidget

from app.canvas import Canvas
from app.commands import AddObjectsCommand, apply
from app.layers.base import OverlayLayer, class_color
from app.layers.labelled_boxes import INSIDE_BOTTOM, BoxStyle, LabelledBoxesLayer
from app.stages.base import Stage, make_dock
from app.stages.detector_session import DetectorSession
from app.stages.scene_boxes import SceneBoxes, no_boxes_text, scene_detections
from app.stages.suggestions.panel import SuggestionsPanel
from models.data.annotations import BoxObject
from models.detection.matching import suggest_boxes

#: A suggestion over a user's box of the same class at this IoU or more is not offered.
OVERLAP_IOU = 0.5
SELECTED_KEY = -1
SELECTED_COLOR = QColor(255, 255, 255)


class SuggestionsStage(Stage):
    """Controller of model-assisted labelling (see the module docstring)."""

    def __init__(self, canvas: Canvas, session: DetectorSession, window: QWidget | None = None) -> None:
        super().__init__(window)
        self._canvas = canvas
        self._session = session
        self._window = window
        self._dock: QDockWidget | None = None
        self._dets: SceneBoxes | None = None
        self._offered = np.zeros(0, np.int64)
        self._rejected: set[int] = set()
        self._selected = -1
        self._drawn = np.zeros(0, np.int64)
        self.layer = LabelledBoxesLayer("Suggested boxes", z=36)
        self.layer.setVisible(False)
        canvas.add_layer(self.layer)
        self.panel = SuggestionsPanel()
        parent = window or self
        self.suggest_action = QAction("&Suggest Boxes from Detections", parent)
        self.suggest_action.setCheckable(True)
        self.accept_action = QAction("&Accept Suggested Box", parent)
        self.accept_action.setShortcut("Y")
        self.accept_all_action = QAction("Accept A&ll Suggested Boxes", parent)
        self.accept_all_action.setShortcut("Shift+Y")
        self.reject_action = QAction("&Reject Suggested Box", parent)
        self.reject_action.setShortcut("N")
        p = self.panel
        self.suggest_action.toggled.connect(self.set_suggesting)
        p.suggest_box.toggled.connect(self.set_suggesting)
        self.layer.visibleChanged.connect(self._sync_checks)
        self.accept_action.triggered.connect(self.accept_selected)
        self.accept_all_action.triggered.connect(self.accept_all)
        self.reject_action.triggered.connect(self.reject_selected)
        p.accept_button.clicked.connect(self.accept_selected)
        p.accept_all_button.clicked.connect(self.accept_all)
        p.reject_button.clicked.connect(self.reject_selected)
        p.reject_all_button.clicked.connect(self.reject_all)
        p.paramsChanged.connect(self.refresh)
        p.suggestions_list.currentItemChanged.connect(self._on_list_current)
        session.traceChanged.connect(lambda _t: self.reload())
        session.storedDetectionsChanged.connect(self.reload)
        session.imageChanged.connect(self.reload)
        session.groundTruthChanged.connect(self.refresh)
        session.domainNoteChanged.connect(lambda _n: self.reload())
        canvas.pointClicked.connect(self._on_click)
        self.reload()

    # --- host API --------------------------------------------------------------------------------------------
    def docks(self) -> list[QDockWidget]:
        if self._dock is None:
            self._dock = make_dock("Suggested Boxes", "suggestions_dock", self.panel, self._window)
        return [self._dock]

    def actions(self) -> list[QAction]:
        return [self.suggest_action, self.accept_action, self.accept_all_action, self.reject_action]

    def layers(self) -> list[OverlayLayer]:
        return [self.layer]

    # --- state ----------------------------------------------------------------------------------------------
    @property
    def suggesting(self) -> bool:
        return self.layer.isVisible()

    @property
    def offered(self) -> np.ndarray:
        """Detection indices offered now, best score first (empty while suggesting is off)."""
        return self._offered if self.suggesting else np.zeros(0, np.int64)

    @property
    def selected(self) -> int:
        """The selected suggestion (a detection index), -1 when none."""
        return self._selected

    def suggested_boxes(self) -> np.ndarray:
        if self._dets is None:
            return np.zeros((0, 4), np.float32)
        return self._dets.boxes[self.offered]

    def set_suggesting(self, on: bool) -> None:
        self.layer.setVisible(bool(on))
        self.refresh()

    def select(self, det_index: int) -> None:
        """Select the suggestion for detection ``det_index`` (-1: none)."""
        det_index = int(det_index) if int(det_index) in set(self.offered.tolist()) else -1
        if det_index != self._selected:
            self._selected = det_index
            self._draw()
            self._sync_list_selection()

    # --- input ----------------------------------------------------------------------------------------------
    def reload(self) -> None:
        self._dets = scene_detections(self._session)
        self._rejected.clear()
        self._selected = -1
        self.refresh()

    def refresh(self) -> None:
        """Recompute what is offered (threshold, ground truth, rejections) and redraw."""
        d = self._dets
        if d is None or not self.suggesting:
            self._offered = np.zeros(0, np.int64)
        else:
            offered = suggest_boxes(d.boxes, d.scores, d.names, self._session.gt_boxes(), self._session.gt_names(),
                                    self.panel.threshold(), OVERLAP_IOU)
            self._offered = np.asarray([i for i in offered.tolist() if i not in self._rejected], np.int64)
        if self._selected not in set(self._offered.tolist()):
            self._selected = int(self._offered[0]) if self._offered.size else -1
        self._fill_list()
        self._draw()
        n = int(self._offered.size)
        if d is None:
            status = no_boxes_text(self._session)
        elif not self.suggesting:
            status = "Suggestions are off"
        else:
            status = (f"{n} suggestion(s) at score ≥ {self.panel.threshold():.2f}; detections over your boxes "
                      f"(same class, IoU ≥ {OVERLAP_IOU}) are not offered")
            if self._rejected:
                status += f"; {len(self._rejected)} rejected"
        self.panel.status_label.setText(status)
        for a in (self.accept_action, self.accept_all_action, self.reject_action):
            a.setEnabled(n > 0)

    # --- review ---------------------------------------------------------------------------------------------
    def accept_selected(self) -> int:
        """Add the selected suggestion to the ground truth (one undoable edit); returns boxes added."""
        return self.accept([self._selected]) if self._selected >= 0 else 0

    def accept_all(self) -> int:
        """Add every offered suggestion as one undoable edit; returns boxes added."""
        return self.accept(self.offered.tolist())

    def accept(self, det_indices: list[int]) -> int:
        d = self._dets
        offered = set(self.offered.tolist())
        idx = [int(i) for i in det_indices if int(i) in offered]
        if d is None or not idx:
            return 0
        model = self._canvas.model
        names = d.names
        objs = [BoxObject(names[i], model.clamp_box(d.boxes[i].tolist(), snap=False)) for i in idx]
        text = "Accept suggested box" if len(objs) == 1 else f"Accept {len(objs)} suggested boxes"
        apply(self._canvas.undo_stack, AddObjectsCommand(model, objs, text))
        self.message.emit(f"{text} ({', '.join(o.name for o in objs[:5])}{'…' if len(objs) > 5 else ''})")
        return len(objs)

    def reject_selected(self) -> None:
        if self._selected >= 0:
            self._rejected.add(self._selected)
            self._selected = -1
            self.refresh()

    def reject_all(self) -> None:
        self._rejected.update(self.offered.tolist())
        self._selected = -1
        self.refresh()

    def _on_click(self, x: float, y: float) -> None:
        if not self.suggesting or self._dets is None or self._offered.size == 0:
            return
        hit = self.layer.box_at(x, y)
        if hit >= 0:
            self.select(int(self._drawn[hit]))

    # --- list and drawing -----------------------------------------------------------------------------------
    def _fill_list(self) -> None:
        lw = self.panel.suggestions_list
        lw.blockSignals(True)
        lw.clear()
        d = self._dets
        if d is not None:
            names = d.names
            for i in self.offered.tolist():
                item = QListWidgetItem(f"{names[i]}  {d.scores[i]:.2f}")
                item.setData(Qt.ItemDataRole.UserRole, int(i))
                lw.addItem(item)
        lw.blockSignals(False)
        self._sync_list_selection()

    def _sync_list_selection(self) -> None:
        lw = self.panel.suggestions_list
        lw.blockSignals(True)
        lw.setCurrentRow(-1)
        for r in range(lw.count()):
            if lw.item(r).data(Qt.ItemDataRole.UserRole) == self._selected:
                lw.setCurrentRow(r)
                break
        lw.blockSignals(False)

    def _on_list_current(self, item: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        if item is not None:
            self.select(int(item.data(Qt.ItemDataRole.UserRole)))

    def _draw(self) -> None:
        d = self._dets
        idx = self.offered
        self._drawn = idx
        if d is None or idx.size == 0:
            self.layer.clear()
            return
        names = d.names
        keys = np.asarray([SELECTED_KEY if i == self._selected else int(d.labels[i]) for i in idx.tolist()],
                          np.int64)
        styles = {int(k): BoxStyle(class_color(names[i]), 2.0, Qt.PenStyle.DashLine)
                  for k, i in zip(keys.tolist(), idx.tolist(), strict=True) if k != SELECTED_KEY}
        styles[SELECTED_KEY] = BoxStyle(SELECTED_COLOR, 3.0, Qt.PenStyle.DashLine)
        order = sorted(k for k in styles if k != SELECTED_KEY) + [SELECTED_KEY]
        texts = [f"{'▶ ' if i == self._selected else ''}suggest {names[i]} {d.scores[i]:.2f}" for i in idx.tolist()]
        fills = [SELECTED_COLOR if i == self._selected else class_color(names[i]) for i in idx.tolist()]
        self.layer.set_boxes(d.boxes[idx], keys, styles, texts, fills, order, INSIDE_BOTTOM)

    def _sync_checks(self) -> None:
        on = self.layer.isVisible()
        for w in (self.panel.suggest_box, self.suggest_action):
            w.blockSignals(True)
            w.setChecked(on)
            w.blockSignals(False)


__all__ = ["OVERLAP_IOU", "SuggestionsStage"]
