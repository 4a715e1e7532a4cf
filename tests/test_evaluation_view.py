"""The evaluation view in the real window: its AP equals the ``evaluate`` command's on the same model and data;
its tables match a detections file's direct counts; a class and a worst image are one click each, the image
opening with the Detections layer set to the view's thresholds; CSV, PNG and SVG export; cancel and errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from app.stages.detections import DetectionsStage
from app.stages.evaluation import EvaluationStage
from app.stages.evaluation.jobs import ALL_IMAGES, FROM_FILE, FROM_MODEL
from app.stages.model import ModelStage
from models.detection.confusion import BACKGROUND_ROW, MISSED_COLUMN
from models.detection.matching import FP_REASONS, TP
from tests.test_main_window import make_window, settings  # noqa: F401 - settings is a fixture

TIMEOUT = 60_000


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    """Eight drawn PNG images, half of them in the test split (four images keep the model run to seconds)."""
    from models.data.synthetic import SynthParams, write_synthetic

    root = tmp_path_factory.mktemp("eval_view") / "set"
    write_synthetic(root, 8, seed=0, test_fraction=0.5, params=SynthParams(image_format="png"))
    return root


@pytest.fixture
def window(qtbot, settings, synth_root):  # noqa: F811 - the fixture above
    w = make_window(qtbot, settings, thumbnails=False)
    w.resize(1500, 950)
    assert w.open_path(synth_root)
    qtbot.waitUntil(lambda: w.detector_session.decoded is not None, timeout=5000)
    # The view starts closed (the left tab row needs the height); the Detector menu's "Evaluation" opens it.
    dock = stage_of(w, EvaluationStage).docks()[0]
    assert not dock.isVisible()
    dock.toggleViewAction().trigger()
    qtbot.waitUntil(dock.isVisible)
    w.resizeDocks([dock], [420], Qt.Orientation.Vertical)
    yield w
    w.close()


def stage_of(w, kind: type):
    return next(s for s in w.stages if isinstance(s, kind))


def load_shipped_model(qtbot, w) -> None:
    from resources.models import SHIPPED_MODEL

    ms = stage_of(w, ModelStage)
    with qtbot.waitSignal(ms.modelLoaded, timeout=TIMEOUT):
        ms.load_model(SHIPPED_MODEL, "cpu")


def click_row(qtbot, table, row: int) -> None:
    """A real mouse click on the first cell of ``row``."""
    table.scrollToItem(table.item(row, 0))
    rect = table.visualItemRect(table.item(row, 0))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def shown_table(table) -> list[list[str]]:
    header = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    return [header] + [[table.item(r, c).text() for c in range(table.columnCount())] for r in range(table.rowCount())]


def evaluate_test_split_by_click(qtbot, stage):  # noqa: ANN201 - the EvaluationReport
    """Evaluate the loaded model on the test split the way a user does (mode, split, the Evaluate button)."""
    p = stage.panel
    p.set_mode(FROM_MODEL)
    p.set_split("test")
    with qtbot.waitSignal(stage.evaluated, timeout=TIMEOUT, check_params_cb=lambda r: r is not None) as done:
        qtbot.mouseClick(p.evaluate_button, Qt.MouseButton.LeftButton)
    return done.args[0]


def test_view_ap_equals_the_evaluate_command(qtbot, window, synth_root, tmp_path, capsys):
    from app.cli.detection import run_evaluate
    from resources.models import SHIPPED_MODEL

    w = window
    load_shipped_model(qtbot, w)
    stage = stage_of(w, EvaluationStage)
    p = stage.panel
    assert stage.docks()[0] in w.bottom_docks
    p.set_mode(FROM_MODEL)
    p.set_split("test")
    with qtbot.waitSignal(stage.evaluated, timeout=TIMEOUT, check_params_cb=lambda r: r is not None) as done:
        qtbot.mouseClick(p.evaluate_button, Qt.MouseButton.LeftButton)
    assert stage.running or not p.cancel_button.isEnabled()
    report = done.args[0]
    assert report.result.n_images == 4
    out = tmp_path / "eval.json"
    assert run_evaluate(["--data", str(synth_root), "--model", str(SHIPPED_MODEL), "--split", "test",
                         "--device", "cpu", "--json", str(out)]) == 0
    capsys.readouterr()
    cli = json.loads(out.read_text())
    assert cli["images"] == 4
    assert report.result.mAP == pytest.approx(cli["mAP"], abs=1e-6)
    for c, ap in cli["AP"].items():
        assert (ap is None and np.isnan(report.result.AP[c])) or report.result.AP[c] == pytest.approx(ap, abs=1e-6)
    assert report.result.coco_AP == pytest.approx(cli["coco_AP"], abs=1e-6)
    # What the window shows is that report: the mean row of the table and the summary line.
    table = shown_table(p.ap_table)
    assert table[-1][1] == f"{cli['mAP']:.4f}"
    assert f"{cli['mAP']:.4f}" in p.summary_label.text()
    assert set(p.curves.curves) == {c for c, ap in cli["AP"].items() if ap is not None}


def test_worst_image_opens_with_the_model_detections_matching_its_counts(qtbot, window):
    w = window
    load_shipped_model(qtbot, w)
    stage = stage_of(w, EvaluationStage)
    det_stage = stage_of(w, DetectionsStage)
    p = stage.panel
    det_stage.layer.setVisible(False)
    det_stage.panel.set_score_threshold(0.9)
    p.set_mode(FROM_MODEL)
    p.set_split(ALL_IMAGES)
    with qtbot.waitSignal(stage.evaluated, timeout=TIMEOUT, check_params_cb=lambda r: r is not None) as done:
        stage.evaluate()
    report = done.args[0]
    # The class with the most errors; click its row, then its worst image.
    errors = report.analysis.errors
    cls = max(report.classes, key=lambda c: (errors.totals(c)["fp"] + errors.totals(c)["missed"], c))
    assert errors.totals(cls)["fp"] + errors.totals(cls)["missed"] > 0, "the shipped model makes no error here"
    click_row(qtbot, p.ap_table, report.classes.index(cls))
    assert stage.chosen_class == cls
    assert p.tabs.currentIndex() == p.worst_tab
    worst = stage.worst[0]
    assert shown_table(p.worst_table)[1][0] == worst.name
    session = w.detector_session
    click_row(qtbot, p.worst_table, 0)
    qtbot.waitUntil(lambda: w.document.index == worst.index and session.trace is not None
                    and det_stage.match is not None, timeout=TIMEOUT)
    # The Detections layer is on, set to the view's thresholds, and counts what the list says for the class.
    assert det_stage.layer.isVisible() and det_stage.panel.show_box.isChecked()
    assert det_stage.panel.score_threshold() == pytest.approx(report.score_threshold)
    assert det_stage.panel.iou_threshold() == pytest.approx(report.iou_threshold)
    d = det_stage.detections
    names = [d.names[i] for i in det_stage.shown.tolist()]
    m = det_stage.match
    fp = sum(1 for o, n in zip(m.outcome, names, strict=True) if n == cls and o in FP_REASONS)
    tp = sum(1 for o, n in zip(m.outcome, names, strict=True) if n == cls and o == TP)
    gt_names = session.gt_names()
    missed = sum(1 for j in np.flatnonzero(m.missed).tolist() if gt_names[det_stage.scored_index[j]] == cls)
    assert (fp, missed, tp) == (worst.false_positives, worst.missed, worst.true_positives)


def detect_json(root: Path, tmp_path: Path) -> tuple[Path, list[int]]:
    """A ``detect`` JSON for the test split: the ground truth moved by a pixel, except that on the first image
    the first object is left out (missed) and a box of its class is put in a corner (a background FP)."""
    from models.data.datasets import open_dataset
    from models.data.splits import dataset_splits, split_indices
    from models.data.training_data import class_names_of, load_targets

    source = open_dataset(root)
    names = class_names_of(source)
    test = split_indices(dataset_splits(source), "test")
    images = []
    for k, i in enumerate(test):
        t, _ = load_targets(source, i, names)
        boxes, labels = (t.boxes + 1.0).tolist(), list(t.names)
        if k == 0:
            cls = labels[0]
            boxes, labels = boxes[1:] + [[0.0, 0.0, 6.0, 6.0]], labels[1:] + [cls]
        images.append({"file": str(source.entries[i].path), "boxes": boxes,
                       "scores": [0.9] * len(boxes), "labels": labels})
    path = tmp_path / "dets.json"
    path.write_text(json.dumps({"images": images}))
    return path, test


def test_detections_file_tables_click_through_and_export(qtbot, window, synth_root, tmp_path, monkeypatch):
    w = window
    stage = stage_of(w, EvaluationStage)
    det_stage = stage_of(w, DetectionsStage)
    p = stage.panel
    path, test = detect_json(synth_root, tmp_path)
    assert not p.file_button.isVisible()
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    p.set_mode(FROM_FILE)
    qtbot.mouseClick(p.file_button, Qt.MouseButton.LeftButton)
    assert stage.file_path == str(path) and p.file_label.text() == "dets.json"
    p.set_split(ALL_IMAGES)  # for a file: the images it has entries for
    with qtbot.waitSignal(stage.evaluated, timeout=TIMEOUT, check_params_cb=lambda r: r is not None) as done:
        qtbot.mouseClick(p.evaluate_button, Qt.MouseButton.LeftButton)
    report = done.args[0]
    assert report.inputs.indices == test
    first = json.loads(path.read_text())["images"][0]
    cls = first["labels"][-1]
    # The direct count: one object of `cls` missed and one `cls` box on background; every other box is right.
    cm = report.analysis.confusion
    assert cm.cell(cls, MISSED_COLUMN) == 1 and cm.cell(BACKGROUND_ROW, cls) == 1
    off_diagonal = cm.counts.copy()
    np.fill_diagonal(off_diagonal, 0)
    assert off_diagonal.sum() == 2
    # The matrix on screen is that matrix.
    k = cm.classes.index(cls)
    assert p.confusion.item(k, len(cm.classes)).text() == "1"
    assert p.confusion.item(len(cm.classes), k).text() == "1"
    assert p.confusion.verticalHeaderItem(len(cm.classes)).text() == BACKGROUND_ROW
    # Clicking a confusion row chooses its class; its only worst image is the first test image.
    p.tabs.setCurrentIndex(p.confusion_tab)
    qtbot.mouseClick(p.confusion.viewport(), Qt.MouseButton.LeftButton,
                     pos=p.confusion.visualItemRect(p.confusion.item(k, 0)).center())
    assert stage.chosen_class == cls and p.tabs.currentIndex() == p.worst_tab
    assert [(x.index, x.false_positives, x.missed) for x in stage.worst] == [(test[0], 1, 1)]
    if w.document.index == test[0]:
        w.document.go_to(test[1])
    click_row(qtbot, p.worst_table, 0)
    qtbot.waitUntil(lambda: w.document.index == test[0] and det_stage.match is not None
                    and len(det_stage.shown) == len(first["boxes"]), timeout=5000)
    assert det_stage.layer.isVisible()
    assert det_stage.match.counts()["background"] == 1 and det_stage.match.n_missed == 1
    assert "missed " + cls in det_stage.layer.labels
    # CSV export of the AP table: what is on screen, read back.
    ap_csv = tmp_path / "ap.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(ap_csv), ""))
    qtbot.mouseClick(p.ap_export, Qt.MouseButton.LeftButton)
    with ap_csv.open(encoding="utf-8", newline="") as f:
        assert list(csv.reader(f)) == shown_table(p.ap_table)
    rows = {r[0]: r for r in shown_table(p.ap_table)[1:]}
    assert rows[cls][6:9] == [str(report.analysis.errors.totals(cls)["tp"]), "1", "1"]
    conf_csv = tmp_path / "confusion.csv"
    stage.export_confusion_csv(conf_csv)
    with conf_csv.open(encoding="utf-8", newline="") as f:
        back = list(csv.reader(f))
    assert back[0][1:] == cm.column_labels and [r[0] for r in back[1:]] == cm.row_labels
    assert [[int(v) for v in r[1:]] for r in back[1:]] == cm.counts.tolist()
    worst_csv = tmp_path / "worst.csv"
    stage.export_worst_csv(worst_csv)
    assert worst_csv.read_text(encoding="utf-8").splitlines()[1].startswith(stage.worst[0].name + ",")
    # Curves as PNG and SVG.
    png, svg = tmp_path / "pr.png", tmp_path / "pr.svg"
    stage.export_curves(png)
    stage.export_curves(svg)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in svg.read_text(encoding="utf-8")[:2000]


def test_threshold_change_rescores_without_the_model(qtbot, window, synth_root, tmp_path):
    stage = stage_of(window, EvaluationStage)
    p = stage.panel
    path, _ = detect_json(synth_root, tmp_path)
    stage.set_file(path)
    p.set_split(ALL_IMAGES)
    with qtbot.waitSignal(stage.evaluated, timeout=TIMEOUT, check_params_cb=lambda r: r is not None) as done:
        stage.evaluate()
    before = done.args[0]
    with qtbot.waitSignal(stage.rescored, timeout=TIMEOUT) as again:
        p.score_spin.setValue(0.95)  # every box scores 0.9: nothing counts any more
    after = again.args[0]
    assert after.inputs is before.inputs and after.result.mAP == pytest.approx(before.result.mAP)
    assert int(after.analysis.confusion.counts[:, :-1].sum()) == 0
    assert stage.report is after


def test_the_model_stages_class_mapping_is_applied(qtbot, window, synth_root, tmp_path):
    """A dataset calling the model's "circle" "ring": mapped in the Model stage, the view scores the model's
    circles against the rings, with the AP the model gets on the circles of the original set."""
    import shutil

    from models.data.datasets import open_dataset
    from models.detection.checkpoints import load_detector
    from models.detection.evaluation import evaluate_detector
    from resources.models import SHIPPED_MODEL

    renamed = tmp_path / "renamed"
    shutil.copytree(synth_root, renamed)
    for xml in renamed.rglob("*.xml"):
        xml.write_text(xml.read_text().replace("<name>circle</name>", "<name>ring</name>"))
    for txt in renamed.rglob("classes.txt"):
        txt.write_text(txt.read_text().replace("circle", "ring"))
    w = window
    assert w.open_path(renamed)
    load_shipped_model(qtbot, w)
    stage_of(w, ModelStage).set_mapping({"circle": "ring"})  # what the "Map Classes…" dialog returns
    stage = stage_of(w, EvaluationStage)
    p = stage.panel
    result = evaluate_test_split_by_click(qtbot, stage).result
    source = open_dataset(str(synth_root))
    from app.stages.evaluation.jobs import images_of

    expected, _ = evaluate_detector(load_detector(SHIPPED_MODEL, "cpu"), source, images_of(source, "test"))
    assert "circle" not in result.AP
    assert result.AP["ring"] == pytest.approx(expected.AP["circle"], abs=1e-6)
    assert result.mAP == pytest.approx(expected.mAP, abs=1e-6)
    assert "circle → ring" in p.status_label.text()


def test_unsaved_edits_are_the_ground_truth_evaluated(qtbot, window, synth_root):
    """Boxes deleted in the window and not saved (autosave off) are gone from the evaluated ground truth; the
    file keeps them, and the status says that unsaved edits were used."""
    from app.stages.evaluation.jobs import images_of
    from models.data.datasets import open_dataset

    w = window
    w.document.set_autosave(False)
    source = open_dataset(str(synth_root))
    first = images_of(source, "test")[0]
    assert w.document.go_to(first)
    qtbot.waitUntil(lambda: w.document.index == first and len(w.model) > 0, timeout=5000)
    on_disk = len(w.model)
    w.model.select(range(on_disk))
    w.act_delete.trigger()
    assert len(w.model) == 0 and w.document.is_dirty(first)
    load_shipped_model(qtbot, w)
    stage = stage_of(w, EvaluationStage)
    p = stage.panel
    inputs = evaluate_test_split_by_click(qtbot, stage).inputs
    k = inputs.indices.index(first)
    assert len(inputs.ground_truth[k].boxes) == 0
    assert len(source.store.load(source.entries[first]).objects) == on_disk  # the file is untouched
    assert "unsaved edits of 1 image" in p.status_label.text()
    assert w.document.is_dirty(first)


def test_cancel_and_errors(qtbot, window, tmp_path):
    w = window
    stage = stage_of(w, EvaluationStage)
    p = stage.panel
    # No model: said in the panel, nothing started.
    p.set_mode(FROM_MODEL)
    assert stage.evaluate() is None and "No model is loaded" in p.status_label.text()
    # A file that is not detections: the worker's error, in one sentence.
    bad = tmp_path / "bad.json"
    bad.write_text("{\"nothing\": 1}")
    stage.set_file(bad)
    with qtbot.waitSignal(stage.evaluated, timeout=TIMEOUT) as done:
        stage.evaluate()
    assert done.args[0] is None and "Evaluation failed" in p.status_label.text()
    assert "neither a 'detect' JSON" in p.status_label.text()
    # Cancel a model run on every image after its first progress report.
    load_shipped_model(qtbot, w)
    p.set_mode(FROM_MODEL)
    p.set_split(ALL_IMAGES)
    with qtbot.waitSignal(stage.evaluated, timeout=TIMEOUT) as done:
        assert stage.evaluate() is not None
        assert p.cancel_button.isEnabled() and not p.evaluate_button.isEnabled()
        qtbot.waitUntil(lambda: p.progress.value() > 0, timeout=TIMEOUT)
        qtbot.mouseClick(p.cancel_button, Qt.MouseButton.LeftButton)
    assert done.args[0] is None and "Cancelled" in p.status_label.text()
    qtbot.waitUntil(lambda: not stage.running)
    assert p.evaluate_button.isEnabled() and stage.report is None


def test_bottom_workspaces_open_into_one_tab_row(qtbot, window):
    """Bottom docks start closed and untabified (tabified closed docks reserve height in Qt); the second one
    opened joins the first's tab row instead of splitting the area."""
    w = window
    ours = stage_of(w, EvaluationStage).docks()[0]
    others = [d for d in w.bottom_docks if d is not ours]
    if not others:
        pytest.skip("only one bottom workspace in this build")
    other = others[0]
    assert not other.isVisible()
    other.toggleViewAction().trigger()
    qtbot.waitUntil(other.isVisible)
    assert other in w.tabifiedDockWidgets(ours)
    assert w.dockWidgetArea(other) == Qt.DockWidgetArea.BottomDockWidgetArea
