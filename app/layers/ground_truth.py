"""The editable ground-truth layer: paints the model's boxes and turns drags into undo commands.

One item paints every box (see ``app.layers.base``). It also owns the geometry of editing — hit-testing
box interiors, edges and the 8 resize handles, and the live preview of a move or resize — so the canvas
only routes mouse events. During a drag the model is NOT touched: the layer shows a preview, and on release
returns one undo command (so autosave and undo see exactly one edit per gesture).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainter, QPolygonF, QUndoCommand
from PySide6.QtWidgets import QGraphicsItem

from app.annotation_model import AnnotationModel, Box
from app.commands import SetBoxesCommand
from app.layers.base import OverlayLayer, class_color, cosmetic_pen, paint_boxes, paint_labels, visible_mask
from models.data.annotations import BoxObject

#: Opacity (0-255) of an object's outline: seen, but under its box.
OUTLINE_ALPHA = 170
#: Handle order around a box: corners and edge midpoints, clockwise from top-left.
HANDLE_TL, HANDLE_T, HANDLE_TR, HANDLE_R, HANDLE_BR, HANDLE_B, HANDLE_BL, HANDLE_L = range(8)
#: For each handle, which edges it moves: (moves x1, moves y1, moves x2, moves y2).
_HANDLE_EDGES = {
    HANDLE_TL: (True, True, False, False), HANDLE_T: (False, True, False, False),
    HANDLE_TR: (False, True, True, False), HANDLE_R: (False, False, True, False),
    HANDLE_BR: (False, False, True, True), HANDLE_B: (False, False, False, True),
    HANDLE_BL: (True, False, False, True), HANDLE_L: (True, False, False, False),
}
_HANDLE_CURSORS = {
    HANDLE_TL: Qt.CursorShape.SizeFDiagCursor, HANDLE_BR: Qt.CursorShape.SizeFDiagCursor,
    HANDLE_TR: Qt.CursorShape.SizeBDiagCursor, HANDLE_BL: Qt.CursorShape.SizeBDiagCursor,
    HANDLE_T: Qt.CursorShape.SizeVerCursor, HANDLE_B: Qt.CursorShape.SizeVerCursor,
    HANDLE_L: Qt.CursorShape.SizeHorCursor, HANDLE_R: Qt.CursorShape.SizeHorCursor,
}


def handle_points(box: Box) -> list[QPointF]:
    """The 8 handle centres of ``box`` in scene coordinates, in HANDLE_* order."""
    x1, y1, x2, y2 = box
    xm, ym = (x1 + x2) / 2, (y1 + y2) / 2
    return [QPointF(x1, y1), QPointF(xm, y1), QPointF(x2, y1), QPointF(x2, ym),
            QPointF(x2, y2), QPointF(xm, y2), QPointF(x1, y2), QPointF(x1, ym)]


@dataclass(frozen=True)
class Hit:
    """What is under a point: a resize handle of a selected box, or a box (interior or edge)."""

    kind: str  # "handle" or "box"
    index: int
    handle: int = -1

    def cursor(self) -> Qt.CursorShape:
        if self.kind == "handle":
            return _HANDLE_CURSORS[self.handle]
        return Qt.CursorShape.SizeAllCursor


class GroundTruthLayer(OverlayLayer):
    """Editable GT boxes of an ``AnnotationModel`` with class colours, labels, selection and handles."""

    #: Handle square side and hit tolerance, in screen pixels.
    HANDLE_SIZE = 8.0
    TOLERANCE = 4.0

    def __init__(self, model: AnnotationModel, parent: QGraphicsItem | None = None) -> None:
        super().__init__("Ground truth", parent)
        self._model = model
        self._preview: dict[int, Box] = {}
        self._drawing: Box | None = None
        self._drawing_color = QColor(255, 255, 255)
        self._hover = -1
        self._drag: _Drag | None = None
        self.setZValue(100)
        model.changed.connect(self._on_model_changed)
        model.selectionChanged.connect(self.update)
        model.annotationReset.connect(self._on_reset)

    @property
    def model(self) -> AnnotationModel:
        return self._model

    def _on_model_changed(self) -> None:
        # An edit from elsewhere (undo shortcut mid-drag, box editor) invalidates the drag's indices.
        if self._drag is not None:
            self.cancel_drag()
        self.mark_changed()

    def _on_reset(self) -> None:
        self.cancel_drag()
        self._hover = -1
        self.mark_changed()

    # --- geometry -----------------------------------------------------------------------------------------
    def displayed_box(self, i: int) -> Box:
        """Box ``i`` as currently shown (the drag preview while a drag is in progress)."""
        return self._preview.get(i, self._model.object(i).box)

    def hit_test(self, pos: QPointF, scale: float) -> Hit | None:
        """Handle of a selected box first, then the box under ``pos`` (see the rules below).

        ``scale`` is screen pixels per image pixel, so tolerances are the same on screen at any zoom.
        """
        n = len(self._model)
        if n == 0 or not self.isVisible():  # hidden boxes must not be grabbed by accident
            return None
        tol = self.TOLERANCE / scale
        hs = (self.HANDLE_SIZE / 2 + 2) / scale
        selected = [i for i in self._model.selected_indices if i < n]
        for i in reversed(selected):
            for h, p in enumerate(handle_points(self.displayed_box(i))):
                if abs(p.x() - pos.x()) <= hs and abs(p.y() - pos.y()) <= hs:
                    return Hit("handle", i, h)
        boxes = np.array([self.displayed_box(i) for i in range(n)], np.float64)
        x, y = pos.x(), pos.y()
        inside = ((boxes[:, 0] - tol <= x) & (x <= boxes[:, 2] + tol)
                  & (boxes[:, 1] - tol <= y) & (y <= boxes[:, 3] + tol))
        cands = np.flatnonzero(inside)
        if cands.size == 0:
            return None
        sel = [int(i) for i in cands if int(i) in selected]
        if len(selected) > 1 and sel:  # grabbing any box of a multi-selection moves them all
            return Hit("box", sel[-1])
        # Near an edge wins (that is how one grabs a big box around small ones), then the smallest box,
        # so a box nested inside another can always be picked.
        c = boxes[cands]
        edge_dist = np.minimum(np.minimum(np.abs(x - c[:, 0]), np.abs(x - c[:, 2])),
                               np.minimum(np.abs(y - c[:, 1]), np.abs(y - c[:, 3])))
        near = edge_dist <= tol
        pool = cands[near] if near.any() else cands
        c = boxes[pool]
        areas = (c[:, 2] - c[:, 0]) * (c[:, 3] - c[:, 1])
        return Hit("box", int(pool[int(np.argmin(areas))]))

    def set_hover(self, index: int) -> None:
        """Highlight box ``index`` under the mouse (-1: none), so the user sees what a click would pick."""
        if index != self._hover:
            self._hover = index
            self.update()

    # --- drawing preview ----------------------------------------------------------------------------------
    def set_drawing_box(self, box: Box | None, color: QColor | None = None) -> None:
        """The rubber band of a box being drawn (None when not drawing)."""
        self._drawing = box
        if color is not None:
            self._drawing_color = color
        self.update()

    # --- move / resize ------------------------------------------------------------------------------------
    @property
    def dragging(self) -> bool:
        return self._drag is not None

    def begin_drag(self, hit: Hit, pos: QPointF) -> None:
        """Start moving the selection (``hit.kind == 'box'``) or resizing one box (a handle)."""
        if hit.kind == "handle":
            indices = [hit.index]
        else:
            indices = self._model.selected_indices or [hit.index]
            if hit.index not in indices:
                indices = [hit.index]
        self._drag = _Drag(hit, QPointF(pos), indices, [self._model.object(i).box for i in indices])
        self._preview = {}

    def drag_to(self, pos: QPointF) -> None:
        d = self._drag
        if d is None:
            return
        d.moved = d.moved or (pos - d.start).manhattanLength() > 0
        if d.hit.kind == "handle":
            self._preview = {d.indices[0]: self._resized(d.originals[0], d.hit.handle, pos)}
        else:
            dx, dy = self._move_delta(d, pos)
            self._preview = {i: (b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy)
                             for i, b in zip(d.indices, d.originals, strict=True)}
        self.update()

    def end_drag(self, pos: QPointF, min_size: float = 1.0) -> tuple[QUndoCommand | None, str]:
        """Finish the gesture: (the undo command, or None when nothing changed / refused; a message)."""
        d = self._drag
        if d is None:
            return None, ""
        self.drag_to(pos)
        new = [self._preview.get(i, b) for i, b in zip(d.indices, d.originals, strict=True)]
        self.cancel_drag()
        if not d.moved or new == d.originals:
            return None, ""
        if d.hit.kind == "handle":
            x1, y1, x2, y2 = new[0]
            if x2 - x1 < min_size or y2 - y1 < min_size:
                return None, (f"Box too small ({x2 - x1:g}×{y2 - y1:g} px; minimum {min_size:g} px): "
                              "resize refused")
            return SetBoxesCommand(self._model, d.indices, new, "Resize box"), ""
        text = "Move box" if len(d.indices) == 1 else f"Move {len(d.indices)} boxes"
        return SetBoxesCommand(self._model, d.indices, new, text), ""

    def cancel_drag(self) -> None:
        self._drag = None
        if self._preview:
            self._preview = {}
            self.update()

    def _move_delta(self, d: _Drag, pos: QPointF) -> tuple[float, float]:
        """Translation snapped so the grabbed box's top-left lands on whole pixels, kept inside the image."""
        raw_dx, raw_dy = pos.x() - d.start.x(), pos.y() - d.start.y()
        k = d.indices.index(d.hit.index) if d.hit.index in d.indices else 0
        ax, ay = d.originals[k][0], d.originals[k][1]
        dx, dy = round(ax + raw_dx) - ax, round(ay + raw_dy) - ay
        return self._model.clamp_translation(d.originals, dx, dy)

    def _resized(self, box: Box, handle: int, pos: QPointF) -> Box:
        mx1, my1, mx2, my2 = _HANDLE_EDGES[handle]
        x1, y1, x2, y2 = box
        px, py = float(round(pos.x())), float(round(pos.y()))
        if mx1:
            x1 = px
        if my1:
            y1 = py
        if mx2:
            x2 = px
        if my2:
            y2 = py
        return self._model.clamp_box((x1, y1, x2, y2), snap=False)

    # --- painting -----------------------------------------------------------------------------------------
    def paint_layer(self, painter: QPainter, exposed: QRectF, scale: float) -> None:
        objects = self._model.objects
        n = len(objects)
        if n:
            boxes = np.array([self._preview.get(i, o.box) for i, o in enumerate(objects)], np.float64)
            colors = [class_color(o.name) for o in objects]
            difficult = np.array([o.difficult for o in objects], bool)
            crowd = np.array([o.crowd for o in objects], bool)
            # COCO crowd boxes: hatched and dotted, so a crowd region never passes for one object.
            self._paint_hatch(painter, boxes, colors, crowd & visible_mask(boxes, exposed))
            self._paint_outlines(painter, objects, colors, visible_mask(boxes, exposed))
            selected = np.zeros(n, bool)
            selected[[i for i in self._model.selected_indices if i < n]] = True
            plain = ~selected
            # A faint dark halo under every line keeps boxes visible on any background.
            paint_boxes(painter, boxes, QColor(0, 0, 0, 110), exposed, 4.0, 0, Qt.PenStyle.SolidLine, plain)
            paint_boxes(painter, boxes, colors, exposed, 2.0, 0, Qt.PenStyle.SolidLine, plain & ~difficult & ~crowd)
            paint_boxes(painter, boxes, colors, exposed, 2.0, 0, Qt.PenStyle.DashLine, plain & difficult & ~crowd)
            paint_boxes(painter, boxes, colors, exposed, 2.0, 0, Qt.PenStyle.DotLine, plain & crowd)
            if 0 <= self._hover < n and not selected[self._hover]:
                paint_boxes(painter, boxes[[self._hover]], [colors[self._hover]], exposed, 2.0, 50)
            # Selected: a dark halo under a thicker line in the class colour, a light fill, then handles.
            paint_boxes(painter, boxes, QColor(0, 0, 0, 160), exposed, 4.5, 0, Qt.PenStyle.SolidLine, selected)
            paint_boxes(painter, boxes, colors, exposed, 2.5, 35,
                        Qt.PenStyle.SolidLine, selected & ~difficult & ~crowd)
            paint_boxes(painter, boxes, colors, exposed, 2.5, 35, Qt.PenStyle.DashLine,
                        selected & difficult & ~crowd)
            paint_boxes(painter, boxes, colors, exposed, 2.5, 35, Qt.PenStyle.DotLine, selected & crowd)
            vis = np.flatnonzero(visible_mask(boxes, exposed))
            paint_labels(painter, [(boxes[i, 0], boxes[i, 1]) for i in vis],
                         [_label_text(objects[i]) for i in vis], [colors[i] for i in vis],
                         dx=self.HANDLE_SIZE / 2 + 1)
            self._paint_handles(painter, [tuple(boxes[i]) for i in np.flatnonzero(selected)])
        if self._drawing is not None:
            self._paint_drawing(painter, self._drawing)

    def _paint_outlines(self, painter: QPainter, objects: list[BoxObject], colors: list[QColor],
                        visible: np.ndarray) -> None:
        """The outline of each visible object that has one (COCO or YOLO polygons: what copy-paste cuts along),
        a thin line in its class colour under the boxes; not while its box is being dragged (the box moves, the
        outline would not)."""
        for i in np.flatnonzero(visible):
            if not objects[i].outline or i in self._preview:
                continue
            color = QColor(colors[i])
            color.setAlpha(OUTLINE_ALPHA)
            painter.setPen(cosmetic_pen(color, 1.0, painter=painter))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            for poly in objects[i].outline:
                painter.drawPolygon(QPolygonF([QPointF(x, y) for x, y in zip(poly[0::2], poly[1::2], strict=True)]))

    def _paint_hatch(self, painter: QPainter, boxes: np.ndarray, colors: list[QColor], mask: np.ndarray) -> None:
        """Diagonal hatching inside ``mask``'s boxes, in screen pixels (the same density at any zoom)."""
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            return
        t = painter.worldTransform()
        painter.save()
        painter.resetTransform()
        painter.setPen(Qt.PenStyle.NoPen)
        for i in idx.tolist():
            x1, y1, x2, y2 = boxes[i].tolist()
            color = QColor(colors[i])
            color.setAlpha(150)
            brush = QBrush(color, Qt.BrushStyle.BDiagPattern)
            painter.setBrush(brush)
            painter.drawRect(t.mapRect(QRectF(x1, y1, x2 - x1, y2 - y1)))
        painter.restore()

    def _paint_handles(self, painter: QPainter, boxes: list[Box]) -> None:
        if not boxes:
            return
        t = painter.worldTransform()
        s = self.HANDLE_SIZE
        painter.save()
        painter.resetTransform()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        painter.setPen(cosmetic_pen(QColor(20, 20, 20), 1.0, painter=painter))
        painter.setBrush(QColor(255, 255, 255))
        rects = []
        for box in boxes:
            for p in handle_points(box):
                q = t.map(p)
                rects.append(QRectF(q.x() - s / 2, q.y() - s / 2, s, s))
        painter.drawRects(rects)
        painter.restore()

    def _paint_drawing(self, painter: QPainter, box: Box) -> None:
        x1, y1, x2, y2 = box
        rect = QRectF(x1, y1, x2 - x1, y2 - y1)
        painter.save()
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(cosmetic_pen(QColor(255, 255, 255), 4.0, painter=painter))
        painter.drawRect(rect)
        painter.setPen(cosmetic_pen(self._drawing_color, 2.0, Qt.PenStyle.DashLine, painter))
        painter.drawRect(rect)
        painter.restore()
        paint_labels(painter, [(x1, y1)], [f"{x2 - x1:g} × {y2 - y1:g}"], [QColor(30, 30, 30)])


def _label_text(obj: BoxObject) -> str:
    flags = [f for f, on in (("crowd", obj.crowd), ("difficult", obj.difficult), ("truncated", obj.truncated)) if on]
    return f"{obj.name} ({', '.join(flags)})" if flags else obj.name


@dataclass
class _Drag:
    hit: Hit
    start: QPointF
    indices: list[int]
    originals: list[Box]
    moved: bool = False
