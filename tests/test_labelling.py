"""Labelling on the real canvas with the mouse and keys: draw, refuse, select, move, resize, nudge, delete,
duplicate, paste — each undone and redone through the QUndoStack."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPointF, Qt

from app.annotation_model import AnnotationModel
from app.canvas import CREATE_MODE, EDIT_MODE
from app.commands import NudgeCommand, apply
from app.layers.ground_truth import HANDLE_BR, HANDLE_L, HANDLE_TL, handle_points
from models.data.annotations import Annotation, BoxObject
from tests.test_canvas import H, W, drag, drag_image, make_canvas, move, press, release, to_scene, to_view


def boxes(canvas) -> list[tuple[float, ...]]:
    return [o.box for o in canvas.model.objects]


def test_create_mode_drag_draws_box_in_image_coordinates_under_zoom(qtbot):
    canvas = make_canvas(qtbot)
    canvas.set_zoom(2.7)  # non-trivial zoom, and scrolled so the view does not start at the origin
    canvas.pan_by(-37, -21)
    created, changed = [], []
    canvas.boxCreated.connect(created.append)
    canvas.model.changed.connect(lambda: changed.append(1))
    canvas.set_create_mode()
    assert canvas.mode == CREATE_MODE
    start, end = QPointF(101, 83), QPointF(333, 251)
    drag(canvas, start, end)
    a, b = to_scene(canvas, start), to_scene(canvas, end)
    expected = (round(a.x()), round(a.y()), round(b.x()), round(b.y()))
    assert boxes(canvas) == [pytest.approx(expected)]
    assert all(float(v).is_integer() for v in boxes(canvas)[0])  # snapped to whole pixels
    assert canvas.model.objects[0].name == "cat"  # the model's current class
    assert created == [0] and canvas.model.selected_indices == [0]
    assert canvas.mode == EDIT_MODE  # one box per W, like LabelImg
    assert len(changed) == 1  # one edit -> one autosave trigger
    stack = canvas.undo_stack
    stack.undo()
    assert boxes(canvas) == []
    stack.redo()
    assert boxes(canvas) == [pytest.approx(expected)]


def test_drawing_is_clamped_to_the_image_and_works_from_any_corner(qtbot):
    canvas = make_canvas(qtbot)
    canvas.set_create_mode()
    drag_image(canvas, 350, 250, 40, -30)  # right-to-left, bottom-to-top, leaving the image
    assert boxes(canvas) == [pytest.approx((40, 0, 350, 250), abs=1)]
    canvas.set_create_mode()
    drag_image(canvas, 380, 280, 460, 340)
    assert boxes(canvas)[1][2:] == (W, H)


def test_too_small_box_is_refused_with_a_message(qtbot):
    canvas = make_canvas(qtbot)
    messages = []
    canvas.message.connect(messages.append)
    canvas.set_create_mode()
    drag_image(canvas, 100, 100, 102, 150)  # 2 px wide < 4 px minimum
    assert boxes(canvas) == []
    assert messages and "too small" in messages[-1]
    assert canvas.mode == CREATE_MODE  # still drawing: the user meant to draw a box
    assert canvas.undo_stack.count() == 0
    canvas.min_box_size = 1
    drag_image(canvas, 100, 100, 102, 150)
    assert len(boxes(canvas)) == 1


def test_escape_cancels_drawing(qtbot):
    canvas = make_canvas(qtbot)
    canvas.set_create_mode()
    press(canvas, to_view(canvas, 50, 50))
    move(canvas, to_view(canvas, 150, 150))
    qtbot.keyClick(canvas, Qt.Key.Key_Escape)
    release(canvas, to_view(canvas, 150, 150))
    assert boxes(canvas) == [] and canvas.mode == EDIT_MODE


def test_click_selects_and_drag_moves_with_undo(qtbot):
    objs = [BoxObject("cat", (50, 50, 150, 120)), BoxObject("dog", (200, 100, 300, 200))]
    canvas = make_canvas(qtbot, objects=objs)
    drag_image(canvas, 250, 150, 250, 150)  # a click on the dog
    assert canvas.model.selected_indices == [1]
    assert canvas.undo_stack.count() == 0  # a click is not an edit
    drag_image(canvas, 100, 80, 130.4, 60.2)  # grab the cat inside and move it
    assert canvas.model.selected_indices == [0]
    assert boxes(canvas) == [(80, 30, 180, 100), (200, 100, 300, 200)]
    assert canvas.undo_stack.count() == 1
    canvas.undo_stack.undo()
    assert boxes(canvas)[0] == (50, 50, 150, 120)
    canvas.undo_stack.redo()
    assert boxes(canvas)[0] == (80, 30, 180, 100)
    # A move stops at the image border, keeping the size.
    drag_image(canvas, 100, 50, -200, -200)
    assert boxes(canvas)[0] == (0, 0, 100, 70)
    # Clicking empty space clears the selection.
    drag_image(canvas, 390, 10, 390, 10)
    assert canvas.model.selected_indices == []


def test_shift_click_multi_select_moves_together(qtbot):
    objs = [BoxObject("cat", (50, 50, 150, 120)), BoxObject("dog", (200, 100, 300, 200))]
    canvas = make_canvas(qtbot, objects=objs)
    drag_image(canvas, 100, 80, 100, 80)
    drag_image(canvas, 250, 150, 250, 150, modifiers=Qt.KeyboardModifier.ShiftModifier)
    assert canvas.model.selected_indices == [0, 1]
    drag_image(canvas, 250, 150, 260, 170)
    assert boxes(canvas) == [(60, 70, 160, 140), (210, 120, 310, 220)]
    canvas.undo_stack.undo()
    assert boxes(canvas) == [o.box for o in objs]


@pytest.mark.parametrize(("handle", "to", "expected"), [
    (HANDLE_BR, (180, 160), (50, 50, 180, 160)),
    (HANDLE_TL, (20.4, 30.6), (20, 31, 150, 120)),
    (HANDLE_L, (170, 70), (150, 50, 170, 120)),  # dragged past the opposite edge: the box flips
])
def test_resize_by_handle_with_undo(qtbot, handle, to, expected):
    canvas = make_canvas(qtbot, objects=[BoxObject("cat", (50, 50, 150, 120))])
    canvas.set_zoom(2.0)
    canvas.model.select([0])
    p = handle_points((50, 50, 150, 120))[handle]
    drag_image(canvas, p.x(), p.y(), *to)
    assert boxes(canvas) == [expected]
    canvas.undo_stack.undo()
    assert boxes(canvas) == [(50, 50, 150, 120)]
    canvas.undo_stack.redo()
    assert boxes(canvas) == [expected]


def test_resize_below_minimum_is_refused(qtbot):
    canvas = make_canvas(qtbot, objects=[BoxObject("cat", (50, 50, 150, 120))])
    canvas.model.select([0])
    messages = []
    canvas.message.connect(messages.append)
    drag_image(canvas, 150, 120, 52, 119)
    assert boxes(canvas) == [(50, 50, 150, 120)]
    assert messages and "too small" in messages[-1]


def test_arrow_keys_nudge_and_merge_into_one_undo_step(qtbot):
    canvas = make_canvas(qtbot, objects=[BoxObject("cat", (50, 50, 150, 120))])
    canvas.model.select([0])
    canvas.setFocus()
    for _ in range(3):
        qtbot.keyClick(canvas, Qt.Key.Key_Right)
    qtbot.keyClick(canvas, Qt.Key.Key_Down, Qt.KeyboardModifier.ShiftModifier)
    assert boxes(canvas) == [(53, 60, 153, 130)]
    assert canvas.undo_stack.count() == 1  # consecutive nudges merge
    canvas.undo_stack.undo()
    assert boxes(canvas) == [(50, 50, 150, 120)]
    canvas.undo_stack.redo()
    assert boxes(canvas) == [(53, 60, 153, 130)]
    # Nudging stops at the border.
    for _ in range(10):
        qtbot.keyClick(canvas, Qt.Key.Key_Up, Qt.KeyboardModifier.ShiftModifier)
    assert boxes(canvas)[0][1] == 0


def test_nudges_of_different_selections_do_not_merge(qtbot):
    canvas = make_canvas(qtbot, objects=[BoxObject("a", (10, 10, 50, 50)), BoxObject("b", (60, 60, 90, 90))])
    canvas.model.select([0])
    canvas.nudge_selected(1, 0)
    canvas.model.select([1])
    canvas.nudge_selected(1, 0)
    assert canvas.undo_stack.count() == 2


def test_delete_and_undo_restore_order_and_selection(qtbot):
    objs = [BoxObject("a", (10, 10, 50, 50)), BoxObject("b", (60, 60, 90, 90)), BoxObject("c", (5, 5, 20, 20))]
    canvas = make_canvas(qtbot, objects=objs)
    canvas.model.select([0, 2])
    assert canvas.delete_selected() == 2
    assert [o.name for o in canvas.model.objects] == ["b"]
    canvas.undo_stack.undo()
    assert canvas.model.objects == objs
    assert canvas.model.selected_indices == [0, 2]
    canvas.undo_stack.redo()
    assert [o.name for o in canvas.model.objects] == ["b"]


def test_duplicate_offsets_copy_and_stays_inside(qtbot):
    objs = [BoxObject("a", (10, 10, 50, 50), difficult=True), BoxObject("b", (350, 250, 400, 300))]
    canvas = make_canvas(qtbot, objects=objs)
    canvas.model.select([0])
    assert canvas.duplicate_selected() == 1
    assert canvas.model.objects[2] == BoxObject("a", (20, 20, 60, 60), difficult=True)
    assert canvas.model.selected_indices == [2]  # the copy is selected, ready to drag
    canvas.model.select([1])
    canvas.duplicate_selected()
    assert canvas.model.objects[3].box == (340, 240, 390, 290)  # at the corner: offset goes up-left
    canvas.undo_stack.undo()
    canvas.undo_stack.undo()
    assert canvas.model.objects == objs


def test_copy_paste_across_images_is_clamped(qtbot):
    canvas = make_canvas(qtbot, objects=[BoxObject("a", (300, 200, 390, 290)), BoxObject("b", (10, 10, 40, 40))])
    canvas.model.select([0, 1])
    clip = canvas.selected_objects()
    # Another, smaller image: the main window swaps model contents and the undo stack.
    from PySide6.QtGui import QUndoStack

    from tests.test_canvas import gradient_image
    canvas.model.set_annotation(None, 320, 240)
    canvas.set_image(gradient_image(320, 240))
    canvas.set_undo_stack(QUndoStack(canvas))
    messages = []
    canvas.message.connect(messages.append)
    assert canvas.paste_objects(clip + [BoxObject("far", (500, 500, 600, 600))]) == 2
    assert boxes(canvas) == [(300, 200, 320, 240), (10, 10, 40, 40)]
    assert messages and "outside" in messages[-1]
    canvas.undo_stack.undo()
    assert boxes(canvas) == []


def test_hover_and_cursor_feedback(qtbot):
    canvas = make_canvas(qtbot, objects=[BoxObject("a", (100, 100, 200, 200))])
    move(canvas, to_view(canvas, 150, 150), Qt.MouseButton.NoButton)
    assert canvas.viewport().cursor().shape() == Qt.CursorShape.SizeAllCursor
    canvas.model.select([0])
    move(canvas, to_view(canvas, 200, 200), Qt.MouseButton.NoButton)
    assert canvas.viewport().cursor().shape() == Qt.CursorShape.SizeFDiagCursor
    move(canvas, to_view(canvas, 20, 20), Qt.MouseButton.NoButton)
    assert canvas.viewport().cursor().shape() == Qt.CursorShape.ArrowCursor


def test_nested_boxes_click_picks_the_smallest(qtbot):
    canvas = make_canvas(qtbot, objects=[BoxObject("big", (10, 10, 390, 290)), BoxObject("small", (100, 100, 140, 140))])
    drag_image(canvas, 120, 120, 120, 120)
    assert canvas.model.selected_indices == [1]


def test_undo_during_drag_cancels_the_drag(qtbot):
    canvas = make_canvas(qtbot, objects=[BoxObject("a", (100, 100, 200, 200))])
    canvas.model.select([0])
    canvas.nudge_selected(5, 0)
    press(canvas, to_view(canvas, 150, 150))
    move(canvas, to_view(canvas, 170, 150))
    canvas.undo_stack.undo()  # e.g. Ctrl+Z while the button is held
    release(canvas, to_view(canvas, 170, 150))
    assert boxes(canvas) == [(100, 100, 200, 200)]


def test_model_contract():
    model = AnnotationModel()
    events = []
    for name in ("changed", "selectionChanged", "annotationReset"):
        getattr(model, name).connect(lambda n=name: events.append(n))
    model.currentClassChanged.connect(lambda c: events.append(("class", c)))
    ann = Annotation("x.jpg", 100, 80, objects=[BoxObject("a", (1, 2, 3, 4))], verified=True)
    model.set_annotation(ann, 100, 80)
    assert events == ["annotationReset"]  # loading is not an edit
    ann.objects.append(BoxObject("b", (5, 5, 9, 9)))
    assert len(model.objects) == 1  # the model holds its own copy
    out = model.annotation()
    assert out.verified and out.filename == "x.jpg" and out.width == 100
    out.objects.clear()
    assert len(model.objects) == 1  # and hands out copies
    model.set_current_class("dog")
    assert model.current_class == "dog" and events[-1] == ("class", "dog")
    model.select([0, 5])
    assert model.selected_indices == [0]
    model.insert_object(0, BoxObject("z", (0, 0, 1, 1)))
    assert model.selected_indices == [1]  # selection follows its box
    model.remove_object(0)
    assert model.selected_indices == [0]
    model.set_annotation(None, 640, 480)
    assert model.objects == [] and model.width == 640 and model.selected_indices == []
    assert model.clamp_box((-5.4, 10.6, 700, 20)) == (0, 11, 640, 20)
    apply(None, NudgeCommand(model, [], []))  # no stack: commands still run


def test_nested_and_edge_picking(qtbot):
    canvas = make_canvas(qtbot, objects=[BoxObject("big", (10, 10, 390, 290)), BoxObject("small", (100, 100, 140, 140))])
    canvas.model.select([0])
    drag_image(canvas, 120, 120, 120, 120)  # inside the small one, even with the big one selected
    assert canvas.model.selected_indices == [1]
    drag_image(canvas, 200, 10.5, 200, 10.5)  # on the big box's top edge
    assert canvas.model.selected_indices == [0]


def test_click_jitter_is_not_a_move(qtbot):
    canvas = make_canvas(qtbot, objects=[BoxObject("a", (100, 100, 200, 200))])
    canvas.set_zoom(0.8)
    drag(canvas, to_view(canvas, 150, 150), to_view(canvas, 150, 150) + QPointF(1, 1))
    assert canvas.model.selected_indices == [0]
    assert boxes(canvas) == [(100, 100, 200, 200)] and canvas.undo_stack.count() == 0


def test_window_shortcuts_reach_the_canvas_api(qtbot):
    """The contract with the main window: its QActions (W, Del, Ctrl+D, Ctrl+Z…) call the canvas methods
    while the canvas has focus; the canvas consumes only arrows and Escape, and pushes on the active stack
    of a QUndoGroup."""
    from PySide6.QtGui import QAction, QKeySequence, QUndoGroup, QUndoStack
    from PySide6.QtWidgets import QApplication, QMainWindow

    from tests.test_canvas import gradient_image

    window = QMainWindow()
    qtbot.addWidget(window)
    model = AnnotationModel()
    model.set_annotation(None, W, H)
    model.set_current_class("dog")
    from app.canvas import Canvas
    canvas = Canvas(model)
    window.setCentralWidget(canvas)
    group = QUndoGroup(window)
    stack = QUndoStack(group)
    group.setActiveStack(stack)
    canvas.set_undo_stack(group.activeStack())
    for keys, slot in (("W", canvas.set_create_mode), ("Del", canvas.delete_selected),
                       ("Ctrl+D", canvas.duplicate_selected)):
        action = QAction(keys, window)
        action.setShortcut(QKeySequence(keys))
        action.triggered.connect(slot)
        window.addAction(action)
    undo = group.createUndoAction(window)
    undo.setShortcut(QKeySequence.StandardKey.Undo)
    window.addAction(undo)
    window.resize(640, 480)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    canvas.set_image(gradient_image())
    canvas.setFocus()

    qtbot.keyClick(canvas, Qt.Key.Key_W)
    assert canvas.mode == CREATE_MODE
    drag_image(canvas, 20, 30, 120, 130)
    assert boxes(canvas) == [(20, 30, 120, 130)] and model.objects[0].name == "dog"
    qtbot.keyClick(canvas, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    assert len(boxes(canvas)) == 2
    qtbot.keyClick(canvas, Qt.Key.Key_Left)
    assert boxes(canvas)[1] == (29, 40, 129, 140)
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    assert len(boxes(canvas)) == 1
    for _ in range(3):
        qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert boxes(canvas) == [(20, 30, 120, 130)]


def test_select_all_and_set_class_of_selected(qtbot):
    canvas = make_canvas(qtbot, objects=[BoxObject("a", (10, 10, 50, 50)), BoxObject("b", (60, 60, 90, 90))])
    assert not canvas.set_class_of_selected("dog")  # nothing selected
    canvas.select_all()
    assert canvas.model.selected_indices == [0, 1]
    assert canvas.set_class_of_selected("dog")
    assert [o.name for o in canvas.model.objects] == ["dog", "dog"]
    assert not canvas.set_class_of_selected("dog")  # no change, no undo step
    canvas.undo_stack.undo()
    assert [o.name for o in canvas.model.objects] == ["a", "b"]
