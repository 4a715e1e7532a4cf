"""Reference cycles holding Qt objects are collected on the GUI thread, never in a worker (app/gui_gc.py)."""

from __future__ import annotations

import gc
import threading
import weakref

from PySide6.QtWidgets import QMenu

from app.gui_gc import install_gui_thread_gc, installed_collector


class _CycleMenu(QMenu):
    """What pyqtgraph's plot menus are: a Python QMenu subclass with a submenu, in a reference cycle."""

    def __init__(self) -> None:
        super().__init__()
        self.sub = QMenu("sub", self)
        self.addMenu(self.sub)
        self.cycle = self


def test_a_cycle_holding_a_qt_menu_dies_in_the_gui_thread_not_in_an_allocating_worker(qtbot) -> None:
    collector = install_gui_thread_gc()
    assert installed_collector() is collector and install_gui_thread_gc() is collector  # one per application
    assert not gc.isenabled()
    died_in: list[str] = []
    menu = _CycleMenu()
    # Where the Python wrapper dies (with automatic collection: in the worker below, and the C++ menu with it).
    ref = weakref.ref(menu, lambda _r: died_in.append(threading.current_thread().name))
    menu.sub.destroyed.connect(lambda *_: died_in.append("submenu in " + threading.current_thread().name))
    del menu

    def allocate() -> None:  # a worker busy enough to cross every generation's threshold many times over
        junk = []
        for i in range(200_000):
            item: list = [i]
            item.append(item)
            junk.append(item)
            if len(junk) > 1000:
                junk.clear()

    worker = threading.Thread(target=allocate, name="worker")
    worker.start()
    worker.join()
    assert died_in == [] and ref() is not None  # the worker collected nothing
    assert gc.get_count()[0] > collector.threshold[0]  # a collection is due
    qtbot.waitUntil(lambda: len(died_in) == 2, timeout=10_000)  # the GUI thread's timer collects
    main = threading.main_thread().name
    assert sorted(died_in) == sorted([main, f"submenu in {main}"])


def test_collect_due_follows_pythons_thresholds(qapp) -> None:
    collector = install_gui_thread_gc(qapp)
    gc.collect()
    before = collector.collections
    collector.collect_due()  # nothing allocated since the full collection: nothing due
    assert collector.collections == before
    junk = [[] for _ in range(collector.threshold[0] + 10)]
    assert gc.get_count()[0] > collector.threshold[0]
    collector.collect_due()
    assert collector.collections == before + 1 and gc.get_count()[0] <= collector.threshold[0]
    del junk
