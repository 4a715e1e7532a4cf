"""What ``make run`` (``python main.py --samples``) shows: the samples copy with the shapes, the shipped model
loaded, and a shapes image traced at once — no training first."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.cli.gui import SAMPLES, build_parser, create_window, prepare_samples
from app.stages.anchors.controller import AnchorsStage
from app.stages.detections import DetectionsStage
from app.stages.model import ModelStage
from app.stages.roi_grid.stage import RoiGridStage
from models.data.annotations import read_voc
from resources.models import SHIPPED_MODEL


def test_the_samples_copy_holds_the_shapes_and_an_older_copy_gets_them_once(tmp_path):
    shapes = sorted(p.name for p in (SAMPLES / "shapes").glob("*.jpg"))
    assert 3 <= len(shapes) <= 5
    for name in shapes:
        ann = read_voc((SAMPLES / "shapes" / name).with_suffix(".xml"))
        assert ann.objects and {o.name for o in ann.objects} <= {"circle", "square", "triangle"}
    copy = prepare_samples(tmp_path)
    assert sorted(p.name for p in (copy / "shapes").glob("*.jpg")) == shapes
    # a copy made before the shapes existed: they join it, and nothing there is overwritten
    shutil.rmtree(copy / "shapes")
    (copy / "astronaut.xml").write_text("edited")
    prepare_samples(tmp_path)
    assert (copy / "shapes" / shapes[0]).is_file() and (copy / "astronaut.xml").read_text() == "edited"
    (copy / "shapes" / "shapes_1.xml").write_text("mine")
    prepare_samples(tmp_path)
    assert (copy / "shapes" / "shapes_1.xml").read_text() == "mine"


@pytest.mark.skipif(not SHIPPED_MODEL.is_file(), reason="the shipped model is not in resources/models")
def test_make_run_starts_on_a_shape_with_the_shipped_model_traced(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("RCNN_EXPLORER_SETTINGS", str(tmp_path / "s.ini"))
    monkeypatch.setenv("RCNN_EXPLORER_DATA", str(tmp_path / "data"))
    window = create_window(build_parser().parse_args(["--samples"]))
    qtbot.addWidget(window)
    session = window.detector_session
    qtbot.waitUntil(lambda: session.trace is not None, timeout=120_000)
    assert Path(session.model_path) == SHIPPED_MODEL
    assert window.document.current_entry.name == "shapes/shapes_1.jpg"
    assert len(session.trace.detections) > 0 and session.domain_note == ""
    stage = next(s for s in window.stages if isinstance(s, ModelStage))
    assert stage.loaded.summary.test_map >= 0.75
    # Detections, anchors and a RoI grid at once, with no click.
    anchors = next(s for s in window.stages if isinstance(s, AnchorsStage))
    grid = next(s for s in window.stages if isinstance(s, RoiGridStage))
    detections = next(s for s in window.stages if isinstance(s, DetectionsStage))
    assert anchors.layer.isVisible() and grid.layer.isVisible() and detections.layers()[0].isVisible()
    qtbot.waitUntil(lambda: grid.explanation is not None, timeout=60_000)
    assert grid.index == 0
    window.close()


def test_no_model_starts_without_one(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("RCNN_EXPLORER_SETTINGS", str(tmp_path / "s.ini"))
    monkeypatch.setenv("RCNN_EXPLORER_DATA", str(tmp_path / "data"))
    window = create_window(build_parser().parse_args(["--samples", "--no-model"]))
    qtbot.addWidget(window)
    stage = next(s for s in window.stages if isinstance(s, ModelStage))
    assert not stage.load_runner.busy and window.detector_session.model is None
    assert window.document.current_entry.name == "astronaut.png"
    window.close()
