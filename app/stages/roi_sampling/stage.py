"""The RoI sampling stage: which RoIs one training step of the head would learn from on this image.

Runs :func:`models.detection.detectors.roi_heads.sample_rois` — the very function the head's training calls — on the
trace's proposals and the canvas's ground truth (edits included), with the settings of the panel (initially the
loaded model's) and the panel's seed, in a latest-wins worker. Nothing is computed while the layer is hidden.
By default the candidates are the RPN's training-time proposals (more of them, e.g. 2000, recomputed from the
trace's feature map by :func:`models.detection.training_rois.training_proposals`); the trace's test-time proposals are the
other choice. What still differs from a real step, said in the read-out: training sees an augmented image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PySide6.QtWidgets import QDockWidget, QWidget

from app.canvas import Canvas
from app.layers.base import OverlayLayer
from app.layers.roi_sampling import RoiSamplingLayer
from app.proposal_tools import LatestRunner
from app.stages.applicability import not_applicable, show_not_applicable
from app.stages.base import Stage, make_dock
from app.stages.detector_session import DetectorSession
from app.stages.roi_grid.stage import input_to_scene
from app.stages.roi_sampling.panel import RoiSamplingPanel
from app.workers import Job, WorkerPool
from models.detection.detectors.roi_heads import sample_rois
from models.detection.training_rois import training_proposals


@dataclass
class SampledBatch:
    """:class:`models.detection.detectors.roi_heads.RoiSample` as numpy, with the settings and seed it was drawn with."""

    candidates: np.ndarray  # [N, 4] network-input pixels: proposals, then GT boxes when added
    num_proposals: int
    max_iou: np.ndarray
    matched: np.ndarray
    labels: np.ndarray  # 1 foreground-eligible, 0 background-eligible, -1 neither
    positive: np.ndarray
    negative: np.ndarray
    params: dict
    seed: int
    source: str  # "train": the RPN's training-time proposals; "test": the trace's


def sample_job(job: Job, proposals: np.ndarray | None, gt: np.ndarray, params: dict, seed: int,
               rpn: object = None, features: np.ndarray | None = None,
               input_size: tuple[int, int] = (0, 0), regions: np.ndarray | None = None) -> SampledBatch:
    """Sample from ``proposals``; None: first compute the RPN's training-time proposals from ``features``.
    ``regions``: the crowd or difficult boxes, which training ignores rather than matches."""
    source = "test"
    if proposals is None:
        proposals = training_proposals(rpn, features, input_size)
        source = "train"
    job.check()
    s = sample_rois(torch.from_numpy(np.asarray(proposals, np.float32)), torch.from_numpy(np.asarray(gt, np.float32)),
                    **params, generator=torch.Generator().manual_seed(int(seed)),
                    ignore_regions=None if regions is None else torch.from_numpy(np.asarray(regions, np.float32)))
    return SampledBatch(s.proposals.numpy(), s.num_proposals, s.max_iou.numpy(), s.matched.numpy(),
                        s.labels.numpy(), s.positive.numpy(), s.negative.numpy(), dict(params), int(seed), source)


class RoiSamplingStage(Stage):
    """Controller of the RoI sampling view: layer, panel, worker."""

    def __init__(self, canvas: Canvas, session: DetectorSession, window: QWidget | None = None) -> None:
        super().__init__(window)
        self._canvas = canvas
        self._session = session
        self._window = window
        self._dock: QDockWidget | None = None
        self._k = np.ones(4)
        self._train_props: tuple[object, np.ndarray] | None = None  # (trace, its training-time proposals)
        #: The batch shown (None: nothing sampled).
        self.batch: SampledBatch | None = None
        self.layer = RoiSamplingLayer()
        canvas.add_layer(self.layer)
        self.panel = RoiSamplingPanel()
        self._pool = WorkerPool(self)
        self.runner = LatestRunner(self._pool, sample_job, self._on_sampled, on_error=self._on_error, parent=self)
        self.panel.show_box.toggled.connect(self.layer.setVisible)
        self.layer.visibleChanged.connect(self._on_visibility)
        self.panel.paramsChanged.connect(self.refresh)
        self.panel.resetRequested.connect(self._reset_params)
        session.modelChanged.connect(lambda _m: self._reset_params())
        session.domainNoteChanged.connect(self.panel.set_domain_note)
        self.panel.set_domain_note(session.domain_note)
        session.traceChanged.connect(lambda _t: self.refresh())
        session.groundTruthChanged.connect(self.refresh)
        self._reset_params()

    # --- Stage ---------------------------------------------------------------------------------------------
    def docks(self) -> list[QDockWidget]:
        if self._dock is None:
            self._dock = make_dock("RoI sampling", "roi_sampling_dock", self.panel, self._window)
        return [self._dock]

    def layers(self) -> list[OverlayLayer]:
        return [self.layer]

    def shutdown(self) -> None:
        self.runner.cancel()
        self._pool.shutdown()

    # --- work ----------------------------------------------------------------------------------------------
    def _reset_params(self) -> None:
        heads = getattr(self._session.model, "roi_heads", None)
        if heads is not None and hasattr(heads, "sampling_params"):
            self.panel.set_params(heads.sampling_params())

    def _on_visibility(self) -> None:
        on = self.layer.isVisible()
        if self.panel.show_box.isChecked() != on:
            self.panel.show_box.setChecked(on)
        if on:
            self.refresh()

    def _why_not(self) -> str:
        t = self._session.trace
        why = not_applicable(self._session.model, "roi_sampling")
        if why:
            return why
        if t is None:
            return "No model trace: load a model and run it on this image."
        if getattr(t, "proposals", None) is None or getattr(self._session.model, "roi_heads", None) is None:
            return "This model has no proposals and detection head to sample for."
        return ""

    def refresh(self) -> None:
        """Sample again for the current trace, ground truth and settings (when the layer is shown)."""
        why = self._why_not()
        show_not_applicable(self.panel, not_applicable(self._session.model, "roi_sampling"))
        if why:
            self.runner.cancel()
            self.batch = None
            self.layer.clear()
            self.panel.counts.setText(why)
            return
        if not self.layer.isVisible():
            return
        t = self._session.trace
        decoded = self._session.decoded
        self._k = input_to_scene(t, decoded.scale if decoded is not None else 1.0)
        boxes, regions, _ = self._session.training_gt()  # crowd and difficult boxes: ignored, as training does
        gt, regions = ((b.astype(np.float64) / self._k).astype(np.float32) for b in (boxes, regions))
        rpn = getattr(self._session.model, "rpn", None)
        if self.panel.source() == "test" or rpn is None:  # no RPN (Fast R-CNN): its proposals are external
            self.runner.request(np.asarray(t.proposals, np.float32), gt, self.panel.params(), self.panel.seed(),
                                None, None, (0, 0), regions)
        elif self._train_props is not None and self._train_props[0] is t:
            self.runner.request(self._train_props[1], gt, self.panel.params(), self.panel.seed(), None, None, (0, 0),
                                regions)
        elif getattr(t, "features", None) is not None:
            self.runner.request(None, gt, self.panel.params(), self.panel.seed(), rpn, t.features,
                                tuple(t.input_size), regions)
        else:
            self.panel.counts.setText("This trace has no feature map to recompute the training-time proposals "
                                      "from; choose the test-time proposals.")

    def _on_error(self, message: str) -> None:
        self.panel.counts.setText(f"Could not sample: {message}")
        self.message.emit(f"RoI sampling: {message}")

    def _on_sampled(self, b: SampledBatch) -> None:
        self.batch = b
        if b.source == "train" and self._session.trace is not None:
            self._train_props = (self._session.trace, b.candidates[: b.num_proposals])
        fg = b.candidates[b.positive] * self._k
        bg = b.candidates[b.negative] * self._k
        self.layer.set_rois(fg, bg, b.positive >= b.num_proposals)
        _, regions, index = self._session.training_gt()
        names = self._session.gt_names()
        self.panel.counts.setText(counts_text(b, [names[i] for i in index if i < len(names)], index + 1,
                                              len(regions), self._session.left_out_note()))


def counts_text(b: SampledBatch, gt_names: list[str], numbers: np.ndarray | None = None, ignored: int = 0,
                left_out: str = "") -> str:
    """The read-out under the settings (rich text). ``gt_names``: the objects sampling matched against,
    ``numbers`` their numbers on the image (default 1, 2, ...); ``ignored``: the crowd or difficult boxes;
    ``left_out``: a sentence on the objects of classes the model did not learn (not sampled against)."""
    p = b.params
    cap = int(p["batch_size"] * p["positive_fraction"])
    n_fg_ok = int((b.labels == 1).sum())
    n_bg_ok = int((b.labels == 0).sum())
    n_gt = b.candidates.shape[0] - b.num_proposals
    lines = [f"<b>{len(b.positive)} foreground</b> of {n_fg_ok} with IoU ≥ {p['fg_iou']:.2f} "
             f"(at most {cap} = {p['positive_fraction']:.2f} × {p['batch_size']})",
             f"<b>{len(b.negative)} background</b> of {n_bg_ok} with IoU in [{p['bg_iou_low']:.2f}, "
             f"{p['bg_iou_high']:.2f})",
             f"batch {len(b.positive) + len(b.negative)} of {p['batch_size']}; foreground fraction "
             f"{len(b.positive) / max(len(b.positive) + len(b.negative), 1):.2f}",
             f"candidates: {b.num_proposals} {'training-time' if b.source == 'train' else 'the trace’s'} proposals"
             + (f" + {n_gt} ground-truth box{'es' if n_gt > 1 else ''}" if n_gt else "")]
    if len(b.positive) and gt_names:
        per = np.bincount(b.matched[b.positive], minlength=len(gt_names))
        num = np.arange(1, len(gt_names) + 1) if numbers is None else numbers
        lines.append("foreground per object: " + ", ".join(f"{gt_names[i]} #{int(num[i])}: {int(c)}"
                                                            for i, c in enumerate(per[: len(gt_names)])))
    elif not gt_names and not ignored:
        lines.append("no ground truth on this image: every RoI is background")
    if ignored:
        lines.append(f"{ignored} crowd or difficult box{'es' if ignored > 1 else ''}: no object; RoIs overlapping "
                     f"one at IoU ≥ {p['bg_iou_high']:.2f} are not sampled as background")
    if left_out:
        lines.append(left_out)
    lines.append("<i>A real step samples from the RPN's training-time proposals of an augmented image (flips, "
                 "scale jitter)" + ("; these are the trace's test-time proposals" if b.source == "test" else
                                    "; here the image shown, without augmentation") + ".</i>")
    return "<br>".join(lines)


__all__ = ["RoiSamplingStage", "SampledBatch", "counts_text", "sample_job"]
