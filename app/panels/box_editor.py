"""The box editor: class, exact coordinates and flags (difficult, truncated, COCO crowd) of the selected box(es).

Why every change is an undo command: the box editor is just another way to edit, and the user must be able
to undo a typo in a coordinate like a mouse drag. Spin-box arrow clicks on the same field merge into one
undo step (``EditObjectsCommand`` merge keys). With several boxes selected, class and flags apply to all of
them; coordinates need exactly one.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QUndoStack
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from app.annotation_model import AnnotationModel
from app.commands import EditObjectsCommand, apply, set_property

_COORDS = ("x1", "y1", "x2", "y2")


class BoxEditor(QWidget):
    """Shows and edits the selection of an ``AnnotationModel``; pushes commands on the given undo stack."""

    def __init__(self, model: AnnotationModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._model = model
        self._stack: QUndoStack | None = None
        self._updating = False

        self.header = QLabel()
        self.header.setWordWrap(True)
        self.class_combo = QComboBox()
        self.class_combo.setEditable(True)
        self.class_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.class_combo.setToolTip("Class of the selected box(es); type a new name and press Enter")
        self.spins: dict[str, QDoubleSpinBox] = {}
        for name in _COORDS:
            spin = QDoubleSpinBox()
            spin.setDecimals(2)
            spin.setSingleStep(1.0)
            spin.setKeyboardTracking(False)  # one edit per Enter/focus-out, not per keystroke
            spin.setAccelerated(True)
            spin.setToolTip(f"{name} in full-resolution image pixels (x2/y2 exclusive)")
            self.spins[name] = spin
        self.difficult = QCheckBox("difficult")
        self.difficult.setToolTip("Hard to recognise: ignored by VOC evaluation (neither hit nor miss)")
        self.truncated = QCheckBox("truncated")
        self.truncated.setToolTip("The object extends beyond the box (cut by the image border or occluded)")
        self.crowd = QCheckBox("crowd")
        self.crowd.setToolTip("COCO iscrowd: the box covers a group of objects (a crowd, a stack), none of them "
                              "boxed; the evaluation ignores a detection that lies mostly inside it (COCO's rule), "
                              "drawn hatched on the canvas")

        for box in (self.difficult, self.truncated, self.crowd):
            # A click must not keep the focus: Space (verified) and the digits stay the window's keys.
            box.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        form = QFormLayout()
        form.addRow("Class", self.class_combo)
        row1, row2 = QHBoxLayout(), QHBoxLayout()
        row1.addWidget(self.spins["x1"])
        row1.addWidget(self.spins["y1"])
        row2.addWidget(self.spins["x2"])
        row2.addWidget(self.spins["y2"])
        form.addRow("x1, y1", row1)
        form.addRow("x2, y2", row2)
        flags = QHBoxLayout()
        flags.addWidget(self.difficult)
        flags.addWidget(self.truncated)
        flags.addWidget(self.crowd)
        flags.addStretch(1)
        form.addRow("Flags", flags)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.header)
        lay.addLayout(form)
        lay.addStretch(1)

        for name, spin in self.spins.items():
            spin.valueChanged.connect(lambda _v, n=name: self._on_coord(n))
        self.class_combo.textActivated.connect(self._on_class)
        self.class_combo.lineEdit().editingFinished.connect(lambda: self._on_class(self.class_combo.currentText()))
        self.difficult.clicked.connect(lambda on: self._on_flag("difficult", on))
        self.truncated.clicked.connect(lambda on: self._on_flag("truncated", on))
        self.crowd.clicked.connect(lambda on: self._on_flag("crowd", on))
        model.selectionChanged.connect(self.refresh)
        model.changed.connect(self.refresh)
        model.annotationReset.connect(self.refresh)
        self.refresh()

    # --- public API ---------------------------------------------------------------------------------------
    def set_undo_stack(self, stack: QUndoStack | None) -> None:
        self._stack = stack

    def set_class_names(self, names: list[str]) -> None:
        """The class list's names, offered in the combo (typing a new one is still allowed)."""
        self._updating = True
        try:
            text = self.class_combo.currentText()
            self.class_combo.clear()
            self.class_combo.addItems(list(names))
            self.class_combo.setCurrentText(text)
        finally:
            self._updating = False
        self.refresh()

    def refresh(self) -> None:
        """Show the model's current selection."""
        sel = [i for i in self._model.selected_indices if i < len(self._model)]
        self._updating = True
        try:
            any_sel = bool(sel)
            one = len(sel) == 1
            self.class_combo.setEnabled(any_sel)
            self.difficult.setEnabled(any_sel)
            self.truncated.setEnabled(any_sel)
            self.crowd.setEnabled(any_sel)
            for spin in self.spins.values():
                spin.setEnabled(one)
            if not any_sel:
                self.header.setText("No box selected")
                self.class_combo.setCurrentText("")
                for spin in self.spins.values():
                    spin.setRange(0, 0)
                    spin.setValue(0)
                self.difficult.setChecked(False)
                self.truncated.setChecked(False)
                self.crowd.setChecked(False)
                return
            objs = [self._model.object(i) for i in sel]
            names = {o.name for o in objs}
            self.header.setText(f"Box {sel[0] + 1} of {len(self._model)}" if one
                                else f"{len(sel)} boxes selected")
            self.class_combo.setCurrentText(objs[0].name if len(names) == 1 else "")
            self.difficult.setChecked(all(o.difficult for o in objs))
            self.truncated.setChecked(all(o.truncated for o in objs))
            self.crowd.setChecked(all(o.crowd for o in objs))
            x1, y1, x2, y2 = objs[0].box
            w = self._model.width or 1_000_000
            h = self._model.height or 1_000_000
            # Ranges keep x1 < x2 and y1 < y2 inside the image: an invalid box cannot be typed.
            self._set_spin("x1", x1, 0, max(0.0, x2 - 1))
            self._set_spin("x2", x2, min(float(w), x1 + 1), float(w))
            self._set_spin("y1", y1, 0, max(0.0, y2 - 1))
            self._set_spin("y2", y2, min(float(h), y1 + 1), float(h))
        finally:
            self._updating = False

    def _set_spin(self, name: str, value: float, lo: float, hi: float) -> None:
        spin = self.spins[name]
        spin.setRange(lo, max(lo, hi))
        spin.setValue(value)

    # --- edits --------------------------------------------------------------------------------------------
    def _push(self, cmd: EditObjectsCommand | None) -> None:
        if cmd is not None:
            apply(self._stack, cmd)

    def _on_coord(self, name: str) -> None:
        if self._updating:
            return
        sel = self._model.selected_indices
        if len(sel) != 1:
            return
        obj = self._model.object(sel[0])
        box = list(obj.box)
        k = _COORDS.index(name)
        box[k] = float(self.spins[name].value())
        if box[2] <= box[0] or box[3] <= box[1]:
            self.refresh()
            return
        if tuple(box) == obj.box:
            return
        self._push(EditObjectsCommand(self._model, sel, [obj.moved(tuple(box))],
                                      f"Set {name}", merge_key=f"coord:{name}"))

    def _on_class(self, name: str) -> None:
        if self._updating:
            return
        name = name.strip()
        sel = self._model.selected_indices
        if not name or not sel:
            return
        self._push(set_property(self._model, sel, f"Set class to {name}", name=name))

    def _on_flag(self, flag: str, on: bool) -> None:
        if self._updating:
            return
        sel = self._model.selected_indices
        if sel:
            self._push(set_property(self._model, sel, f"{'Set' if on else 'Clear'} {flag}", **{flag: bool(on)}))

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        hint = super().sizeHint()
        hint.setWidth(max(hint.width(), 220))
        return hint

