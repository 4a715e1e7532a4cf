"""The bottom dock area: wide workspaces (training, runs, evaluation, CNN codes, dataset statistics).

They start closed (the stage's menu opens them): open, they take height from the canvas and the pipeline's
tab row, which a labelling session needs more. Open ones share one tab row, but a dock joins it only when it
is shown: a tab group of hidden docks built at start-up still skews how Qt shares the left column's height
(with two of them the pipeline tabs got 102 px instead of 173 in a 1280×800 window).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow


def add_bottom_docks(window: QMainWindow, docks: list[QDockWidget]) -> None:
    """Add ``docks`` to the bottom area of ``window``, closed, each tabified with an open one when shown."""
    for dock in docks:
        window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        dock.hide()
        dock.visibilityChanged.connect(lambda shown, d=dock: _join_open(window, docks, d) if shown else None)


def _join_open(window: QMainWindow, docks: list[QDockWidget], dock: QDockWidget) -> None:
    """Put ``dock`` (just shown) in the tab row of another open bottom dock, if there is one."""
    for other in docks:
        if other is dock or other.isHidden() or dock in window.tabifiedDockWidgets(other):
            continue
        if window.dockWidgetArea(other) != Qt.DockWidgetArea.BottomDockWidgetArea or other.isFloating():
            continue
        window.tabifyDockWidget(other, dock)
        dock.raise_()
        return
