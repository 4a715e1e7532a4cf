"""The RoI pooling grid stage: pick a RoI of the loaded model's trace, see how it is pooled.

Follows the :class:`DetectorSession`: each new trace offers its proposals (the RoIs the head pooled at test
time) in the panel's spin box; a click on the canvas while the grid is shown picks the smallest RoI around the
point. The explanation (:func:`models.detection.roi_explain.explain_for_head`, a few milliseconds) runs in a
latest-wins worker so a fast spin through RoIs never queues stale work; changing the channel only re-slices
the explanation already computed. Boxes of the trace are in network-input pixels; they are mapped to the scene
(full-resolution image pixels) by the trace's resize factors and the preview scale of the decoded image.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDockWidget, QWidget

from app.canvas import Canvas
from app.layers.base import OverlayLayer
from app.layers.roi_grid import GridDrawing, RoiGridLayer
from app.proposal_tools import LatestRunner
from app.stages.applicability import not_applicable, show_not_applicable
from app.stages.base import Stage, make_dock
from app.stages.detector_session import DetectorSession
from app.stages.roi_grid.panel import RoiGridPanel
from app.workers import Job, WorkerPool
from models.detection.roi_explain import RoiPoolingExplanation, explain_roi_pooling, roi_at


def explain_job(job: Job, features: np.ndarray, roi: np.ndarray, method: str, output_size: tuple[int, int],
                spatial_scale: float) -> RoiPoolingExplanation:
    job.check()
    return explain_roi_pooling(features, roi, method=method, output_size=output_size, spatial_scale=spatial_scale)


def input_to_scene(trace: object, scale: float) -> np.ndarray:
    """[kx, ky, kx, ky]: multiply network-input boxes by this to get scene pixels. ``trace.factors`` (sy, sx)
    maps the traced image to the network input; ``scale`` (DecodedImage.scale) maps the scene to the traced
    image, which is the decoded preview of a huge image."""
    sy, sx = trace.factors
    kx, ky = 1.0 / (sx * scale), 1.0 / (sy * scale)
    return np.array([kx, ky, kx, ky], np.float64)


class RoiGridStage(Stage):
    """Controller of the RoI pooling grid: layer, panel, worker, canvas picking."""

    #: A RoI's grid and pooled output are drawn (the explanation shown), e.g. for tests and the click timing.
    explanationShown = Signal(object)

    def __init__(self, canvas: Canvas, session: DetectorSession, window: QWidget | None = None) -> None:
        super().__init__(window)
        self._canvas = canvas
        self._session = session
        self._window = window
        self._dock: QDockWidget | None = None
        self._index = -1
        self._explanation: RoiPoolingExplanation | None = None
        self._k = np.ones(4)
        self.layer = RoiGridLayer()
        canvas.add_layer(self.layer)
        self.panel = RoiGridPanel()
        self._pool = WorkerPool(self)
        self.runner = LatestRunner(self._pool, explain_job, self._on_explained, on_error=self._on_error, parent=self)
        p = self.panel
        p.show_box.toggled.connect(self.layer.setVisible)
        self.layer.visibleChanged.connect(self._on_visibility)
        p.others_box.toggled.connect(self._sync_others)
        p.roiChosen.connect(self.select)
        p.channelChosen.connect(lambda _c: self._redraw())
        canvas.pointClicked.connect(self._on_click)
        session.domainNoteChanged.connect(self.panel.set_domain_note)
        self.panel.set_domain_note(session.domain_note)
        session.traceChanged.connect(self._on_trace)
        self._on_trace(session.trace)

    # --- Stage ---------------------------------------------------------------------------------------------
    def docks(self) -> list[QDockWidget]:
        if self._dock is None:
            self._dock = make_dock("RoI pooling grid", "roi_grid_dock", self.panel, self._window)
        return [self._dock]

    def layers(self) -> list[OverlayLayer]:
        return [self.layer]

    def shutdown(self) -> None:
        self.runner.cancel()
        self._pool.shutdown()

    # --- state ---------------------------------------------------------------------------------------------
    @property
    def index(self) -> int:
        """The RoI shown (index into the trace's proposals), -1 for none."""
        return self._index

    @property
    def explanation(self) -> RoiPoolingExplanation | None:
        return self._explanation

    @property
    def scene_factors(self) -> np.ndarray:
        """[kx, ky, kx, ky] mapping network-input pixels to scene pixels for the current trace."""
        return self._k

    def _usable(self) -> str:
        """Why the current trace cannot be shown ("" when it can)."""
        t, m = self._session.trace, self._session.model
        why = not_applicable(m, "roi_grid")
        if why:
            return why
        if t is None:
            return "No model trace: load a model and run it on this image."
        if getattr(t, "features", None) is None or getattr(t, "proposals", None) is None:
            return "This trace has no feature map and RoIs to pool (not a Faster R-CNN trace)."
        if getattr(m, "roi_heads", None) is None:
            return "The loaded model has no RoI pooling head."
        if len(t.proposals) == 0:
            return "The RPN proposed no RoI on this image."
        return ""

    def _on_trace(self, trace: object) -> None:
        self.runner.cancel()
        self._index = -1
        self._explanation = None
        self.layer.set_drawing(None)
        why = self._usable()
        show_not_applicable(self.panel, not_applicable(self._session.model, "roi_grid"))
        if why:
            self.panel.set_roi_count(0)
            self.panel.set_message(why)
            self.layer.set_other_rois(None)
            return
        decoded = self._session.decoded
        self._k = input_to_scene(trace, decoded.scale if decoded is not None else 1.0)
        self.panel.set_roi_count(len(trace.proposals))
        self.panel.set_channel_count(trace.features.shape[0])
        self.panel.set_message(f"{len(trace.proposals)} RoIs: click one on the image or choose it above.")
        self._sync_others()
        if self.layer.isVisible():
            self.select(0)

    def _on_visibility(self) -> None:
        on = self.layer.isVisible()
        if self.panel.show_box.isChecked() != on:
            self.panel.show_box.setChecked(on)
        if on and self._index < 0 and not self._usable():
            self.select(0)

    def _sync_others(self) -> None:
        t = self._session.trace
        if self.panel.others_box.isChecked() and not self._usable():
            self.layer.set_other_rois(t.proposals * self._k)
        else:
            self.layer.set_other_rois(None)

    # --- picking -------------------------------------------------------------------------------------------
    def _on_click(self, x: float, y: float) -> None:
        if not self.layer.isVisible() or self._usable():
            return
        t = self._session.trace
        idx = roi_at(t.proposals, x / self._k[0], y / self._k[1])
        if idx < 0:
            self.message.emit("No RoI contains that point.")
            return
        self.select(idx)

    def select(self, index: int) -> None:
        """Explain RoI ``index`` of the trace's proposals (in a worker) and draw it."""
        if self._usable():
            return
        t, heads = self._session.trace, self._session.model.roi_heads
        index = int(np.clip(index, 0, len(t.proposals) - 1))
        self._index = index
        self.panel.set_roi_index(index)
        self.runner.request(t.features, np.asarray(t.proposals[index], np.float64), heads.pooling,
                            tuple(heads.pool_size), float(heads.spatial_scale))

    def _on_error(self, message: str) -> None:
        self.panel.set_message(f"Could not explain this RoI: {message}")
        self.message.emit(f"RoI grid: {message}")

    def _on_explained(self, e: RoiPoolingExplanation) -> None:
        if self._session.trace is None:
            return
        self._explanation = e
        self._redraw()

    def _redraw(self) -> None:
        e, t = self._explanation, self._session.trace
        if e is None or t is None:
            return
        view = e.view(self.panel.channel())
        scores = getattr(t, "proposal_scores", None)
        score = float(scores[self._index]) if scores is not None and self._index < len(scores) else None
        self.panel.show_explanation(e, view, self._index, len(t.proposals), score)
        self.layer.set_drawing(self.drawing(e, view))
        self.explanationShown.emit(e)

    def drawing(self, e: RoiPoolingExplanation, view: object) -> GridDrawing:
        """What the layer draws for ``e`` (scene pixels)."""
        k, inv = self._k, 1.0 / e.spatial_scale
        argmax = np.zeros((0, 4))
        if view.argmax_cells is not None:
            cells = view.argmax_cells.reshape(-1, 2)
            cells = cells[cells[:, 0] >= 0].astype(np.float64)
            argmax = np.concatenate([cells, cells + 1], 1) * inv * k
        points = np.zeros((0, 2))
        if e.sample_points is not None:
            points = e.sample_points.reshape(-1, 2) * inv * k[:2]
        # RoIAlign's bilinear taps cross bin borders for any RoI: tint its shared cells only when the RoI is
        # smaller than the grid (the case worth seeing); RoI pooling's floor/ceil bins always show theirs.
        r = e.region
        small = (r[2] - r[0]) < e.output_size[1] or (r[3] - r[1]) < e.output_size[0]
        ys, xs = np.nonzero(e.bins_per_cell > 1) if (e.method == "pool" or small) else (np.zeros(0, int),) * 2
        shared = np.stack([xs, ys, xs + 1, ys + 1], 1).astype(np.float64) * inv * k
        return GridDrawing(roi=e.roi.astype(np.float64) * k, region=e.image_region * k,
                           bins=e.image_bins.reshape(-1, 4) * k, method=e.method, argmax_cells=argmax,
                           sample_points=points, shared_cells=shared,
                           label=f"RoI {self._index + 1} · {'RoIAlign' if e.method == 'align' else 'RoI pool'}")


__all__ = ["RoiGridStage", "explain_job", "input_to_scene"]
