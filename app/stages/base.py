"""What every stage of the window provides to its host (the main window)."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QLabel, QScrollArea, QWidget

from app.layers.base import OverlayLayer
from models.data.datasets import DatasetSource


def make_dock(title: str, object_name: str, panel: QWidget, window: QWidget | None) -> QDockWidget:
    """A dock holding ``panel`` in a scroll area (panels grow taller than small screens), named for saveState."""
    dock = QDockWidget(title, window)
    dock.setObjectName(object_name)
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setWidget(panel)
    dock.setWidget(scroll)
    dock.setAllowedAreas(
        Qt.DockWidgetArea.LeftDockWidgetArea
        | Qt.DockWidgetArea.RightDockWidgetArea
        | Qt.DockWidgetArea.BottomDockWidgetArea
    )
    return dock


def explanation_label(text: str) -> QLabel:
    """The two or three sentences at the top of a stage panel saying what the stage does and why (our users
    include students reading the papers): wrapped, selectable, in the palette's muted text colour."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setObjectName("stage_explanation")
    label.setStyleSheet("color: palette(placeholder-text);")
    return label


class Stage(QObject):
    """A controller for one stage of the pipeline: its panel(s), layers, workers and menu actions.

    Subclasses build their layers (added to the canvas by themselves), panels and docks in ``__init__`` and
    override what they have; the host calls :meth:`docks`, :meth:`actions` (for the stage's menu),
    :meth:`set_dataset` when a dataset opens and :meth:`shutdown` when the window closes.
    """

    #: One line for the status bar.
    message = Signal(str)
    #: The stage asks the host to show image ``i`` of the open dataset (``source.entries`` index): a click from a
    #: number to the image behind it (worst images of an evaluation, a listed bad box).
    imageRequested = Signal(int)

    #: Menu the host puts :meth:`actions` in ("Detector", "Proposals", …).
    menu_title: str = "Detector"

    #: Where the host puts :meth:`docks`: "left" (the pipeline's tab row beside the canvas) or "bottom" (wide
    #: workspaces: training, evaluation, dataset statistics, tabified together under the canvas).
    dock_area: str = "left"

    def docks(self) -> list[QDockWidget]:
        return []

    def actions(self) -> list[QAction]:
        return []

    def layers(self) -> list[OverlayLayer]:
        return []

    def set_dataset(self, source: DatasetSource | None) -> None:  # noqa: B027 - optional hook
        """The dataset now open in the window (None: nothing open)."""

    def shutdown(self) -> None:  # noqa: B027 - optional hook
        """Cancel and wait for this stage's workers (idempotent)."""
