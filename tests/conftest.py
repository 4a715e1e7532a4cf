"""Shared test set-up. Qt must never try to reach a display: without one it aborts the whole run."""

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_NUM_THREADS", "2")
# Caches (proposals, CNN codes) go to a fresh folder per test run, never the user's own cache.
if "RCNN_EXPLORER_CACHE" not in os.environ:
    import tempfile
    os.environ["RCNN_EXPLORER_CACHE"] = tempfile.mkdtemp(prefix="rcnn_explorer_test_cache_")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHARED_DATA = ROOT.parent / "shared" / "data"


import pytest  # noqa: E402 - after the environment above is set


@pytest.fixture(autouse=True)
def _collect_cycles_on_the_gui_thread(request):
    """As the app does (app/gui_gc.py): once a test has a QApplication, Python's cyclic collector runs only on
    the GUI thread — a worker thread that collects a cycle holding a Qt object deadlocks against the GUI
    thread (seen in this suite). Each test ends with the collections that are due, so cycles never pile up
    between tests whose event loop did not turn."""
    if {"qtbot", "qapp"} & set(request.fixturenames):
        from app.gui_gc import install_gui_thread_gc

        install_gui_thread_gc(request.getfixturevalue("qapp"))
    yield
    if "app.gui_gc" in sys.modules:
        collector = sys.modules["app.gui_gc"].installed_collector()
        if collector is not None:
            collector.collect_due()


@pytest.fixture
def detector_canvas(qtbot):
    """A shown 640×480 canvas on an empty annotation and the detector session over it: what every detector
    stage (anchors, RPN, RoI sampling, ...) is built on. Yields ``(canvas, session)``; ``canvas.model`` is the
    annotation."""
    from app.annotation_model import AnnotationModel
    from app.canvas import Canvas
    from app.stages.detector_session import DetectorSession

    canvas = Canvas(AnnotationModel())
    qtbot.addWidget(canvas)
    canvas.resize(640, 480)
    canvas.show()
    qtbot.waitExposed(canvas)
    yield canvas, DetectorSession(canvas)
