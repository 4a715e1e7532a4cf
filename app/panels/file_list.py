"""The file list dock: every image of the open dataset, with a filter, status marks and lazy thumbnails.

Why a model/view with uniform rows: a 10,000-image folder must list at once. The view asks only for the
rows it shows, so labelled marks (one ``stat``), the verified mark and parse errors (reading that row's
small annotation file) and thumbnails (one reduced decode, in a background thread) are computed for
visible rows only, never for the whole folder. A thumbnail decode that fails
marks the row with the reason, so broken files show up while the user scrolls.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSize,
    QSortFilterProxyModel,
    Qt,
    QThread,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtGui import QBrush, QColor, QIcon, QImage, QPainter, QPixmap
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QListView, QVBoxLayout, QWidget

from app.document import Document
from models.data.io import ImageError, read_image, resize_to_max_side

THUMB_SIZE = 40
#: Thumbnails decode reduced (OpenCV's 1/2, 1/4, 1/8 JPEG decode) above this many pixels.
THUMB_MAX_PIXELS = 300_000
#: At most this many thumbnails wait to be decoded; older requests are dropped and asked again when seen.
MAX_PENDING = 128

NameRole = Qt.ItemDataRole.UserRole + 1
StatusRole = Qt.ItemDataRole.UserRole + 2

FILTERS = ("All images", "Labelled", "Unlabelled", "Unverified", "Unsaved", "Problems")


class ThumbnailWorker(QObject):
    """Decodes requested images small, most recent request first (what the user scrolled to)."""

    loaded = Signal(str, QImage, str)

    def __init__(self) -> None:
        super().__init__()
        self._cond = threading.Condition()
        self._pending: list[str] = []
        self._stop = False

    def request(self, path: str) -> list[str]:
        """Queue ``path``; returns the oldest requests dropped to keep the queue short (a fast scroll
        through 10,000 rows must not leave thousands of stale decodes ahead of what is on screen)."""
        with self._cond:
            self._pending.append(path)
            dropped = self._pending[:-MAX_PENDING] if len(self._pending) > MAX_PENDING else []
            if dropped:
                del self._pending[:-MAX_PENDING]
            self._cond.notify()
        return dropped

    def clear(self) -> None:
        with self._cond:
            self._pending.clear()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()

    @Slot()
    def run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stop:
                    self._cond.wait(0.2)
                if self._stop:
                    return
                path = self._pending.pop()
            image, error = QImage(), ""
            try:
                decoded = read_image(path, max_pixels=THUMB_MAX_PIXELS)
                pixels, _ = resize_to_max_side(decoded.pixels, THUMB_SIZE)
                arr = np.ascontiguousarray(pixels)
                h, w = arr.shape[:2]
                image = QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
            except ImageError as exc:
                error = str(exc)
            except Exception as exc:  # a thumbnail must never take the thread down
                error = f"{Path(path).name}: {exc}"
            self.loaded.emit(path, image, error)


def _status_icon(color: QColor, size: int = THUMB_SIZE) -> QIcon:
    pm = QPixmap(size, size)
    pm.fill(Qt.GlobalColor.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(color)
    p.drawRoundedRect(4, 4, size - 8, size - 8, 4, 4)
    p.end()
    return QIcon(pm)


class FileListModel(QAbstractListModel):
    """The document's entries as rows; marks: ✔ verified, ● labelled, ○ unlabelled, ⚠ problem, * unsaved."""

    def __init__(self, document: Document, thumbnails: bool = True, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.thumbnails_enabled = thumbnails
        self._thumbs: dict[str, QIcon] = {}
        self._requested: set[str] = set()
        self._row_of: dict[str, int] = {}
        self._placeholder = _status_icon(QColor(90, 90, 96))
        self._broken = _status_icon(QColor(200, 60, 60))
        self._worker: ThumbnailWorker | None = None
        self._thread: QThread | None = None
        self._closed = False
        self._to_read: set[int] = set()
        self._read_timer = QTimer(self)
        self._read_timer.setSingleShot(True)
        self._read_timer.setInterval(0)
        self._read_timer.timeout.connect(self._read_visible)
        document.sourceChanged.connect(self.reset)
        document.entryChanged.connect(self._entry_changed)

    # --- thumbnails thread --------------------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is not None or self._closed:
            return
        self._worker = ThumbnailWorker()
        self._thread = QThread()
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.loaded.connect(self._on_thumbnail)
        self._thread.start()

    def shutdown(self) -> None:
        """Stop the thumbnail thread and wait for it (called when the window closes); never restarted."""
        self._closed = True
        if self._thread is not None and self._worker is not None:
            self._worker.stop()
            self._thread.quit()
            self._thread.wait(5000)
        self._thread = None
        self._worker = None

    @Slot(str, QImage, str)
    def _on_thumbnail(self, path: str, image: QImage, error: str) -> None:
        row = self._row_of.get(path)
        if row is None:
            return
        if error:
            self._thumbs[path] = self._broken
            self.document.set_decode_error(row, error)
        else:
            self._thumbs[path] = QIcon(QPixmap.fromImage(image))
        idx = self.index(row)
        self.dataChanged.emit(idx, idx, [Qt.ItemDataRole.DecorationRole])

    # --- model --------------------------------------------------------------------------------------------
    @Slot()
    def reset(self) -> None:
        self.beginResetModel()
        self._thumbs.clear()
        self._requested.clear()
        if self._worker is not None:
            self._worker.clear()
        self._row_of = {str(e.path): i for i, e in enumerate(self.document.entries)}
        self._to_read.clear()
        self.endResetModel()

    @Slot(int)
    def _entry_changed(self, row: int) -> None:
        if 0 <= row < self.rowCount():
            idx = self.index(row)
            self.dataChanged.emit(idx, idx)

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.document.entries)

    def status(self, row: int) -> str:
        """'error', 'unsaved', 'verified', 'labelled' or 'unlabelled'."""
        doc = self.document
        if doc.error_text(row):
            return "error"
        if doc.is_dirty(row):
            return "unsaved"
        if doc.known_verified(row):
            return "verified"
        return "labelled" if doc.has_label(row) else "unlabelled"

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        row = index.row()
        entries = self.document.entries
        if not 0 <= row < len(entries):
            return None
        entry = entries[row]
        if role == Qt.ItemDataRole.DisplayRole:
            doc = self.document
            if doc.known_verified(row) is None and doc.has_label(row):
                self._to_read.add(row)  # read the (small) annotation file soon: verified mark, parse errors
                self._read_timer.start()
            err = doc.error_text(row)
            if err:
                mark = "⚠"
            elif doc.known_verified(row):
                mark = "✔"
            else:
                mark = "●" if doc.has_label(row) else "○"
            return f"{mark} {entry.name}{' *' if doc.is_dirty(row) else ''}"
        if role == NameRole:
            return entry.name
        if role == StatusRole:
            return self.status(row)
        if role == Qt.ItemDataRole.ToolTipRole:
            err = self.document.error_text(row)
            state = {"verified": "verified", "labelled": "labelled", "unlabelled": "not labelled yet",
                     "unsaved": "unsaved edits", "error": "problem"}[self.status(row)]
            return f"{entry.path}\n{state}" + (f"\n{err}" if err else "")
        if role == Qt.ItemDataRole.ForegroundRole:
            if self.document.error_text(row):
                return QBrush(QColor(220, 70, 70))
            return None
        if role == Qt.ItemDataRole.DecorationRole:
            if not self.thumbnails_enabled:
                return None
            key = str(entry.path)
            icon = self._thumbs.get(key)
            if icon is not None:
                return icon
            if key not in self._requested and not self._closed:
                self._requested.add(key)
                self._ensure_thread()
                assert self._worker is not None
                self._requested.difference_update(self._worker.request(key))
            return self._placeholder
        return None

    @Slot()
    def _read_visible(self) -> None:
        """Read the annotation files of rows the view showed (never the whole folder)."""
        rows, self._to_read = self._to_read, set()
        for row in sorted(rows):
            if row < len(self.document.entries):
                self.document.ensure_loaded(row)

    def thumbnail_ready(self, row: int) -> bool:
        return str(self.document.entries[row].path) in self._thumbs


class FileFilterProxy(QSortFilterProxyModel):
    """Filters by a case-insensitive substring of the relative path and by status."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._text = ""
        self._status = FILTERS[0]

    def set_text(self, text: str) -> None:
        self._refilter(lambda: setattr(self, "_text", text.strip().casefold()))

    def set_status(self, status: str) -> None:
        self._refilter(lambda: setattr(self, "_status", status))

    def _refilter(self, change: object) -> None:
        """Qt ≥ 6.9 wants begin/endFilterChange around the change; older ones only have invalidateFilter."""
        if hasattr(self, "beginFilterChange"):
            self.beginFilterChange()
            change()  # type: ignore[operator]
            self.endFilterChange()
        else:
            change()  # type: ignore[operator]
            self.invalidateFilter()

    def filterAcceptsRow(self, row: int, parent: QModelIndex | QPersistentModelIndex) -> bool:  # noqa: N802
        model = self.sourceModel()
        if not isinstance(model, FileListModel):
            return True
        if self._text:
            name = model.document.entries[row].name.casefold()
            if self._text not in name:
                return False
        if self._status == FILTERS[0]:
            return True
        status = model.status(row)
        if self._status == "Labelled":
            return status in ("labelled", "verified", "unsaved")
        if self._status == "Unlabelled":
            return status == "unlabelled"
        if self._status == "Unverified":
            return status != "verified"
        if self._status == "Unsaved":
            return status == "unsaved"
        return status == "error"


class FileListPanel(QWidget):
    """Filter box + status filter + the list; ``imageActivated(row)`` when the user picks an image."""

    imageActivated = Signal(int)

    def __init__(self, document: Document, thumbnails: bool = True, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.model = FileListModel(document, thumbnails, self)
        self.proxy = FileFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter by name…")
        self.filter_edit.setClearButtonEnabled(True)
        self.status_combo = QComboBox()
        self.status_combo.addItems(FILTERS)
        self.status_combo.setToolTip("Show only images with this status")
        self.view = QListView()
        self.view.setModel(self.proxy)
        self.view.setUniformItemSizes(True)  # constant-time layout for 10,000 rows
        self.view.setIconSize(QSize(THUMB_SIZE, THUMB_SIZE))
        self.view.setSelectionMode(QListView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QListView.EditTrigger.NoEditTriggers)
        self.count_label = QLabel()
        top = QHBoxLayout()
        top.addWidget(self.filter_edit, 3)
        top.addWidget(self.status_combo, 2)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.count_label)
        self.filter_edit.textChanged.connect(self._on_filter)
        self.status_combo.currentTextChanged.connect(self._on_status)
        self.view.clicked.connect(self._on_clicked)
        self.view.activated.connect(self._on_clicked)
        document.currentChanged.connect(self.set_current)
        document.sourceChanged.connect(self._update_count)
        self._update_count()

    def _on_filter(self, text: str) -> None:
        self.proxy.set_text(text)
        self._update_count()

    def _on_status(self, text: str) -> None:
        self.proxy.set_status(text)
        self._update_count()

    def _update_count(self) -> None:
        total = self.model.rowCount()
        shown = self.proxy.rowCount()
        self.count_label.setText(f"{total} images" if shown == total else f"{shown} of {total} images")

    def _on_clicked(self, index: QModelIndex) -> None:
        src = self.proxy.mapToSource(index)
        if src.isValid() and src.row() != self.document.index:
            self.imageActivated.emit(src.row())

    @Slot(int)
    def set_current(self, row: int) -> None:
        """Select and reveal ``row`` (a source row), if it passes the filter."""
        if row < 0:
            self.view.clearSelection()
            return
        idx = self.proxy.mapFromSource(self.model.index(row))
        if idx.isValid():
            self.view.setCurrentIndex(idx)
            self.view.scrollTo(idx)
        self._update_count()

    def visible_rows(self) -> list[int]:
        """Source rows that pass the filter, in order (for tests and D/A within a filter)."""
        return [self.proxy.mapToSource(self.proxy.index(r, 0)).row() for r in range(self.proxy.rowCount())]

    def shutdown(self) -> None:
        self.model.shutdown()
