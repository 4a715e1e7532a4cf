"""The file list dock: marks, filters, lazy thumbnails in a background thread, and thread shutdown."""

from __future__ import annotations

import pytest

from app.annotation_model import AnnotationModel
from app.document import Document
from app.panels.file_list import FileListPanel
from app.settings import Settings
from models.data.annotations import Annotation, BoxObject, write_voc
from models.data.datasets import open_dataset
from tests.test_main_window import H, W, write_image


@pytest.fixture
def panel(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("RCNN_EXPLORER_SETTINGS", str(tmp_path / "settings.ini"))
    doc = Document(AnnotationModel(), Settings())
    p = FileListPanel(doc)
    qtbot.addWidget(p)
    p.resize(300, 400)
    p.show()
    qtbot.waitExposed(p)
    yield p
    p.shutdown()
    doc.close()


def test_marks_filters_and_thumbnails(qtbot, tmp_path, panel):
    d = tmp_path / "f"
    for name in ("a.png", "b.png", "c.png"):
        write_image(d / name)
    write_voc(Annotation("a.png", W, H, 3, [BoxObject("cat", (1, 1, 9, 9))], verified=True), d / "a.xml")
    write_voc(Annotation("b.png", W, H, 3, []), d / "b.xml")
    (d / "d.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    doc = panel.document
    doc.set_source(open_dataset(d))
    model = panel.model
    assert model.rowCount() == 4
    assert model.status(0) == "verified"  # the current image's file was read: its mark is known
    assert model.status(1) == "labelled" and model.status(2) == "unlabelled"
    qtbot.waitUntil(lambda: model.status(3) == "error", timeout=5000)  # found by the thumbnail thread
    assert "d.png" in model.data(model.index(3), 3)  # tooltip names the reason
    qtbot.waitUntil(lambda: all(model.thumbnail_ready(r) for r in range(4)), timeout=5000)
    assert model.data(model.index(1)).startswith("●") and model.data(model.index(2)).startswith("○")
    panel.status_combo.setCurrentText("Unlabelled")
    assert panel.visible_rows() == [2]
    panel.status_combo.setCurrentText("Labelled")
    assert panel.visible_rows() == [0, 1]
    panel.status_combo.setCurrentText("All images")
    panel.filter_edit.setText("B")
    assert panel.visible_rows() == [1] and "1 of 4" in panel.count_label.text()
    panel.filter_edit.setText("")
    with qtbot.waitSignal(panel.imageActivated) as sig:
        panel.view.clicked.emit(panel.proxy.index(2, 0))
    assert sig.args == [2]
    doc.go_to(2)
    assert panel.view.currentIndex().row() == 2


def test_dirty_mark_and_shutdown_is_idempotent(qtbot, tmp_path, panel):
    write_image(tmp_path / "g" / "a.png")
    doc = panel.document
    doc.set_autosave(False)
    doc.set_source(open_dataset(tmp_path / "g"))
    from app.commands import AddObjectsCommand, apply

    apply(doc.undo_group.activeStack(), AddObjectsCommand(doc.model, [BoxObject("x", (1, 1, 9, 9))]))
    assert panel.model.status(0) == "unsaved" and panel.model.data(panel.model.index(0)).endswith("*")
    panel.shutdown()
    panel.shutdown()


def test_thumbnail_queue_stays_short_and_dropped_rows_are_asked_again(qtbot):
    from app.panels.file_list import MAX_PENDING, ThumbnailWorker

    w = ThumbnailWorker()  # not started: requests pile up
    dropped = []
    for k in range(MAX_PENDING + 5):
        dropped += w.request(f"/x/{k}.png")
    assert dropped == [f"/x/{k}.png" for k in range(5)]
    assert len(w._pending) == MAX_PENDING and w._pending[-1] == f"/x/{MAX_PENDING + 4}.png"


def test_visible_rows_show_verified_and_parse_errors_without_visiting(qtbot, tmp_path, panel):
    d = tmp_path / "v"
    for name in ("a.png", "b.png", "c.png"):
        write_image(d / name)
    write_voc(Annotation("b.png", W, H, 3, [], verified=True), d / "b.xml")
    (d / "c.xml").write_text("<annotation><object>", encoding="utf-8")
    doc = panel.document
    doc.set_source(open_dataset(d))
    assert doc.index == 0
    qtbot.waitUntil(lambda: panel.model.status(1) == "verified" and panel.model.status(2) == "error", timeout=3000)
    assert "c.xml" in doc.error_text(2)
    assert (d / "c.xml").read_text() == "<annotation><object>"
