"""The training plots' redraws: every logged step becomes a point, and a run's first redraw (which creates the
curves and sets the axes of every plot) is spread over several turns of the event loop, one plot at a time, so
the window never holds its GUI thread for all plots at once (issue 16's stall target)."""

from __future__ import annotations

from app.stages.training.plots import TrainingPlots
from models.detection.training import TrainEvent

LOSSES = ("rpn_objectness", "rpn_box", "cls", "box", "total")


def step(i: int, total: int = 10) -> TrainEvent:
    return TrainEvent("step", epoch=1, epochs=1, step=i, steps_per_epoch=total, global_step=i, total_steps=total,
                      losses={name: 1.0 / i for name in LOSSES}, lr=1e-3 * i, metrics={"images_per_s": 2.0 + i})


def test_first_redraw_creates_one_plots_curves_per_turn_then_the_rest(qtbot) -> None:
    plots = TrainingPlots()
    qtbot.addWidget(plots)
    plots.show()
    plots.add_event(TrainEvent("start", epoch=1, epochs=1, steps_per_epoch=10, total_steps=10))
    plots.add_event(step(1))
    plots._redraw_in_turns()  # what the redraw timer calls
    assert all(plots.losses[name].item is not None for name in LOSSES)
    assert plots.lr.item is None and plots.speed.item is None  # left for the next turns
    qtbot.waitUntil(lambda: plots.lr.item is not None and plots.speed.item is not None, timeout=2000)
    assert plots.point_count("total") == 1


def test_every_logged_step_is_a_point_after_flush(qtbot) -> None:
    plots = TrainingPlots()
    qtbot.addWidget(plots)
    for i in range(1, 8):
        plots.add_event(step(i))
    plots.flush()  # the whole redraw at once, as the panel does at the end of a run
    assert plots.point_count("total") == 7
    assert list(plots.lr.item.xData) == list(range(1, 8))
    assert list(plots.speed.item.yData) == [2.0 + i for i in range(1, 8)]


def test_the_loss_legend_names_every_curve_in_its_colour(qtbot) -> None:
    plots = TrainingPlots()
    qtbot.addWidget(plots)
    plots.add_event(step(1))
    plots.flush()
    text = plots.loss_legend.text()
    assert text.index("total") < min(text.index(n) for n in LOSSES if n != "total")  # the total first
    for name in LOSSES:
        assert f"color:{plots.loss_colour(name)}'>━ " in text and name in text
    assert plots.loss_plot.getPlotItem().legend is None  # no box over the curves
    plots.clear()
    assert plots.loss_legend.text() == ""


def test_the_plots_fit_the_bottom_dock_of_a_950_px_window(qtbot, tmp_path, monkeypatch) -> None:
    """At 1400×950 the bottom dock is about 230 px tall: the training panel must fit it without scrolling, so
    every plot shows its x axis (the dock's scroll area cut them before)."""
    from app.main_window import MainWindow
    from app.settings import Settings
    from app.stages.training import TrainingStage
    from tests.tiny_training import tiny_dataset

    monkeypatch.setenv("RCNN_EXPLORER_DATA", str(tmp_path / "data"))
    window = MainWindow(Settings(tmp_path / "s.ini"), thumbnails=False)
    qtbot.addWidget(window)
    window.resize(1400, 950)
    window.show()
    stage = next(s for s in window.stages if isinstance(s, TrainingStage))
    dock = stage.docks()[0]
    dock.show()
    scroll = dock.widget()
    plots = stage.panel.plots

    def fits() -> None:
        qtbot.waitUntil(lambda: stage.panel.isVisible() and scroll.viewport().height() > 0, timeout=5000)
        qtbot.waitUntil(lambda: stage.panel.height() <= scroll.viewport().height(), timeout=5000)
        assert not scroll.verticalScrollBar().isVisible()
        for plot in (plots.loss_plot, plots.map_plot, plots.lr_plot, plots.speed_plot):
            assert plot.height() >= 120 and plot.width() >= 140
        assert plots.loss_plot.width() > plots.lr_plot.width()

    fits()  # no dataset: every generation's reason is listed, and the choices scroll on their own
    assert window.open_path(tiny_dataset(tmp_path / "set", count=4))
    qtbot.waitUntil(lambda: stage.summary is not None, timeout=20_000)
    fits()
    window.close()
