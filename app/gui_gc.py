"""Python's cyclic garbage collector, run on the GUI thread only.

Why: Python collects reference cycles in whichever thread happens to allocate when a threshold is crossed. When
that is a worker thread (a model loading, boxes being read) and the cycle holds a Qt object — pyqtgraph's plot
menus are such cycles — Qt destroys the object in the worker: it takes a Qt lock and then waits for the GIL,
while the GUI thread, holding the GIL, waits for that lock to delete another object. Both wait forever (seen in
the test suite: a `ViewBoxMenu` collected in a model-loading worker). Qt objects must be destroyed in the thread
they live in; collecting only on the GUI thread guarantees it.

So automatic collection is switched off and a timer on the GUI thread collects each generation when Python's
own thresholds say it is due — the same amount of collecting, in a thread where it is safe (pyqtgraph's
``GarbageCollector`` does the same; ours is installed once per application and can also be asked directly).
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QCoreApplication, QObject, QTimer

#: How often the GUI thread looks whether a collection is due (Python's default thresholds are reached in
#: about that time by an active application; a longer interval only lets cycles live a little longer).
INTERVAL_MS = 1000


class GuiThreadCollector(QObject):
    """Turns automatic collection off and collects on a timer in the thread it lives in (the GUI thread)."""

    def __init__(self, interval_ms: int = INTERVAL_MS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.threshold = gc.get_threshold()
        self.collections = 0
        gc.disable()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.collect_due)
        self.timer.start(interval_ms)

    def collect_due(self) -> int:
        """Collect the generations whose counts passed their thresholds, youngest first, as Python would;
        returns the number of unreachable objects found."""
        found = 0
        c0, c1, c2 = gc.get_count()
        t0, t1, t2 = self.threshold
        if c0 > t0:
            found += gc.collect(0)
            self.collections += 1
            if c1 > t1:
                found += gc.collect(1)
                if c2 > t2:
                    found += gc.collect(2)
        return found


def install_gui_thread_gc(app: QCoreApplication | None = None) -> GuiThreadCollector:
    """The application's collector, made on first call (from the GUI thread) and parented to ``app``."""
    app = app or QCoreApplication.instance()
    if app is None:
        raise RuntimeError("create the QApplication first")
    existing = getattr(app, "_gui_thread_collector", None)
    if isinstance(existing, GuiThreadCollector):
        return existing
    collector = GuiThreadCollector(parent=app)
    app._gui_thread_collector = collector  # type: ignore[attr-defined]
    return collector


def installed_collector() -> GuiThreadCollector | None:
    """The running application's collector, if one was installed."""
    app = QCoreApplication.instance()
    existing = getattr(app, "_gui_thread_collector", None) if app is not None else None
    return existing if isinstance(existing, GuiThreadCollector) else None
