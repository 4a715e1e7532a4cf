"""The class list dock: choosing, digit keys, default class, class files, rename/merge requests."""

from __future__ import annotations

import pytest

from app.panels.class_list import ClassListPanel
from models.data.annotations import AnnotationError


@pytest.fixture
def panel(qtbot):
    p = ClassListPanel()
    qtbot.addWidget(p)
    return p


def test_set_add_choose_and_digit_index(qtbot, panel):
    with qtbot.waitSignal(panel.classesChanged) as changed:
        panel.set_classes(["cat", " dog ", "", "cat"])
    assert changed.args == [["cat", "dog"]]
    assert panel.add_classes(["bird", "dog"]) and panel.names() == ["cat", "dog", "bird"]
    assert not panel.add_classes(["cat"])
    with qtbot.waitSignal(panel.classChosen) as chosen:
        assert panel.choose_index(2) == "dog"
    assert chosen.args == ["dog"] and panel.current == "dog"
    assert panel.choose_index(9) is None
    with qtbot.waitSignal(panel.classChosen) as chosen:
        panel.list.setCurrentRow(2)  # a click
    assert chosen.args == ["bird"]
    assert panel.list.item(0).text().startswith("1")


def test_default_class_and_files(qtbot, panel, tmp_path):
    panel.set_classes(["a", "b"])
    with qtbot.waitSignal(panel.defaultChanged):
        panel.set_default("b")
    assert "(default)" in panel.list.item(1).text() and "b" in panel.default_label.text()
    panel.save_file(tmp_path / "classes.txt")
    assert (tmp_path / "classes.txt").read_text() == "a\nb\n"
    (tmp_path / "data.yaml").write_text("names: {0: x, 1: y}\n")
    assert panel.load_file(tmp_path / "data.yaml") == ["x", "y"] and panel.names() == ["x", "y"]
    (tmp_path / "bad.yaml").write_text("names: [unclosed\n")
    with pytest.raises(AnnotationError):
        panel.load_file(tmp_path / "bad.yaml")


def test_rename_requests_become_merges_when_the_name_exists(qtbot, panel):
    panel.set_classes(["kitty", "cat", "dog"])
    with qtbot.waitSignal(panel.renameRequested) as sig:
        panel.request_rename("kitty", " puss ")
    assert sig.args == ["kitty", "puss"]
    with qtbot.waitSignal(panel.mergeRequested) as sig:
        panel.request_rename("kitty", "cat")
    assert sig.args == ["kitty", "cat"]
    with qtbot.assertNotEmitted(panel.renameRequested), qtbot.assertNotEmitted(panel.mergeRequested):
        panel.request_rename("kitty", "kitty")
        panel.request_rename("nope", "x")
    panel.set_default("kitty")
    panel.choose("kitty")
    panel.apply_rename("kitty", "cat")  # merged: one "cat" left, default and current follow
    assert panel.names() == ["cat", "dog"] and panel.default_class == "cat" and panel.current == "cat"
