"""The main window's actions, menus and toolbar, and the guard that keeps single keys for text fields.

Why all shortcuts live here: one place decides what a key does, so the shortcut sheet lists them all and no
two widgets fight over a key. ``WindowActions`` is a mixin of ``MainWindow``; it only builds QActions that
call the window's methods. Single-key shortcuts (digits, W, A, D, Space, Delete…) must never act while the
user types into a text or number field: ``SingleKeyGuard`` claims such keys for the focused field.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, QSize, Qt
from PySide6.QtGui import QAction, QIcon, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QStyle,
    QTextEdit,
    QToolBar,
    QWidget,
)

ICON_DIR = Path(__file__).resolve().parents[1] / "resources" / "icons"

#: Toolbar icons: action attribute -> (freedesktop theme name, QStyle fallback or a file in resources/icons).
TOOLBAR_ICONS: dict[str, tuple[str, QStyle.StandardPixmap | str]] = {
    "act_open": ("document-open", QStyle.StandardPixmap.SP_DialogOpenButton),
    "act_open_dir": ("folder-open", QStyle.StandardPixmap.SP_DirOpenIcon),
    "act_prev": ("go-previous", QStyle.StandardPixmap.SP_ArrowBack),
    "act_next": ("go-next", QStyle.StandardPixmap.SP_ArrowForward),
    "act_create": ("", "create_box.svg"),
    "act_save": ("document-save", QStyle.StandardPixmap.SP_DialogSaveButton),
    "act_fit": ("zoom-fit-best", "zoom_fit.svg"),
    "act_undo": ("edit-undo", QStyle.StandardPixmap.SP_ArrowLeft),
    "act_redo": ("edit-redo", QStyle.StandardPixmap.SP_ArrowRight),
}


def themed_icon(widget: QWidget, theme: str, fallback: QStyle.StandardPixmap | str) -> QIcon:
    """The desktop theme's icon when it has one, else Qt's standard icon or our own SVG."""
    if isinstance(fallback, str):
        fb = QIcon(str(ICON_DIR / fallback))
    else:
        fb = widget.style().standardIcon(fallback)
    return QIcon.fromTheme(theme, fb) if theme else fb


def is_single_key(event: QKeyEvent) -> bool:
    """A key without Ctrl/Alt/Meta (Shift and keypad allowed), other than Escape and the F-keys."""
    mods = event.modifiers() & ~(Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.KeypadModifier)
    if mods != Qt.KeyboardModifier.NoModifier:
        return False
    return not (event.key() == Qt.Key.Key_Escape or Qt.Key.Key_F1 <= event.key() <= Qt.Key.Key_F35)


def wants_key(widget: QObject | None, event: QKeyEvent) -> bool:
    """Whether the focused ``widget`` should get ``event`` rather than a window shortcut."""
    if not isinstance(widget, QWidget) or not is_single_key(event):
        return False
    if isinstance(widget, QComboBox):
        return widget.isEditable()
    if isinstance(widget, (QLineEdit, QAbstractSpinBox, QTextEdit, QPlainTextEdit)):
        return not (isinstance(widget, QLineEdit) and widget.isReadOnly())
    if isinstance(widget, QAbstractButton):  # Space/Enter press a focused button or tick a check box
        return event.key() in (Qt.Key.Key_Space, Qt.Key.Key_Return, Qt.Key.Key_Enter)
    return False


class SingleKeyGuard(QObject):
    """Application event filter: a focused text/number field (or button, for Space) keeps single keys.

    Qt asks the focus widget first (a ShortcutOverride event); accepting it delivers the key to the widget
    instead of triggering the window's shortcut. Line edits already do this for most keys; spin boxes in
    some styles, check boxes (Space) and editable combos do not reliably, so we decide it here, once.
    """

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.ShortcutOverride and wants_key(obj, event):  # type: ignore[arg-type]
            event.accept()
        return False


class WindowActions:
    """Mixin: every QAction of the window, the menu bar and the toolbar."""

    def _action(self, text: str, slot: Callable[..., Any], keys: str | list[str] | QKeySequence.StandardKey = "",
                tip: str = "", checkable: bool = False) -> QAction:
        a = QAction(text, self)  # type: ignore[arg-type]
        if isinstance(keys, QKeySequence.StandardKey):
            a.setShortcuts(keys)
        elif keys:
            a.setShortcuts([QKeySequence(k) for k in ([keys] if isinstance(keys, str) else keys)])
        if tip:
            a.setToolTip(tip)
            a.setStatusTip(tip)
        a.setCheckable(checkable)
        a.triggered.connect(slot)
        self.addAction(a)  # type: ignore[attr-defined]  # shortcuts work whichever dock has the focus
        return a

    def _make_actions(self) -> None:
        w: Any = self
        A = self._action
        w.act_open = A("&Open Image or Dataset…", w._ask_open_file, "Ctrl+O",
                       "Open an image, a COCO JSON or a dataset folder")
        w.act_open_dir = A("Open &Folder…", w._ask_open_folder, "Ctrl+U",
                           "Open a folder of images (recursive), a VOC root or a YOLO folder")
        w.act_save = A("&Save", w.save, "Ctrl+S", "Write every unsaved edit now")
        w.act_autosave = A("&Autosave", w.document.set_autosave, "", "Write every edit within a second",
                           checkable=True)
        w.act_autosave.setChecked(w.document.autosave)
        w.act_prompt = A("Ask for the &Class after Drawing", w.set_label_prompt, "",
                         "After drawing a box, ask for its class (off: it takes the current class)",
                         checkable=True)
        w.act_prompt.setChecked(w.settings.label_prompt())
        w.act_annotation_dir = A("Change Annotation &Folder…", w._ask_annotation_dir, "",
                                 "Save VOC files into another folder (e.g. when the image folder is read-only)")
        w.act_export = {fmt: A(f"Export as {label}…", lambda _=False, f=fmt: w._ask_export(f), "",
                               f"Write the whole dataset as {label}")
                        for fmt, label in (("voc", "Pascal VOC"), ("coco", "COCO JSON"), ("yolo", "YOLO"))}
        w.act_import = A("&Import Annotations from Folder…", w._ask_import, "",
                         "Read annotations from a VOC/YOLO/COCO dataset folder onto the open images")
        w.act_import_json = A("Import Annotations from COCO &JSON…", w._ask_import_json, "",
                              "Read a COCO instances JSON's boxes onto the open images (matched by file name)")
        w.act_quit = A("&Quit", w.close, "Ctrl+Q")

        w.act_undo = w.document.undo_group.createUndoAction(w, "&Undo")
        w.act_undo.setShortcuts([QKeySequence("Ctrl+Z")])
        w.act_redo = w.document.undo_group.createRedoAction(w, "&Redo")
        w.act_redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        w.addAction(w.act_undo)
        w.addAction(w.act_redo)
        w.act_create = A("Create &Box", w.create_box, "W", "Draw a box: press W, then drag")
        w.act_delete = A("&Delete Box", w.canvas.delete_selected, ["Del", "Backspace"])
        w.act_duplicate = A("D&uplicate Box", w.canvas.duplicate_selected, "Ctrl+D")
        w.act_copy = A("&Copy Boxes", w.copy_boxes, "Ctrl+C")
        w.act_paste = A("&Paste Boxes", w.paste_boxes, "Ctrl+V", "Paste copied boxes (also on another image)")
        w.act_select_all = A("Select &All Boxes", w.canvas.select_all, "Ctrl+A")
        w.act_verified = A("Toggle &Verified", w.toggle_verified, "Space",
                           "Mark this image as checked (stored in the VOC file as LabelImg does)")
        w.act_class = [A(f"Class {k}", lambda _=False, k=k: w.pick_class(k), str(k),
                         f"Pick class {k} for new boxes and the selected boxes") for k in range(1, 10)]

        w.act_next = A("&Next Image", w.next_image, "D", "Next image (D)")
        w.act_prev = A("&Previous Image", w.previous_image, "A", "Previous image (A)")
        w.act_next_unverified = A("Next &Unverified Image", w.next_unverified, "U")

        w.act_zoom_in = A("Zoom &In", w.canvas.zoom_in, ["Ctrl++", "Ctrl+="])
        w.act_zoom_out = A("Zoom &Out", w.canvas.zoom_out, "Ctrl+-")
        w.act_fit = A("&Fit Window", w.canvas.fit_window, "Ctrl+F", "Fit the whole image in the window")
        w.act_actual = A("&Actual Size (1:1)", w.canvas.actual_size, "Ctrl+0")
        w.act_crosshair = A("&Crosshair", w.canvas.set_crosshair, "Ctrl+H", checkable=True)
        w.act_bc = A("&Brightness and Contrast…", w.show_brightness_contrast, "Ctrl+B")
        w.act_shortcuts = A("&Keyboard Shortcuts", w.show_shortcuts, ["?", "F1"])
        w.act_about = A("&About", w._about)

    def _make_toolbar(self) -> QToolBar:
        """The common actions with icons (LabelImg's left bar); hide it from View ▸ Toolbar."""
        w: Any = self
        bar = QToolBar("Toolbar", w)
        bar.setObjectName("main_toolbar")  # saveState needs names
        bar.setIconSize(QSize(22, 22))
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
        for name, (theme, fallback) in TOOLBAR_ICONS.items():
            getattr(w, name).setIcon(themed_icon(w, theme, fallback))
        groups = [["act_open", "act_open_dir"], ["act_prev", "act_next"], ["act_create", "act_save"],
                  ["act_undo", "act_redo"], ["act_fit"]]
        for k, group in enumerate(groups):
            if k:
                bar.addSeparator()
            for name in group:
                bar.addAction(getattr(w, name))
        w.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
        w.toolbar = bar
        return bar

    def _make_menus(self) -> None:
        w: Any = self
        mb = w.menuBar()
        m = mb.addMenu("&File")
        m.addActions([w.act_open, w.act_open_dir])
        w.recent_menu = m.addMenu("Open &Recent")
        w.recent_menu.aboutToShow.connect(w._fill_recent)
        m.addSeparator()
        m.addActions([w.act_save, w.act_autosave, w.act_annotation_dir])
        m.addSeparator()
        exp = m.addMenu("&Export Dataset")
        exp.addActions(list(w.act_export.values()))
        m.addActions([w.act_import, w.act_import_json])
        m.addSeparator()
        m.addAction(w.act_quit)
        m = mb.addMenu("&Edit")
        m.addActions([w.act_undo, w.act_redo])
        m.addSeparator()
        m.addActions([w.act_create, w.act_delete, w.act_duplicate, w.act_copy, w.act_paste, w.act_select_all])
        m.addSeparator()
        m.addActions([w.act_verified, w.act_prompt])
        cm = m.addMenu("&Class")
        cm.addActions(w.act_class)
        m = mb.addMenu("&Go")
        m.addActions([w.act_next, w.act_prev, w.act_next_unverified])
        m = mb.addMenu("&View")
        m.addActions([w.act_zoom_in, w.act_zoom_out, w.act_fit, w.act_actual])
        m.addSeparator()
        m.addActions([w.act_crosshair, w.act_bc])
        m.addSeparator()
        w.act_toolbar = w.toolbar.toggleViewAction()
        w.act_toolbar.setText("&Toolbar")
        m.addAction(w.act_toolbar)
        for dock in (w.file_dock, w.class_dock, w.box_dock, w.layers_dock):
            m.addAction(dock.toggleViewAction())
        m = mb.addMenu("&Proposals")
        m.addActions(w.proposal_tools.actions())
        m.addSeparator()
        for dock in w.proposal_tools.docks():
            m.addAction(dock.toggleViewAction())
        # A stage may add to a menu that exists (View, File): after a separator, not a second menu.
        stage_menus: dict[str, Any] = {a.text().replace("&", ""): a.menu() for a in mb.actions() if a.menu()}
        for stage in w.stages:
            sm = stage_menus.get(stage.menu_title)
            if sm is None:
                sm = stage_menus[stage.menu_title] = mb.addMenu(f"&{stage.menu_title}")
            elif stage.actions() or stage.docks():
                sm.addSeparator()
            sm.addActions(stage.actions())
            for dock in stage.docks():
                sm.addAction(dock.toggleViewAction())
        m = mb.addMenu("&Help")
        m.addActions([w.act_shortcuts, w.act_about])

    def all_actions(self) -> list[QAction]:
        """Every action with a shortcut, menu order (for the shortcut sheet)."""
        w: Any = self
        return [w.act_open, w.act_open_dir, w.act_save, w.act_quit, w.act_undo, w.act_redo,
                w.act_create, w.act_delete, w.act_duplicate, w.act_copy, w.act_paste,
                w.act_select_all, w.act_verified, w.act_next, w.act_prev,
                w.act_next_unverified, w.act_zoom_in, w.act_zoom_out, w.act_fit, w.act_actual,
                w.act_crosshair, w.act_bc, w.act_shortcuts]


def install_key_guard(owner: QObject) -> SingleKeyGuard:
    """Install one ``SingleKeyGuard`` on the application (removed when ``owner`` is destroyed)."""
    guard = SingleKeyGuard(owner)
    app = QApplication.instance()
    if app is not None:
        app.installEventFilter(guard)
    return guard
