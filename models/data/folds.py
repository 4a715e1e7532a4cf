"""K-fold cross-validation over the images of a small dataset, made deterministically from a seed.

Why: a user's few dozen photographs are too few for one held-out split to say anything (16 test images give
an AP that moves by ±0.1 with which 16 they are). K folds test every image exactly once; the mean and the
spread over folds are the figure to read. Folds are by image, never by box, so no object is seen in training
and tested in the same photo.

Stratified by a key per image (e.g. "has a person" / "has none"): each stratum is shuffled with the seed and
dealt round-robin over the folds, continuing where the previous stratum stopped, so every fold gets its share
of positives and negatives and the fold sizes differ by at most one.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np


def k_folds(n: int, k: int = 5, seed: int = 0, strata: Sequence[Hashable] | None = None) -> list[list[int]]:
    """The test indices of each of ``k`` folds over ``range(n)``: disjoint, together every index once, sorted.

    ``strata[i]`` (optional) is image ``i``'s group; groups are dealt in sorted order of their keys so the
    result depends on the seed and the keys only, never on dictionary order. Raises ValueError when there
    are fewer images than folds.
    """
    n, k = int(n), int(k)
    if k < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, not {k}")
    if n < k:
        raise ValueError(f"{n} images cannot make {k} folds (each fold needs at least one test image)")
    if strata is not None and len(strata) != n:
        raise ValueError(f"{len(strata)} strata keys for {n} images")
    keys = [0] * n if strata is None else list(strata)
    groups: dict[Hashable, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    rng = np.random.default_rng(int(seed))
    folds: list[list[int]] = [[] for _ in range(k)]
    turn = 0
    for key in sorted(groups, key=repr):
        members = groups[key]
        for j in rng.permutation(len(members)):
            folds[turn % k].append(members[int(j)])
            turn += 1
    return [sorted(f) for f in folds]


def train_indices(folds: Sequence[Sequence[int]], fold: int) -> list[int]:
    """Every index not in ``folds[fold]``: the images fold ``fold`` trains on."""
    if not 0 <= fold < len(folds):
        raise ValueError(f"fold {fold} of {len(folds)} does not exist")
    held = set(folds[fold])
    return sorted(i for f in folds for i in f if i not in held)
