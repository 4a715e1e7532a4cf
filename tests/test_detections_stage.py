"""The Detections and Suggested Boxes stages in the real window: outcomes against the ground truth, the score
slider, loading results files (good and malformed), and accepting suggestions into the ground truth."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from app.layers.palette import text_color_for
from app.main_window import MainWindow
from app.stages.detections import DetectionsStage
from app.stages.detections.panel import COLOR_BY_OUTCOME
from app.stages.nms import NmsStage
from app.stages.suggestions import SuggestionsStage
from models.data.annotations import Annotation, BoxObject, write_voc
from models.detection.detectors.base import Detections
from models.detection.matching import BACKGROUND, DUPLICATE, LOCALISATION, OUTCOMES, TP, WRONG_CLASS
from tests.test_canvas import press, release, to_view
from tests.test_main_window import key, make_window, settings, write_image  # noqa: F401  (fixture)
from tests.test_nms_stage import stage_of

GT = [BoxObject("cat", (10, 10, 60, 60)), BoxObject("dog", (100, 20, 180, 100)),
      BoxObject("cat", (120, 110, 150, 140), difficult=True), BoxObject("dog", (20, 90, 60, 140))]


@pytest.fixture
def window(qtbot, settings, tmp_path):  # noqa: F811
    folder = tmp_path / "photos"
    write_image(folder / "000000000042.png", seed=1, size=(200, 150))
    write_image(folder / "b.png", seed=2, size=(200, 150))
    write_voc(Annotation("000000000042.png", 200, 150, 3, list(GT)), folder / "000000000042.xml")
    w = make_window(qtbot, settings, thumbnails=False)
    w.resize(1400, 900)
    assert w.open_path(folder)
    qtbot.waitUntil(lambda: w.detector_session.decoded is not None and len(w.model) == 4, timeout=5000)
    yield w
    w.close()


def hand_made() -> Detections:
    boxes = np.array([
        [11, 11, 60, 60],      # cat on the cat: TP
        [10, 12, 60, 62],      # cat again: duplicate
        [100, 20, 178, 100],   # cat on the dog: wrong class
        [10, 10, 35, 35],      # cat on a quarter of the cat: poor localisation
        [150, 0, 199, 15],     # dog on nothing: background
        [120, 110, 150, 140],  # cat on the difficult cat: ignored
        [101, 21, 180, 100],   # dog on the dog: TP
    ], np.float32)
    scores = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.55, 0.3], np.float32)
    return Detections(boxes, scores, np.array([1, 1, 1, 1, 2, 1, 2]), ["cat", "dog"])


def store(w: MainWindow, dets: Detections) -> None:
    session = w.detector_session
    session.set_stored_detections({str(session.decoded.path.resolve()): dets}, "hand-made")


def test_outcomes_counts_and_score_slider(qtbot, window):
    w = window
    stage = stage_of(w, DetectionsStage)
    store(w, hand_made())
    panel = stage.panel
    panel.set_score_threshold(0.0)
    m = stage.match
    assert m.outcome == [TP, DUPLICATE, WRONG_CLASS, LOCALISATION, BACKGROUND, "ignored", TP]
    assert m.missed.tolist() == [False, False, False, True]  # the second dog; the difficult cat is never missed
    text = panel.counts_label.text()
    assert "<b>2</b> true positives" in text and "<b>4</b> false positives" in text and "<b>1</b> missed" in text
    # Tags say class, score and the reason; the missed dog is drawn dashed with its own tag.
    labels = stage.layer.labels
    assert "cat 0.90 · FP duplicate" in labels and "dog 0.60 · FP background" in labels
    assert "missed dog" in labels
    # Score slider: re-applied to the same boxes; the low-scoring dog TP goes and the dog becomes missed.
    panel.set_score_threshold(0.5)
    assert stage.shown.tolist() == [0, 1, 2, 3, 4, 5]
    assert stage.match.n_tp == 1 and stage.match.n_missed == 2
    # Colour by outcome: one style per outcome present.
    panel.color_combo.setCurrentIndex(panel.color_combo.findData(COLOR_BY_OUTCOME))
    keys = set(stage.layer.keys.tolist())
    assert {OUTCOMES.index(o) for o in (TP, DUPLICATE, WRONG_CLASS, LOCALISATION, BACKGROUND)} <= keys
    # Editing the ground truth re-scores at once: delete the cat, its TP becomes background-or-worse.
    w.model.select([0])
    w.canvas.delete_selected()
    assert stage.match.outcome[0] != TP


def test_ground_truth_of_classes_the_detections_cannot_name_is_not_scored(qtbot, window):
    """A cat-only model on a photo that also has labelled dogs: the dogs are not its misses (the evaluation
    scores the model's classes only), and its cat box on a dog is a plain false positive."""
    w = window
    stage = stage_of(w, DetectionsStage)
    cat_only = Detections(np.array([[11, 11, 60, 60], [100, 20, 178, 100]], np.float32),
                          np.array([0.9, 0.8], np.float32), np.array([1, 1]), ["cat"])
    store(w, cat_only)
    stage.panel.set_score_threshold(0.0)
    assert stage.match.outcome == [TP, BACKGROUND]
    assert stage.match.n_missed == 0 and stage.unscored_note.startswith("2 ground-truth boxes of dog (2) not scored")
    assert stage.scored_index.tolist() == [0, 2]  # the two cats among the image's four objects
    assert not any(label.startswith("missed") for label in stage.layer.labels)
    assert "2 ground-truth boxes of dog (2) not scored" in stage.panel.counts_label.text()
    store(w, hand_made())  # cats and dogs: every box is scored again, the second dog missed
    assert stage.unscored_note == "" and "missed dog" in stage.layer.labels


def test_a_detection_inside_a_box_marked_crowd_is_ignored_not_a_false_positive(qtbot, window):
    """The Box panel's crowd flag on the first cat makes it a crowd region: a small cat box inside it is one of
    the crowd's unboxed cats (COCO's rule), neither right nor wrong; as a plain box it was a poor localisation."""
    w = window
    stage = stage_of(w, DetectionsStage)
    store(w, hand_made())
    stage.panel.set_score_threshold(0.0)
    assert stage.match.outcome[3] == LOCALISATION  # a quarter of the cat
    w.model.select([0])
    qtbot.mouseClick(w.box_editor.crowd, Qt.MouseButton.LeftButton)
    assert w.model.objects[0].crowd
    m = stage.match
    assert m.outcome[:4] == ["ignored", "ignored", WRONG_CLASS, "ignored"]  # the crowd matches nobody
    assert m.missed[0] == np.False_ and "ignored, on a difficult box or inside a crowd" in stage.panel.counts_label.text()


def test_label_text_contrasts_with_its_tag():
    assert text_color_for(QColor(255, 230, 0)) == QColor(0, 0, 0)
    assert text_color_for(QColor(20, 40, 200)) == QColor(255, 255, 255)
    assert text_color_for(QColor(255, 255, 255)) == QColor(0, 0, 0)


def test_load_coco_results_and_detect_json_and_a_malformed_file(qtbot, window, tmp_path):
    w = window
    stage = stage_of(w, DetectionsStage)
    assert stage.load_action in [a for m in w.menuBar().actions() if m.menu() for a in m.menu().actions()]
    coco = tmp_path / "results.json"
    coco.write_text(json.dumps([{"image_id": 42, "category_id": 1, "bbox": [10, 10, 50, 50], "score": 0.9},
                                {"image_id": 42, "category_id": 2, "bbox": [0, 0, 5, 5], "score": 0.8}]))
    with qtbot.waitSignal(stage.loaded, timeout=10_000) as blocker:
        stage.load_file(coco)
    assert blocker.args[0].kind == "coco"
    d = stage.detections
    assert d is not None and len(d) == 2 and d.boxes[0].tolist() == [10, 10, 60, 60]
    assert d.names == ["category 1", "category 2"]  # a folder has no category names
    assert "results.json" in stage.panel.source_label.text()
    nms_stage = stage_of(w, NmsStage)
    assert nms_stage.candidates is not None and len(nms_stage.candidates) == 2
    # Our detect JSON, by file name.
    det = tmp_path / "dets.json"
    det.write_text(json.dumps({"images": [{"file": "elsewhere/000000000042.png", "width": 200, "height": 150,
                                           "boxes": [[11, 11, 60, 60]], "scores": [0.7], "labels": ["cat"]}]}))
    with qtbot.waitSignal(stage.loaded, timeout=10_000):
        stage.load_file(det)
    assert stage.detections.names == ["cat"] and stage.match.outcome == [TP]
    # Malformed: a message in the panel and the status bar, the detections shown before stay.
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [{"file": "000000000042.png", "boxes": [[1, 2]], "scores": [1], "labels": ["x"]}]}')
    messages: list[str] = []
    stage.message.connect(messages.append)
    with qtbot.waitSignal(stage.loadFailed, timeout=10_000) as blocker:
        stage.load_file(bad)
    assert "four numbers" in blocker.args[0]
    assert "Could not load detections" in stage.panel.status_label.text() and messages
    assert stage.detections.names == ["cat"]
    bad.write_text("{oops")
    with qtbot.waitSignal(stage.loadFailed, timeout=10_000) as blocker:
        stage.load_file(bad)
    assert "malformed JSON" in blocker.args[0]
    # The window keeps working: next image, no detections there, no error.
    w.document.go_to(1)
    qtbot.waitUntil(lambda: w.detector_session.decoded.path.name == "b.png", timeout=5000)
    assert stage.detections is None and stage.layer.boxes.shape[0] == 0


def test_accept_a_suggestion_into_the_ground_truth_and_undo_it(qtbot, window):
    w = window
    stage = stage_of(w, SuggestionsStage)
    store(w, hand_made())
    stage.panel.set_threshold(0.5)
    qtbot.mouseClick(stage.panel.suggest_box, Qt.MouseButton.LeftButton)
    assert stage.suggesting
    d = stage._dets
    offered = stage.offered.tolist()
    # Not offered: 0 and 1 (the user's cat, same class, IoU ≥ 0.5), 5 (the difficult cat box, IoU 1),
    # 6 (below 0.5). 2 is a cat over the user's dog: another class, so offered; 3 overlaps the cat at 0.25.
    assert offered == [2, 3, 4]
    n0 = len(w.model)
    # Pick the background dog on the canvas, then Y.
    x1, y1, x2, y2 = d.boxes[4].tolist()
    pos = to_view(w.canvas, (x1 + x2) / 2, (y1 + y2) / 2)
    press(w.canvas, pos)
    release(w.canvas, pos)
    assert stage.selected == 4
    assert stage.panel.suggestions_list.currentItem().data(Qt.ItemDataRole.UserRole) == 4
    key(qtbot, w, Qt.Key.Key_Y)
    assert len(w.model) == n0 + 1
    added = w.model.object(n0)
    assert added.name == "dog" and added.box == pytest.approx(tuple(d.boxes[4].tolist()))
    assert 4 not in stage.offered.tolist()  # now ground truth: not offered again
    assert [o.box for o in w.model.objects[:n0]] == [o.box for o in GT]  # the user's boxes untouched
    # Undo: the box goes and the suggestion comes back.
    w.canvas.undo_stack.undo()
    assert len(w.model) == n0 and 4 in stage.offered.tolist()
    # Reject one (N), accept all the rest (Shift+Y) in one undo step.
    stage.select(2)
    key(qtbot, w, Qt.Key.Key_N)
    assert stage.offered.tolist() == [3, 4]
    key(qtbot, w, Qt.Key.Key_Y, Qt.KeyboardModifier.ShiftModifier)
    assert len(w.model) == n0 + 2 and stage.offered.size == 0
    w.canvas.undo_stack.undo()
    assert len(w.model) == n0


def test_no_suggestion_duplicates_an_existing_box(qtbot, window):
    w = window
    stage = stage_of(w, SuggestionsStage)
    # Every detection lies on a user box of its class: nothing to offer, accept-all adds nothing.
    boxes = np.array([o.box for o in GT], np.float32) + 1
    dets = Detections(boxes, np.full(4, 0.99, np.float32), np.array([1, 2, 1, 2]), ["cat", "dog"])
    store(w, dets)
    stage.set_suggesting(True)
    assert stage.offered.size == 0
    assert stage.accept_all() == 0 and len(w.model) == 4
    assert not stage.accept_action.isEnabled()


def test_a_click_beside_every_suggestion_keeps_the_selection(qtbot, window):
    w = window
    stage = stage_of(w, SuggestionsStage)
    store(w, hand_made())
    stage.set_suggesting(True)
    before = stage.selected
    pos = to_view(w.canvas, 199, 149)
    press(w.canvas, pos)
    release(w.canvas, pos)
    assert before >= 0 and stage.selected == before
