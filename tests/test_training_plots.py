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
