"""Learning-rate schedules of the training loop: warm-up, then cosine decay, a ÷10 step for the last third
(the papers), or constant; an unknown name is refused rather than trained as a constant rate."""

import math

import pytest

from models.detection.training import TrainConfig, train
from models.detection.training_schedule import LR_SCHEDULES, lr_at


def _lrs(schedule: str, total: int = 300, warmup: int = 30, lr: float = 0.01) -> list[float]:
    config = TrainConfig(data="d", out="o.pt", lr=lr, warmup_iters=warmup, lr_schedule=schedule)
    return [lr_at(config, s, total) for s in range(total)]


@pytest.mark.parametrize("schedule", LR_SCHEDULES)
def test_every_schedule_warms_up_linearly_from_a_thousandth(schedule: str) -> None:
    lrs = _lrs(schedule)
    assert lrs[0] == pytest.approx(1e-5)
    assert all(b > a for a, b in zip(lrs[:30], lrs[1:31], strict=True))
    assert max(lrs) == pytest.approx(0.01, rel=0.03)  # cosine has begun to decay by the end of the warm-up


def test_cosine_decays_monotonically_to_almost_nothing() -> None:
    lrs = _lrs("cosine")
    after = lrs[30:]
    assert all(b <= a for a, b in zip(after, after[1:], strict=False))
    assert lrs[150] == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * 0.5)))  # half way: half the rate
    assert lrs[-1] < 0.01 * 1e-3 * 2


def test_step_divides_by_ten_for_the_last_third() -> None:
    lrs = _lrs("step")
    assert set(lrs[30:200]) == {0.01}
    assert lrs[200:] == pytest.approx([0.001] * 100)


def test_constant_stays_after_the_warm_up() -> None:
    assert set(_lrs("constant")[30:]) == {0.01}


def test_an_unknown_schedule_is_refused_before_training(tmp_path) -> None:
    with pytest.raises(ValueError, match="lr_schedule 'Cosine'"):
        lr_at(TrainConfig(data="d", out="o.pt", lr_schedule="Cosine"), 10, 100)
    # A set-up error: raised before the data is read (the folder does not even exist) or a file written.
    with pytest.raises(ValueError, match="lr_schedule 'linear'"):
        train(TrainConfig(data=str(tmp_path / "nowhere"), out=str(tmp_path / "m.pt"), lr_schedule="linear",
                          device="cpu"))
    assert not list(tmp_path.iterdir())
