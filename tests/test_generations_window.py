"""Fast R-CNN and R-CNN checkpoints in the real window: the Model stage loads them by their generation, the
trace arrives, and the NMS and Detections stages work on it unchanged (the RPN stages stay empty)."""

from __future__ import annotations

import pytest
import torch

from app.stages.nms.controller import NmsStage
from models.detection.checkpoints import save_checkpoint
from models.detection.detectors import build_detector
from tests.test_main_window import make_window, settings  # noqa: F401 - settings is a fixture
from tests.test_model_stage import load, model_stage, shapes_folder

CLASSES = ["circle", "square", "triangle"]


@pytest.fixture
def window(qtbot, settings):  # noqa: F811 - the fixture above
    w = make_window(qtbot, settings, thumbnails=False)
    yield w
    w.close()


@pytest.mark.parametrize("generation", ["fast-rcnn", "rcnn"])
def test_older_generations_trace_in_the_window(qtbot, window, tmp_path, generation) -> None:
    torch.manual_seed(0)
    model = build_detector(generation, CLASSES, backbone="small", small_width=8, representation_size=32,
                           min_size=128, max_size=160, proposals_test=60, proposals_train=60,
                           box_score_threshold=0.0)
    path = save_checkpoint(tmp_path / f"{generation}.pt", model=model, config={"data": "nowhere"},
                           class_names=CLASSES, split={"name": "train", "files": []}, epoch=1)
    window.open_path(shapes_folder(tmp_path))
    load(qtbot, model_stage(window), path)
    trace = window.detector_session.trace
    assert trace.proposals.shape == (len(trace.proposals_original), 4) and 0 < len(trace.proposals) <= 60
    assert trace.class_scores.shape == (len(trace.proposals), len(CLASSES) + 1)
    nms = next(s for s in window.stages if isinstance(s, NmsStage))
    qtbot.waitUntil(lambda: nms.nms is not None, timeout=10_000)
    assert len(nms.candidates) == len(trace.candidates) > 0
    window.grab().save(f"/tmp/gens_{generation}_window.png")
