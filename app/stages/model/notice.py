"""A banner over the canvas saying why the model's results are not drawn on this image.

Why a widget over the viewport and not a scene layer: the note must stay readable and in view at any zoom
and pan, and it is a message to the user, not part of the image (PNG/SVG exports of the canvas leave it out).
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import QGraphicsView, QLabel

STYLE = ("QLabel { background: rgba(255, 243, 205, 235); color: #3d2e00; border: 1px solid #d4a017; "
         "border-radius: 5px; padding: 6px 10px; }")


class CanvasNotice(QLabel):
    """Word-wrapped note at the top of ``view``'s viewport; hidden when its text is empty.

    The text may hold one link; clicking it emits ``linkClicked`` with its href ("show" / "hide").
    """

    linkClicked = Signal(str)

    MARGIN = 10

    def __init__(self, view: QGraphicsView) -> None:
        super().__init__(view.viewport())
        self._view = view
        self.setObjectName("canvas_notice")
        self.setStyleSheet(STYLE)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.LinksAccessibleByMouse)
        self.linkActivated.connect(self.linkClicked)
        self.hide()
        view.viewport().installEventFilter(self)

    def set_note(self, html_text: str) -> None:
        self.setText(html_text)
        self.setVisible(bool(html_text))
        self._place()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Resize:
            self._place()
        return False

    def _place(self) -> None:
        if not self.text():
            return
        vp = self._view.viewport()
        width = max(120, min(640, vp.width() - 2 * self.MARGIN))
        self.setFixedWidth(width)
        self.setFixedHeight(max(self.heightForWidth(width), self.fontMetrics().height() + 16))
        self.move((vp.width() - width) // 2, self.MARGIN)
        self.raise_()
