"""A window of thumbnails: the current image as the first epochs of the run set in the panel would show it.

Drawing only: the views come from :func:`models.detection.augmentation_preview.augmented_views` (the training
loop's own dataset), computed in a worker; here each becomes a pixmap with its boxes and a caption saying what
was drawn (mirror, size, crop, zoom-out, colour factors).
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QDialog, QGridLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

from app.layers.image_layer import rgb_to_qimage

#: Longest side of a thumbnail, in screen pixels.
THUMBNAIL = 280
COLUMNS = 3
BOX_COLOUR = QColor(255, 200, 0)
IGNORED_COLOUR = QColor(200, 200, 200)


def view_pixmap(view, side: int = THUMBNAIL) -> QPixmap:  # noqa: ANN001 - AugmentedView
    """The view's pixels scaled to fit ``side`` with its boxes and class names drawn on top."""
    image = rgb_to_qimage(view.pixels)
    h, w = view.pixels.shape[:2]
    scale = side / max(w, h)
    pixmap = QPixmap.fromImage(image).scaled(max(1, round(w * scale)), max(1, round(h * scale)),
                                             Qt.AspectRatioMode.IgnoreAspectRatio,
                                             Qt.TransformationMode.SmoothTransformation)
    painter = QPainter(pixmap)
    solid, dashed = QPen(BOX_COLOUR, 2), QPen(IGNORED_COLOUR, 2, Qt.PenStyle.DashLine)
    ignored = view.ignored if view.ignored is not None else [False] * len(view.names)
    for (x1, y1, x2, y2), name, skip in zip(view.boxes, view.names, ignored, strict=True):
        rect = QRectF(x1 * scale, y1 * scale, (x2 - x1) * scale, (y2 - y1) * scale)
        painter.setPen(dashed if skip else solid)  # a crowd or difficult box: a region training ignores
        painter.drawRect(rect)
        painter.drawText(rect.topLeft() + QRectF(0, 0, 0, 12).bottomLeft(), name)
    painter.end()
    return pixmap


class AugmentationPreview(QDialog):
    """Non-modal: it can stay open beside the panel while settings change (press Preview again to redraw)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Augmentation preview")
        self.setObjectName("augmentationPreview")
        self.heading = QLabel()
        self.heading.setWordWrap(True)
        self._grid_host = QWidget()
        self._grid = QGridLayout(self._grid_host)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self._grid_host)
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(scroll)
        #: (thumbnail label, caption label) per view shown.
        self.cells: list[tuple[QLabel, QLabel]] = []
        self.resize(COLUMNS * (THUMBNAIL + 24) + 24, 2 * (THUMBNAIL + 60) + 60)

    def show_views(self, heading: str, views: Sequence) -> None:
        """Replace the thumbnails by ``views`` (AugmentedView) under ``heading``."""
        while self._grid.count():
            item = self._grid.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.cells = []
        self.heading.setText(heading)
        for i, view in enumerate(views):
            picture = QLabel()
            picture.setPixmap(view_pixmap(view))
            picture.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom)
            caption = QLabel(view.caption())
            caption.setWordWrap(True)
            caption.setMaximumWidth(THUMBNAIL)
            row, col = divmod(i, COLUMNS)
            self._grid.addWidget(picture, 2 * row, col)
            self._grid.addWidget(caption, 2 * row + 1, col)
            self.cells.append((picture, caption))
