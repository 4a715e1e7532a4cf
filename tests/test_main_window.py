"""The real main window driven by keys and the mouse: open a folder, draw, pick a class, undo/redo, move on,
and check what autosave wrote; bad files in the folder; read-only folders; external changes; verified."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication

from app.canvas import CREATE_MODE, EDIT_MODE
from app.main_window import MainWindow
from app.settings import Settings
from models.data.annotations import Annotation, BoxObject, read_voc, write_voc
from tests.test_canvas import drag_image

W, H = 320, 240


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (W, H)) -> Path:
    """A small photo-like image (smooth gradient + noise) so thumbnails and decoding are real."""
    rng = np.random.default_rng(seed)
    w, h = size
    xs = np.linspace(0, 255, w, dtype=np.float32)[None, :].repeat(h, 0)
    ys = np.linspace(0, 255, h, dtype=np.float32)[:, None].repeat(w, 1)
    img = np.stack([xs, ys, 255 - xs], axis=2) + rng.normal(0, 10, (h, w, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.clip(img, 0, 255).astype(np.uint8))
    return path


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Settings:
    """Settings and data folder inside tmp_path: tests never touch the user's real ones."""
    monkeypatch.setenv("RCNN_EXPLORER_SETTINGS", str(tmp_path / "settings.ini"))
    monkeypatch.setenv("RCNN_EXPLORER_DATA", str(tmp_path / "data"))
    return Settings()


def make_window(qtbot, settings: Settings, thumbnails: bool = True) -> MainWindow:
    w = MainWindow(settings, thumbnails=thumbnails)
    w.confirm = lambda title, text: True
    w.document.confirm_overwrite = lambda text: True
    w.document.autosave_delay_ms = 100
    w.act_prompt.setChecked(False)  # the label prompt after drawing has its own tests (test_labelling_gui)
    qtbot.addWidget(w)
    w.resize(1100, 750)
    w.show()
    qtbot.waitExposed(w)
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w)
    return w


@pytest.fixture
def window(qtbot, settings):
    w = make_window(qtbot, settings)
    yield w
    w.close()


@pytest.fixture
def folder(tmp_path) -> Path:
    d = tmp_path / "photos"
    for k, name in enumerate(["img1.png", "img10.png", "img2.png", "sub/img3.jpg"]):
        write_image(d / name, seed=k)
    return d


def key(qtbot, window: MainWindow, k: Qt.Key, mod: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
    """A key press as the user makes it: to the focused canvas, through the window's shortcuts."""
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, k, mod)


def objects_on_disk(xml: Path) -> list[tuple[str, tuple[float, ...]]]:
    return [(o.name, tuple(o.box)) for o in read_voc(xml).objects]


def test_open_folder_draw_pick_class_undo_redo_next_and_autosave(qtbot, window, folder):
    assert window.open_path(folder)
    doc = window.document
    assert [e.name for e in doc.entries] == ["img1.png", "img2.png", "img10.png", "sub/img3.jpg"]  # natural
    assert doc.index == 0 and window.canvas.image_size() == (W, H)
    window.class_list.set_classes(["cat", "dog"])

    key(qtbot, window, Qt.Key.Key_W)
    assert window.canvas.mode == CREATE_MODE
    drag_image(window.canvas, 20, 30, 120, 130)
    assert window.canvas.mode == EDIT_MODE
    assert [o.box for o in window.model.objects] == [(20, 30, 120, 130)]
    key(qtbot, window, Qt.Key.Key_2)  # pick "dog": the new (selected) box becomes a dog
    assert window.model.current_class == "dog"
    assert window.model.objects[0].name == "dog"

    xml = folder / "img1.xml"
    qtbot.waitUntil(lambda: xml.exists() and objects_on_disk(xml) == [("dog", (20, 30, 120, 130))], timeout=3000)
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # undo the class
    assert window.model.objects[0].name != "dog"
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # undo the box
    assert window.model.objects == []
    qtbot.waitUntil(lambda: objects_on_disk(xml) == [], timeout=3000)
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    key(qtbot, window, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)  # Ctrl+Y redoes too
    assert [o.name for o in window.model.objects] == ["dog"]

    key(qtbot, window, Qt.Key.Key_D)  # next image; the edit is on disk and in memory
    assert doc.index == 1 and window.model.objects == []
    assert objects_on_disk(xml) == [("dog", (20, 30, 120, 130))]
    key(qtbot, window, Qt.Key.Key_W)
    drag_image(window.canvas, 50, 60, 150, 100)
    qtbot.waitUntil(lambda: (folder / "img2.xml").exists(), timeout=3000)
    assert objects_on_disk(folder / "img2.xml") == [("dog", (50, 60, 150, 100))]
    # Undo history is per image: back on the first image, undo removes that image's last edit only.
    key(qtbot, window, Qt.Key.Key_A)
    assert doc.index == 0 and [o.name for o in window.model.objects] == ["dog"]
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.model.objects[0].name == "object" or window.model.objects[0].name != "dog"
    assert objects_on_disk(folder / "img2.xml") == [("dog", (50, 60, 150, 100))]
    # The file list marks labelled images.
    qtbot.waitUntil(lambda: window.file_list.model.status(1) == "labelled", timeout=3000)
    assert window.file_list.model.status(2) == "unlabelled"


def test_copy_paste_across_images_delete_and_duplicate(qtbot, window, folder):
    window.open_path(folder)
    window.class_list.set_classes(["cat"])
    window.class_list.choose("cat")
    key(qtbot, window, Qt.Key.Key_W)
    drag_image(window.canvas, 10, 10, 60, 50)
    key(qtbot, window, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    key(qtbot, window, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)  # duplicate
    assert len(window.model) == 2
    key(qtbot, window, Qt.Key.Key_Delete)
    assert len(window.model) == 1
    key(qtbot, window, Qt.Key.Key_D)
    key(qtbot, window, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert [(o.name, o.box) for o in window.model.objects] == [("cat", (10, 10, 60, 50))]
    qtbot.waitUntil(lambda: (folder / "img2.xml").exists(), timeout=3000)


def test_corrupt_images_are_marked_and_the_rest_works(qtbot, window, folder):
    (folder / "zero.png").write_bytes(b"")
    (folder / "garbage.jpg").write_bytes(b"this is not an image at all" * 10)
    good = cv2.imencode(".png", np.full((40, 40, 3), 128, np.uint8))[1].tobytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    window.open_path(folder)
    doc = window.document
    names = [e.name for e in doc.entries]
    # Thumbnails (background thread) find the broken files while they are listed.
    for bad in ("zero.png", "garbage.jpg", "truncated.png"):
        i = names.index(bad)
        qtbot.waitUntil(lambda i=i: window.file_list.model.status(i) == "error", timeout=5000)
        assert doc.error_text(i)
    assert "empty" in doc.error_text(names.index("zero.png"))
    assert "truncated" in doc.error_text(names.index("truncated.png"))
    # Opening a broken image says why and leaves the window usable.
    doc.go_to(names.index("garbage.jpg"))
    assert "garbage.jpg" in window.statusBar().currentMessage()
    window.file_list.filter_edit.setText("IMG2")
    assert window.file_list.visible_rows() == [names.index("img2.png")]
    window.file_list.filter_edit.setText("")
    window.file_list.status_combo.setCurrentText("Problems")
    assert sorted(window.file_list.visible_rows()) == sorted(names.index(b) for b in
                                                             ("zero.png", "garbage.jpg", "truncated.png"))
    window.file_list.status_combo.setCurrentText("All images")
    doc.go_to(names.index("img1.png"))
    assert window.canvas.image_size() == (W, H)


def test_malformed_xml_is_reported_and_not_overwritten_until_confirmed(qtbot, window, folder):
    bad = folder / "img1.xml"
    bad.write_text("<annotation><object><name>cat</name>", encoding="utf-8")
    original = bad.read_bytes()
    asked = []
    window.document.confirm_overwrite = lambda text: asked.append(text) or False
    window.open_path(folder)
    doc = window.document
    assert doc.index == 0 and doc.error_text(0) and "img1.xml" in doc.error_text(0)
    assert window.file_list.model.status(0) == "error"
    assert "img1.xml" in window.statusBar().currentMessage()
    # Moving around does not touch it.
    key(qtbot, window, Qt.Key.Key_D)
    key(qtbot, window, Qt.Key.Key_A)
    assert bad.read_bytes() == original
    # Editing asks; refusing keeps the edit in memory and the file intact.
    key(qtbot, window, Qt.Key.Key_W)
    drag_image(window.canvas, 20, 20, 80, 80)
    qtbot.waitUntil(lambda: len(asked) == 1, timeout=2000)  # autosave tried, asked, and was refused
    assert bad.read_bytes() == original
    assert doc.is_dirty(0) and len(window.model) == 1
    # Ctrl+S asks again; accepting replaces the file with the edits.
    window.document.confirm_overwrite = lambda text: True
    key(qtbot, window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert objects_on_disk(bad) == [(window.model.objects[0].name, (20, 20, 80, 80))]
    assert not doc.is_dirty(0) and not doc.error_text(0)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder_keeps_edits_and_saves_to_another_folder(qtbot, window, folder, tmp_path):
    _read_only_flow(qtbot, window, folder, tmp_path)


def test_save_failure_keeps_edits_and_saves_to_another_folder(qtbot, window, folder, tmp_path, monkeypatch):
    """The read-only case, simulated so it also runs as root: the store's write raises PermissionError."""
    import models.data.datasets as datasets

    real = datasets.write_voc

    def refuse(ann, path, image_path=None):
        if Path(path).parent == folder:
            raise PermissionError(13, "Permission denied", str(path))
        return real(ann, path, image_path)

    monkeypatch.setattr(datasets, "write_voc", refuse)
    _read_only_flow(qtbot, window, folder, tmp_path)


def _read_only_flow(qtbot, window, folder, tmp_path):
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        folder.chmod(0o555)
    try:
        window.open_path(folder)
        key(qtbot, window, Qt.Key.Key_W)
        drag_image(window.canvas, 20, 20, 90, 70)
        doc = window.document
        qtbot.waitUntil(lambda: doc.state(0).save_error is not None, timeout=3000)
        assert doc.is_dirty(0) and not (folder / "img1.xml").exists()
        assert "Permission denied" in window.statusBar().currentMessage()
        assert window.file_list.model.status(0) == "error"
        box = window.save_failed_box
        assert box.isVisible() and "Choose" in " ".join(b.text() for b in box.buttons())
        box.close()
        # The edit survives moving away and back.
        key(qtbot, window, Qt.Key.Key_D)
        key(qtbot, window, Qt.Key.Key_A)
        assert [o.box for o in window.model.objects] == [(20, 20, 90, 70)]
        out = tmp_path / "labels"
        assert window.set_annotation_dir(out)
        assert objects_on_disk(out / "img1.xml")[0][1] == (20, 20, 90, 70)
        assert not doc.any_dirty
        assert window.settings.annotation_dir(folder) == str(out)  # remembered for this folder
    finally:
        folder.chmod(0o755)


def test_external_change_reloads_when_clean_and_asks_when_dirty(qtbot, window, folder):
    xml = folder / "img1.xml"
    write_voc(Annotation("img1.png", W, H, 3, [BoxObject("cat", (1, 2, 30, 40))]), xml)
    window.open_path(folder)
    assert [o.name for o in window.model.objects] == ["cat"]
    # Another program rewrites the file: no unsaved edits here, so it is reloaded.
    with qtbot.waitSignal(window.document.reloaded, timeout=5000):
        write_voc(Annotation("img1.png", W, H, 3, [BoxObject("dog", (5, 5, 50, 50))]), xml)
    assert [o.name for o in window.model.objects] == ["dog"]
    # With unsaved edits the user decides; "keep" writes ours over theirs, never silently.
    window.document.set_autosave(False)
    key(qtbot, window, Qt.Key.Key_W)
    drag_image(window.canvas, 100, 100, 160, 160)
    asked = []
    window.document.resolve_conflict = lambda text: asked.append(text) or "keep"
    with qtbot.waitSignal(window.document.saved, timeout=5000):
        write_voc(Annotation("img1.png", W, H, 3, [BoxObject("bird", (5, 5, 50, 50))]), xml)
    assert asked and [o.name for o in read_voc(xml).objects] == ["dog", window.model.objects[1].name]
    window.document.set_autosave(True)


def test_verified_toggle_is_saved_and_next_unverified_jumps(qtbot, window, folder):
    window.open_path(folder)
    key(qtbot, window, Qt.Key.Key_Space)
    xml = folder / "img1.xml"
    qtbot.waitUntil(lambda: xml.exists() and read_voc(xml).verified, timeout=3000)
    assert 'verified="yes"' in xml.read_text()
    assert window.file_list.model.status(0) == "verified"
    key(qtbot, window, Qt.Key.Key_U)  # next unverified
    assert window.document.index == 1
    key(qtbot, window, Qt.Key.Key_Space)
    key(qtbot, window, Qt.Key.Key_A)
    key(qtbot, window, Qt.Key.Key_U)
    assert window.document.index == 2
    key(qtbot, window, Qt.Key.Key_A)
    key(qtbot, window, Qt.Key.Key_A)
    key(qtbot, window, Qt.Key.Key_Space)  # un-verify the first
    qtbot.waitUntil(lambda: not read_voc(xml).verified, timeout=3000)


def test_class_rename_and_merge_across_the_dataset(qtbot, window, folder):
    write_voc(Annotation("img1.png", W, H, 3, [BoxObject("kitty", (1, 1, 20, 20)), BoxObject("dog", (5, 5, 9, 9))]),
              folder / "img1.xml")
    write_voc(Annotation("img2.png", W, H, 3, [BoxObject("kitty", (2, 2, 30, 30))]), folder / "img2.xml")
    write_voc(Annotation("img10.png", W, H, 3, [BoxObject("dog", (2, 2, 30, 30))]), folder / "img10.xml")
    window.open_path(folder)
    assert set(window.class_list.names()) >= {"kitty", "dog"}
    with qtbot.waitSignal(window.jobFinished, timeout=60_000) as sig:
        window.class_list.request_rename("kitty", "cat")
    assert sig.args[2] == ""
    assert [o.name for o in read_voc(folder / "img1.xml").objects] == ["cat", "dog"]
    assert [o.name for o in read_voc(folder / "img2.xml").objects] == ["cat"]
    assert [o.name for o in window.model.objects] == ["cat", "dog"]  # the open image follows
    assert "kitty" not in window.class_list.names() and "cat" in window.class_list.names()
    with qtbot.waitSignal(window.jobFinished, timeout=60_000):
        window.class_list.request_merge("dog", "cat")
    assert [o.name for o in read_voc(folder / "img10.xml").objects] == ["cat"]
    assert "dog" not in window.class_list.names()


def test_export_from_the_window_includes_unsaved_edits(qtbot, window, folder, tmp_path):
    window.open_path(folder)
    window.document.set_autosave(False)
    key(qtbot, window, Qt.Key.Key_W)
    drag_image(window.canvas, 10, 10, 50, 50)
    out = tmp_path / "export_coco"
    with qtbot.waitSignal(window.jobFinished, timeout=60_000) as sig:
        window.export_to("coco", out)
    assert sig.args[2] == "" and sig.args[1].images == 4
    from models.data.datasets import open_dataset

    ds = open_dataset(out)
    assert ds.kind == "coco" and len(ds.entries) == 4
    first = next(e for e in ds.entries if e.name == "img1.png")
    assert [o.box for o in ds.store.load(first).objects] == [(10, 10, 50, 50)]
    assert not (folder / "img1.xml").exists() and window.document.any_dirty  # autosave off: not written
    window.document.set_autosave(True)


def test_settings_persist_between_runs(qtbot, settings, folder):
    w1 = make_window(qtbot, settings)
    w1.open_path(folder)
    w1.class_list.set_classes(["a", "b"])
    w1.class_list.set_default("b")
    w1.act_autosave.trigger()  # off
    w1.resize(900, 650)
    w1.close()
    again = Settings()
    assert again.recent_files()[0] == str(folder.resolve())
    assert again.default_class() == "b"
    assert (folder / "classes.txt").read_text(encoding="utf-8").split() == ["a", "b"]  # the dataset's list
    assert again.autosave() is False
    assert again.geometry() is not None
    w2 = make_window(qtbot, again)
    assert w2.class_list.names() == []  # no dataset open: no classes
    w2.open_path(folder)
    assert w2.class_list.names() == ["a", "b"] and w2.model.current_class == "b"
    assert not w2.act_autosave.isChecked()
    w2.close()


def test_ten_thousand_images_list_without_decoding(qtbot, window, tmp_path):
    d = tmp_path / "big"
    d.mkdir()
    first = write_image(d / "img00001.png")
    for k in range(2, 10_001):
        os.link(first, d / f"img{k:05d}.png")  # hard links: 10,000 real images, created fast
    window.open_path(d)
    assert len(window.document.entries) == 10_000
    assert window.file_list.model.rowCount() == 10_000
    assert window.canvas.image_size() == (W, H)
    # Only images visited or shown in the list have a state; nothing read or decoded the rest.
    model = window.file_list.model
    qtbot.waitUntil(lambda: len(model._requested) > 0 or model.thumbnail_ready(0), timeout=5000)  # list painted
    assert len(window.document.states) < 100
    key(qtbot, window, Qt.Key.Key_D)
    assert window.document.index == 1
    qtbot.waitUntil(lambda: model.thumbnail_ready(0), timeout=10000)  # the first row's thumbnail arrives
    requested = len(window.file_list.model._requested)
    assert requested < 200  # only rows the view showed asked for a thumbnail


def test_drop_a_folder_opens_it_and_shortcut_sheet_lists_keys(qtbot, window, folder):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    ev = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                    Qt.KeyboardModifier.NoModifier)
    window.dropEvent(ev)
    assert len(window.document.entries) == 4
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, "?")
    sheet = window._sheet
    assert sheet is not None and sheet.isVisible()
    sheet.close()
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_F1)
    assert sheet.isVisible()
    keys = " | ".join(sheet.keys())
    for k in ("W", "Del", "Ctrl+D", "Ctrl+C", "Ctrl+V", "Ctrl+Z", "Ctrl+Shift+Z", "Ctrl+Y", "Space", "1", "9",
              "Ctrl+F", "Ctrl+0", "Ctrl+O", "Ctrl+U", "Ctrl+S", "U", "?", "Esc"):
        assert k in keys, k
    sheet.close()


def test_status_bar_shows_pixel_under_cursor_zoom_and_mode(qtbot, window, folder):
    window.open_path(folder)
    from tests.test_canvas import move, to_view

    move(window.canvas, to_view(window.canvas, 100.5, 50.5), Qt.MouseButton.NoButton)
    assert window.coord_label.text().startswith("x 100, y 50")
    assert "RGB(" in window.coord_label.text()
    key(qtbot, window, Qt.Key.Key_W)
    assert window.mode_label.text().startswith("Create")
    key(qtbot, window, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert window.zoom_label.text() == "100%"


def test_samples_screenshot(qtbot, window, tmp_path):
    """The bundled samples open with their boxes; the screenshot is for a person to look at."""
    from app.cli.gui import prepare_samples

    copy = prepare_samples(tmp_path / "data")
    assert window.open_path(copy)
    assert len(window.document.entries) >= 3 and len(window.model) >= 3
    qtbot.waitUntil(lambda: window.file_list.model.thumbnail_ready(0), timeout=5000)
    window.grab().save(str(tmp_path / "window.png"))
    shutil.copy(tmp_path / "window.png", Path(os.environ.get("TMPDIR", "/tmp")) / "g2_window.png")


def test_unexpected_exception_dialog_and_log(qtbot, window, tmp_path):
    from app.errors import ErrorReporter

    reporter = ErrorReporter(tmp_path / "errors.log", lambda: window)
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        reporter.handle(type(exc), exc, exc.__traceback__)
    assert "RuntimeError: boom" in (tmp_path / "errors.log").read_text()
    assert reporter._box is not None and reporter._box.isVisible()
    assert window.isVisible()
    reporter.handle(ValueError, ValueError("again"), None)  # one dialog at a time
    assert reporter.count == 2 and "2 errors" in reporter._box.informativeText()
    reporter._box.close()
    # Installed as sys.excepthook, it catches what a Qt slot raises; the window stays up.
    reporter.show_dialog = False
    reporter.install()
    try:
        def broken_slot() -> None:
            raise KeyError("from a slot")

        window.act_about.triggered.disconnect()
        window.act_about.triggered.connect(broken_slot)
        window.act_about.trigger()
    finally:
        reporter.uninstall()
    assert reporter.count == 3 and "KeyError" in reporter.last_message and window.isVisible()


def test_recent_files_menu_reopens_and_brightness_dialog_adjusts_display(qtbot, window, folder, tmp_path):
    other = tmp_path / "other"
    write_image(other / "x.png")
    window.open_path(folder)
    window.open_path(other)
    window._fill_recent()
    texts = [a.text() for a in window.recent_menu.actions()]
    assert texts[:2] == [str(other.resolve()), str(folder.resolve())]
    window.recent_menu.actions()[1].trigger()
    assert window.document.source.root == folder
    window.act_bc.trigger()
    dlg = window._bc_dialog
    dlg.brightness.setValue(50)
    dlg.contrast.setValue(200)
    assert window.canvas.image_layer.brightness == pytest.approx(0.5)
    assert window.canvas.image_layer.contrast == pytest.approx(2.0)
    dlg.reset()
    assert window.canvas.image_layer.brightness == 0
    dlg.close()


def test_real_overwrite_question_dialog(qtbot, settings, folder):
    """The default (non-test) confirmation: a real QMessageBox, answered by clicking Yes."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QMessageBox

    bad = folder / "img1.xml"
    bad.write_text("<annotation", encoding="utf-8")
    w = make_window(qtbot, settings)
    w.document.confirm_overwrite = w.document._ask_overwrite_dialog  # the real dialog
    w.open_path(folder)
    seen = []

    def answer() -> None:
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            seen.append(box.text())
            box.button(QMessageBox.StandardButton.Yes).click()
        else:
            QTimer.singleShot(20, answer)

    QTimer.singleShot(0, answer)
    key(qtbot, w, Qt.Key.Key_W)
    drag_image(w.canvas, 10, 10, 60, 60)
    qtbot.waitUntil(lambda: bad.read_text() != "<annotation", timeout=5000)
    assert seen and "img1.xml" in seen[0]
    assert objects_on_disk(bad)[0][1] == (10, 10, 60, 60)
    w.close()


def test_import_coco_json_from_the_window(qtbot, window, folder, tmp_path):
    from models.data.datasets import open_dataset
    from models.data.export import export_dataset

    write_voc(Annotation("img2.png", W, H, 3, [BoxObject("cat", (3, 3, 33, 33))]), folder / "img2.xml")
    export_dataset(open_dataset(folder), "coco", tmp_path / "c")
    (folder / "img2.xml").unlink()
    window.open_path(folder)
    with qtbot.waitSignal(window.jobFinished, timeout=60_000) as sig:
        window.import_from(tmp_path / "c" / "annotations" / "instances.json")
    assert sig.args[2] == ""
    assert objects_on_disk(folder / "img2.xml") == [("cat", (3, 3, 33, 33))]
    assert not (folder / "img1.xml").exists()  # listed in the JSON without boxes: not made "labelled"
    window.document.go_to(1)
    assert [o.name for o in window.model.objects] == ["cat"]


def test_opening_another_dataset_asks_before_dropping_unsavable_edits(qtbot, window, folder, tmp_path):
    window.document.set_autosave(False)
    bad = folder / "img1.xml"
    bad.write_text("<annotation", encoding="utf-8")
    window.document.confirm_overwrite = lambda text: False  # keep the unreadable file: edit stays unsaved
    window.open_path(folder)
    key(qtbot, window, Qt.Key.Key_W)
    drag_image(window.canvas, 10, 10, 60, 60)
    assert window.document.any_dirty
    asked = []
    window.confirm = lambda title, text: asked.append(text) or False
    other = tmp_path / "other"
    write_image(other / "x.png")
    assert not window.open_path(other)
    assert asked and window.document.source.root == folder and window.document.any_dirty
    window.confirm = lambda title, text: True
    assert window.open_path(other)


def test_rename_follows_unsaved_edits_in_memory_without_false_conflicts(qtbot, window, folder):
    write_voc(Annotation("img2.png", W, H, 3, [BoxObject("kitty", (2, 2, 30, 30))]), folder / "img2.xml")
    (folder / "img1.xml").write_text("<annotation", encoding="utf-8")  # unreadable: the edit stays in memory
    window.document.confirm_overwrite = lambda text: False
    conflicts = []
    window.document.resolve_conflict = lambda text: conflicts.append(text) or "keep"
    window.open_path(folder)
    window.class_list.set_classes(["kitty"])
    window.class_list.choose("kitty")
    key(qtbot, window, Qt.Key.Key_W)
    drag_image(window.canvas, 10, 10, 60, 60)
    assert window.document.is_dirty(0)
    with qtbot.waitSignal(window.jobFinished, timeout=60_000):
        window.class_list.request_rename("kitty", "cat")
    assert [o.name for o in window.model.objects] == ["cat"] and window.document.is_dirty(0)
    assert [o.name for o in read_voc(folder / "img2.xml").objects] == ["cat"]
    assert (folder / "img1.xml").read_text() == "<annotation"
    window.document.confirm_overwrite = lambda text: True
    assert window.save()
    assert objects_on_disk(folder / "img1.xml") == [("cat", (10, 10, 60, 60))] and conflicts == []


@pytest.mark.parametrize("fmt", ["voc", "coco", "yolo"])
def test_label_a_dataset_in_each_format_and_find_the_box_on_disk(qtbot, window, folder, tmp_path, fmt):
    from models.data.datasets import open_dataset
    from models.data.export import export_dataset

    write_voc(Annotation("img1.png", W, H, 3, [BoxObject("cat", (1, 1, 20, 20))]), folder / "img1.xml")
    export_dataset(open_dataset(folder), fmt, tmp_path / fmt)
    assert window.open_path(tmp_path / fmt)
    assert window.document.source.kind == fmt and [o.name for o in window.model.objects] == ["cat"]
    window.class_list.choose("dog")  # a class the dataset does not know yet
    key(qtbot, window, Qt.Key.Key_W)
    drag_image(window.canvas, 40, 50, 140, 150)
    qtbot.waitUntil(lambda: not window.document.any_dirty, timeout=3000)
    reopened = open_dataset(tmp_path / fmt)
    entry = next(e for e in reopened.entries if Path(e.name).stem == "img1")
    objs = reopened.store.load(entry)
    assert [(o.name, tuple(round(v, 3) for v in o.box)) for o in objs.objects] == [
        ("cat", (1, 1, 20, 20)), ("dog", (40, 50, 140, 150))]
