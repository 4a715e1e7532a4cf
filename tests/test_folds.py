"""Cross-validation folds: made from the seed alone, every image tested exactly once, strata shared out."""

from __future__ import annotations

import pytest

from models.data.folds import k_folds, train_indices


def test_every_image_is_tested_exactly_once_and_folds_differ_by_at_most_one() -> None:
    folds = k_folds(83, 5, seed=3)
    flat = [i for f in folds for i in f]
    assert sorted(flat) == list(range(83))
    assert {len(f) for f in folds} <= {16, 17}
    assert all(f == sorted(f) for f in folds)


def test_the_same_seed_gives_the_same_folds_and_another_seed_other_ones() -> None:
    assert k_folds(40, 4, seed=7) == k_folds(40, 4, seed=7)
    assert k_folds(40, 4, seed=7) != k_folds(40, 4, seed=8)


def test_strata_are_spread_over_the_folds() -> None:
    has_person = [i % 3 == 0 for i in range(60)]  # 20 positives, 40 negatives
    folds = k_folds(60, 5, seed=0, strata=has_person)
    assert sorted(i for f in folds for i in f) == list(range(60))
    assert [sum(has_person[i] for i in f) for f in folds] == [4, 4, 4, 4, 4]
    uneven = [i < 7 for i in range(30)]  # 7 positives over 3 folds: 3, 2, 2 in some order, never 7, 0, 0
    assert sorted(sum(uneven[i] for i in f) for f in k_folds(30, 3, seed=0, strata=uneven)) == [2, 2, 3]


def test_train_indices_are_the_other_folds() -> None:
    folds = k_folds(10, 5, seed=1)
    for k, fold in enumerate(folds):
        train = train_indices(folds, k)
        assert set(train).isdisjoint(fold) and sorted(train + fold) == list(range(10))
    with pytest.raises(ValueError, match="fold 5 of 5"):
        train_indices(folds, 5)


@pytest.mark.parametrize(("n", "k", "strata", "message"), [
    (3, 5, None, "cannot make 5 folds"), (10, 1, None, "at least 2 folds"), (10, 2, [0] * 9, "9 strata keys")])
def test_impossible_folds_are_refused_with_a_reason(n, k, strata, message) -> None:
    with pytest.raises(ValueError, match=message):
        k_folds(n, k, strata=strata)
