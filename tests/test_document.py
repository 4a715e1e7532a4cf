"""The document without the window: autosave timing, per-image memory and undo stacks, EXIF notes, and
the YOLO/COCO stores (verified marks kept in the settings)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.annotation_model import AnnotationModel
from app.commands import AddObjectsCommand, apply
from app.document import UNDO_LIMIT, Document
from app.settings import Settings
from models.data.annotations import Annotation, BoxObject, read_voc, write_voc
from models.data.datasets import open_dataset
from models.data.export import export_dataset
from tests.test_main_window import H, W, write_image


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Settings:
    monkeypatch.setenv("RCNN_EXPLORER_SETTINGS", str(tmp_path / "settings.ini"))
    return Settings()


@pytest.fixture
def doc(qtbot, settings):
    model = AnnotationModel()
    d = Document(model, settings)
    messages: list[str] = []
    d.message.connect(messages.append)
    d.messages = messages  # type: ignore[attr-defined]
    yield d
    d.close()


def folder_with(tmp_path: Path, n: int = 3) -> Path:
    d = tmp_path / "imgs"
    for k in range(n):
        write_image(d / f"im{k}.png", seed=k)
    return d


def add_box(doc: Document, box=(10, 10, 40, 40), name="cat") -> None:
    stack = doc.undo_group.activeStack()
    apply(stack, AddObjectsCommand(doc.model, [BoxObject(name, box)]))


def test_autosave_writes_within_a_second_and_once_per_burst(qtbot, tmp_path, doc):
    doc.set_source(open_dataset(folder_with(tmp_path)))
    writes = []
    doc.saved.connect(writes.append)
    for k in range(5):  # a burst of edits: debounced into one write
        add_box(doc, (k, k, 20 + k, 20 + k))
    xml = tmp_path / "imgs" / "im0.xml"
    assert not xml.exists()
    qtbot.waitUntil(xml.exists, timeout=1000)  # the bound: every edit on disk within a second
    assert len(read_voc(xml).objects) == 5 and writes == [0]


def test_autosave_off_keeps_edits_in_memory_across_images(qtbot, tmp_path, doc):
    doc.set_autosave(False)
    doc.set_source(open_dataset(folder_with(tmp_path)))
    add_box(doc)
    doc.next()
    assert doc.model.objects == []
    doc.previous()
    assert [o.box for o in doc.model.objects] == [(10, 10, 40, 40)]
    assert not doc._timer.isActive()  # autosave off: no write is even scheduled
    qtbot.wait(doc.autosave_delay_ms + 100)  # and past the delay nothing was written
    assert not (tmp_path / "imgs" / "im0.xml").exists() and doc.any_dirty
    assert doc.save_all()
    assert read_voc(tmp_path / "imgs" / "im0.xml").objects[0].name == "cat" and not doc.any_dirty


def test_one_undo_stack_per_image_in_a_group(qtbot, tmp_path, doc):
    doc.set_autosave(False)
    doc.set_source(open_dataset(folder_with(tmp_path)))
    first = doc.undo_group.activeStack()
    assert first.undoLimit() == 0 or first.undoLimit() >= 100
    assert UNDO_LIMIT >= 100
    add_box(doc)
    doc.next()
    second = doc.undo_group.activeStack()
    assert second is not first and second.count() == 0
    doc.previous()
    assert doc.undo_group.activeStack() is first and first.canUndo()
    first.undo()
    assert doc.model.objects == []


def test_exif_rotated_voc_is_rotated_and_the_note_shown_once(qtbot, tmp_path, doc):
    d = tmp_path / "exif"
    d.mkdir()
    stored = np.zeros((40, 80, 3), np.uint8)  # stored 80×40, displayed 40×80 (orientation 6)
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(d / "rot.jpg", exif=exif.tobytes())
    write_image(d / "z.png")
    write_voc(Annotation("rot.jpg", 80, 40, 3, [BoxObject("cat", (0, 0, 20, 10))]), d / "rot.xml")
    doc.set_source(open_dataset(d))
    assert (doc.model.width, doc.model.height) == (40, 80)
    assert doc.model.objects[0].box == (30, 0, 40, 20)  # rotated with the pixels
    notes = [m for m in doc.messages if "rotated" in m]
    assert len(notes) == 1
    doc.next()
    doc.previous()
    assert len([m for m in doc.messages if "rotated" in m]) == 1


def test_yolo_dataset_saves_labels_and_keeps_verified_in_settings(qtbot, tmp_path, doc, settings):
    src = open_dataset(folder_with(tmp_path, 2))
    export_dataset(src, "yolo", tmp_path / "y")
    doc.set_source(open_dataset(tmp_path / "y"))
    add_box(doc, (0, 0, W / 2, H / 2), "cat")
    doc.toggle_verified()
    assert doc.save_all()
    label = tmp_path / "y" / "labels" / "im0.txt"
    assert label.read_text().split()[1:] == ["0.25000000", "0.25000000", "0.50000000", "0.50000000"]
    assert "im0.png" in settings.verified_names(tmp_path / "y")
    # A fresh document on the same dataset knows it is verified.
    other = Document(AnnotationModel(), Settings())
    other.set_source(open_dataset(tmp_path / "y"))
    assert other.is_verified(0) and not other.is_verified(1)
    other.close()


def test_coco_dataset_saves_into_its_json(qtbot, tmp_path, doc):
    export_dataset(open_dataset(folder_with(tmp_path, 2)), "coco", tmp_path / "c")
    doc.set_source(open_dataset(tmp_path / "c"))
    add_box(doc, (5, 6, 25, 36), "dog")
    assert doc.save_all()
    again = open_dataset(tmp_path / "c")
    entry = next(e for e in again.entries if e.name == "im0.png")
    assert [(o.name, o.box) for o in again.store.load(entry).objects] == [("dog", (5, 6, 25, 36))]


def test_empty_folder_and_next_past_the_end(qtbot, tmp_path, doc):
    (tmp_path / "empty").mkdir()
    doc.set_source(open_dataset(tmp_path / "empty"))
    assert doc.current_entry is None and not doc.next()
    doc.set_source(open_dataset(folder_with(tmp_path, 1)))
    assert not doc.next() and doc.index == 0


def test_big_images_decode_in_the_background_and_stale_results_are_dropped(qtbot, tmp_path, doc):
    d = folder_with(tmp_path, 3)
    doc.async_decode_pixels = 0  # treat every image as big
    shown = []
    doc.imageDecoded.connect(shown.append)
    with qtbot.waitSignal(doc.imageDecoded, timeout=5000, check_params_cb=lambda im: im.pixels.shape[0] == H):
        doc.set_source(open_dataset(d))
        assert doc.decoding and shown[0].pixels.shape == (1, 1, 3)  # placeholder with the right geometry
        assert (shown[0].width, shown[0].height) == (W, H) and (doc.model.width, doc.model.height) == (W, H)
    assert not doc.decoding
    shown.clear()
    doc.next()
    doc.next()  # the first of these decodes finishes after we moved on: it must not show
    qtbot.waitUntil(lambda: not doc.decoding, timeout=5000)
    qtbot.wait(100)
    real = [im for im in shown if im.pixels.shape[0] == H]
    assert len(real) == 1 and real[0].path.name == "im2.png"


def test_a_file_written_by_another_program_is_not_overwritten_by_autosave(qtbot, tmp_path, doc):
    d = folder_with(tmp_path, 1)
    doc.set_source(open_dataset(d))
    doc._unwatch()  # the watcher may be late: the save itself must notice
    asked = []
    doc.resolve_conflict = lambda text: asked.append(text) or "reload"
    add_box(doc)
    write_voc(Annotation("im0.png", W, H, 3, [BoxObject("theirs", (1, 1, 5, 5))]), d / "im0.xml")
    doc.save_pending()
    assert asked and [o.name for o in read_voc(d / "im0.xml").objects] == ["theirs"]
    assert [o.name for o in doc.model.objects] == ["theirs"]


def test_worker_pool_reports_in_the_gui_thread_cancels_and_waits(qtbot):
    import threading
    import time

    from app.workers import WorkerPool

    pool = WorkerPool()
    gui = threading.get_ident()
    seen: dict[str, object] = {"progress": [], "threads": set()}

    def job(j, n):
        for k in range(n):
            j.progress(k / n, f"step {k}")
        return n * 2

    def on_progress(f, m):
        seen["progress"].append(f)
        seen["threads"].add(threading.get_ident())

    results, errors = [], []
    pool.start(job, 5, on_progress=on_progress, on_result=results.append, on_error=errors.append)
    qtbot.waitUntil(lambda: results == [10], timeout=5000)
    assert seen["progress"] == [0.0, 0.2, 0.4, 0.6, 0.8] and seen["threads"] == {gui}

    def slow(j):
        while True:
            j.check()
            time.sleep(0.01)

    w = pool.start(slow, on_error=errors.append)
    w.cancel()
    qtbot.waitUntil(lambda: errors == ["cancelled"], timeout=5000)

    def failing(j):
        raise OSError("disk full")

    pool.start(failing, on_error=errors.append)
    qtbot.waitUntil(lambda: len(errors) == 2, timeout=5000)
    assert "disk full" in errors[1]
    pool.start(slow)
    assert pool.shutdown(5000) and pool.active == 0


def test_a_clean_image_changed_on_disk_while_away_is_read_again(qtbot, tmp_path, doc):
    d = folder_with(tmp_path, 2)
    write_voc(Annotation("im1.png", W, H, 3, [BoxObject("old", (1, 1, 9, 9))]), d / "im1.xml")
    doc.set_source(open_dataset(d))
    doc.next()
    doc.previous()
    write_voc(Annotation("im1.png", W, H, 3, [BoxObject("new", (1, 1, 9, 9)), BoxObject("new", (2, 2, 9, 9))]),
              d / "im1.xml")
    doc.next()
    assert [o.name for o in doc.model.objects] == ["new", "new"]


def test_annotation_folder_mirrors_subfolders_and_refuses_a_shared_xml(qtbot, tmp_path, doc):
    d = tmp_path / "nested"
    write_image(d / "a" / "x.png")
    write_image(d / "b" / "x.png")
    doc.set_source(open_dataset(d))
    assert doc.set_annotation_dir(tmp_path / "labels")  # a/x.xml and b/x.xml: no clash
    assert doc.source.store.annotation_path(doc.entries[1]) == tmp_path / "labels" / "b" / "x.xml"
    write_image(d / "a" / "x.jpg")  # same stem, same folder: both would be a/x.xml
    doc.set_source(open_dataset(d))
    assert not doc.set_annotation_dir(tmp_path / "labels2")
    assert "a/x.xml" in doc.messages[-1] and doc.source.store.annotation_dir != tmp_path / "labels2"


def test_close_deletes_the_watcher_in_the_gui_thread_and_is_idempotent(qtbot, tmp_path, settings):
    """Regression: a parentless Document collected by a GC pass in a worker thread destroyed its
    QFileSystemWatcher there, and Qt then looped forever on 'QSocketNotifier: Invalid socket'."""
    import shiboken6

    d = Document(AnnotationModel(), settings)
    d.set_source(open_dataset(folder_with(tmp_path, 1)))
    watcher = d._watcher
    d.close()
    assert not shiboken6.isValid(watcher)
    d.close()
    d._on_disk_change()  # a late signal after close does nothing


def test_holding_next_on_big_images_runs_one_decode_at_a_time(qtbot, tmp_path, doc, monkeypatch):
    """Thirty big images visited in a burst: one decode runs, the rest never start, the last one is shown."""
    import threading

    import app.image_decoder as image_decoder

    release = threading.Event()
    entered: list[str] = []
    real_read = image_decoder.read_image

    def slow_read(path, *a, **k):
        entered.append(Path(path).name)
        release.wait(10)
        return real_read(path, *a, **k)

    monkeypatch.setattr(image_decoder, "read_image", slow_read)
    d = folder_with(tmp_path, 30)
    doc.async_decode_pixels = 0  # treat every image as big
    shown = []
    doc.imageDecoded.connect(shown.append)
    doc.set_source(open_dataset(d))
    qtbot.waitUntil(lambda: len(entered) == 1, timeout=5000)
    for _ in range(29):
        doc.next()
    assert doc.pool.active <= 1  # the first decode still runs; the 29 later requests wait, one replacing another
    with qtbot.waitSignal(doc.imageDecoded, timeout=10000, check_params_cb=lambda im: im.pixels.shape[0] == H):
        release.set()
    qtbot.waitUntil(lambda: not doc.decoder.busy, timeout=5000)
    assert entered == ["im0.png", "im29.png"]  # the first (already running) and the latest; none in between
    real = [im for im in shown if im.pixels.shape[0] == H]
    assert [im.path.name for im in real] == ["im29.png"] and not doc.decoding


VOC_WITH_FOREIGN_CONTENT = (
    '<annotation>\n\t<folder>VOC2007</folder>\n\t<filename>im0.png</filename>\n\t<source>\n'
    '\t\t<database>The VOC2007 Database</database>\n\t</source>\n\t<owner>\n\t\t<flickrid>Fried Camels</flickrid>\n'
    '\t</owner>\n\t<size>\n\t\t<width>{w}</width>\n\t\t<height>{h}</height>\n\t\t<depth>3</depth>\n\t</size>\n'
    '\t<object>\n\t\t<name>dog</name>\n\t\t<pose>Left</pose>\n\t\t<truncated>1</truncated>\n'
    '\t\t<difficult>0</difficult>\n\t\t<bndbox>\n\t\t\t<xmin>5</xmin>\n\t\t\t<ymin>6</ymin>\n\t\t\t<xmax>30</xmax>\n'
    '\t\t\t<ymax>31</ymax>\n\t\t</bndbox>\n\t\t<mytool:score xmlns:mytool="urn:x">0.9</mytool:score>\n\t</object>\n'
    '\t<object>\n\t\t<name>person</name>\n\t\t<pose>Right</pose>\n\t\t<bndbox>\n\t\t\t<xmin>2</xmin>\n'
    '\t\t\t<ymin>3</ymin>\n\t\t\t<xmax>20</xmax>\n\t\t\t<ymax>21</ymax>\n\t\t</bndbox>\n\t</object>\n</annotation>\n')


def test_an_undone_edit_saves_the_file_byte_identical_and_an_edit_keeps_foreign_tags(qtbot, tmp_path, doc):
    """The issue's file: <folder>, <source>, <owner>, <pose> and another tool's tag survive editing."""
    import xml.etree.ElementTree as ET

    from app.commands import SetBoxesCommand

    d = folder_with(tmp_path, 1)
    xml = d / "im0.xml"
    original = VOC_WITH_FOREIGN_CONTENT.format(w=W, h=H).encode()
    xml.write_bytes(original)
    doc.set_source(open_dataset(d))
    stack = doc.undo_group.activeStack()
    with qtbot.waitSignal(doc.saved, timeout=5000):
        apply(stack, SetBoxesCommand(doc.model, [1], [(12, 13, 40, 41)]))
    assert xml.read_bytes() != original
    with qtbot.waitSignal(doc.saved, timeout=5000):
        stack.undo()
    assert xml.read_bytes() == original
    with qtbot.waitSignal(doc.saved, timeout=5000):
        apply(stack, SetBoxesCommand(doc.model, [1], [(12, 13, 40, 41)]))
    root = ET.fromstring(xml.read_bytes())
    assert root.findtext("folder") == "VOC2007" and root.findtext("owner/flickrid") == "Fried Camels"
    assert root.findtext("source/database") == "The VOC2007 Database"
    assert [o.findtext("pose") for o in root.findall("object")] == ["Left", "Right"]
    assert root.find("object/{urn:x}score") is not None
    person = root.findall("object")[1].find("bndbox")
    assert [person.findtext(t) for t in ("xmin", "ymin", "xmax", "ymax")] == ["13", "14", "40", "41"]
    # Only the edited object's lines changed.
    changed = [a for a, b in zip(original.decode().splitlines(), xml.read_text().splitlines(), strict=True) if a != b]
    assert changed == ["\t\t\t<xmin>2</xmin>", "\t\t\t<ymin>3</ymin>", "\t\t\t<xmax>20</xmax>", "\t\t\t<ymax>21</ymax>"]
