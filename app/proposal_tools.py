"""Wiring of the Selective Search stage into the main window: layers, panels, workers, read-outs.

``ProposalTools`` owns the superpixels, proposals and hierarchy-playback layers (added to the canvas), their
two side panels (``docks()``), the "Proposal quality over dataset…" action (``actions()``) and the worker
threads. It follows the canvas by itself: a new image shown by the canvas (``Canvas.set_image``) and every
edit of the ground truth in the canvas's ``AnnotationModel`` update what is shown, so the main window only
constructs it, adds its docks and actions, hands it the dataset and calls ``shutdown()`` on close.

Why "latest wins" runners: a slider or spinbox fires many requests per second. Each kind of job has one
``LatestRunner``: at most one worker thread runs; a new request cancels the running one (Selective Search
stops at its next check; a segmentation is short and simply runs out) and waits for it, so CPU never goes
to work whose answer is already unwanted, and a stale result is never shown (generation check).
Nothing is computed while its layer is hidden: showing the layer computes it for the current image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QScrollArea, QWidget

from app.canvas import Canvas
from app.dataset_quality import DatasetQualityDialog
from app.layers.base import OverlayLayer
from app.layers.hierarchy import HierarchyLayer
from app.layers.proposals import ProposalsLayer
from app.layers.superpixels import SuperpixelLayer
from app.panels.proposals_panel import ProposalParams, ProposalsPanel
from app.panels.superpixels_panel import SuperpixelParams, SuperpixelsPanel
from app.workers import Cancelled as JobCancelled
from app.workers import Job, LatestRunner, WorkerPool
from models.data.datasets import DatasetSource
from models.data.io import DecodedImage, resize_to_max_side
from models.proposals.metrics import ImageProposalScore, iou_matrix, score_image
from models.proposals.segmentation import Segmentation, felzenszwalb
from models.proposals.segmentation import warm_up as warm_up_segmentation
from models.proposals.selective_search import Cancelled, Proposals, selective_search
from models.proposals.selective_search import warm_up as warm_up_selective_search

#: Milliseconds a parameter must stay unchanged before it is computed (spinbox typing, slider drags).
DEBOUNCE_MS = 200

_warmed: set[str] = set()


# ------------------------------------------------------------------------------------------------ jobs


def superpixel_job(job: Job, pixels: np.ndarray, pixel_scale: float, params: SuperpixelParams) -> Segmentation:
    """Felzenszwalb on ``pixels`` reduced to ``params.max_side``; ``pixel_scale`` = DecodedImage.scale."""
    if "seg" not in _warmed:
        warm_up_segmentation()
        _warmed.add("seg")
    job.check()
    work, s = resize_to_max_side(pixels, params.max_side)
    job.check()
    return felzenszwalb(work, k=params.k, sigma=params.sigma, min_size=params.min_size,
                        color_space=params.color_space, scale=s * pixel_scale)


def proposal_job(job: Job, pixels: np.ndarray, params: ProposalParams) -> Proposals:
    """Selective Search on ``pixels``; boxes in the pixels' coordinates (the caller maps them to the scene)."""
    try:
        if "ss" not in _warmed:
            warm_up_selective_search()
            _warmed.add("ss")
        return selective_search(pixels, params.mode, max_side=params.max_side, seed=params.seed,
                                progress=job.progress, cancelled=lambda: job.cancelled)
    except Cancelled as exc:
        raise JobCancelled() from exc


# ------------------------------------------------------------------------------------------ controller


class ProposalTools(QObject):
    """Superpixels, proposals and hierarchy playback for the image shown on ``canvas``."""

    #: One line for the status bar (hover read-out, errors).
    message = Signal(str)
    #: A segmentation / proposal set for the current image is now shown.
    superpixelsReady = Signal(object)
    proposalsReady = Signal(object)

    def __init__(self, canvas: Canvas, parent_window: QWidget | None = None) -> None:
        super().__init__(parent_window)
        self._canvas = canvas
        self._window = parent_window
        self._decoded: DecodedImage | None = None
        self._explicit_gt: tuple[np.ndarray, np.ndarray] | None = None
        self._gt = np.zeros((0, 4), np.float32)
        self._ignore = np.zeros(0, bool)
        self._seg_key: tuple | None = None
        self._props_key: tuple | None = None
        self._props: Proposals | None = None
        self._props_scale = 1.0
        self._dataset: DatasetSource | None = None
        self._dialog: DatasetQualityDialog | None = None
        self._docks: list[QDockWidget] = []
        self._closed = False
        #: The recall read-out's score for the boxes shown (None without proposals).
        self.last_score: ImageProposalScore | None = None

        self.superpixel_layer = SuperpixelLayer()
        self.proposals_layer = ProposalsLayer()
        self.hierarchy_layer = HierarchyLayer()
        for layer in (self.superpixel_layer, self.hierarchy_layer, self.proposals_layer):
            canvas.add_layer(layer)
        self.superpixels_panel = SuperpixelsPanel()
        self.proposals_panel = ProposalsPanel()

        self._pool = WorkerPool(self)
        self.superpixel_runner = LatestRunner(self._pool, superpixel_job, self._on_superpixels,
                                              on_error=self._on_superpixel_error, parent=self)
        self.proposal_runner = LatestRunner(self._pool, proposal_job, self._on_proposals,
                                            on_error=self._on_proposal_error, on_progress=self._on_proposal_progress,
                                            on_idle=lambda: self.proposals_panel.set_progress(None), parent=self)
        self._seg_timer = self._debouncer(self.refresh_superpixels)
        self._props_timer = self._debouncer(self.refresh_proposals)

        self.quality_action = QAction("Proposal &quality over dataset…", parent_window or self)
        self.quality_action.setToolTip("Recall, MABO, boxes and seconds per image of Selective Search over the "
                                       "open dataset, in the background")
        self.quality_action.setEnabled(False)
        self.quality_action.triggered.connect(self.open_quality_dialog)

        self._connect()
        self._sync_image()

    def _debouncer(self, slot: Callable[[], None]) -> QTimer:
        t = QTimer(self)
        t.setSingleShot(True)
        t.setInterval(DEBOUNCE_MS)
        t.timeout.connect(slot)
        return t

    def _connect(self) -> None:
        sp, pp, c = self.superpixels_panel, self.proposals_panel, self._canvas
        # superpixels
        sp.show_box.toggled.connect(self.superpixel_layer.setVisible)
        self.superpixel_layer.visibleChanged.connect(self._on_superpixel_visibility)
        sp.paramsChanged.connect(self._seg_timer.start)
        sp.style_combo.currentIndexChanged.connect(lambda _i: self.superpixel_layer.set_style(sp.style()))
        sp.opacity_slider.valueChanged.connect(lambda v: self.superpixel_layer.setOpacity(v / 100.0))
        self.superpixel_layer.opacityChanged.connect(self._sync_opacity)
        # proposals
        pp.show_box.toggled.connect(self.proposals_layer.setVisible)
        self.proposals_layer.visibleChanged.connect(self._on_proposal_visibility)
        pp.paramsChanged.connect(self._props_timer.start)
        pp.topChanged.connect(self._on_top)
        pp.color_combo.currentIndexChanged.connect(lambda _i: self.proposals_layer.set_color_by(pp.color_by()))
        # playback
        pp.playback_box.toggled.connect(self.hierarchy_layer.setVisible)
        self.hierarchy_layer.visibleChanged.connect(self._on_playback_visibility)
        pp.strategy_combo.currentIndexChanged.connect(self._select_strategy)
        pp.step_slider.valueChanged.connect(self._on_step)
        # canvas
        c.image_layer.changed.connect(self._sync_image)
        c.model.changed.connect(self._refresh_gt)
        c.model.annotationReset.connect(self._refresh_gt)
        c.cursorMoved.connect(self._on_cursor)
        c.cursorLeft.connect(self._on_cursor_left)

    # --- public API for the main window --------------------------------------------------------------------
    def docks(self) -> list[QDockWidget]:
        """Two dock widgets ("Superpixels", "Selective Search"), created once, parented to the window."""
        if not self._docks:
            for title, name, panel in (("Superpixels", "superpixels_dock", self.superpixels_panel),
                                       ("Selective Search", "selective_search_dock", self.proposals_panel)):
                dock = QDockWidget(title, self._window)
                dock.setObjectName(name)  # saveState/restoreState need names
                scroll = QScrollArea()
                scroll.setWidgetResizable(True)
                scroll.setWidget(panel)
                dock.setWidget(scroll)
                dock.setAllowedAreas(Qt.DockWidgetArea.LeftDockWidgetArea | Qt.DockWidgetArea.RightDockWidgetArea)
                self._docks.append(dock)
        return list(self._docks)

    def actions(self) -> list[QAction]:
        return [self.quality_action]

    def layers(self) -> list[OverlayLayer]:
        return [self.superpixel_layer, self.hierarchy_layer, self.proposals_layer]

    def set_dataset(self, source: DatasetSource | None) -> None:
        """The open dataset, for "Proposal quality over dataset…"."""
        self._dataset = source
        self.quality_action.setEnabled(source is not None and bool(source.entries))
        if self._dialog is not None:
            self._dialog.set_source(source)

    def set_image(self, decoded: DecodedImage | None, gt_boxes: np.ndarray | None = None,
                  difficult: np.ndarray | None = None) -> None:
        """Use ``decoded`` as the current image (the canvas's own image is followed automatically anyway).

        ``gt_boxes`` (N×4, scene pixels) with ``difficult`` (N bools: difficult or crowd, left out of recall)
        pin the ground truth; None (the usual case) follows the canvas's annotation model, edits included.
        """
        if gt_boxes is None:
            self._explicit_gt = None
        else:
            gt = np.asarray(gt_boxes, np.float32).reshape(-1, 4)
            ign = np.zeros(gt.shape[0], bool) if difficult is None else np.asarray(difficult, bool).reshape(-1)
            self._explicit_gt = (gt, ign)
        self._set_decoded(decoded)
        self._refresh_gt()

    def open_quality_dialog(self) -> DatasetQualityDialog:
        if self._dialog is None:
            self._dialog = DatasetQualityDialog(self._window)
        self._dialog.set_source(self._dataset)
        self._dialog.show()
        self._dialog.raise_()
        return self._dialog

    @property
    def quality_dialog(self) -> DatasetQualityDialog | None:
        return self._dialog

    @property
    def proposals(self) -> Proposals | None:
        return self._props

    @property
    def decoded(self) -> DecodedImage | None:
        return self._decoded

    def shutdown(self) -> None:
        """Cancel every job and wait for its thread: call from the main window's closeEvent."""
        self._closed = True
        for t in (self._seg_timer, self._props_timer):
            t.stop()
        self.proposals_panel.play_button.setChecked(False)
        self.superpixel_runner.cancel()
        self.proposal_runner.cancel()
        self._pool.shutdown()
        if self._dialog is not None:
            self._dialog.shutdown()

    # --- image and ground truth ----------------------------------------------------------------------------
    def _sync_image(self) -> None:
        decoded = self._canvas.image_layer.decoded
        if decoded is not self._decoded:
            self._set_decoded(decoded)

    def _set_decoded(self, decoded: DecodedImage | None) -> None:
        if decoded is self._decoded:
            return
        self._decoded = decoded
        self._seg_key = None
        self._props_key = None
        self._props = None
        self.superpixel_runner.cancel()
        self.proposal_runner.cancel()
        self.superpixel_layer.set_segmentation(None)
        self.proposals_layer.clear()
        self.hierarchy_layer.set_hierarchy(None)
        self.proposals_panel.set_hierarchies([])
        self.proposals_panel.set_steps(0)
        self.proposals_panel.show_merge(None, None, 0)
        self.proposals_panel.set_count(0)
        self.proposals_panel.set_progress(None)
        self.proposals_panel.set_hover("")
        self.superpixels_panel.set_status("Not computed" if decoded is not None else "No image")
        self.proposals_panel.set_status("Not computed" if decoded is not None else "No image")
        self._update_recall()
        self._ensure_superpixels()
        self._ensure_proposals()

    def _refresh_gt(self) -> None:
        if self._explicit_gt is not None:
            self._gt, self._ignore = self._explicit_gt
        else:
            objs = self._canvas.model.objects
            self._gt = np.array([o.box for o in objs], np.float32).reshape(-1, 4)
            self._ignore = np.array([bool(o.difficult or o.crowd) for o in objs], bool)
        self._apply_best_iou()

    def _apply_best_iou(self) -> None:
        if self.proposals_layer.boxes.shape[0]:
            self.proposals_layer.set_best_iou(self._best_iou(self.proposals_layer.boxes))
        self._update_recall()

    def _best_iou(self, boxes: np.ndarray) -> np.ndarray | None:
        counted = self._gt[~self._ignore]
        if counted.shape[0] == 0:
            return None
        return iou_matrix(boxes, counted).max(axis=1)

    # --- superpixels ---------------------------------------------------------------------------------------
    def refresh_superpixels(self) -> None:
        """Compute now (no debounce) if the layer is visible and its result is not for these parameters."""
        self._seg_timer.stop()
        self._ensure_superpixels()

    def request_superpixels(self) -> int:
        """Start a segmentation of the current image with the panel's parameters, visible or not."""
        d = self._decoded
        if d is None or self._closed:
            return -1
        params = self.superpixels_panel.params()
        self._seg_key = (id(d), params)
        self.superpixels_panel.set_status("Computing…")
        return self.superpixel_runner.request(d.pixels, float(d.scale), params)

    def _ensure_superpixels(self) -> None:
        d = self._decoded
        if d is None or not self.superpixel_layer.isVisible():
            return
        if self._seg_key != (id(d), self.superpixels_panel.params()):
            self.request_superpixels()

    def _on_superpixels(self, seg: Segmentation) -> None:
        self.superpixel_layer.set_segmentation(seg)
        h, w = seg.shape
        p = seg.params
        self.superpixels_panel.set_status(f"{seg.n_regions} regions · {p.color_space}, k={p.k:g}, "
                                          f"σ={p.sigma:g}, min {p.min_size} · at {w}×{h} · "
                                          f"{1000 * seg.seconds:.0f} ms")
        self.superpixelsReady.emit(seg)

    def _on_superpixel_error(self, message: str) -> None:
        self._seg_key = None
        first = message.splitlines()[0] if message else "error"
        self.superpixels_panel.set_status(f"Segmentation failed: {first}")
        self.message.emit(f"Superpixels: {first}")

    def _on_superpixel_visibility(self) -> None:
        on = self.superpixel_layer.isVisible()
        self._set_checked(self.superpixels_panel.show_box, on)
        if on:
            self._ensure_superpixels()

    def _sync_opacity(self) -> None:
        s = self.superpixels_panel.opacity_slider
        s.blockSignals(True)
        s.setValue(round(self.superpixel_layer.opacity() * 100))
        s.blockSignals(False)

    @staticmethod
    def _set_checked(box: Any, on: bool) -> None:
        box.blockSignals(True)
        box.setChecked(on)
        box.blockSignals(False)

    # --- proposals -----------------------------------------------------------------------------------------
    def refresh_proposals(self) -> None:
        """Compute now (no debounce) if proposals or playback are visible and not for these parameters."""
        self._props_timer.stop()
        self._ensure_proposals()

    def request_proposals(self) -> int:
        """Start Selective Search on the current image with the panel's parameters, visible or not."""
        d = self._decoded
        if d is None or self._closed:
            return -1
        params = self.proposals_panel.params()
        self._props_key = (id(d), params)
        self.proposals_panel.set_status(f"Computing {params.mode} proposals…")
        self.proposals_panel.set_progress(0.0)
        return self.proposal_runner.request(d.pixels, params)

    def _ensure_proposals(self) -> None:
        d = self._decoded
        wanted = self.proposals_layer.isVisible() or self.hierarchy_layer.isVisible()
        if d is None or not wanted:
            return
        if self._props_key != (id(d), self.proposals_panel.params()):
            self.request_proposals()

    def _on_proposal_progress(self, fraction: float, message: str) -> None:
        self.proposals_panel.set_progress(fraction)
        if message and message != "done":
            self.proposals_panel.set_status(f"Computing: {message}…")

    def _on_proposals(self, props: Proposals) -> None:
        d = self._decoded
        self._props = props
        # Boxes are in the decoded pixels; the scene is full resolution.
        self._props_scale = 1.0 / d.scale if d is not None and d.scale > 0 else 1.0
        boxes = props.boxes * np.float32(self._props_scale) if self._props_scale != 1.0 else props.boxes
        self.proposals_layer.set_proposals(boxes, self._best_iou(boxes))
        self.proposals_panel.set_hover("")
        self.proposals_panel.set_progress(None)
        self.proposals_panel.set_count(len(props))  # emits topChanged → layer N and recall
        self.proposals_layer.set_top_n(self.proposals_panel.top_n())
        self._update_recall()
        self.proposals_panel.set_status(f"{len(props)} proposals ({props.mode}, seed {props.seed}, "
                                        f"{len(props.hierarchy)} groupings) in {props.seconds:.2f} s")
        self.proposals_panel.set_hierarchies(props.hierarchy)
        self._select_strategy(self.proposals_panel.strategy_combo.currentIndex())
        self.proposalsReady.emit(props)

    def _on_proposal_error(self, message: str) -> None:
        self._props_key = None
        first = message.splitlines()[0] if message else "error"
        self.proposals_panel.set_progress(None)
        self.proposals_panel.set_status(f"Selective Search failed: {first}")
        self.message.emit(f"Proposals: {first}")

    def _on_proposal_visibility(self) -> None:
        on = self.proposals_layer.isVisible()
        self._set_checked(self.proposals_panel.show_box, on)
        if on:
            self._ensure_proposals()
        else:
            self._set_hover(-1)

    def _on_top(self, n: int) -> None:
        self.proposals_layer.set_top_n(n)
        self._update_recall()

    def _update_recall(self) -> None:
        layer = self.proposals_layer
        n_all = layer.boxes.shape[0]
        if n_all == 0:
            self.last_score = None
            self.proposals_panel.set_recall("Recall: no proposals yet")
            return
        score = score_image(layer.shown_boxes, self._gt, self._ignore)
        self.last_score = score
        shown = f"top {layer.shown_count} of {n_all}" if layer.shown_count < n_all else f"all {n_all}"
        left_out = int(self._ignore.sum())
        note = f" ({left_out} difficult/crowd left out)" if left_out else ""
        if score.n_gt == 0:
            self.proposals_panel.set_recall(f"Recall ({shown} boxes): no ground truth on this image{note}")
            return
        hits5 = int(np.sum(score.best_iou >= 0.5))
        hits7 = int(np.sum(score.best_iou >= 0.7))
        self.proposals_panel.set_recall(
            f"<b>{shown}</b> boxes vs {score.n_gt} ground-truth boxes{note}:<br>"
            f"recall@0.5 <b>{score.recall(0.5):.3f}</b> ({hits5}/{score.n_gt}) · "
            f"recall@0.7 <b>{score.recall(0.7):.3f}</b> ({hits7}/{score.n_gt}) · "
            f"MABO <b>{score.mabo:.3f}</b>")

    def _on_cursor(self, x: float, y: float, _value: object) -> None:
        if not self.proposals_layer.isVisible():
            return
        self._set_hover(self.proposals_layer.hit_test(x, y, self._canvas.zoom))

    def _on_cursor_left(self) -> None:
        """The mouse left the canvas: no box is under it any more, so its highlight and text go."""
        self._set_hover(-1)

    def _set_hover(self, index: int) -> None:
        if index == self.proposals_layer.hover:
            return
        self.proposals_layer.set_hover(index)
        index = self.proposals_layer.hover
        text = self.proposals_layer.describe(index) if index >= 0 else ""
        self.proposals_panel.set_hover(text)
        self._canvas.viewport().setToolTip(text)
        self.message.emit(text)  # "" clears the status bar line a hovered box left there

    # --- playback ------------------------------------------------------------------------------------------
    def _on_playback_visibility(self) -> None:
        on = self.hierarchy_layer.isVisible()
        self._set_checked(self.proposals_panel.playback_box, on)
        if on:
            self.proposals_panel.reveal_playback()
            self._ensure_proposals()
        else:
            self.proposals_panel.play_button.setChecked(False)

    def _select_strategy(self, index: int) -> None:
        props = self._props
        if props is None or not 0 <= index < len(props.hierarchy):
            self.hierarchy_layer.set_hierarchy(None)
            self.proposals_panel.set_steps(0)
            self.proposals_panel.show_merge(None, None, 0)
            return
        h = props.hierarchy[index]
        self.hierarchy_layer.set_hierarchy(h, self._props_scale)
        self.proposals_panel.set_steps(h.n_steps)
        self._on_step(0)

    def _on_step(self, step: int) -> None:
        self.hierarchy_layer.set_step(step)
        self.proposals_panel.show_merge(self.hierarchy_layer.merge, self.hierarchy_layer.hierarchy,
                                        self.hierarchy_layer.region_count)


__all__ = ["DEBOUNCE_MS", "LatestRunner", "ProposalTools", "proposal_job", "superpixel_job"]
