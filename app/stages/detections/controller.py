"""The Detections stage: final detections with class and score, scored against the ground truth, and loading
detections made elsewhere.

Scoring is :func:`models.detection.matching.match_detections` (VOC's matching, with a reason for every false
positive); the score slider and the match IoU re-apply to the boxes already there, never re-running the
network. "Load detections…" reads a COCO results JSON or our ``detect`` JSON in a worker
(:func:`models.detection.result_files.load_detections`, matched to the open dataset) and stores them in the session
per image, so this view, the NMS view and the suggestions work with no model loaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QFileDialog, QWidget

from app.canvas import Canvas
from app.layers.base import OverlayLayer, class_color
from app.layers.labelled_boxes import ABOVE, INSIDE_BOTTOM, INSIDE_TOP, BoxStyle, LabelledBoxesLayer
from app.proposal_tools import LatestRunner
from app.stages.applicability import is_cls_loc
from app.stages.base import Stage, make_dock
from app.stages.detections.panel import (
    COLOR_BY_OUTCOME,
    FIRST_LOOK_COLOR,
    MISSED_COLOR,
    OUTCOME_COLORS,
    WINDOW_COLOR,
    DetectionsPanel,
    swatch,
)
from app.stages.detector_session import DetectorSession, left_out_sentence, of_classes
from app.stages.scene_boxes import (
    FROM_MODEL,
    SceneBoxes,
    ground_truth_crowd,
    ground_truth_ignored,
    no_boxes_text,
    scene_calibration,
    scene_detections,
    scene_second_look,
)
from app.workers import Job, WorkerPool
from models.data.datasets import DatasetSource
from models.detection.matching import (
    FP_REASONS,
    IGNORED,
    OUTCOME_TEXT,
    OUTCOMES,
    TP,
    DetectionMatch,
    match_detections,
)
from models.detection.result_files import LoadedDetections, load_detections

#: Style keys: outcome index * KIND + class id (class colouring) or outcome index (outcome colouring).
KIND = 1000
MISSED_KEY = 99 * KIND
#: Style keys of a classification + localisation model's second look (drawn under its answer).
WINDOW_KEY, FIRST_LOOK_KEY = 97 * KIND, 98 * KIND
#: Short tag words per outcome.
TAG = {TP: "", IGNORED: "ignored", "duplicate": "FP duplicate", "wrong_class": "FP wrong class",
       "localisation": "FP poor loc.", "background": "FP background"}


def load_job(job: Job, path: str, source: DatasetSource | None) -> LoadedDetections:
    job.check()
    return load_detections(path, source)


class DetectionsStage(Stage):
    """Controller of the Detections stage (see the module docstring)."""

    #: A detections file was loaded (the :class:`LoadedDetections`).
    loaded = Signal(object)
    #: Loading a detections file failed (the message shown to the user).
    loadFailed = Signal(str)

    def __init__(self, canvas: Canvas, session: DetectorSession, window: QWidget | None = None) -> None:
        super().__init__(window)
        self._canvas = canvas
        self._session = session
        self._window = window
        self._source: DatasetSource | None = None
        self._dock: QDockWidget | None = None
        self._dets: SceneBoxes | None = None
        self._calibration = None  # ScoreCalibration of the model's detections (same order), or None
        self._shown = np.zeros(0, np.int64)
        self._match: DetectionMatch | None = None
        #: The ground-truth boxes left out of the scoring (classes the detections cannot name), in a sentence; "": none.
        self.unscored_note = ""
        #: Which of the session's ground-truth boxes :attr:`match` scored (indices into ``gt_boxes()``): its
        #: ``missed`` and ``gt_index`` number those, not the image's objects.
        self.scored_index = np.zeros(0, np.int64)
        self.layer = LabelledBoxesLayer("Detections", z=34)
        canvas.add_layer(self.layer)
        self.panel = DetectionsPanel()
        self._pool = WorkerPool(self)
        self._runner = LatestRunner(self._pool, load_job, self._on_loaded, on_error=self._on_load_error, parent=self)
        self.load_action = QAction("&Load Detections…", window or self)
        self.load_action.setToolTip("Show detections from a COCO results JSON or a `detect` JSON (no model needed)")
        self.load_action.triggered.connect(self.ask_load)
        p = self.panel
        p.load_button.clicked.connect(self.ask_load)
        p.show_box.toggled.connect(self.layer.setVisible)
        self.layer.visibleChanged.connect(self._sync_check)
        p.paramsChanged.connect(self.refresh)
        session.traceChanged.connect(lambda _t: self.reload())
        session.storedDetectionsChanged.connect(self.reload)
        session.imageChanged.connect(self.reload)
        session.groundTruthChanged.connect(self.refresh)
        session.domainNoteChanged.connect(lambda _n: self.reload())
        self.reload()

    # --- host API --------------------------------------------------------------------------------------------
    def docks(self) -> list[QDockWidget]:
        if self._dock is None:
            self._dock = make_dock("Detections", "detections_dock", self.panel, self._window)
        return [self._dock]

    def actions(self) -> list[QAction]:
        return [self.load_action]

    def layers(self) -> list[OverlayLayer]:
        return [self.layer]

    def set_dataset(self, source: DatasetSource | None) -> None:
        self._source = source

    def shutdown(self) -> None:
        self._runner.cancel()
        self._pool.shutdown()

    # --- state ----------------------------------------------------------------------------------------------
    @property
    def detections(self) -> SceneBoxes | None:
        """All detections of the current image (scene pixels), before the score threshold."""
        return self._dets

    @property
    def shown(self) -> np.ndarray:
        """Indices into :attr:`detections` at or above the score threshold (the ones drawn and scored)."""
        return self._shown

    @property
    def match(self) -> DetectionMatch | None:
        """Outcomes of the shown detections (same order as :attr:`shown`) against the ground truth they are
        scored on; its ``missed`` numbers those boxes, :attr:`scored_index` says which objects they are."""
        return self._match

    # --- loading --------------------------------------------------------------------------------------------
    def ask_load(self) -> None:
        start = str(self._source.root) if self._source is not None else ""
        path, _ = QFileDialog.getOpenFileName(self._window, "Load detections", start,
                                              "Detections (*.json);;All files (*)")
        if path:
            self.load_file(path)

    def load_file(self, path: str | Path) -> int:
        """Read ``path`` in a worker and store its detections in the session (``loaded`` / ``loadFailed``)."""
        self.panel.set_status(f"Reading {Path(path).name}…")
        return self._runner.request(str(path), self._source)

    def _on_loaded(self, result: LoadedDetections) -> None:
        self._session.set_stored_detections(result.by_path, Path(result.path).name)
        text = result.summary()
        if self._session.stored_detections() is None and self._session.decoded is not None:
            text += " — none for the image shown"
        self.panel.set_status(text + ("\n" + "\n".join(result.problems[1:]) if len(result.problems) > 1 else ""))
        self.message.emit(text)
        self.loaded.emit(result)

    def _on_load_error(self, message: str) -> None:
        first = message.splitlines()[0] if message else "unknown error"
        if first.startswith("ValueError: "):
            first = first[len("ValueError: "):]
        self.panel.set_status(f"Could not load detections: {first}", error=True)
        self.message.emit(f"Could not load detections: {first}")
        self.loadFailed.emit(first)

    # --- scoring and drawing --------------------------------------------------------------------------------
    def reload(self) -> None:
        self._dets = scene_detections(self._session)
        d = self._dets
        text = no_boxes_text(self._session) if d is None else f"{len(d)} boxes: {d.description}"
        if d is not None and d.origin == FROM_MODEL and is_cls_loc(self._session.model):
            text = (f"classification + localisation: one class and one box for the whole image ({d.description});"
                    " drawn whatever the score threshold")
        self._calibration = scene_calibration(self._session) if d is not None and d.origin == FROM_MODEL else None
        cal = self._calibration
        if cal is not None:
            text += (f"<br>Scores calibrated by ImageNet prototypes (DeFRCN): {int(cal.applied.sum())} of {len(cal.scores)}"
                     f" = {cal.alpha:g} × the head's score + {1 - cal.alpha:g} × the ImageNet similarity of the box to "
                     "its class's mean training box, then re-ranked; tags give the head's own score")
        self.panel.source_label.setText(text)
        self.refresh()

    def refresh(self) -> None:
        """Apply the score threshold, match against the current ground truth and redraw."""
        d = self._dets
        if d is None:
            self._shown = np.zeros(0, np.int64)
            self._match = None
            self.unscored_note = ""
            self.scored_index = np.zeros(0, np.int64)
            self.layer.clear()
            self.panel.counts_label.setText("")
            self.panel.set_second_look_shown(False)
            return
        if d.origin == FROM_MODEL and is_cls_loc(self._session.model):
            # Classification + localisation answers exactly once per image, with the best of K class
            # probabilities (at least 1/K): that one answer is drawn whatever the threshold.
            self._shown = np.arange(len(d))
        else:
            self._shown = np.flatnonzero(d.scores >= np.float32(self.panel.score_threshold()))
        names = d.names
        shown_names = [names[i] for i in self._shown.tolist()]
        gt, gt_names, ign, crowd = self._scored_ground_truth(d)
        self._match = match_detections(d.boxes[self._shown], d.scores[self._shown], shown_names, gt, gt_names,
                                       ign, iou_threshold=self.panel.iou_threshold(), gt_crowd=crowd)
        self._show_counts(len(gt))
        self._draw(d, shown_names, gt, gt_names)

    def _scored_ground_truth(self, d: SceneBoxes) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
        """The ground truth the detections are scored against: boxes, names, ignored and crowd flags. A box of
        a class the detections cannot name (a person-only model on a photo that also has a labelled tie) is no
        miss of theirs, as the evaluation only scores the model's classes; it is left out and counted in
        :attr:`unscored_note`. Where the detections share no class with the image (a results file numbering its
        categories), everything is kept: there is no subset to pick."""
        gt, gt_names = self._session.gt_boxes(), self._session.gt_names()
        ign, crowd = ground_truth_ignored(self._session), ground_truth_crowd(self._session)
        scored = of_classes(gt_names, d.class_names)
        self.scored_index = np.flatnonzero(scored)
        self.unscored_note = left_out_sentence(gt_names, scored, "not scored: not among the detections' classes")
        if scored.all():
            return gt, gt_names, ign, crowd
        return (gt[scored], [n for n, keep in zip(gt_names, scored, strict=True) if keep], np.asarray(ign)[scored],
                np.asarray(crowd)[scored])

    def _show_counts(self, n_gt: int) -> None:
        m = self._match
        assert m is not None
        c = m.counts()
        fp = ", ".join(f"{swatch(OUTCOME_COLORS[r])} {c[r]} {OUTCOME_TEXT[r]}" for r in FP_REASONS)
        text = (f"<b>{len(self._shown)}</b> shown vs {n_gt} ground-truth boxes:<br>"
                f"{swatch(OUTCOME_COLORS[TP])} <b>{c[TP]}</b> true positives · <b>{m.n_fp}</b> false positives "
                f"({fp})<br>{swatch(MISSED_COLOR)} <b>{c['missed']}</b> missed")
        if c[IGNORED] or int(m.gt_ignored.sum()):
            text += (f" · {c[IGNORED]} ignored, on a difficult box or inside a crowd ({int(m.gt_ignored.sum())} "
                     "such boxes, neither hit nor miss)")
        if self.unscored_note:
            text += f"<br>{self.unscored_note}"
        self.panel.counts_label.setText(text)

    def _draw(self, d: SceneBoxes, shown_names: list[str], gt: np.ndarray, gt_names: list[str]) -> None:
        m = self._match
        assert m is not None
        by_outcome = self.panel.color_by() == COLOR_BY_OUTCOME
        tags = self.panel.labels_box.isChecked()
        boxes, keys, texts, fills, places = [], [], [], [], []
        styles: dict[int, BoxStyle] = {}
        for k, i in enumerate(self._shown.tolist()):
            o = m.outcome[k]
            oi = OUTCOMES.index(o)
            name = shown_names[k]
            dashed = o != TP
            if by_outcome:
                key, color = oi, OUTCOME_COLORS[o]
            else:
                key, color = oi * KIND + int(d.labels[i]), class_color(name)
            if key not in styles:
                styles[key] = BoxStyle(color, 2.0 if o == TP else 1.0,
                                       Qt.PenStyle.DashLine if dashed else Qt.PenStyle.SolidLine)
            boxes.append(d.boxes[i])
            keys.append(key)
            tag = f"{name} {d.scores[i]:.2f}"
            cal = self._calibration
            if cal is not None and i < len(cal.applied) and cal.applied[i]:
                tag += f" (head {cal.head_scores[i]:.2f})"
            if TAG[o]:
                tag += f" · {TAG[o]}"
            texts.append(tag if tags else "")
            fills.append(color)
            places.append(INSIDE_TOP)
        if self.panel.missed_box.isChecked():
            styles[MISSED_KEY] = BoxStyle(MISSED_COLOR, 2.0, Qt.PenStyle.DashLine)
            for j in np.flatnonzero(m.missed).tolist():
                boxes.append(gt[j])
                keys.append(MISSED_KEY)
                texts.append(f"missed {gt_names[j]}" if tags else "")
                fills.append(MISSED_COLOR)
                places.append(INSIDE_BOTTOM)
        under = self._add_second_look(d, boxes, keys, texts, fills, places, styles)
        # False positives under, true positives and misses on top.
        order = under + sorted((k for k in styles if k not in under),
                               key=lambda key: (key == MISSED_KEY, (key // KIND if not by_outcome else key) == 0,
                                                -key))
        self.layer.set_boxes(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(keys, np.int64), styles,
                             texts, fills, order, np.asarray(places, np.int64))

    def _add_second_look(self, d: SceneBoxes, boxes: list, keys: list, texts: list, fills: list, places: list,
                         styles: dict[int, BoxStyle]) -> list[int]:
        """Append a classification + localisation model's second look (what its trace holds, in scene pixels):
        the window the image was cut to (dashed) and the first look's own box (dotted), tagged; the panel's
        check box and legend are offered only then. Returns their style keys (painted under the answer)."""
        look = scene_second_look(self._session) if d.origin == FROM_MODEL else None
        self.panel.set_second_look_shown(look is not None)
        if look is None or not self.panel.second_look_box.isChecked():
            return []
        tags = self.panel.labels_box.isChecked()
        first = look.first
        styles[WINDOW_KEY] = BoxStyle(WINDOW_COLOR, 2.0, Qt.PenStyle.DashLine)
        styles[FIRST_LOOK_KEY] = BoxStyle(FIRST_LOOK_COLOR, 2.0, Qt.PenStyle.DotLine)
        boxes += [look.window, first.boxes[0]]
        keys += [WINDOW_KEY, FIRST_LOOK_KEY]
        texts += ["second look's window", f"first look: {first.names[0]} {first.scores[0]:.2f}"] if tags \
            else ["", ""]
        fills += [WINDOW_COLOR, FIRST_LOOK_COLOR]
        places += [ABOVE, INSIDE_BOTTOM]
        return [WINDOW_KEY, FIRST_LOOK_KEY]

    def _sync_check(self) -> None:
        box = self.panel.show_box
        box.blockSignals(True)
        box.setChecked(self.layer.isVisible())
        box.blockSignals(False)


__all__ = ["DetectionsStage", "load_job"]
