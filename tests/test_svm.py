"""R-CNN's linear SVMs, hard-negative mining and ridge box regression."""

import numpy as np

from models.detection.svm import LinearSVM, fit_ridge, mine_hard_negatives, train_linear_svm


def test_mining_adds_only_uncached_negatives_inside_the_margin() -> None:
    svm = LinearSVM(np.array([1.0, 0.0], np.float32), 0.0)
    feats = np.array([[-3.0, 0], [-0.5, 0], [0.7, 5], [-1.0, 1], [2.0, 0], [-0.99, 0]], np.float32)
    cached = np.array([False, False, False, False, True, False])
    hard = mine_hard_negatives(svm, feats, cached, margin=1.0)
    assert hard.tolist() == [1, 2, 5]  # -3 and -1.0 are at or beyond the margin; index 4 is cached
    assert (svm.score(feats[hard]) > -1.0).all()


def test_svm_separates_and_mining_converges() -> None:
    rng = np.random.default_rng(0)
    pos = rng.normal(0, 1, (20, 5)) + np.array([3, 0, 0, 0, 0])
    negs = rng.normal(0, 1, (2000, 5)) - np.array([1, 0, 0, 0, 0])
    cache = np.zeros(len(negs), bool)
    cache[:10] = True
    for _ in range(4):
        svm = train_linear_svm(pos, negs[cache], c=1.0)
        hard = mine_hard_negatives(svm, negs, cache)
        if len(hard) == 0:
            break
        cache[hard] = True
    assert (svm.score(pos) > 0).mean() >= 0.9
    assert (svm.score(negs) < 0).mean() >= 0.97
    assert cache.sum() < len(negs) / 2  # it never needed every negative


def test_ridge_recovers_a_known_linear_map() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (500, 6)).astype(np.float32)
    w = rng.normal(0, 1, (6, 4)).astype(np.float32)
    b = np.array([0.5, -1.0, 0.0, 2.0], np.float32)
    reg = fit_ridge(x, x @ w + b, alpha=1e-3)
    np.testing.assert_allclose(reg.weight, w, atol=1e-3)
    np.testing.assert_allclose(reg.bias, b, atol=1e-3)
    empty = fit_ridge(np.zeros((0, 6)), np.zeros((0, 4)))
    assert (empty.predict(x) == 0).all()
