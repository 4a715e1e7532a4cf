"""The Dataset Statistics dock in the real window: its counts are the dataset's, a click on a problem box opens
that image with the box selected, and a loaded model's anchors are measured and drawn."""

from __future__ import annotations

import math

import pytest
from PySide6.QtCore import Qt

from app.stages.dataset_stats import DatasetStatsStage
from models.data.box_stats import compute_box_stats
from models.data.datasets import open_dataset
from models.detection.detectors.faster_rcnn import FasterRCNN
from tests.test_box_stats import write_hand_made
from tests.test_main_window import make_window, settings  # noqa: F401  (fixture)
from tests.test_nms_stage import stage_of


@pytest.fixture
def window(qtbot, settings, tmp_path):  # noqa: F811
    w = make_window(qtbot, settings, thumbnails=False)
    w.resize(1400, 900)
    yield w
    w.close()


def _line_values(stage: DatasetStatsStage) -> list[float]:
    """Anchor lines drawn over the histograms, as values (the x axes are log10)."""
    return sorted(round(10 ** line.value(), 3) for line in stage.panel._lines)


def _table(table) -> list[list[str]]:
    return [[table.item(r, c).text() for c in range(table.columnCount())] for r in range(table.rowCount())]


def test_counts_match_and_a_click_opens_the_problem_box(qtbot, window, tmp_path) -> None:
    path = write_hand_made(tmp_path / "set")
    stage = stage_of(window, DatasetStatsStage)
    dock = stage.docks()[0]
    assert stage.dock_area == "bottom" and dock in window.bottom_docks
    assert not dock.isVisible()  # hidden until asked for: nothing is read
    assert window.open_path(path)
    assert stage.result is None and not stage.busy
    with qtbot.waitSignal(stage.statsReady, timeout=20000):
        dock.toggleViewAction().trigger()  # View ▸ Dataset Statistics
    expected = compute_box_stats(open_dataset(path))
    rows = _table(stage.panel.counts)
    assert rows[:-1] == [[n, str(expected.images_per_class[n]), str(expected.boxes_per_class[n]), "0"]
                         for n in expected.class_names]
    assert rows[-1] == ["all classes", str(expected.n_annotated), str(expected.n_boxes), "0"]
    problems = stage.panel.problems
    assert {(p.kind, p.image_name, p.box_index) for p in problems} == {
        (p.kind, p.image_name, p.box_index) for p in expected.problems}
    assert stage.panel.problem_table.rowCount() == len(problems)
    # The share shown is that of the drawn anchors (chosen from the data: no model loaded).
    assert stage.current_key == "data"
    assert "of the 6 boxes have no anchor at IoU ≥ 0.7" in stage.panel.coverage.text()

    row = next(r for r, p in enumerate(problems) if p.kind == "duplicate")
    table = stage.panel.problem_table
    rect = table.visualRect(table.model().index(row, 1))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    target = problems[row]
    qtbot.waitUntil(lambda: window.document.index == target.image_index
                    and window.model.selected_indices == [target.box_index], timeout=5000)
    assert window.document.current_entry.name == "b.png"


def test_a_loaded_model_s_anchors_are_measured_and_drawn(qtbot, window, tmp_path) -> None:
    path = write_hand_made(tmp_path / "set")
    stage = stage_of(window, DatasetStatsStage)
    stage.docks()[0].show()
    with qtbot.waitSignal(stage.statsReady, timeout=20000):
        assert window.open_path(path)
    model = FasterRCNN.build(["cat", "dog"], "small", small_width=8, min_size=128, max_size=256,
                       anchor_sizes=(16, 32), anchor_ratios=(1.0,)).eval()
    with qtbot.waitSignal(stage.anchorsShown, timeout=10000,
                          check_params_cb=lambda c: c.key == "model") as blocker:
        window.detector_session.set_model(model, "test.pt")
    choice = blocker.args[0]
    assert (choice.sizes, choice.ratios, choice.min_size) == ((16.0, 32.0), (1.0,), 128)
    assert not math.isnan(choice.unmatched_share)
    assert stage.panel.anchors_combo.currentData() == "model"
    assert _line_values(stage) == [1.0, 16.0, 32.0]  # the ratio and the two sizes, as vertical lines
    # Choosing another set from the list redraws with its lines.
    combo = stage.panel.anchors_combo
    with qtbot.waitSignal(stage.anchorsShown, timeout=5000, check_params_cb=lambda c: c.key == "paper"):
        combo.activated.emit(combo.findData("paper"))
    assert _line_values(stage) == [0.5, 1.0, 2.0, 128.0, 256.0, 512.0]


def test_open_bottom_docks_share_one_tab_row(qtbot, window) -> None:
    """Bottom docks start closed; each joins the tab row of an open one when shown."""
    first, second = window.bottom_docks[:2]
    assert first.isHidden() and second.isHidden()
    first.toggleViewAction().trigger()
    qtbot.waitUntil(first.isVisible, timeout=2000)
    second.toggleViewAction().trigger()
    qtbot.waitUntil(lambda: second in window.tabifiedDockWidgets(first), timeout=2000)
    assert second.isVisible() and not second.visibleRegion().isEmpty()  # the newly opened tab is in front
