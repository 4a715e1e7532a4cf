"""The box editor edits class, coordinates and flags of the selection, each edit undoable."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QUndoStack

from app.annotation_model import AnnotationModel
from app.panels.box_editor import BoxEditor
from models.data.annotations import Annotation, BoxObject


def make_editor(qtbot, objects):
    model = AnnotationModel()
    model.set_annotation(Annotation(objects=objects), 400, 300)
    editor = BoxEditor(model)
    qtbot.addWidget(editor)
    stack = QUndoStack(editor)
    editor.set_undo_stack(stack)
    editor.set_class_names(["cat", "dog"])
    editor.show()
    return model, editor, stack


def test_disabled_without_selection_and_shows_the_selected_box(qtbot):
    model, editor, _ = make_editor(qtbot, [BoxObject("cat", (10, 20, 110, 220), truncated=True)])
    assert not editor.spins["x1"].isEnabled() and not editor.class_combo.isEnabled()
    model.select([0])
    assert editor.spins["x1"].isEnabled()
    assert [editor.spins[k].value() for k in ("x1", "y1", "x2", "y2")] == [10, 20, 110, 220]
    assert editor.class_combo.currentText() == "cat"
    assert editor.truncated.isChecked() and not editor.difficult.isChecked()


def test_numeric_edit_is_an_undoable_command(qtbot):
    model, editor, stack = make_editor(qtbot, [BoxObject("cat", (10, 20, 110, 220))])
    model.select([0])
    spin = editor.spins["x2"]
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin.lineEdit(), "150")
    qtbot.keyClick(spin.lineEdit(), Qt.Key.Key_Return)
    assert model.objects[0].box == (10, 20, 150, 220)
    # Arrow steps on the same field merge into the same undo step.
    spin.stepUp()
    spin.stepUp()
    assert model.objects[0].box == (10, 20, 152, 220)
    assert stack.count() == 1
    editor.spins["y1"].setValue(30)
    assert stack.count() == 2
    stack.undo()
    assert model.objects[0].box == (10, 20, 152, 220)
    stack.undo()
    assert model.objects[0].box == (10, 20, 110, 220)
    assert spin.value() == 110  # the editor follows undo
    stack.redo()
    assert model.objects[0].box == (10, 20, 152, 220)


def test_a_box_edited_by_its_coordinates_drops_its_outline_and_undo_brings_it_back(qtbot):
    outline = ((10.0, 20.0, 110.0, 20.0, 60.0, 220.0),)
    model, editor, stack = make_editor(qtbot, [BoxObject("cat", (10, 20, 110, 220), outline=outline)])
    model.select([0])
    spin = editor.spins["x2"]
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin.lineEdit(), "150")
    qtbot.keyClick(spin.lineEdit(), Qt.Key.Key_Return)
    assert model.objects[0].box == (10, 20, 150, 220) and model.objects[0].outline == ()
    editor.class_combo.setCurrentText("dog")  # a relabel keeps the shape: nothing to drop
    stack.undo()
    stack.undo()
    assert model.objects[0].outline == outline


def test_coordinates_cannot_make_an_empty_box(qtbot):
    model, editor, stack = make_editor(qtbot, [BoxObject("cat", (10, 20, 110, 220))])
    model.select([0])
    editor.spins["x1"].setValue(500)  # clamped to x2 - 1 by the spin box range
    assert model.objects[0].box[0] == 109
    editor.spins["x2"].setValue(1000)
    assert model.objects[0].box[2] == 400  # image width


def test_flags_and_class_apply_to_all_selected_with_undo(qtbot):
    objs = [BoxObject("cat", (10, 20, 110, 220)), BoxObject("dog", (1, 1, 5, 5)), BoxObject("cat", (2, 2, 9, 9))]
    model, editor, stack = make_editor(qtbot, objs)
    model.select([0, 2])
    assert not editor.spins["x1"].isEnabled()  # coordinates need exactly one box
    qtbot.mouseClick(editor.difficult, Qt.MouseButton.LeftButton)
    assert [o.difficult for o in model.objects] == [True, False, True]
    qtbot.mouseClick(editor.truncated, Qt.MouseButton.LeftButton)
    assert [o.truncated for o in model.objects] == [True, False, True]
    editor.class_combo.setCurrentIndex(1)
    editor.class_combo.textActivated.emit("dog")
    assert [o.name for o in model.objects] == ["dog", "dog", "dog"]
    # A brand-new class typed in the combo.
    editor.class_combo.lineEdit().setText("horse")
    editor.class_combo.lineEdit().editingFinished.emit()
    assert [o.name for o in model.objects] == ["horse", "dog", "horse"]
    assert stack.count() == 4
    for _ in range(4):
        stack.undo()
    assert model.objects == objs
    assert not editor.difficult.isChecked()
