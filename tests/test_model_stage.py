"""The Model stage in the real window: load a checkpoint (shipped, tiny, corrupt, foreign), the trace on the
image shown, the device list, the note on images the model knows nothing about, class mapping, and folder
inference with progress, cancel and a saved ``detect`` JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt

from app.cli.gui import SAMPLES
from app.stages.detections import DetectionsStage
from app.stages.model import ModelStage
from app.stages.model.controller import default_model_path
from models.detection.checkpoints import save_checkpoint
from models.detection.detection_files import load_detection_file
from models.detection.detectors import build_detector
from models.proposals.metrics import iou_matrix
from tests.test_main_window import make_window, settings, write_image  # noqa: F401 - settings is a fixture

CLASSES = ["circle", "square", "triangle"]
TINY = dict(small_width=8, anchor_sizes=(16, 32, 64), representation_size=64, min_size=128, max_size=160,
            rpn_pre_nms_test=300, rpn_post_nms_test=50)
TRACE_TIMEOUT = 60_000


@pytest.fixture
def tiny_checkpoint(tmp_path) -> Path:
    """An untrained, very small Faster R-CNN saved as a real checkpoint: loads and runs in well under a second."""
    torch.manual_seed(0)
    model = build_detector("faster-rcnn", CLASSES, backbone="small", **TINY)
    return save_checkpoint(tmp_path / "tiny.pt", model=model, config={"data": "nowhere"}, class_names=CLASSES,
                           split={"name": "train", "files": []}, epoch=1)


@pytest.fixture
def window(qtbot, settings):  # noqa: F811 - the fixture above
    w = make_window(qtbot, settings, thumbnails=False)
    yield w
    w.close()


def model_stage(window) -> ModelStage:
    return next(s for s in window.stages if isinstance(s, ModelStage))


def load(qtbot, stage: ModelStage, path: Path) -> None:
    with qtbot.waitSignal(stage.session.traceChanged, timeout=TRACE_TIMEOUT,
                          check_params_cb=lambda t: t is not None):
        stage.load_model(path)


def shapes_folder(tmp_path: Path) -> Path:
    dest = tmp_path / "shapes"
    shutil.copytree(SAMPLES / "shapes", dest, ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
    return dest


def test_the_model_stage_is_first_and_offers_the_cpu(window):
    stage = window.stages[0]
    assert isinstance(stage, ModelStage)
    devices = stage.panel.devices()
    assert "cpu" in devices
    if torch.cuda.is_available():  # CUDA by default where present
        assert stage.panel.device().startswith("cuda")
    assert stage.docks()[0].windowTitle() == "Model"
    titles = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert titles.count("Detector") == 1 and titles.count("View") == 1


@pytest.mark.skipif(not default_model_path().is_file(), reason="the shipped model is not in resources/models")
def test_the_shipped_model_finds_the_shapes_of_a_sample(qtbot, window, tmp_path):
    folder = shapes_folder(tmp_path)
    window.open_path(folder)
    window.document.go_to([e.name for e in window.document.entries].index("shapes_2.jpg"))
    stage = model_stage(window)
    load(qtbot, stage, default_model_path())
    session = window.detector_session
    assert stage.loaded.summary.test_map is not None and stage.loaded.summary.test_map >= 0.75
    assert "Test mAP" in stage.panel.info.text() and "circle" in stage.panel.info.text()
    assert session.domain_note == "" and not stage.notice.isVisible()
    dets = session.trace.detections
    gt, names = session.gt_boxes(), session.gt_names()
    assert len(gt) == 4
    iou = iou_matrix(gt, dets.boxes)
    det_names = np.asarray(dets.names)
    confident = 0
    for k, name in enumerate(names):  # every labelled shape has a detection of its class on it
        on_it = (det_names == name) & (iou[k] >= 0.5)
        assert on_it.any(), (name, gt[k])
        confident += int(dets.scores[on_it].max() >= 0.5)
    assert confident >= 3  # and most of them with a score of at least 0.5
    # the trace labelled the anchors against the ground truth
    assert (session.trace.anchors.labels == 1).sum() >= len(gt)


def test_a_corrupt_or_foreign_checkpoint_gives_a_message_and_the_window_keeps_working(
        qtbot, window, tmp_path, tiny_checkpoint):
    folder = tmp_path / "imgs"
    for k in range(2):
        write_image(folder / f"img{k}.png", seed=k)
    window.open_path(folder)
    stage = model_stage(window)
    load(qtbot, stage, tiny_checkpoint)
    first_model = window.detector_session.model

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(tiny_checkpoint.read_bytes()[:5000])  # a truncated download
    with qtbot.waitSignal(stage.loadFailed, timeout=TRACE_TIMEOUT) as failed:
        stage.load_model(corrupt)
    assert "not a readable detector checkpoint" in failed.args[0]
    assert "Could not load corrupt.pt" in stage.panel.status.text() and "stays loaded" in stage.panel.status.text()
    assert window.detector_session.model is first_model

    foreign = tmp_path / "foreign.pt"
    torch.save({"weight": torch.zeros(3)}, foreign)  # a plain state dict from another program
    stage.choose_model_file = lambda: str(foreign)
    with qtbot.waitSignal(stage.loadFailed, timeout=TRACE_TIMEOUT) as failed:
        stage.panel.load_button.click()
    assert "not an R-CNN Explorer detector checkpoint" in failed.args[0]
    # still working: the next image is traced with the model that stayed loaded
    with qtbot.waitSignal(window.detector_session.traceChanged, timeout=TRACE_TIMEOUT,
                          check_params_cb=lambda t: t is not None):
        window.next_image()
    assert window.detector_session.model is first_model
    assert stage.settings.recent_models()[0] == str(tiny_checkpoint.resolve())


def test_a_photo_with_other_classes_gets_the_note_not_boxes(qtbot, window, tmp_path, tiny_checkpoint):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("astronaut.png", "astronaut.xml"):
        shutil.copy2(SAMPLES / name, photos / name)
    window.open_path(photos)
    stage = model_stage(window)
    session = window.detector_session
    with qtbot.waitSignal(session.domainNoteChanged, timeout=TRACE_TIMEOUT, check_params_cb=bool):
        load(qtbot, stage, tiny_checkpoint)
    assert "knows only circle, square, triangle" in session.domain_note
    assert session.detections_hidden
    assert stage.notice.isVisible() and "Show them anyway" in stage.notice.text()
    assert stage.panel.domain.isVisible()
    detections = next(s for s in window.stages if isinstance(s, DetectionsStage))
    assert detections.detections is None and session.trace is not None  # traced, but nothing drawn
    stage.panel.show_anyway.click()
    assert not session.detections_hidden and "Hide them" in stage.notice.text()
    assert detections.detections is not None and len(detections.detections) > 0
    stage.notice.linkClicked.emit("hide")
    assert session.detections_hidden and detections.detections is None


def test_class_mapping_renames_what_the_detections_are_called(qtbot, window, tmp_path, tiny_checkpoint):
    from models.data.annotations import Annotation, BoxObject, write_voc

    folder = tmp_path / "pets"
    write_image(folder / "a.png")
    write_voc(Annotation("a.png", 320, 240, objects=[BoxObject("ball", (10, 10, 100, 100)),
                                                     BoxObject("dog", (150, 40, 300, 200))]), folder / "a.xml")
    window.open_path(folder)
    stage = model_stage(window)
    load(qtbot, stage, tiny_checkpoint)
    session = window.detector_session
    assert session.learnt().tolist() == [True, True] and session.left_out_note() == ""  # no class in common
    qtbot.waitUntil(lambda: stage.panel.class_match.text() != "", timeout=TRACE_TIMEOUT)
    assert "None of the model's classes" in stage.panel.class_match.text()
    assert stage.panel.map_button.isVisible()
    assert window.detector_session.domain_note  # "ball" is none of circle/square/triangle
    with qtbot.waitSignal(window.detector_session.traceChanged):
        stage.set_mapping({"circle": "ball"})
    assert window.detector_session.trace.detections.class_names == ["ball", "square", "triangle"]
    assert window.detector_session.domain_note == ""
    assert "circle → ball" in stage.panel.class_match.text()
    # the mapped name is a class the model learnt: the views take the ball and leave the dog out, and say so
    assert session.learnt().tolist() == [True, False]
    assert session.left_out_note() == "1 ground-truth box of dog (1) left out: the model did not learn these classes"


def test_objects_of_classes_the_model_did_not_learn_are_left_out_as_its_training_left_them(
        qtbot, window, tmp_path, tiny_checkpoint):
    """A circle/square/triangle model on an image that also has a labelled dog: training would have left the
    dog out (``train --classes``), so the trace labels its anchors without it and the anchor and RoI views
    take the circle only; without a model every object counts."""
    from models.data.annotations import Annotation, BoxObject, write_voc

    folder = tmp_path / "mixed"
    write_image(folder / "a.png")
    write_voc(Annotation("a.png", 320, 240, objects=[BoxObject("circle", (10, 10, 100, 100)),
                                                     BoxObject("dog", (150, 40, 300, 200))]), folder / "a.xml")
    window.open_path(folder)
    session = window.detector_session
    qtbot.waitUntil(lambda: len(session.gt_names()) == 2, timeout=5000)
    assert session.learnt().tolist() == [True, True]  # no model yet
    stage = model_stage(window)
    sent = []
    request = stage.trace_runner.request

    def recording(*args):  # noqa: ANN002, ANN202 - the trace job's arguments, passed on unchanged
        sent.append(args[4])
        return request(*args)

    stage.trace_runner.request = recording
    load(qtbot, stage, tiny_checkpoint)
    assert session.learnt().tolist() == [True, False]
    boxes, regions, index = session.training_gt()
    assert boxes.tolist() == [[10, 10, 100, 100]] and len(regions) == 0 and index.tolist() == [0]
    assert sent and sent[-1].tolist() == [[10, 10, 100, 100]]  # the dog never reached the trace
    assert session.left_out_note().startswith("1 ground-truth box of dog (1) left out")


def test_folder_inference_reaches_the_end_stores_and_saves(qtbot, window, tmp_path, tiny_checkpoint):
    folder = tmp_path / "imgs"
    paths = [write_image(folder / f"img{k}.png", seed=k) for k in range(4)]
    (folder / "zbroken.png").write_bytes(b"not an image")
    window.open_path(folder)
    stage = model_stage(window)
    load(qtbot, stage, tiny_checkpoint)
    progress: list[int] = []
    stage.panel.folder_progress.valueChanged.connect(progress.append)
    with qtbot.waitSignal(stage.folderFinished, timeout=TRACE_TIMEOUT) as done:
        qtbot.mouseClick(stage.panel.run_folder_button, Qt.MouseButton.LeftButton)
        assert stage.folder_running and stage.panel.cancel_folder_button.isEnabled()
    result = done.args[0]
    assert result is not None and progress[-1] == 1000
    assert len(result.by_path) == 4 and len(result.failed) == 1 and "zbroken.png" in result.failed[0]
    session = window.detector_session
    assert session.stored_source.startswith("folder inference with tiny.pt")
    for p in paths:
        assert session.stored_detections(str(p.resolve())) is not None
    assert stage.panel.save_button.isEnabled() and not stage.folder_running
    out = tmp_path / "out" / "dets.json"
    stage.choose_save_file = lambda: str(out)
    stage.panel.save_button.click()
    kind, doc = load_detection_file(out)
    assert kind == "detect" and len(doc["images"]) == 5
    saved = {Path(r["file"]).name: r for r in doc["images"]}
    assert "error" in saved["zbroken.png"]
    det0 = session.stored_detections(str(paths[0].resolve()))
    assert len(saved["img0.png"]["boxes"]) == len(det0)
    assert json.loads(out.read_text())  # plain JSON


def test_folder_inference_can_be_cancelled(qtbot, window, tmp_path, tiny_checkpoint):
    folder = tmp_path / "imgs"
    for k in range(6):
        write_image(folder / f"img{k}.png", seed=k)
    window.open_path(folder)
    stage = model_stage(window)
    load(qtbot, stage, tiny_checkpoint)
    with qtbot.waitSignal(stage.folderFinished, timeout=TRACE_TIMEOUT) as done:
        stage.run_folder()
        stage.panel.cancel_folder_button.click()
    assert done.args[0] is None
    assert "Cancelled" in stage.panel.folder_status.text()
    assert window.detector_session.stored_source == ""
    assert stage.panel.run_folder_button.isEnabled() and not stage.panel.cancel_folder_button.isEnabled()


def test_out_of_memory_is_one_sentence_in_the_panel(qtbot, window, tmp_path, tiny_checkpoint):
    folder = tmp_path / "imgs"
    write_image(folder / "a.png")
    window.open_path(folder)
    stage = model_stage(window)
    load(qtbot, stage, tiny_checkpoint)

    def no_memory(*_args, **_kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")

    window.detector_session.model.trace = no_memory
    messages: list[str] = []
    stage.message.connect(messages.append)
    stage.request_trace()
    qtbot.waitUntil(lambda: "out of memory" in stage.panel.status.text(), timeout=TRACE_TIMEOUT)
    assert "choose the CPU" in stage.panel.status.text() and "Traceback" not in stage.panel.status.text()
    assert messages and "out of memory" in messages[-1]
    assert window.detector_session.model is not None  # the model stays; another image or device can be tried
