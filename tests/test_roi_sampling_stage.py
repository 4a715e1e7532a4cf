"""The RoI sampling stage: what it draws is what the head's sampler picks, within the panel's settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.annotation_model import AnnotationModel
from app.canvas import Canvas
from app.stages.detector_session import DetectorSession
from app.stages.roi_sampling.stage import RoiSamplingStage
from models.boxes import box_iou
from models.data.annotations.model import Annotation, BoxObject
from models.data.io import DecodedImage
from models.detection.detectors import build_detector

CLASSES = ["circle", "square", "triangle"]


@pytest.fixture
def setup(qtbot):
    torch.manual_seed(0)
    model = build_detector("faster-rcnn", CLASSES, backbone="small", small_width=8, anchor_sizes=(16, 32, 64),
                           representation_size=32, min_size=128, max_size=160, rpn_pre_nms_test=600,
                           rpn_post_nms_test=300, rpn_nms=0.9).eval()
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 60, (256, 320, 3), dtype=np.uint8)
    canvas = Canvas(AnnotationModel())
    qtbot.addWidget(canvas)
    canvas.set_image(DecodedImage(pixels, 320, 256, 1, 320, 256))
    gt = [BoxObject("circle", (40.0, 40.0, 180.0, 150.0)), BoxObject("square", (190.0, 140.0, 300.0, 240.0))]
    canvas.model.set_annotation(Annotation(objects=gt), 320, 256)
    session = DetectorSession(canvas)
    session.set_model(model)
    stage = RoiSamplingStage(canvas, session, None)
    session.set_trace(model.trace(pixels))
    yield canvas, session, stage, model
    stage.shutdown()


def _sampled(qtbot, stage, action) -> None:
    with qtbot.waitCallback(timeout=5000) as cb:
        stage.layer.changed.connect(cb)
        action()
    stage.layer.changed.disconnect(cb)
    qtbot.waitUntil(lambda: not stage.runner.busy, timeout=5000)


def test_counts_respect_the_fraction_and_thresholds(qtbot, setup) -> None:
    canvas, session, stage, model = setup
    p = stage.panel
    assert p.batch_spin.value() == model.roi_heads.batch_size_per_image  # the model's own settings
    _sampled(qtbot, stage, lambda: p.show_box.setChecked(True))
    _sampled(qtbot, stage, lambda: p.source_combo.setCurrentIndex(p.source_combo.findData("test")))
    assert stage.batch.source == "test"
    for fg_iou, lo, hi, batch, frac in ((0.5, 0.0, 0.5, 128, 0.25), (0.6, 0.1, 0.4, 32, 0.5),
                                        (0.3, 0.0, 0.3, 64, 0.1)):
        def edit(fg_iou=fg_iou, lo=lo, hi=hi, batch=batch, frac=frac):  # noqa: ANN202
            p.set_params(dict(fg_iou=fg_iou, bg_iou_low=lo, bg_iou_high=hi, batch_size=batch,
                              positive_fraction=frac, positive_sampling="random", add_gt_as_proposals=True))
        _sampled(qtbot, stage, edit)
        b = stage.batch
        assert b.params["batch_size"] == batch and b.params["fg_iou"] == fg_iou
        fg, bg = stage.layer.foreground, stage.layer.background  # scene pixels; the scene is 2× the input here
        gt = torch.tensor(session.gt_boxes())
        iou_fg = box_iou(gt, torch.tensor(fg)).max(0).values
        iou_bg = box_iou(gt, torch.tensor(bg)).max(0).values
        assert (iou_fg >= fg_iou - 1e-4).all()
        assert ((iou_bg >= lo - 1e-4) & (iou_bg < hi + 1e-4)).all()
        # the input boxes (trace proposals + GT in network pixels): how many were eligible
        cand = torch.cat([torch.tensor(session.trace.proposals), gt / 2])
        best = box_iou(gt / 2, cand).max(0).values
        n_fg_ok = int((best >= fg_iou).sum())
        n_bg_ok = int(((best >= lo) & (best < hi)).sum())
        assert len(fg) == min(n_fg_ok, int(batch * frac))
        assert len(bg) == min(n_bg_ok, batch - len(fg))
        assert f"<b>{len(fg)} foreground</b> of {n_fg_ok}" in p.counts.text()
        assert stage.layer.foreground_is_gt.sum() <= 2


def test_resample_draws_another_batch_with_the_same_counts(qtbot, setup) -> None:
    canvas, session, stage, model = setup
    p = stage.panel
    _sampled(qtbot, stage, lambda: p.show_box.setChecked(True))
    first_bg, first_n = stage.layer.background.copy(), (len(stage.layer.foreground), len(stage.layer.background))
    _sampled(qtbot, stage, p.resample_button.click)
    assert p.seed_spin.value() == 1
    assert (len(stage.layer.foreground), len(stage.layer.background)) == first_n
    assert not np.array_equal(stage.layer.background, first_bg)
    _sampled(qtbot, stage, lambda: p.seed_spin.setValue(0))  # the same seed gives the same batch back
    assert np.array_equal(stage.layer.background, first_bg)


def test_editing_the_ground_truth_resamples_and_no_trace_clears(qtbot, setup) -> None:
    canvas, session, stage, model = setup
    _sampled(qtbot, stage, lambda: stage.panel.show_box.setChecked(True))
    _sampled(qtbot, stage, lambda: canvas.model.remove_object(1))
    assert set(stage.batch.matched[stage.batch.positive].tolist()) <= {0}
    session.set_trace(None)
    assert stage.batch is None and len(stage.layer.background) == 0
    assert "No model trace" in stage.panel.counts.text()


def test_training_time_proposals_are_the_default_candidates(qtbot, setup) -> None:
    from models.detection.training_rois import training_proposals

    canvas, session, stage, model = setup
    t = session.trace
    assert stage.panel.source() == "train"
    _sampled(qtbot, stage, lambda: stage.panel.show_box.setChecked(True))
    b = stage.batch
    expect = training_proposals(model.rpn, t.features, t.input_size)
    assert b.source == "train" and np.allclose(b.candidates[: b.num_proposals], expect)
    assert b.num_proposals > len(t.proposals)  # training keeps more proposals than the test-time trace
    assert "training-time proposals" in stage.panel.counts.text()
    _sampled(qtbot, stage, stage.panel.resample_button.click)  # reuses the proposals computed for this trace
    assert np.allclose(stage.batch.candidates[: stage.batch.num_proposals], expect)


def test_a_model_without_rpn_samples_from_its_own_proposals(qtbot, tmp_path) -> None:
    """Fast R-CNN has no RPN: its RoIs come from Selective Search, and both RoI views use the trace's."""
    from app.stages.roi_grid.stage import RoiGridStage
    from models.proposals.cache import ProposalCache

    torch.manual_seed(0)
    model = build_detector("fast-rcnn", CLASSES, backbone="small", small_width=8, representation_size=32,
                           min_size=128, max_size=160, proposals_train=200, proposals_test=200).eval()
    model.proposal_cache = ProposalCache(tmp_path / "cache")
    pixels = np.random.default_rng(1).integers(0, 255, (128, 160, 3), dtype=np.uint8)
    pixels[20:90, 30:110] = (230, 40, 40)
    canvas = Canvas(AnnotationModel())
    qtbot.addWidget(canvas)
    canvas.set_image(DecodedImage(pixels, 160, 128, 1, 160, 128))
    canvas.model.set_annotation(Annotation(objects=[BoxObject("square", (30.0, 20.0, 110.0, 90.0))]), 160, 128)
    session = DetectorSession(canvas)
    session.set_model(model)
    stage = RoiSamplingStage(canvas, session, None)
    grid = RoiGridStage(canvas, session, None)
    try:
        session.set_trace(model.trace(pixels))
        assert stage.panel.source() == "train"
        _sampled(qtbot, stage, lambda: stage.panel.show_box.setChecked(True))
        assert stage.batch.num_proposals == len(session.trace.proposals)
        with qtbot.waitSignal(grid.explanationShown, timeout=5000):
            grid.panel.show_box.setChecked(True)
        assert np.allclose(grid.explanation.roi, session.trace.proposals[0])
    finally:
        stage.shutdown()
        grid.shutdown()
