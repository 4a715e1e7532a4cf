"""A linear classifier for fixed features (CNN codes, raw pixels): multinomial logistic ("softmax")
regression with L2 regularisation, fitted by full-batch L-BFGS in torch.

Why softmax regression rather than R-CNN's per-class linear SVMs: here every box has exactly one of K labels
(no background class, no hard-negative mining), which is the multinomial model's own setting; it gives
probabilities, has a unique optimum (a convex problem, so no learning rate or epoch count to tune) and needs
no new dependency (scikit-learn is not one). Features are standardised first (per-dimension mean/std of the
training set), so one regularisation strength suits codes and pixels alike. ``balanced=True`` weights each
class by the inverse of its frequency — what balanced accuracy asks for when one class dominates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class LinearClassifier:
    """Weights of a fitted model: ``scores = ((x - mean) / std) @ weight.T + bias``."""

    weight: np.ndarray  # [K, D]
    bias: np.ndarray  # [K]
    mean: np.ndarray  # [D]
    std: np.ndarray  # [D]
    classes: np.ndarray  # [K] the label of each row
    l2: float
    final_loss: float

    def scores(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, np.float32) - self.mean) / self.std
        return z @ self.weight.T + self.bias

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        s = self.scores(x)
        s = s - s.max(axis=1, keepdims=True)
        e = np.exp(s)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.classes[np.argmax(self.scores(x), axis=1)]


def fit_softmax(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, balanced: bool = True,
                max_iter: int = 500, cancelled: Callable[[], bool] | None = None) -> LinearClassifier:
    """Fit on rows ``x`` [N, D] with labels ``y`` [N] (any integers). ``l2``: penalty on the weights (not
    the bias), relative to the mean loss. ``cancelled`` is asked at every evaluation of the loss (a few ms
    apart); when it says yes the fit stops with InterruptedError, so a worker running it can be stopped."""
    x = np.asarray(x, np.float32)
    y = np.asarray(y)
    if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need features [N, D] and N labels, got {x.shape} and {y.shape}")
    classes, target = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError("need at least two classes to train a classifier")
    mean = x.mean(axis=0)
    std = x.std(axis=0) + 1e-6
    z = torch.from_numpy((x - mean) / std)
    t = torch.from_numpy(target.astype(np.int64))
    counts = np.bincount(target, minlength=len(classes)).astype(np.float32)
    cw = torch.from_numpy(len(target) / (len(classes) * counts)) if balanced else None
    w = torch.zeros((len(classes), x.shape[1]), requires_grad=True)
    b = torch.zeros(len(classes), requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-6, tolerance_change=1e-9)

    def closure() -> torch.Tensor:
        if cancelled is not None and cancelled():
            raise InterruptedError("stopped while fitting the linear classifier")
        opt.zero_grad()
        loss = F.cross_entropy(z @ w.T + b, t, weight=cw) + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        final = float(F.cross_entropy(z @ w.T + b, t, weight=cw) + 0.5 * l2 * (w * w).sum())
    return LinearClassifier(w.detach().numpy().copy(), b.detach().numpy().copy(), mean, std, classes, float(l2),
                            final)


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean over the classes present in ``y_true`` of the fraction of that class predicted right."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    recalls = [float(np.mean(y_pred[y_true == c] == c)) for c in np.unique(y_true)]
    return float(np.mean(recalls)) if recalls else float("nan")
