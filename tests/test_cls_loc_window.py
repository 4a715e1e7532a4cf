"""Classification + localisation in the window: the Model stage's trace shows as one box with class and score
(whatever the score threshold), the stages made for region-based detectors say they do not apply and clear
their layers instead of showing stale ones (and come back for a Faster R-CNN), and the training panel offers
the generation with its note on alpha."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PySide6.QtWidgets import QAbstractButton

from app.stages.anchors.controller import AnchorsStage
from app.stages.applicability import PREFIX, banner
from app.stages.detections import DetectionsStage
from app.stages.model import ModelStage
from app.stages.nms.controller import NmsStage
from app.stages.regression.controller import RegressionStage
from app.stages.roi_grid.stage import RoiGridStage
from app.stages.roi_sampling.stage import RoiSamplingStage
from app.stages.rpn.controller import RpnStage
from app.stages.training import TrainingStage
from models.detection.checkpoints import save_checkpoint
from models.detection.detectors import build_detector
from tests.test_main_window import make_window, settings, write_image  # noqa: F401 - settings is a fixture

CLASSES = ["circle", "square", "triangle"]
TRACE_TIMEOUT = 60_000
REGION_STAGES = (AnchorsStage, RpnStage, RegressionStage, RoiSamplingStage, RoiGridStage, NmsStage)


def checkpoint(tmp_path: Path, generation: str, **settings) -> Path:  # noqa: F811 - not the fixture
    torch.manual_seed(0)
    model = build_detector(generation, CLASSES, backbone="small", small_width=8, **settings)
    return save_checkpoint(tmp_path / f"{generation}.pt", model=model, config={"data": "nowhere"},
                           class_names=CLASSES, split={"name": "train", "files": []}, epoch=1)


@pytest.fixture
def window(qtbot, settings):  # noqa: F811 - the fixture above
    w = make_window(qtbot, settings, thumbnails=False)
    yield w
    w.close()


def stage_of(window, kind):  # noqa: ANN001, ANN201
    return next(s for s in window.stages if isinstance(s, kind))


def load(qtbot, window, path: Path) -> None:
    model_stage = stage_of(window, ModelStage)
    with qtbot.waitSignal(model_stage.session.traceChanged, timeout=TRACE_TIMEOUT,
                          check_params_cb=lambda t: t is not None):
        model_stage.load_model(path)


def region_layers_empty(window) -> bool:
    rpn = stage_of(window, RpnStage)
    return (stage_of(window, AnchorsStage).layer.boxes.shape[0] == 0 and rpn.heat_layer.values is None
            and not rpn.proposals_layer.groups and stage_of(window, NmsStage).layer.boxes.shape[0] == 0
            and stage_of(window, RoiSamplingStage).batch is None and stage_of(window, RoiGridStage).index < 0)


def test_a_cls_loc_model_shows_one_box_and_the_region_stages_say_why_not(qtbot, window, tmp_path):
    img = tmp_path / "a.png"
    write_image(img, seed=1)
    window.open_path(img)
    anchors = stage_of(window, AnchorsStage)
    anchors.layer.setVisible(True)  # anchors need no model: they are drawn from the panel's settings
    qtbot.waitUntil(lambda: anchors.layer.boxes.shape[0] > 0, timeout=TRACE_TIMEOUT)

    load(qtbot, window, checkpoint(tmp_path, "cls-loc", **{"cls_loc_head.hidden": 32}))
    dets = stage_of(window, DetectionsStage)
    dets.panel.set_score_threshold(0.9)  # above any untrained score: the one answer is drawn all the same
    assert len(dets.shown) == 1 and dets.layer.boxes.shape[0] == 1
    label = dets.layer.labels[0]
    assert label.split()[0] in CLASSES and float(label.split()[1]) >= 1 / len(CLASSES) - 1e-6
    assert "classification + localisation" in dets.panel.source_label.text()

    for kind in REGION_STAGES:
        stage = stage_of(window, kind)
        note = banner(stage.panel)
        assert note is not None and note.isVisibleTo(stage.panel) and note.text().startswith(PREFIX), kind
        buttons = stage.panel.findChildren(QAbstractButton)
        assert buttons and not any(b.isEnabled() for b in buttons), kind  # disabled under the reason
    qtbot.waitUntil(lambda: region_layers_empty(window), timeout=10_000)
    window.grab().save(str(tmp_path / "cls_loc_window.png"))
    stage_of(window, RpnStage).panel.grab().save(str(tmp_path / "cls_loc_rpn_panel.png"))

    # A region-based detector brings the stages back.
    load(qtbot, window, checkpoint(tmp_path, "faster-rcnn", anchor_sizes=(16, 32, 64), representation_size=32,
                                   min_size=128, max_size=160, rpn_pre_nms_test=100, rpn_post_nms_test=20))
    for kind in REGION_STAGES:
        stage = stage_of(window, kind)
        assert not banner(stage.panel).isVisibleTo(stage.panel), kind
        assert getattr(stage.panel, "heat_box" if kind is RpnStage else "show_box").isEnabled(), kind
    rpn = stage_of(window, RpnStage)
    qtbot.waitUntil(lambda: rpn.heat_layer.values is not None, timeout=10_000)
    qtbot.waitUntil(lambda: anchors.layer.boxes.shape[0] > 0, timeout=TRACE_TIMEOUT)


def test_the_training_panel_offers_cls_loc_with_its_note_on_alpha(qtbot, window, tmp_path):
    from models.data.synthetic import single_object_params, write_synthetic

    data = write_synthetic(tmp_path / "one", 4, seed=3, params=single_object_params(photo_fraction=0.0))
    stage = stage_of(window, TrainingStage)
    assert window.open_path(Path(data.root))
    qtbot.waitUntil(lambda: stage.summary is not None, timeout=20_000)
    panel = stage.panel
    assert panel.generation_enabled("cls-loc")
    panel.generation.setCurrentText("faster-rcnn")
    assert not panel.generation_about.isVisibleTo(panel)
    panel.generation.setCurrentText("cls-loc")
    assert panel.generation_about.isVisibleTo(panel)
    assert "alpha" in panel.generation_about.text() and "cross-entropy" in panel.generation_about.text()
    assert "balances" in panel.generation_about.toolTip()
    assert "cls-loc-shapes-cpu" in [panel.preset.itemText(i) for i in range(panel.preset.count())]
    panel.preset.setCurrentText("cls-loc-shapes-cpu")
    assert panel.setting_item("cls_loc_head", "alpha") is not None
    panel.grab().save(str(tmp_path / "cls_loc_training_panel.png"))
