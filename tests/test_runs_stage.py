"""The Runs stage: runs listed from a folder, two compared side by side (loss curves, AP per class)."""

import math
import shutil

import pytest
from PySide6.QtCore import QPoint, Qt

from app.settings import Settings
from app.stages.runs import RunsStage
from app.stages.runs.panel import COLUMNS
from models.detection.runs import evaluation_indices, loss_curves
from models.detection.training import TrainResult
from tests.test_main_window import settings  # noqa: F401  (fixture)
from tests.tiny_training import tiny_dataset, train_tiny

A, B = "20260101-000000-faster-rcnn", "20260101-000100-faster-rcnn"


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs_stage")
    data = tiny_dataset(base / "set")
    root = base / "runs"
    train_tiny(data, root / A / "model.pt", lr=0.01)
    train_tiny(data, root / B / "model.pt", lr=0.003, max_steps=3)
    (root / "broken").mkdir()
    (root / "broken" / "model.pt").write_bytes(b"\x00\x01 truncated")
    return data, root


@pytest.fixture
def stage(qtbot, runs_root, tmp_path):
    _, root = runs_root
    st = RunsStage(root=root, settings=Settings(tmp_path / "settings.ini"))
    qtbot.addWidget(st.panel)
    st.panel.resize(1400, 520)
    with qtbot.waitSignal(st.runsListed, timeout=30_000):
        pass  # the first listing starts on its own
    yield st
    st.shutdown()


def test_shutdown_frees_the_watcher_and_the_windowless_dock_in_the_gui_thread(qtbot, runs_root, tmp_path) -> None:
    """Regression: a windowless stage dropped after a test was freed by a garbage-collection pass that ran in
    a worker thread of a later test; its QFileSystemWatcher and dock were destroyed there, and the process
    died in the event loop (a flood of 'QSocketNotifier: Invalid socket', then a segfault)."""
    import gc
    import threading

    import shiboken6

    _, root = runs_root
    st = RunsStage(root=root, settings=Settings(tmp_path / "settings.ini"))
    with qtbot.waitSignal(st.runsListed, timeout=30_000):
        pass
    watcher, dock, panel = st.watcher, st.dock, st.panel
    assert watcher.directories()  # the runs folder is watched
    st.shutdown()
    assert not shiboken6.isValid(watcher) and not shiboken6.isValid(dock) and not shiboken6.isValid(panel)
    st.shutdown()  # twice is harmless
    st._listed([])  # a listing queued before the shutdown arrives late: ignored, no deleted widget touched
    qtbot.waitUntil(lambda s=st: not shiboken6.isValid(s), timeout=5000)  # the stage itself, at the next turn
    st._cycle = st  # what the workers' callbacks do: only a collector pass can free it
    del st, watcher, dock, panel
    collector = threading.Thread(target=gc.collect)
    collector.start()
    collector.join()
    qtbot.wait(50)  # the event loop turns with nothing left to spin on


def _row(panel, name: str) -> int:
    return next(i for i, r in enumerate(panel.records) if r.name == name)


def _click_row(qtbot, panel, row: int, ctrl: bool = False) -> None:
    table = panel.table
    rect = table.visualRect(table.model().index(row, 0))
    mods = Qt.KeyboardModifier.ControlModifier if ctrl else Qt.KeyboardModifier.NoModifier
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, mods, QPoint(rect.center()))


def test_runs_are_listed_and_a_corrupt_checkpoint_is_a_row_with_its_reason(stage) -> None:
    panel = stage.panel
    assert panel.table.rowCount() == 3
    names = [panel.table.item(r, 0).text() for r in range(3)]
    assert set(names) == {A, B, "broken"}
    bad = _row(panel, "broken")
    assert panel.table.item(bad, COLUMNS.index("status")).text() == "unreadable"
    assert "not a readable detector checkpoint" in panel.table.item(bad, COLUMNS.index("settings")).text()
    a = _row(panel, A)
    assert panel.table.item(a, COLUMNS.index("status")).text() == "finished"
    assert "lr 0.01" in panel.table.item(a, COLUMNS.index("settings")).text()
    assert panel.table.item(a, COLUMNS.index("training time")).text().endswith("s")
    assert "1 unreadable" in panel.status_label.text()


def test_two_runs_compare_loss_curves_and_ap_per_class(qtbot, stage, runs_root) -> None:
    from models.data.datasets import open_dataset
    from models.detection.checkpoints import load_detector
    from models.detection.evaluation import evaluate_detector

    data, root = runs_root
    source = open_dataset(str(data))
    stage.set_dataset(source)
    panel = stage.panel
    done: list[str] = []
    stage.evaluationFinished.connect(lambda path, ev: done.append(path))
    _click_row(qtbot, panel, _row(panel, A))
    _click_row(qtbot, panel, _row(panel, B), ctrl=True)
    assert [r.name for r in panel.losses.runs] == [A, B]
    qtbot.waitUntil(lambda: len(done) == 2, timeout=60_000)
    # one point per logged step, each run's own curve
    for name, steps in ((A, 4), (B, 3)):
        xs, ys = panel.losses.items[name].getData()
        assert len(xs) == steps
        assert list(ys) == pytest.approx(loss_curves(panel.record(str(root / name / "model.pt"))).losses["total"])
    # the AP table holds what the evaluation module computes on the same model and data
    indices = evaluation_indices(source, "test")
    for col, name in enumerate((A, B)):
        expected, _ = evaluate_detector(load_detector(root / name / "model.pt", "cpu"), source, indices)
        for cls, ap in expected.AP.items():
            got = panel.ap_table.value(cls, col)
            assert (math.isnan(ap) and math.isnan(got)) or got == pytest.approx(ap, abs=1e-6)
        assert panel.ap_table.value("mAP@0.5", col) == pytest.approx(expected.mAP, abs=1e-6)
    a, b = panel.ap_table.value("mAP@0.5", 0), panel.ap_table.value("mAP@0.5", 1)
    assert panel.ap_table.value("mAP@0.5", 2) == pytest.approx(b - a)
    # the runs table shows the mAP just computed
    assert panel.table.item(_row(panel, A), COLUMNS.index("mAP@0.5")).text() == f"{a:.3f}"
    # switching the loss redraws both runs with that loss
    panel.losses.loss_combo.setCurrentIndex(panel.losses.loss_combo.findData("cls"))
    xs, ys = panel.losses.items[B].getData()
    assert list(ys) == pytest.approx(loss_curves(panel.record(str(root / B / "model.pt"))).losses["cls"])


def test_a_corrupt_run_selected_says_why_it_cannot_be_compared(qtbot, stage) -> None:
    panel = stage.panel
    _click_row(qtbot, panel, _row(panel, "broken"))
    assert "broken cannot be compared" in panel.compare_label.text()
    assert panel.losses.items == {} and panel.ap_table.columnCount() == 1 + 0


def test_a_new_run_folder_is_listed_without_a_click(qtbot, stage, runs_root) -> None:
    _, root = runs_root
    copy = root / "20260101-000200-faster-rcnn"
    try:
        with qtbot.waitSignal(stage.runsListed, timeout=10_000,
                              check_params_cb=lambda recs: any(r.name == copy.name for r in recs)):
            shutil.copytree(root / A, copy)
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def test_while_a_run_trains_its_folder_writes_wait_and_its_end_lists_it(qtbot, stage, runs_root) -> None:
    _, root = runs_root
    stage.training_started(None)
    stage._folder_changed(str(root))  # what the watcher reports at each checkpoint write of the run
    assert not stage._debounce.isActive()  # no listing (no checkpoint read in the window) mid-run
    copy = root / "20260101-000300-faster-rcnn"
    try:
        shutil.copytree(root / A, copy)
        result = TrainResult("completed", 2, str(copy / "model.pt"), "done", 1.0)
        with qtbot.waitSignal(stage.runsListed, timeout=30_000,
                              check_params_cb=lambda recs: any(r.name == copy.name for r in recs)):
            stage.training_ended(result)
        stage._folder_changed(str(root))
        assert stage._debounce.isActive()  # after the run, folder changes are listed again
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def test_added_checkpoints_two_generations_show_their_recorded_ap(qtbot, stage) -> None:
    from resources.models import SHIPPED_MODEL

    fast = SHIPPED_MODEL.parent / "fast_rcnn_shapes.pt"
    with qtbot.waitSignal(stage.runsListed, timeout=30_000):
        stage.add_checkpoint(SHIPPED_MODEL)
    with qtbot.waitSignal(stage.runsListed, timeout=30_000):
        stage.add_checkpoint(fast)
    assert stage.settings.run_checkpoints() == [str(SHIPPED_MODEL.resolve()), str(fast.resolve())]
    panel = stage.panel
    panel.select_paths([str(SHIPPED_MODEL.resolve()), str(fast.resolve())])
    assert [r.generation for r in panel.losses.runs] == ["faster-rcnn", "fast-rcnn"]
    # no dataset open: each column shows the AP its checkpoint records (the shipped models carry theirs)
    assert panel.ap_table.value("circle", 0) == pytest.approx(0.852331)
    assert panel.ap_table.value("circle", 1) == pytest.approx(0.8007)
    # no training log beside them: one point per epoch
    assert len(panel.losses.items["frcnn_shapes.pt"].getData()[0]) == 18
    panel.grab().save("/tmp/runs_compare_shipped.png")


def test_the_window_hosts_runs_in_the_bottom_area_opened_from_the_training_menu(qtbot, settings, tmp_path,  # noqa: F811
                                                                                monkeypatch) -> None:
    from app.main_window import MainWindow
    from tests.test_main_window import make_window

    monkeypatch.setenv("RCNN_EXPLORER_DATA", str(tmp_path / "data"))
    w: MainWindow = make_window(qtbot, settings, thumbnails=False)
    try:
        stage = next(s for s in w.stages if isinstance(s, RunsStage))
        assert stage.root == tmp_path / "data" / "runs"
        assert w.dockWidgetArea(stage.dock) == Qt.DockWidgetArea.BottomDockWidgetArea
        assert not stage.dock.isVisible()  # closed at first (the host closes bottom docks)
        menu = next(a.menu() for a in w.menuBar().actions() if a.text().replace("&", "") == "Training")
        toggle = next(a for a in menu.actions() if a is stage.dock.toggleViewAction())
        toggle.trigger()
        qtbot.waitUntil(stage.dock.isVisible, timeout=2000)
        assert "No runs yet" in stage.panel.status_label.text() or stage.panel.table.rowCount() == 0
        # a second bottom workspace opened joins the first one's tabs rather than splitting the height
        other = next(d for d in w.bottom_docks if d is not stage.dock)
        other.toggleViewAction().trigger()
        qtbot.waitUntil(other.isVisible, timeout=2000)
        assert other in w.tabifiedDockWidgets(stage.dock)
    finally:
        w.close()
