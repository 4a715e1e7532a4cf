"""The main window: a host that assembles the docks, stages and status bar and owns the document.

The window owns the document (images, annotations, autosave) and, through it, one undo stack per image in a
QUndoGroup whose active stack follows the current image. Actions, menus and the toolbar are built by
``app.window_actions`` (one place decides what a key does); dataset-wide jobs (export, import, class
rename) by ``app.dataset_jobs``; the box-editing actions and the label prompt by ``app.window_editing``; the dataset's class list by ``app.dataset_classes``. Every thread is quit
and waited for when the window closes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QIcon
from PySide6.QtWidgets import QApplication, QDockWidget, QLabel, QMainWindow, QMessageBox, QWidget

from app.annotation_model import AnnotationModel
from app.canvas import CREATE_MODE, Canvas
from app.dataset_classes import DatasetClassList
from app.dataset_jobs import DatasetJobs
from app.dialogs import BrightnessContrastDialog
from app.document import Document
from app.file_dialogs import FileDialogs
from app.label_prompt import LabelPrompt
from app.panels.box_editor import BoxEditor
from app.panels.class_list import ClassListPanel
from app.panels.file_list import FileListPanel
from app.panels.layers_panel import LayersPanel
from app.proposal_tools import ProposalTools
from app.settings import Settings
from app.shortcuts import ShortcutSheet
from app.stages.bottom_docks import add_bottom_docks
from app.stages.detector_session import DetectorSession
from app.stages.registry import build_stages
from app.window_actions import WindowActions, install_key_guard
from app.window_editing import WindowEditing
from app.workers import WorkerPool
from models.data.annotations import AnnotationError, BoxObject
from models.data.datasets import open_dataset
from models.data.io import IMAGE_EXTENSIONS

APP_TITLE = "R-CNN Explorer"
ICON = Path(__file__).resolve().parents[1] / "resources" / "icons" / "app.svg"


class MainWindow(WindowActions, DatasetJobs, WindowEditing, QMainWindow):
    """The labelling window. ``open_path`` opens an image, a folder or a VOC/COCO/YOLO dataset."""

    #: A background job ended: (job name, result object or None, error text or "").
    jobFinished = Signal(str, object, str)

    def __init__(self, settings: Settings | None = None, thumbnails: bool = True,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings or Settings()
        self.setWindowTitle(APP_TITLE)
        if ICON.exists():
            self.setWindowIcon(QIcon(str(ICON)))
        self.setAcceptDrops(True)
        self.model = AnnotationModel(self)
        self.document = Document(self.model, self.settings, self)
        self.document.dialog_parent = self
        self.pool = WorkerPool(self)
        self._clipboard: list[BoxObject] = []
        self._closed = False
        self._job_dialog: Any = None
        self._bc_dialog: BrightnessContrastDialog | None = None
        self._sheet: ShortcutSheet | None = None
        #: Yes/no questions go through here (tests replace it): (title, text) -> bool.
        self.confirm: Callable[[str, str], bool] = self._confirm_dialog
        #: File and folder choosers (native where the platform has them); tests replace ``dialogs.ask``.
        self.dialogs = FileDialogs(self)

        self.canvas = Canvas(self.model)
        self.setCentralWidget(self.canvas)
        self.label_prompt = LabelPrompt(self)
        self._prompt_index = -1
        self.file_list = FileListPanel(self.document, thumbnails)
        self.class_list = ClassListPanel()
        self.class_list.dialogs = self.dialogs
        # The class list is the open dataset's (models.data.dataset_classes), never carried to the next one.
        self.dataset_classes = DatasetClassList(self.class_list, self.settings, self.pool, self._start_class, self)
        self.box_editor = BoxEditor(self.model)
        self.layers_panel = LayersPanel(self.canvas)
        self.file_dock = self._dock("Files", self.file_list, Qt.DockWidgetArea.RightDockWidgetArea)
        self.class_dock = self._dock("Classes", self.class_list, Qt.DockWidgetArea.RightDockWidgetArea)
        self.box_dock = self._dock("Box", self.box_editor, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.layers_dock = self._dock("Layers", self.layers_panel, Qt.DockWidgetArea.LeftDockWidgetArea)
        # Superpixels and Selective Search: their own docks, layers and workers (issue 3).
        self.proposal_tools = ProposalTools(self.canvas, self)
        for dock in self.proposal_tools.docks():
            self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        self.tabifyDockWidget(*self.proposal_tools.docks())
        # Detector stages (anchors, RPN, RoI grid, NMS, detections…) share one session: model, image, trace.
        self.detector_session = DetectorSession(self.canvas, self)
        self.stages = build_stages(self.canvas, self.detector_session, self)
        # Stage panels join the Selective Search tab group: one row of pipeline tabs, not a new dock row that
        # squeezes the file list. The first stage's (Model: load a detector) is raised.
        # Workspaces wider than a side panel (training, evaluation, dataset statistics) ask for the bottom
        # area (Stage.dock_area) and share one tab row there.
        stage_docks = [d for s in self.stages if s.dock_area == "left" for d in s.docks()]
        for dock in stage_docks:
            self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
            self.tabifyDockWidget(self.proposal_tools.docks()[0], dock)
        if stage_docks:
            stage_docks[0].raise_()
        self.bottom_docks = [d for s in self.stages if s.dock_area == "bottom" for d in s.docks()]
        add_bottom_docks(self, self.bottom_docks)  # closed until asked for; open ones share a tab row

        self.coord_label = QLabel()
        self.zoom_label = QLabel()
        self.mode_label = QLabel()
        self.verified_label = QLabel()
        self.save_label = QLabel()
        for w in (self.verified_label, self.save_label, self.mode_label, self.zoom_label, self.coord_label):
            self.statusBar().addPermanentWidget(w)
        self.coord_label.setMinimumWidth(230)

        self._make_actions()
        self._make_toolbar()
        self._make_menus()
        self._key_guard = install_key_guard(self)
        self._connect()
        self.class_list.set_default(self.settings.default_class())
        geometry, state = self.settings.geometry(), self.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 800)
        if state is not None:
            self.restoreState(state)
        else:  # first start: the canvas gets the room, the docks what their panels need
            self.resizeDocks([self.box_dock, self.file_dock], [440, 270], Qt.Orientation.Horizontal)
        self._update_labels()

    # --- construction -------------------------------------------------------------------------------------
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"{title.lower()}_dock")  # saveState needs names
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _connect(self) -> None:
        doc = self.document
        doc.imageDecoded.connect(self.canvas.set_image)
        doc.currentChanged.connect(self._on_current_changed)
        doc.message.connect(self.show_message)
        doc.saveFailed.connect(self._on_save_failed)
        doc.sourceChanged.connect(self._on_source_changed)
        self.proposal_tools.message.connect(self.show_message)
        self.detector_session.message.connect(self.show_message)
        for stage in self.stages:
            stage.message.connect(self.show_message)
            stage.imageRequested.connect(doc.go_to)
        doc.dirtyChanged.connect(lambda _d: self._update_title())
        doc.saved.connect(lambda _i: self._update_labels())
        doc.entryChanged.connect(lambda i: self._update_labels() if i == doc.index else None)
        self.file_list.imageActivated.connect(doc.go_to)
        self.canvas.cursorMoved.connect(self._on_cursor)
        self.canvas.zoomChanged.connect(lambda _z: self._update_labels())
        self.canvas.modeChanged.connect(lambda _m: self._update_labels())
        self.canvas.message.connect(self.show_message)
        self.canvas.boxCreated.connect(self._on_box_created)
        self.label_prompt.chosen.connect(self._on_label_chosen)
        self.label_prompt.rejected.connect(self._on_label_cancelled)
        self.dataset_classes.message.connect(self.show_message)
        self.class_list.classChosen.connect(self.model.set_current_class)
        self.class_list.classesChanged.connect(self._on_classes_changed)
        self.class_list.defaultChanged.connect(self.settings.set_default_class)
        self.class_list.renameRequested.connect(lambda old, new: self.rename_class(old, new))
        self.class_list.mergeRequested.connect(lambda old, new: self.rename_class(old, new))
        self.model.currentClassChanged.connect(self.class_list.set_current)
        self.model.changed.connect(self._on_model_changed)
        self.model.annotationReset.connect(self._on_model_changed)
        self.box_editor.set_class_names(self.class_list.names())

    def _on_source_changed(self) -> None:
        if self.document.source is not None:
            self.proposal_tools.set_dataset(self.document.source)
            for stage in self.stages:
                stage.set_dataset(self.document.source)

    # --- opening --------------------------------------------------------------------------------------------
    def open_path(self, path: str | Path, image_dir: str | Path | None = None,
                  annotation_dir: str | Path | None = None) -> bool:
        """Open anything ``models.data.datasets.open_dataset`` understands; False (with a message) when not."""
        try:
            source = open_dataset(path, image_dir, annotation_dir)
        except (FileNotFoundError, NotADirectoryError, AnnotationError, OSError) as exc:
            self.show_message(f"Cannot open {path}: {exc}")
            self._warn("Cannot open", f"{path}\n\n{exc}")
            return False
        if self.document.source is not None and not self.document.save_pending():
            n = self.document.unsaved_count()
            if n and not self.confirm("Unsaved edits", f"{n} image(s) of the open dataset have edits that could "
                                                       "not be saved. Open another dataset and lose them?"):
                return False
        p = Path(path).expanduser().resolve()
        self.settings.add_recent(p)
        self.settings.set_last_folder(p if p.is_dir() else p.parent)
        self.dataset_classes.open(source)
        msg = f"Opened {source.kind} {source.root} — {len(source.entries)} images"
        if source.problems:
            msg += f"; {len(source.problems)} problem(s): " + "; ".join(source.problems[:3])
        if not source.entries:
            msg += " (no images found)"
        self.show_message(msg)  # before the first image, whose own problems must stay visible
        self.document.set_source(source)
        self._update_title()
        return True

    def _ask_open_file(self) -> None:
        exts = " ".join(f"*{e}" for e in IMAGE_EXTENSIONS)
        path = self.dialogs.open_file("Open image or dataset", self.settings.last_folder(),
                                      f"Images and COCO JSON ({exts} *.json);;All files (*)")
        if path:
            self.open_path(path)

    def _ask_open_folder(self) -> None:
        path = self.dialogs.folder("Open folder or dataset", self.settings.last_folder())
        if path:
            self.open_path(path)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent_files()
        for p in recent:
            act = self.recent_menu.addAction(p)
            act.triggered.connect(lambda _=False, p=p: self.open_path(p))
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list").triggered.connect(self.settings.clear_recent)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt's name
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt's name
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_path(paths[0])

    # --- navigation -----------------------------------------------------------------------------------------
    def next_image(self) -> bool:
        return self._step(+1)

    def previous_image(self) -> bool:
        return self._step(-1)

    def _step(self, d: int) -> bool:
        """D/A move within the rows the file list shows (its filter applies)."""
        rows = self.file_list.visible_rows()
        if not rows:
            return False
        cur = self.document.index
        if d > 0:
            later = [r for r in rows if r > cur]
            target = later[0] if later else None
        else:
            earlier = [r for r in rows if r < cur]
            target = earlier[-1] if earlier else None
        if target is None:
            self.show_message("Last image" if d > 0 else "First image")
            return False
        return self.document.go_to(target)

    def next_unverified(self) -> bool:
        n = len(self.document.entries)
        for k in range(1, n + 1):
            i = (self.document.index + k) % n
            if not self.document.is_verified(i) and not self.document.error_text(i):
                return self.document.go_to(i)
        self.show_message("Every image is verified")
        return False

    def _on_current_changed(self, i: int) -> None:
        st = self.document.current_state()
        stack = st.stack if st is not None else None
        self.canvas.set_undo_stack(stack)
        self.box_editor.set_undo_stack(stack)
        self.canvas.set_edit_mode()
        self._update_title()
        self._update_labels()

    def set_label_prompt(self, on: bool) -> None:
        self.settings.set_label_prompt(bool(on))

    def toggle_verified(self) -> None:
        if self.document.current_entry is None:
            return
        on = self.document.toggle_verified()
        self.show_message("Verified" if on else "Not verified")
        self._update_labels()

    def save(self) -> bool:
        ok = self.document.save_all(interactive=True)
        self.show_message("Saved" if ok else f"{self.document.unsaved_count()} image(s) could not be saved")
        return ok

    def _on_model_changed(self) -> None:
        """Classes typed in the box editor or found in a loaded file join the class list."""
        self.dataset_classes.add_found([o.name for o in self.model.objects])
        self._update_labels()

    def _on_classes_changed(self, names: list[str]) -> None:
        self.box_editor.set_class_names(names)
        self.canvas.ground_truth_layer.update()  # colours follow the list's order

    def _start_class(self, name: str) -> None:
        """The class new boxes get right after a dataset opened ('' when it has none yet)."""
        if name:
            self.class_list.choose(name)
        else:
            self.model.set_current_class("")
            self.class_list.set_current("")

    # --- annotation folder and save failures ----------------------------------------------------------------
    def _on_save_failed(self, text: str) -> None:
        self.show_message(text)
        self._update_title()
        if not self.document.can_change_annotation_dir:
            self._warn("Could not save", text)
            return
        box = QMessageBox(QMessageBox.Icon.Warning, "Could not save", text, parent=self)
        choose = box.addButton("Choose Annotation Folder…", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Keep in Memory", QMessageBox.ButtonRole.RejectRole)
        box.buttonClicked.connect(lambda b: self._ask_annotation_dir() if b is choose else None)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()  # non-blocking: autosave fires from a timer
        self.save_failed_box = box

    def _ask_annotation_dir(self) -> None:
        if not self.document.can_change_annotation_dir:
            self._warn("Annotation folder", "This dataset's format fixes where annotations live.")
            return
        folder = self.dialogs.folder("Save annotations into", self.settings.last_folder())
        if folder:
            self.set_annotation_dir(folder)

    def set_annotation_dir(self, folder: str | Path | None) -> bool:
        ok = self.document.set_annotation_dir(Path(folder) if folder else None)
        store = self.document.source.store if self.document.source is not None else None
        if folder and getattr(store, "annotation_dir", None) != Path(folder):
            return False  # refused; the document said why
        self.show_message(f"Annotations now saved in {folder or 'the image folders'}"
                          + ("" if ok else " — some could still not be saved"))
        self._update_title()
        return ok

    # --- view -----------------------------------------------------------------------------------------------
    def show_brightness_contrast(self) -> None:
        if self._bc_dialog is None:
            self._bc_dialog = BrightnessContrastDialog(self)
            self._bc_dialog.changed.connect(self.canvas.set_brightness_contrast)
        self._bc_dialog.show()
        self._bc_dialog.raise_()

    def show_shortcuts(self) -> ShortcutSheet:
        if self._sheet is None:
            digits = [("1 … 9", "Pick class 1–9 (Classes panel order) for new boxes and the selected boxes")]
            self._sheet = ShortcutSheet(self.all_actions(), self, digits)
        self._sheet.show()
        self._sheet.raise_()
        return self._sheet

    def _about(self) -> None:
        QMessageBox.about(self, APP_TITLE, f"{APP_TITLE}\nLabel images; build, train and debug R-CNN detectors.\n"
                                           f"Settings: {self.settings.file_name}")

    # --- status ---------------------------------------------------------------------------------------------
    def show_message(self, text: str, timeout_ms: int = 8000) -> None:
        self.statusBar().showMessage(text, timeout_ms)

    def _on_cursor(self, x: float, y: float, value: object) -> None:
        w, h = self.canvas.image_size()
        if value is None or not (0 <= x < w and 0 <= y < h):
            self.coord_label.setText("")
            return
        if isinstance(value, (tuple, list)):
            v = "RGB(" + ", ".join(str(int(c)) for c in value) + ")"
        else:
            v = str(value)
        self.coord_label.setText(f"x {int(x)}, y {int(y)}  {v}")

    def _update_labels(self) -> None:
        self.zoom_label.setText(f"{self.canvas.zoom * 100:.0f}%")
        self.mode_label.setText("Create (drag a box)" if self.canvas.mode == CREATE_MODE else "Edit")
        st = self.document.current_state()
        self.verified_label.setText("✔ verified" if self.model.verified and st is not None else "")
        if st is None:
            self.save_label.setText("")
        elif st.load_error and st.dirty:
            self.save_label.setText("unsaved (file unreadable)")
        elif st.dirty:
            self.save_label.setText("unsaved" if st.save_error or not self.document.autosave else "saving…")
        elif st.load_error:
            self.save_label.setText("annotation unreadable")
        else:
            self.save_label.setText("saved")
        self._update_title()

    def _update_title(self) -> None:
        entry = self.document.current_entry
        dirty = " *" if self.document.any_dirty else ""
        if entry is None:
            self.setWindowTitle(APP_TITLE + dirty)
        else:
            n = len(self.document.entries)
            self.setWindowTitle(f"{entry.name} ({self.document.index + 1}/{n}){dirty} — {APP_TITLE}")

    # --- dialogs --------------------------------------------------------------------------------------------
    def _confirm_dialog(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _warn(self, title: str, text: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, parent=self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()  # non-blocking

    # --- closing --------------------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        if self._closed:
            event.accept()
            return
        self.document.save_all(interactive=False)
        if self.document.any_dirty:
            n = self.document.unsaved_count()
            if not self.confirm("Unsaved edits", f"{n} image(s) have edits that could not be saved "
                                                 "(see the file list). Quit and lose them?"):
                event.ignore()
                return
        self.shutdown()
        event.accept()

    def shutdown(self) -> None:
        """Persist settings and stop every thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if QApplication.instance() is not None:
            QApplication.instance().removeEventFilter(self._key_guard)
        self.settings.set_window(self.saveGeometry(), self.saveState())
        self.settings.sync()
        self.dataset_classes.shutdown()
        self.document.close()
        self.file_list.shutdown()
        self.proposal_tools.shutdown()
        for stage in self.stages:
            stage.shutdown()
        self.pool.shutdown()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(1280, 800)


def process_events_until(predicate: Callable[[], bool], timeout_ms: int = 5000) -> bool:
    """Spin the event loop until ``predicate`` holds (for scripts such as screenshot makers)."""
    import time

    end = time.monotonic() + timeout_ms / 1000
    while time.monotonic() < end:
        QApplication.processEvents()
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()

