"""The labelling canvas: a QGraphicsView showing the image and its overlay layers.

Scene coordinates are ALWAYS full-resolution displayed image pixels (EXIF applied), whatever the size of
the preview actually decoded, so a box means the same pixels in every layer, in the model and on disk.

Modes follow LabelImg/labelme: in *edit* mode a left-drag selects, moves (box interior) or resizes (one of
8 handles of a selected box); ``set_create_mode`` (the main window's ``W``) makes the next left-drag draw a
box of the model's current class, then returns to edit mode. Every change is an undo command pushed on the
stack the main window hands over with ``set_undo_stack``. Pan with the middle button or Ctrl+left-drag;
the wheel zooms around the cursor.

Keyboard: only arrows (nudge 1 px, Shift 10 px) and Escape are handled here; every other shortcut is a
QAction of the main window that calls the public methods below.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QResizeEvent,
    QShowEvent,
    QTransform,
    QUndoStack,
    QWheelEvent,
)
from PySide6.QtWidgets import QFrame, QGraphicsScene, QGraphicsView, QWidget

from app.annotation_model import AnnotationModel, Box
from app.canvas_editing import CanvasEditing
from app.commands import AddObjectsCommand
from app.layers.base import OverlayLayer, class_color, cosmetic_pen
from app.layers.ground_truth import GroundTruthLayer
from app.layers.image_layer import ImageLayer
from models.data.annotations import BoxObject
from models.data.io import DecodedImage

EDIT_MODE = "edit"
CREATE_MODE = "create"

ZOOM_STEP = 1.25
#: Screen pixels the mouse must travel before a press on a box becomes a move/resize.
DRAG_THRESHOLD = 3.0
MAX_ZOOM = 64.0


class Canvas(CanvasEditing, QGraphicsView):
    """Image + overlay layers, with zoom/pan and the box labelling interaction."""

    modeChanged = Signal(str)
    #: Image coordinates under the cursor and the pixel value there (an RGB tuple, None outside the image).
    cursorMoved = Signal(float, float, object)
    #: The mouse left the canvas: hover highlights and read-outs that follow the cursor should clear.
    cursorLeft = Signal()
    layerAdded = Signal(object)
    layerRemoved = Signal(object)
    #: A one-line message for the status bar (e.g. why a box was refused).
    message = Signal(str)
    #: A box was drawn; the argument is its index in the model (the main window may ask for a class).
    boxCreated = Signal(int)
    zoomChanged = Signal(float)
    #: A left click (press and release without dragging) in edit mode, in image coordinates: the detector
    #: stages pick an anchor cell, a RoI or a box under it. Box selection happens as usual beside it.
    pointClicked = Signal(float, float)

    def __init__(self, model: AnnotationModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._model = model
        self._stack: QUndoStack | None = None
        self._mode = EDIT_MODE
        self._layers: list[OverlayLayer] = []
        self._fit = True
        self._crosshair = False
        self._cursor_scene: QPointF | None = None
        self._pan_last: QPointF | None = None
        self._draw_start: QPointF | None = None
        #: Where a box drag was pressed (viewport), and whether it moved far enough to be a drag, not a click.
        self._press_view: QPointF | None = None
        self._drag_armed = False
        self._click_view: QPointF | None = None
        self.min_box_size = 4.0

        self._scene = QGraphicsScene(self)
        # A handful of big items (one per layer): a BSP index would only cost time.
        self._scene.setItemIndexMethod(QGraphicsScene.ItemIndexMethod.NoIndex)
        self.setScene(self._scene)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setBackgroundBrush(QColor(48, 48, 52))
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # Labels and handles are drawn in screen pixels around items: repaint whole frames, no artefacts.
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.FullViewportUpdate)
        self.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
        self.setDragMode(QGraphicsView.DragMode.NoDrag)
        self.setMouseTracking(True)
        self.viewport().setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(120, 90)

        self._image_layer = ImageLayer()
        self._gt_layer = GroundTruthLayer(model)
        self.add_layer(self._image_layer)
        self.add_layer(self._gt_layer)
        model.annotationReset.connect(self._cancel_gestures)
        self._update_scene_rect()

    # --- properties ---------------------------------------------------------------------------------------
    @property
    def model(self) -> AnnotationModel:
        return self._model

    @property
    def image_layer(self) -> ImageLayer:
        return self._image_layer

    @property
    def ground_truth_layer(self) -> GroundTruthLayer:
        return self._gt_layer

    @property
    def undo_stack(self) -> QUndoStack | None:
        return self._stack

    def set_undo_stack(self, stack: QUndoStack | None) -> None:
        """The active image's stack; edits are pushed there (run directly when None)."""
        self._cancel_gestures()
        self._stack = stack

    @property
    def mode(self) -> str:
        """``"edit"`` or ``"create"``."""
        return self._mode

    @property
    def zoom(self) -> float:
        """Screen pixels per image pixel."""
        return self.transform().m11()

    def image_size(self) -> tuple[int, int]:
        return self._image_layer.image_width, self._image_layer.image_height

    def image_rect(self) -> QRectF:
        w, h = self.image_size()
        if w <= 0 or h <= 0:
            w, h = self._model.width, self._model.height
        return QRectF(0, 0, w, h)

    # --- image and layers ---------------------------------------------------------------------------------
    def set_image(self, decoded: DecodedImage | None) -> None:
        """Show ``decoded`` (a reduced preview is stretched to full-resolution coordinates) and fit it."""
        self._cancel_gestures()
        self._image_layer.set_image(decoded)
        w, h = (decoded.width, decoded.height) if decoded is not None else (0, 0)
        for layer in self._layers:
            if layer is not self._image_layer:
                layer.set_image_size(w, h)
        self.fit_window()

    def set_brightness_contrast(self, brightness: float, contrast: float) -> None:
        """Display-only adjustment: brightness -1..1 (0 = unchanged), contrast gain (1 = unchanged)."""
        self._image_layer.set_brightness_contrast(brightness, contrast)

    def add_layer(self, layer: OverlayLayer) -> None:
        """Add an overlay (z below the ground truth unless the layer sets its own z)."""
        if layer in self._layers:
            return
        self._scene.addItem(layer)
        w, h = self.image_size() if self._layers else (0, 0)
        if layer is not self._image_layer:
            layer.set_image_size(w, h)
        self._layers.append(layer)
        self.layerAdded.emit(layer)

    def remove_layer(self, layer: OverlayLayer) -> None:
        if layer not in self._layers or layer in (self._image_layer, self._gt_layer):
            return
        self._layers.remove(layer)
        self._scene.removeItem(layer)
        self.layerRemoved.emit(layer)

    def layers(self) -> list[OverlayLayer]:
        """All layers, in the order they were added (image first)."""
        return list(self._layers)

    def set_crosshair(self, on: bool) -> None:
        self._crosshair = bool(on)
        self.viewport().update()

    @property
    def crosshair(self) -> bool:
        return self._crosshair

    # --- modes --------------------------------------------------------------------------------------------
    def set_create_mode(self) -> None:
        """The next left-drag draws a box of the model's current class."""
        self._set_mode(CREATE_MODE)

    def set_edit_mode(self) -> None:
        self._set_mode(EDIT_MODE)

    def _set_mode(self, mode: str) -> None:
        self._cancel_gestures()
        self._gt_layer.set_hover(-1)
        self.viewport().setCursor(Qt.CursorShape.CrossCursor if mode == CREATE_MODE else Qt.CursorShape.ArrowCursor)
        if mode != self._mode:
            self._mode = mode
            self.modeChanged.emit(mode)

    # --- zoom and pan -------------------------------------------------------------------------------------
    def zoom_in(self) -> None:
        self._zoom_to(self.zoom * ZOOM_STEP)

    def zoom_out(self) -> None:
        self._zoom_to(self.zoom / ZOOM_STEP)

    def actual_size(self) -> None:
        """1:1 — one image pixel per screen (logical) pixel."""
        self._zoom_to(1.0)

    def set_zoom(self, zoom: float) -> None:
        self._zoom_to(zoom)

    def fit_window(self) -> None:
        """Whole image in view; stays fitted when the window resizes until the user zooms."""
        self._fit = True
        rect = self.image_rect()
        vw, vh = self.viewport().width(), self.viewport().height()
        if rect.isEmpty() or vw <= 2 or vh <= 2:
            self._update_scene_rect()
            return
        z = min((vw - 2) / rect.width(), (vh - 2) / rect.height())
        self._apply_zoom(z)
        self.centerOn(rect.center())
        self._fit = True

    def _min_zoom(self) -> float:
        rect = self.image_rect()
        if rect.isEmpty():
            return 0.01
        fit = min(max(self.viewport().width(), 1) / rect.width(), max(self.viewport().height(), 1) / rect.height())
        return max(1e-4, min(fit / 4, 0.5))

    def _zoom_to(self, zoom: float, anchor: QPointF | None = None) -> None:
        """Zoom keeping the image point under ``anchor`` (viewport coords; default the centre) fixed."""
        zoom = min(max(zoom, self._min_zoom()), MAX_ZOOM)
        if anchor is None:
            anchor = QPointF(self.viewport().rect().center())
        scene_pt = self._to_scene(anchor)
        self._apply_zoom(zoom)
        self._fit = False
        # Scroll so scene_pt is back under anchor.
        now = self.viewportTransform().map(scene_pt)
        d = now - anchor
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() + round(d.x()))
        self.verticalScrollBar().setValue(self.verticalScrollBar().value() + round(d.y()))

    def _apply_zoom(self, zoom: float) -> None:
        self.setTransform(QTransform.fromScale(zoom, zoom))
        self._update_scene_rect()
        self.zoomChanged.emit(zoom)

    def _update_scene_rect(self) -> None:
        """Image plus half a viewport all round, so any image point can be brought to the view centre."""
        rect = self.image_rect()
        if rect.isEmpty():
            rect = QRectF(0, 0, 1, 1)
        z = self.zoom or 1.0
        mx = self.viewport().width() / 2 / z
        my = self.viewport().height() / 2 / z
        self._scene.setSceneRect(rect.adjusted(-mx, -my, mx, my))

    def pan_by(self, dx: float, dy: float) -> None:
        """Move the view by (dx, dy) screen pixels (content follows the mouse when dragging)."""
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - round(dx))
        self.verticalScrollBar().setValue(self.verticalScrollBar().value() - round(dy))

    def _to_scene(self, p: QPointF) -> QPointF:
        inv, _ok = self.viewportTransform().inverted()
        return inv.map(QPointF(p))

    # --- events -------------------------------------------------------------------------------------------
    def _cancel_gestures(self) -> None:
        self._draw_start = None
        self._press_view = None
        self._drag_armed = False
        self._gt_layer.set_drawing_box(None)
        self._gt_layer.cancel_drag()

    def _clamped_point(self, p: QPointF) -> QPointF:
        r = self.image_rect()
        return QPointF(min(max(p.x(), r.left()), r.right()), min(max(p.y(), r.top()), r.bottom()))

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        pos = self._to_scene(event.position())
        button = event.button()
        ctrl = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
        if button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.LeftButton and ctrl):
            self._pan_last = QPointF(event.position())
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        if button != Qt.MouseButton.LeftButton or self.image_rect().isEmpty():
            super().mousePressEvent(event)
            return
        event.accept()
        if self._mode == CREATE_MODE:
            self._draw_start = self._clamped_point(pos)
            self._gt_layer.set_drawing_box(self._drawing_box(pos), class_color(self._model.class_for_new_box()))
            return
        self._click_view = QPointF(event.position())
        hit = self._gt_layer.hit_test(pos, self.zoom)
        shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if hit is None:
            if not shift:
                self._model.clear_selection()
            return
        if shift:  # toggle membership, no drag
            sel = set(self._model.selected_indices)
            sel ^= {hit.index}
            self._model.select(sel)
            return
        if hit.kind == "box" and hit.index not in self._model.selected_indices:
            self._model.select([hit.index])
        self._gt_layer.begin_drag(hit, pos)
        self._press_view = QPointF(event.position())
        self._drag_armed = False

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        pos = self._to_scene(event.position())
        self._cursor_scene = pos
        if self._pan_last is not None:
            d = event.position() - self._pan_last
            self._pan_last = QPointF(event.position())
            self.pan_by(d.x(), d.y())
        elif self._draw_start is not None:
            self._gt_layer.set_drawing_box(self._drawing_box(pos))
        elif self._gt_layer.dragging:
            if not self._drag_armed and self._press_view is not None:
                # A click that jitters by a pixel must not become a 1-px move in the undo history.
                self._drag_armed = (event.position() - self._press_view).manhattanLength() >= DRAG_THRESHOLD
            if self._drag_armed:
                self._gt_layer.drag_to(pos)
        elif self._mode == EDIT_MODE:
            hit = self._gt_layer.hit_test(pos, self.zoom)
            self._gt_layer.set_hover(hit.index if hit is not None else -1)
            self.viewport().setCursor(hit.cursor() if hit is not None else Qt.CursorShape.ArrowCursor)
        value = self._image_layer.value_at(pos.x(), pos.y())
        self.cursorMoved.emit(pos.x(), pos.y(), value)
        if self._crosshair:
            self.viewport().update()
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        pos = self._to_scene(event.position())
        if self._pan_last is not None and event.button() in (Qt.MouseButton.MiddleButton, Qt.MouseButton.LeftButton):
            self._pan_last = None
            self.viewport().setCursor(Qt.CursorShape.CrossCursor if self._mode == CREATE_MODE
                                      else Qt.CursorShape.ArrowCursor)
            event.accept()
            return
        if event.button() != Qt.MouseButton.LeftButton:
            super().mouseReleaseEvent(event)
            return
        event.accept()
        click, self._click_view = self._click_view, None
        if click is not None and (event.position() - click).manhattanLength() < DRAG_THRESHOLD:
            self.pointClicked.emit(pos.x(), pos.y())
        if self._draw_start is not None:
            self._finish_drawing(pos)
        elif self._gt_layer.dragging and not self._drag_armed and (
                self._press_view is None
                or (event.position() - self._press_view).manhattanLength() < DRAG_THRESHOLD):
            self._gt_layer.cancel_drag()
        elif self._gt_layer.dragging:
            cmd, msg = self._gt_layer.end_drag(pos, self.min_box_size)
            if cmd is not None:
                self._push(cmd)
            if msg:
                self.message.emit(msg)

    def _drawing_box(self, pos: QPointF) -> Box:
        assert self._draw_start is not None
        p = self._clamped_point(pos)
        return self._model.clamp_box((self._draw_start.x(), self._draw_start.y(), p.x(), p.y()), snap=True)

    def _finish_drawing(self, pos: QPointF) -> None:
        box = self._drawing_box(pos)
        self._draw_start = None
        self._gt_layer.set_drawing_box(None)
        w, h = box[2] - box[0], box[3] - box[1]
        if w < self.min_box_size or h < self.min_box_size:
            self.message.emit(f"Box too small ({w:g}×{h:g} px; minimum {self.min_box_size:g} px): not added")
            return  # stay in create mode: the user meant to draw a box
        if not self._gt_layer.isVisible():  # a new box nobody can see would be a trap
            self._gt_layer.setVisible(True)
        obj = BoxObject(self._model.class_for_new_box(), box)
        cmd = AddObjectsCommand(self._model, [obj], "Draw box")
        self._push(cmd)
        self.set_edit_mode()
        self.boxCreated.emit(cmd.indices[0])

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt's name
        """Mouse wheel zooms around the cursor; a trackpad's two-finger scroll pans (pinch or Ctrl zooms)."""
        ctrl = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
        if not event.pixelDelta().isNull() and not ctrl:
            self.pan_by(event.pixelDelta().x(), event.pixelDelta().y())
            event.accept()
            return
        delta = event.angleDelta().y() or event.angleDelta().x()
        if delta == 0:
            event.ignore()
            return
        self._zoom_to(self.zoom * (1.0015 ** delta), event.position())
        event.accept()

    def viewportEvent(self, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.NativeGesture:
            gesture = event  # QNativeGestureEvent: trackpad pinch
            if gesture.gestureType() == Qt.NativeGestureType.ZoomNativeGesture:
                self._zoom_to(self.zoom * (1.0 + gesture.value()), gesture.position())
                return True
        return super().viewportEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        key = event.key()
        steps = {Qt.Key.Key_Left: (-1, 0), Qt.Key.Key_Right: (1, 0), Qt.Key.Key_Up: (0, -1), Qt.Key.Key_Down: (0, 1)}
        if key in steps and self._model.selected_indices:
            step = 10 if event.modifiers() & Qt.KeyboardModifier.ShiftModifier else 1
            dx, dy = steps[key]
            self.nudge_selected(dx * step, dy * step)
            event.accept()
            return
        if key == Qt.Key.Key_Escape:
            busy = self._draw_start is not None or self._gt_layer.dragging
            if self._mode == CREATE_MODE or busy:
                self.set_edit_mode()
            else:
                self._model.clear_selection()
            event.accept()
            return
        super().keyPressEvent(event)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        if self._fit:
            self.fit_window()
        else:
            self._update_scene_rect()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if self._fit:
            self.fit_window()

    def leaveEvent(self, event: object) -> None:  # noqa: N802 - Qt's name
        self._cursor_scene = None
        self._gt_layer.set_hover(-1)
        if self._crosshair:
            self.viewport().update()
        self.cursorLeft.emit()
        super().leaveEvent(event)  # type: ignore[arg-type]

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802 - Qt's name
        if not self._crosshair or self._cursor_scene is None:
            return
        img = self.image_rect()
        p = self._cursor_scene
        if img.isEmpty() or not img.contains(p):
            return
        painter.save()
        painter.setPen(cosmetic_pen(QColor(255, 255, 255, 170), 1.0, Qt.PenStyle.DashLine, painter))
        painter.drawLine(QPointF(img.left(), p.y()), QPointF(img.right(), p.y()))
        painter.drawLine(QPointF(p.x(), img.top()), QPointF(p.x(), img.bottom()))
        painter.restore()
