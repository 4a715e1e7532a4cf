"""A training run fitted to a time budget: the plan's arithmetic on a fake clock, and the loop obeying it.

Deterministic: the plan is tested with a clock the test sets; the loop with budgets that are either spent
before the first plan (tiny) or never (huge), so the number of steps does not depend on the machine.
"""

from __future__ import annotations

import pytest
import torch

from models.detection import training
from models.detection.training import TrainConfig, train
from models.detection.training_distributed import DistInfo
from models.detection.training_schedule import StepBudget, lr_at
from tests.tiny_training import TINY_MODEL, tiny_dataset


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.mktemp("budget_set") / "set")


def _config(data, out, **kw) -> TrainConfig:
    base = dict(data=str(data), out=str(out), epochs=4, batch_size=2, lr=0.01, min_size=96, max_size=128,
                device="cpu", warmup_iters=2, threads=1, model=dict(TINY_MODEL))
    base.update(kw)
    return TrainConfig(**base)


class _FakeClock(StepBudget):
    def __init__(self, seconds: float) -> None:
        self.t = 0.0
        super().__init__(seconds, torch.device("cpu"), DistInfo())

    def now(self) -> float:
        return self.t


def test_the_plan_is_what_the_rest_of_the_budget_buys_at_the_mean_cost() -> None:
    budget = _FakeClock(100.0)
    budget.t = 20 * 0.5  # 20 steps at 0.5 s
    assert budget.plan(global_step=20, steps_this_run=20, cap=1000, device=torch.device("cpu")) == 20 + 180
    budget.t = 40 * 1.0  # the machine got busier: 40 steps cost 1 s each on average
    assert budget.plan(40, 40, 1000, torch.device("cpu")) == 40 + 60
    assert budget.plan(40, 40, 70, torch.device("cpu")) == 70  # never beyond the epochs' cap
    budget.t = 100.5  # spent: stop where it is
    assert budget.plan(90, 90, 1000, torch.device("cpu")) == 90
    budget.t = 99.99  # a sliver left still buys one step, so the run ends at a plan, not mid-air
    assert budget.plan(90, 90, 1000, torch.device("cpu")) == 91


def test_a_spent_budget_ends_the_run_at_the_first_plan(tiny_set, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(training, "BUDGET_REPLAN", 2)
    events = []
    result = train(_config(tiny_set, tmp_path / "m.pt", time_budget_s=1e-9), callbacks=events.append)
    assert result.status == "completed" and result.checkpoint
    steps = [e for e in events if e.kind == "step"]
    assert len(steps) == 2 and steps[-1].total_steps == 2  # 3 steps per epoch, 12 without the budget
    assert any(e.kind == "message" and "time budget" in e.message for e in events)
    assert "time budget bought" in result.message and "2 steps" in result.message
    payload = training.load_checkpoint(result.checkpoint)
    assert payload["extra"]["train_cpu_seconds"] >= 0


def test_an_ample_budget_trains_the_epochs_with_their_schedule(tiny_set, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(training, "BUDGET_REPLAN", 2)
    config = _config(tiny_set, tmp_path / "m.pt", time_budget_s=1e9)
    events = []
    result = train(config, callbacks=events.append)
    steps = [e for e in events if e.kind == "step"]
    assert result.epochs_completed == 4 and len(steps) == 12
    assert [e.lr for e in steps] == pytest.approx([lr_at(config, k, 12) for k in range(12)])
    assert result.message.startswith("trained 4 epochs")
