"""R-CNN's classifiers and box regressors on CNN codes: linear SVMs with hard-negative mining, ridge regression.

R-CNN (Girshick et al. 2014, section 2.3 and appendix B/C) does not classify with the fine-tuned softmax: per
class it trains a linear SVM on fc7 features, positives the ground-truth boxes only, negatives the proposals
with IoU < 0.3 with every instance of the class. There are far too many negatives to train on at once, so it
mines: start from a few, train, score more negatives, add the ones inside the margin (score > -1: "hard"),
retrain, and repeat as the cache of hard negatives grows. Box regression is ridge regression per class from
the same features to the (dx, dy, dw, dh) of proposals overlapping a ground-truth box by more than 0.6.

The SVM objective here is liblinear's default (L2-regularised squared hinge), minimised by L-BFGS in torch:
it is smooth, so a few dozen iterations reach the optimum on thousands of examples in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class LinearSVM:
    """Score = features · weight + bias; positive = the class."""

    weight: np.ndarray  # [D] float32
    bias: float

    def score(self, features: np.ndarray) -> np.ndarray:
        return (np.asarray(features, np.float32) @ self.weight + np.float32(self.bias)).astype(np.float32)


def train_linear_svm(positives: np.ndarray, negatives: np.ndarray, c: float = 1e-3,
                     positive_weight: float = 2.0, iterations: int = 60) -> LinearSVM:
    """Minimise ½‖w‖² + C·Σ wᵢ·max(0, 1 − yᵢ(w·xᵢ + b))² (bias not regularised).

    ``c`` as the paper's C = 10⁻³ with unit-scaled features; ``positive_weight`` weighs the few positives up
    (the paper's positive : negative cost ratio was 2 in its released code).
    """
    pos = np.asarray(positives, np.float32)
    neg = np.asarray(negatives, np.float32)
    dim = pos.shape[-1] if pos.size else neg.shape[-1]
    pos, neg = torch.from_numpy(pos.reshape(-1, dim)), torch.from_numpy(neg.reshape(-1, dim))
    x = torch.cat([pos, neg]).double()
    y = torch.cat([torch.ones(len(pos)), -torch.ones(len(neg))]).double()
    cost = torch.cat([torch.full((len(pos),), float(positive_weight)), torch.ones(len(neg))]).double() * c
    w = torch.zeros(dim + 1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], lr=1.0, max_iter=iterations, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        margin = (1 - y * (x @ w[:-1] + w[-1])).clamp(min=0)
        loss = 0.5 * (w[:-1] ** 2).sum() + (cost * margin ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    v = w.detach()
    return LinearSVM(v[:-1].float().numpy(), float(v[-1]))


def mine_hard_negatives(svm: LinearSVM, features: np.ndarray, in_cache: np.ndarray | None = None,
                        margin: float = 1.0) -> np.ndarray:
    """Indices of negatives the SVM gets wrong or nearly so: score > −``margin`` (inside the margin), not
    already cached. Negatives scoring below −margin add nothing to the hinge loss, so they are skipped."""
    scores = svm.score(features)
    hard = scores > -float(margin)
    if in_cache is not None:
        hard &= ~np.asarray(in_cache, bool)
    return np.flatnonzero(hard)


def easy_negatives(svm: LinearSVM, features: np.ndarray, margin: float = 1.0) -> np.ndarray:
    """Indices of cached negatives now far outside the margin (the paper drops them from the cache)."""
    return np.flatnonzero(svm.score(features) < -1.2 * float(margin))


@dataclass
class RidgeRegressor:
    """``targets ≈ features · weight + bias``; weight [D, T]."""

    weight: np.ndarray
    bias: np.ndarray

    def predict(self, features: np.ndarray) -> np.ndarray:
        return (np.asarray(features, np.float32) @ self.weight + self.bias).astype(np.float32)


def fit_ridge(features: np.ndarray, targets: np.ndarray, alpha: float = 1000.0) -> RidgeRegressor:
    """Closed-form ridge regression (the bias unregularised, by centring): W = (XᵀX + αI)⁻¹ XᵀY on centred
    data. α = 1000 as the paper; with no examples, the zero map (boxes left where they are)."""
    x = np.asarray(features, np.float64)
    y = np.asarray(targets, np.float64)
    x, y = x.reshape(len(x), x.shape[-1]), y.reshape(len(y), y.shape[-1])
    if len(x) == 0:
        return RidgeRegressor(np.zeros((x.shape[1], y.shape[1]), np.float32), np.zeros(y.shape[1], np.float32))
    xm, ym = x.mean(0), y.mean(0)
    xc, yc = x - xm, y - ym
    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ yc)
    return RidgeRegressor(w.astype(np.float32), (ym - xm @ w).astype(np.float32))


__all__ = ["LinearSVM", "RidgeRegressor", "easy_negatives", "fit_ridge", "mine_hard_negatives", "train_linear_svm"]
