"""Canvas view behaviour: coordinates, zoom/pan, reduced previews, layers, display adjustments.

The helpers here (``make_canvas``, ``press``/``move``/``release``/``drag``, ``to_view``) are shared by the
other GUI test files. Mouse moves are sent as real QMouseEvents with the buttons held, because QTest's
mouseMove does not carry held buttons reliably.
"""

from __future__ import annotations

import glob

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QUndoStack, QWheelEvent
from PySide6.QtWidgets import QApplication

from app.annotation_model import AnnotationModel
from app.canvas import CREATE_MODE, EDIT_MODE, Canvas
from app.layers.base import BoxArrayLayer, paint_boxes
from models.data.annotations import Annotation, BoxObject
from models.data.io import DecodedImage
from tests.conftest import SHARED_DATA

W, H = 400, 300


def gradient_image(width: int = W, height: int = H, scale: float = 1.0) -> DecodedImage:
    """A synthetic image whose pixel value encodes its position (so value lookups can be checked)."""
    pw, ph = max(1, round(width * scale)), max(1, round(height * scale))
    xs = np.linspace(0, 255, pw, dtype=np.float32)[None, :].repeat(ph, 0)
    ys = np.linspace(0, 255, ph, dtype=np.float32)[:, None].repeat(pw, 1)
    pixels = np.stack([xs, ys, np.full_like(xs, 64)], axis=2).astype(np.uint8)
    return DecodedImage(pixels, width, height, 1, width, height, scale if scale < 1 else 1.0, None)


def make_canvas(qtbot, image: DecodedImage | None = None, objects: list[BoxObject] | None = None,
                size: tuple[int, int] = (640, 480)) -> Canvas:
    image = image if image is not None else gradient_image()
    model = AnnotationModel()
    model.set_annotation(Annotation(objects=list(objects or [])), image.width, image.height)
    model.set_current_class("cat")
    canvas = Canvas(model)
    qtbot.addWidget(canvas)
    canvas.resize(*size)
    canvas.show()
    qtbot.waitExposed(canvas)
    canvas.set_undo_stack(QUndoStack(canvas))
    canvas.set_image(image)
    return canvas


def to_view(canvas: Canvas, x: float, y: float) -> QPointF:
    """Viewport position of image point (x, y)."""
    return canvas.viewportTransform().map(QPointF(x, y))


def to_scene(canvas: Canvas, p: QPointF) -> QPointF:
    inv, _ = canvas.viewportTransform().inverted()
    return inv.map(p)


def _send(canvas: Canvas, etype: QEvent.Type, pos: QPointF, button: Qt.MouseButton, buttons: Qt.MouseButton,
          modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
    vp = canvas.viewport()
    ev = QMouseEvent(etype, QPointF(pos), QPointF(vp.mapToGlobal(pos.toPoint())), button, buttons, modifiers)
    QApplication.sendEvent(vp, ev)


def press(canvas: Canvas, pos: QPointF, button: Qt.MouseButton = Qt.MouseButton.LeftButton,
          modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
    _send(canvas, QEvent.Type.MouseButtonPress, pos, button, button, modifiers)


def move(canvas: Canvas, pos: QPointF, buttons: Qt.MouseButton = Qt.MouseButton.LeftButton,
         modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
    _send(canvas, QEvent.Type.MouseMove, pos, Qt.MouseButton.NoButton, buttons, modifiers)


def release(canvas: Canvas, pos: QPointF, button: Qt.MouseButton = Qt.MouseButton.LeftButton,
            modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
    _send(canvas, QEvent.Type.MouseButtonRelease, pos, button, Qt.MouseButton.NoButton, modifiers)


def drag(canvas: Canvas, start: QPointF, end: QPointF, button: Qt.MouseButton = Qt.MouseButton.LeftButton,
         modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier, steps: int = 4) -> None:
    """Press at ``start``, move in ``steps`` with the button held, release at ``end`` (viewport coords)."""
    press(canvas, start, button, modifiers)
    for k in range(1, steps + 1):
        t = k / steps
        move(canvas, start + (end - start) * t, button, modifiers)
    release(canvas, end, button, modifiers)


def drag_image(canvas: Canvas, x0: float, y0: float, x1: float, y1: float, **kw: object) -> None:
    """Drag between two image points."""
    drag(canvas, to_view(canvas, x0, y0), to_view(canvas, x1, y1), **kw)  # type: ignore[arg-type]


# --- tests -------------------------------------------------------------------------------------------------
def test_fit_window_shows_whole_image_centred(qtbot):
    canvas = make_canvas(qtbot)
    vp = canvas.viewport().rect()
    tl, br = to_view(canvas, 0, 0), to_view(canvas, W, H)
    assert tl.x() >= -0.5 and tl.y() >= -0.5 and br.x() <= vp.width() + 0.5 and br.y() <= vp.height() + 0.5
    # Fills one dimension, centred in the other.
    assert max(br.x() - tl.x(), br.y() - tl.y()) >= min(vp.width(), vp.height()) - 4
    centre = to_view(canvas, W / 2, H / 2)
    assert abs(centre.x() - vp.width() / 2) <= 2 and abs(centre.y() - vp.height() / 2) <= 2


def test_zoom_in_out_actual_size(qtbot):
    canvas = make_canvas(qtbot)
    fit = canvas.zoom
    canvas.zoom_in()
    assert canvas.zoom == pytest.approx(fit * 1.25)
    canvas.zoom_out()
    canvas.zoom_out()
    assert canvas.zoom == pytest.approx(fit / 1.25)
    canvas.actual_size()
    assert canvas.zoom == pytest.approx(1.0)
    canvas.fit_window()
    assert canvas.zoom == pytest.approx(fit)


def test_wheel_zooms_around_the_cursor(qtbot):
    canvas = make_canvas(qtbot)
    anchor = to_view(canvas, 100, 80)
    before = canvas.zoom
    ev = QWheelEvent(anchor, QPointF(canvas.viewport().mapToGlobal(anchor.toPoint())), QPoint(0, 0),
                     QPoint(0, 240), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                     Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(canvas.viewport(), ev)
    assert canvas.zoom > before * 1.3
    p = to_scene(canvas, anchor)
    assert p.x() == pytest.approx(100, abs=1.0) and p.y() == pytest.approx(80, abs=1.0)


def test_pan_with_middle_button_and_ctrl_drag(qtbot):
    canvas = make_canvas(qtbot)
    canvas.set_zoom(4.0)
    centre = QPointF(canvas.viewport().rect().center())
    before = to_scene(canvas, centre)
    drag(canvas, centre, centre + QPointF(80, 40), button=Qt.MouseButton.MiddleButton)
    after = to_scene(canvas, centre)
    # Content follows the mouse: the image point under the centre moved up-left by 80/4, 40/4 pixels.
    assert after.x() == pytest.approx(before.x() - 20, abs=0.5)
    assert after.y() == pytest.approx(before.y() - 10, abs=0.5)
    # Ctrl+left drag pans too, even in create mode, and never draws a box.
    canvas.set_create_mode()
    drag(canvas, centre, centre - QPointF(40, 0), modifiers=Qt.KeyboardModifier.ControlModifier)
    assert to_scene(canvas, centre).x() == pytest.approx(after.x() + 10, abs=0.5)
    assert canvas.model.objects == []
    assert canvas.mode == CREATE_MODE


def test_reduced_preview_keeps_full_resolution_coordinates(qtbot):
    big = gradient_image(2000, 1500, scale=0.25)  # preview 500×375
    assert big.pixels.shape[:2] == (375, 500)
    canvas = make_canvas(qtbot, big)
    layer = canvas.image_layer
    assert layer.boundingRect().width() == 2000 and layer.boundingRect().height() == 1500
    assert canvas.ground_truth_layer.image_width == 2000
    # A box drawn on screen lands in full-resolution pixels.
    canvas.set_create_mode()
    drag_image(canvas, 400, 300, 1200, 900)
    (obj,) = canvas.model.objects
    assert obj.box == pytest.approx((400, 300, 1200, 900), abs=1)
    # The value under the cursor comes from the matching preview pixel.
    seen = []
    canvas.cursorMoved.connect(lambda x, y, v: seen.append((x, y, v)))
    move(canvas, to_view(canvas, 1999, 1499), Qt.MouseButton.NoButton)
    x, y, v = seen[-1]
    assert x == pytest.approx(1999, abs=1) and y == pytest.approx(1499, abs=1)
    assert v == tuple(int(c) for c in big.pixels[-1, -1])
    move(canvas, to_view(canvas, -50, 10), Qt.MouseButton.NoButton)
    assert seen[-1][2] is None


def test_brightness_contrast_changes_only_the_display(qtbot):
    image = gradient_image()
    original = image.pixels.copy()
    canvas = make_canvas(qtbot, image)
    before = canvas.image_layer.pixmap.toImage().pixelColor(200, 150)
    canvas.set_brightness_contrast(0.2, 1.5)
    after = canvas.image_layer.pixmap.toImage().pixelColor(200, 150)
    expected_g = int(np.clip(round((int(original[150, 200, 1]) - 128) * 1.5 + 128 + 0.2 * 255), 0, 255))
    assert after.green() == expected_g and after.green() != before.green()
    assert np.array_equal(image.pixels, original)  # the data itself is untouched
    canvas.set_brightness_contrast(0.0, 1.0)
    assert canvas.image_layer.pixmap.toImage().pixelColor(200, 150) == before


def test_layers_are_added_and_reported(qtbot):
    canvas = make_canvas(qtbot)
    names = [layer.name for layer in canvas.layers()]
    assert names == ["Image", "Ground truth"]
    added = []
    canvas.layerAdded.connect(added.append)
    layer = BoxArrayLayer("Proposals")
    canvas.add_layer(layer)
    assert added == [layer] and canvas.layers()[-1] is layer
    assert layer.image_width == W and layer.image_height == H
    canvas.remove_layer(layer)
    assert layer not in canvas.layers()


def test_box_array_layer_paints_thousands_of_boxes_in_one_pass(qtbot):
    canvas = make_canvas(qtbot, gradient_image(), size=(400, 300))
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 300, (5000, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(2, 90, (5000, 2))], axis=1).astype(np.float32)
    colors = rng.integers(0, 255, (5000, 3), dtype=np.uint8)
    colors[:, 0] = 255  # keep some red in every colour
    layer = BoxArrayLayer("Anchors")
    layer.set_boxes(boxes, colors)
    canvas.add_layer(layer)
    img = canvas.viewport().grab().toImage()
    assert not img.isNull()
    # paint_boxes culls to the exposed rect.
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QImage, QPainter
    target = QImage(50, 50, QImage.Format.Format_ARGB32)
    target.fill(0)
    p = QPainter(target)
    drawn = paint_boxes(p, boxes, colors, QRectF(0, 0, 10, 10))
    p.end()
    inside = ((boxes[:, 0] <= 10) & (boxes[:, 1] <= 10)).sum()
    assert drawn == inside and 0 < drawn < 5000


def test_crosshair_and_modes(qtbot):
    canvas = make_canvas(qtbot)
    modes = []
    canvas.modeChanged.connect(modes.append)
    canvas.set_crosshair(True)
    move(canvas, to_view(canvas, 50, 50), Qt.MouseButton.NoButton)
    assert not canvas.viewport().grab().isNull()
    canvas.set_create_mode()
    canvas.set_create_mode()
    canvas.set_edit_mode()
    assert modes == [CREATE_MODE, EDIT_MODE]


def test_empty_canvas_ignores_clicks(qtbot):
    model = AnnotationModel()
    canvas = Canvas(model)
    qtbot.addWidget(canvas)
    canvas.resize(300, 200)
    canvas.show()
    canvas.set_image(None)
    canvas.set_create_mode()
    drag(canvas, QPointF(10, 10), QPointF(100, 100))
    canvas.zoom_in()
    canvas.fit_window()
    assert model.objects == []


def _coco_image() -> str | None:
    files = sorted(glob.glob(str(SHARED_DATA / "coco_tiny" / "val2017" / "*.jpg")))
    return files[0] if files else None


@pytest.mark.skipif(_coco_image() is None, reason="shared coco_tiny data not present")
def test_screenshot_real_image_with_selection(qtbot):
    from models.data.io import read_image

    image = read_image(_coco_image())
    w, h = image.width, image.height
    objs = [BoxObject("person", (0.08 * w, 0.12 * h, 0.45 * w, 0.9 * h)),
            BoxObject("dog", (0.5 * w, 0.3 * h, 0.85 * w, 0.6 * h), difficult=True),
            BoxObject("car", (0.02 * w, 0.02 * h, 0.2 * w, 0.12 * h), truncated=True)]
    canvas = make_canvas(qtbot, image, objs, size=(900, 700))
    canvas.model.select([0])
    canvas.set_crosshair(True)
    move(canvas, to_view(canvas, 0.6 * w, 0.75 * h), Qt.MouseButton.NoButton)
    pix = canvas.grab()
    assert pix.save("/tmp/g1_canvas.png")
    img = pix.toImage()
    # A selected box's top-left handle is white-filled with a dark border.
    p = to_view(canvas, *objs[0].box[:2]).toPoint()
    assert img.pixelColor(p).lightness() > 200


def test_an_objects_outline_is_drawn_inside_its_box_and_not_while_the_box_is_dragged(qtbot):
    """A COCO or YOLO polygon (what copy-paste cuts along) shows as a thin line in the class colour; a plain
    box shows none, and a box being moved hides it (the outline would stay behind)."""
    flat = DecodedImage(np.full((H, W, 3), 128, np.uint8), W, H, 1, W, H, 1.0)
    # a diamond inside the box: its left corner, far from every box edge, is where only the outline draws
    diamond = ((100.0, 150.0, 200.0, 60.0, 300.0, 150.0, 200.0, 240.0),)
    plain = make_canvas(qtbot, flat, [BoxObject("cat", (50.0, 40.0, 350.0, 260.0))], size=(W, H))
    outlined = make_canvas(qtbot, flat, [BoxObject("cat", (50.0, 40.0, 350.0, 260.0), outline=diamond)],
                           size=(W, H))

    def near_corner(canvas: Canvas) -> int:
        img = canvas.viewport().grab().toImage()
        p = to_view(canvas, 101, 150)
        return sum(img.pixelColor(int(p.x()) + dx, int(p.y()) + dy) != img.pixelColor(int(p.x()) - 20, int(p.y()))
                   for dx in (-1, 0, 1) for dy in (-1, 0, 1))

    assert near_corner(plain) == 0 and near_corner(outlined) > 0
    layer = outlined.ground_truth_layer
    hit = layer.hit_test(QPointF(200, 150), 1.0)
    assert hit is not None and hit.index == 0
    layer.begin_drag(hit, QPointF(200, 150))
    layer.drag_to(QPointF(210, 150))  # the box follows the mouse; the model is not touched until release
    assert near_corner(outlined) == 0
