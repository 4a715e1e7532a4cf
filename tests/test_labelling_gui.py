"""What LabelImg users expect of the window (issue 12): the class list belongs to the open dataset, a label
prompt after drawing, a toolbar, COCO crowd boxes, readable labels, single keys that leave text fields
alone, and file choosers that tests can answer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage

from app.layers.base import place_labels
from app.layers.palette import PALETTE, class_color, contrast_ratio, set_class_order, text_color_for
from app.main_window import MainWindow
from models.data.annotations import Annotation, BoxObject, write_voc
from models.data.dataset_classes import dataset_classes, save_classes
from models.data.datasets import open_dataset
from tests.test_canvas import drag_image, to_view
from tests.test_main_window import H, W, key, make_window, settings, write_image  # noqa: F401  (fixture)


@pytest.fixture
def window(qtbot, settings) -> MainWindow:  # noqa: F811
    w = make_window(qtbot, settings, thumbnails=False)
    w.settings.set_label_prompt(False)
    w.act_prompt.setChecked(False)
    yield w
    w.close()


def voc_folder(root: Path, names: list[str]) -> Path:
    """A VOC root (Annotations + JPEGImages) with one image whose boxes have ``names``."""
    write_image(root / "JPEGImages" / "000001.png")
    objs = [BoxObject(n, (10 + 20 * k, 10, 30 + 20 * k, 40)) for k, n in enumerate(names)]
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    write_voc(Annotation("000001.png", W, H, 3, objs), root / "Annotations" / "000001.xml")
    return root


def coco_file(root: Path, categories: list[str], crowd: bool = False) -> Path:
    write_image(root / "images" / "a.png")
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": W, "height": H}],
           "categories": [{"id": k + 1, "name": n} for k, n in enumerate(categories)],
           "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 40], "area": 2000,
                            "iscrowd": int(crowd), "segmentation": []}]}
    path = root / "annotations" / "instances_x.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


# --- the class list belongs to the dataset -----------------------------------------------------------------
def test_dataset_classes_are_read_from_the_dataset_and_written_beside_it(tmp_path):
    voc = voc_folder(tmp_path / "voc", ["diningtable", "person", "diningtable"])
    (voc / "classes.txt").write_text("person\ncat\n", encoding="utf-8")
    src = open_dataset(voc)
    dc = dataset_classes(src)
    assert dc.names == ["person", "cat", "diningtable"]  # file order first, then names found in the files
    assert dc.path == voc / "classes.txt" and dc.writable
    assert save_classes(src, dc, dc.names + ["dog"]) == voc / "classes.txt"
    assert (voc / "classes.txt").read_text(encoding="utf-8").split() == ["person", "cat", "diningtable", "dog"]
    coco = open_dataset(coco_file(tmp_path / "coco", ["dining table", "person"]))
    dcc = dataset_classes(coco)
    assert dcc.names == ["dining table", "person"] and not dcc.writable and dcc.path is None
    assert save_classes(coco, dcc, ["dining table", "person", "x"]) is None


def test_yolo_class_file_only_grows_at_the_end(tmp_path):
    root = tmp_path / "yolo"
    write_image(root / "images" / "a.png")
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("car\nbus\n", encoding="utf-8")
    src = open_dataset(root)
    dc = dataset_classes(src)
    assert dc.names == ["car", "bus"]
    assert save_classes(src, dc, ["bus", "car"]) is None  # a reorder would change every box's id
    assert save_classes(src, dc, ["car", "bus", "truck"]) == root / "classes.txt"
    assert src.store.class_names == ["car", "bus", "truck"]


def test_the_class_list_does_not_leak_between_datasets(qtbot, window, tmp_path):
    voc = voc_folder(tmp_path / "voc", ["diningtable", "person"])
    coco = coco_file(tmp_path / "coco", ["dining table", "person"])
    plain = tmp_path / "plain"
    write_image(plain / "x.png")

    with qtbot.waitSignal(window.dataset_classes.scanFinished, timeout=5000):
        assert window.open_path(voc)
    assert window.class_list.names() == ["diningtable", "person"]
    assert not (voc / "classes.txt").exists()  # opening writes nothing
    key(qtbot, window, Qt.Key.Key_1)
    assert window.model.current_class == "diningtable"

    assert window.open_path(coco)
    assert window.class_list.names() == ["dining table", "person"]  # no VOC 'diningtable' beside it
    assert window.model.current_class == "dining table"  # key 1 is this dataset's first class
    key(qtbot, window, Qt.Key.Key_2)
    assert window.model.current_class == "person"

    with qtbot.waitSignal(window.dataset_classes.scanFinished, timeout=5000):
        assert window.open_path(plain)
    assert window.class_list.names() == [] and window.model.current_class == ""
    key(qtbot, window, Qt.Key.Key_1)
    assert window.model.current_class == ""
    assert "No class 1" in window.statusBar().currentMessage()

    # Back on the VOC dataset: the same keys mean the same classes, and a class added there is kept there.
    with qtbot.waitSignal(window.dataset_classes.scanFinished, timeout=5000):
        window.open_path(voc)
    assert window.class_list.names() == ["diningtable", "person"]
    window.class_list.add_class("chair")
    assert (voc / "classes.txt").read_text(encoding="utf-8").split() == ["diningtable", "person", "chair"]
    window.open_path(coco)
    assert "chair" not in window.class_list.names()


# --- toolbar ----------------------------------------------------------------------------------------------
def test_toolbar_has_the_common_actions_with_icons_and_can_be_hidden(qtbot, window):
    bar = window.toolbar
    acts = bar.actions()
    for a in (window.act_open, window.act_open_dir, window.act_prev, window.act_next, window.act_create,
              window.act_save, window.act_fit):
        assert a in acts and not a.icon().isNull()
    assert bar.isVisible()
    window.act_toolbar.trigger()  # View ▸ Toolbar
    assert not bar.isVisible()
    window.act_toolbar.trigger()
    assert bar.isVisible()


# --- single keys and text fields --------------------------------------------------------------------------
def test_keys_typed_in_a_spin_box_or_on_a_check_box_do_not_act_on_boxes(qtbot, window, tmp_path):
    folder = tmp_path / "f"
    write_image(folder / "a.png")
    write_image(folder / "b.png")
    window.open_path(folder)
    window.class_list.set_classes(["cat", "dog", "bird"])
    window.class_list.choose("cat")
    key(qtbot, window, Qt.Key.Key_W)
    drag_image(window.canvas, 20, 30, 120, 130)
    assert [o.name for o in window.model.objects] == ["cat"] and window.model.selected_indices == [0]
    spin = window.box_editor.spins["x1"]
    spin.setFocus()
    spin.selectAll()
    qtbot.keyClicks(spin, "3d")  # '3' would pick 'bird', 'd' the next image
    assert spin.text() == "3"
    assert [o.name for o in window.model.objects] == ["cat"] and window.document.index == 0
    check = window.box_editor.difficult
    check.setFocus()
    qtbot.keyClick(check, Qt.Key.Key_Space)  # Space ticks the box, not the image's "verified" mark
    assert check.isChecked() and not window.model.verified
    key(qtbot, window, Qt.Key.Key_Space)  # on the canvas, Space still toggles verified
    assert window.model.verified


# --- label prompt -----------------------------------------------------------------------------------------
@pytest.fixture
def labelled(qtbot, window, tmp_path) -> MainWindow:
    folder = tmp_path / "f"
    write_image(folder / "a.png")
    window.open_path(folder)
    window.class_list.set_classes(["person", "helmet", "dog"])
    window.class_list.choose("person")
    return window


def test_label_prompt_appears_after_a_drag_and_its_answer_is_the_box_class(qtbot, labelled):
    w = labelled
    w.act_prompt.setChecked(True)
    key(qtbot, w, Qt.Key.Key_W)
    drag_image(w.canvas, 20, 30, 120, 130)
    prompt = w.label_prompt
    qtbot.waitUntil(prompt.isVisible, timeout=3000)
    assert [prompt.list.item(k).text() for k in range(prompt.list.count())] == ["person", "helmet", "dog"]
    qtbot.keyClicks(prompt.edit, "he")  # type-ahead: only 'helmet' is left
    assert prompt.list.count() == 1 and prompt.answer() == "helmet"
    qtbot.keyClick(prompt.edit, Qt.Key.Key_Return)
    assert not prompt.isVisible()
    assert [o.name for o in w.model.objects] == ["helmet"] and w.model.current_class == "helmet"
    # A new name typed into the prompt becomes a class of the dataset.
    key(qtbot, w, Qt.Key.Key_W)
    drag_image(w.canvas, 150, 30, 200, 100)
    qtbot.waitUntil(prompt.isVisible, timeout=3000)
    qtbot.keyClicks(prompt.edit, "flag")
    qtbot.keyClick(prompt.edit, Qt.Key.Key_Return)
    assert [o.name for o in w.model.objects] == ["helmet", "flag"] and "flag" in w.class_list.names()
    # Shift+Enter takes the typed text even where a longer class matches it.
    key(qtbot, w, Qt.Key.Key_W)
    drag_image(w.canvas, 210, 30, 260, 100)
    qtbot.waitUntil(prompt.isVisible, timeout=3000)
    qtbot.keyClicks(prompt.edit, "do")
    assert prompt.answer() == "dog"
    qtbot.keyClick(prompt.edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert w.model.objects[-1].name == "do"
    w.document.undo_group.activeStack().undo()  # the class
    w.document.undo_group.activeStack().undo()  # the box
    assert len(w.model) == 2
    # Escape removes the box just drawn.
    key(qtbot, w, Qt.Key.Key_W)
    drag_image(w.canvas, 20, 150, 80, 200)
    qtbot.waitUntil(prompt.isVisible, timeout=3000)
    qtbot.keyClick(prompt.edit, Qt.Key.Key_Escape)
    assert not prompt.isVisible() and len(w.model) == 2


def test_label_prompt_setting_off_gives_the_current_class_silently(qtbot, labelled):
    w = labelled
    assert not w.act_prompt.isChecked()
    key(qtbot, w, Qt.Key.Key_W)
    drag_image(w.canvas, 20, 30, 120, 130)
    assert not w.label_prompt.isVisible() and [o.name for o in w.model.objects] == ["person"]
    w.act_prompt.trigger()  # the menu item turns it back on, and the setting remembers it
    assert w.act_prompt.isChecked() and w.settings.label_prompt()


def test_bulk_relabel_says_how_many_boxes_changed(qtbot, labelled):
    w = labelled
    for k in range(5):
        key(qtbot, w, Qt.Key.Key_W)
        drag_image(w.canvas, 10 + 40 * k, 10, 40 + 40 * k, 60)
    key(qtbot, w, Qt.Key.Key_2)  # the last box only
    key(qtbot, w, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    key(qtbot, w, Qt.Key.Key_3)
    assert [o.name for o in w.model.objects] == ["dog"] * 5
    assert "5 of 5 selected boxes relabelled" in w.statusBar().currentMessage()


# --- COCO crowd -------------------------------------------------------------------------------------------
def _interior_pixels(canvas, box: tuple[float, float, float, float]) -> np.ndarray:
    """The canvas as drawn, cropped to the inside of ``box`` (a few pixels in from its outline)."""
    img = canvas.viewport().grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    arr = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())[:, : img.width() * 3]
    arr = arr.reshape(img.height(), img.width(), 3)
    tl, br = to_view(canvas, box[0], box[1]), to_view(canvas, box[2], box[3])
    return arr[int(tl.y()) + 6:int(br.y()) - 6, int(tl.x()) + 6:int(br.x()) - 6].astype(int)


def test_crowd_flag_is_shown_toggled_saved_to_coco_and_drawn_hatched(qtbot, window, tmp_path):
    path = coco_file(tmp_path / "coco", ["person"], crowd=True)
    window.open_path(path)
    editor, canvas = window.box_editor, window.canvas
    window.model.select([0])
    assert editor.crowd.isEnabled() and editor.crowd.isChecked()  # iscrowd=1 read from the file
    box = window.model.objects[0].box
    hatched = _interior_pixels(canvas, box)
    qtbot.mouseClick(editor.crowd, Qt.MouseButton.LeftButton)  # untick: an ordinary box
    assert not window.model.objects[0].crowd
    window.model.clear_selection()  # no selection fill: only the hatching differs
    plain = _interior_pixels(canvas, box)
    window.model.select([0])
    qtbot.mouseClick(editor.crowd, Qt.MouseButton.LeftButton)
    window.model.clear_selection()
    hatched = _interior_pixels(canvas, box)
    # Hatching changes many pixels inside the box; without it the interior is the image itself.
    assert (np.abs(hatched - plain).sum(axis=2) > 60).mean() > 0.05
    assert window.save()
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert [a["iscrowd"] for a in doc["annotations"]] == [1]
    window.model.select([0])
    qtbot.mouseClick(editor.crowd, Qt.MouseButton.LeftButton)
    assert window.save()
    assert [a["iscrowd"] for a in json.loads(path.read_text(encoding="utf-8"))["annotations"]] == [0]


# --- readable labels --------------------------------------------------------------------------------------
def _oklab(c: QColor) -> np.ndarray:
    def lin(v: float) -> float:
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4
    r, g, b = (lin(v) for v in (c.redF(), c.greenF(), c.blueF()))
    l_ = np.cbrt(0.4122214708 * r + 0.5363325363 * g + 0.0514459929 * b)
    m_ = np.cbrt(0.2119034982 * r + 0.6806995451 * g + 0.1073969566 * b)
    s_ = np.cbrt(0.0883024619 * r + 0.2817188376 * g + 0.6299787005 * b)
    return np.array([0.2104542553 * l_ + 0.7936177850 * m_ - 0.0040720468 * s_,
                     1.9779984951 * l_ - 2.4285922050 * m_ + 0.4505937099 * s_,
                     0.0259040371 * l_ + 0.7827717662 * m_ - 0.8086757660 * s_])


def test_class_colours_are_well_apart_and_stable_per_dataset_list():
    names = ["person", "helmet", "flag", "banner", "car", "bicycle", "dog", "bag", "sign", "tree"]
    set_class_order(names)
    labs = [_oklab(class_color(n)) for n in names]
    dmin = min(np.linalg.norm(a - b) for k, a in enumerate(labs) for b in labs[k + 1:])
    assert dmin > 0.08  # OKLab: ~0.02 is a just-noticeable difference; the old hash gave 4 near-equal greens
    before = class_color("flag").rgb()
    set_class_order(names + ["kite"])  # the list grows at its end: earlier classes keep their colours
    assert class_color("flag").rgb() == before
    assert class_color("not listed").rgb() == class_color("not listed").rgb()  # stable fallback


def test_label_text_contrasts_with_its_tag_and_tags_avoid_each_other():
    assert text_color_for(QColor(250, 240, 120)) == QColor(0, 0, 0)
    assert text_color_for(QColor(30, 60, 160)) == QColor(255, 255, 255)
    for c in PALETTE:
        bg = QColor(*c)
        assert contrast_ratio(bg, text_color_for(bg)) >= 4.5  # WCAG AA for normal text
    # Five boxes with the same top-left corner: their tags go to different places, the rest fade.
    rects, clash = place_labels([(100.0, 100.0)] * 5, [60.0] * 5, 14.0)
    free = rects[~clash]
    assert len(free) == 4 and clash.sum() == 1
    for k in range(len(free)):
        for j in range(k + 1, len(free)):
            a, b = free[k], free[j]
            assert not (a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3])


# --- file choosers ----------------------------------------------------------------------------------------
def test_file_choosers_are_native_and_answerable_by_a_test(qtbot, window, tmp_path):
    from PySide6.QtWidgets import QFileDialog

    from app.file_dialogs import native_options

    assert not native_options() & QFileDialog.Option.DontUseNativeDialog
    folder = tmp_path / "f"
    write_image(folder / "a.png")
    asked: list[tuple[str, str]] = []

    def answer(kind, parent, title, start, name_filter):
        asked.append((kind, title))
        return str(folder) if kind == "folder" else str(tmp_path / "out" / "names.txt")

    window.dialogs.ask = answer
    window.act_open_dir.trigger()  # the toolbar's "Open Folder"
    assert asked[-1][0] == "folder" and window.document.source.root == folder
    window.class_list.set_classes(["a", "b"])
    (tmp_path / "out").mkdir()
    qtbot.mouseClick(window.class_list.save_button, Qt.MouseButton.LeftButton)  # the panel shares the choosers
    assert asked[-1][0] == "save" and (tmp_path / "out" / "names.txt").read_text().split() == ["a", "b"]
