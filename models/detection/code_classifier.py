"""A linear classifier on a dataset's CNN codes, scored on images it never saw, beside the same classifier
on the boxes' raw pixels.

Why: the nearest-neighbour view shows that a pretrained network's codes group boxes by kind; a linear
classifier on them says how far that goes — R-CNN's argument for reusing an ImageNet network as a fixed
feature extractor. The raw-pixel classifier on the same boxes and split is the baseline that argument is
made against, and the random-weights network of the same view is the control.

The split is by image (a seeded permutation of the images holding boxes of the chosen classes,
``test_fraction`` of them held out), so
no box's neighbour in the same photograph leaks into the test set. Only the ``max_classes`` most frequent
classes with at least ``min_boxes`` boxes take part (a class with three boxes cannot be trained and scored);
the classifier is :func:`~models.detection.linear_classifier.fit_softmax` with class-balanced weights, its L2
strength chosen by 3-fold cross-validation over the training images only. Score: balanced accuracy (mean
per-class recall), because one class often dominates a dataset (coco_tiny: person).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from models.data.io import read_image
from models.detection.code_neighbours import CodeIndex, LabelledBox
from models.detection.features import warp_crops
from models.detection.linear_classifier import LinearClassifier, balanced_accuracy, fit_softmax

#: L2 strengths tried by :func:`choose_l2` (relative to the mean loss; features are standardised).
L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
#: The raw-pixel baseline: each box warped to 32×32 RGB (3,072 numbers) with the share of context the codes'
#: 224-px warp has (16 px there, 2 px here).
PIXEL_SIDE = 32
PIXEL_CONTEXT = 2


def choose_l2(x: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int,
              grid: Sequence[float] = L2_GRID, cancelled: Callable[[], bool] | None = None) -> float:
    """L2 strength with the best mean balanced accuracy over a 3-fold split of the training ``groups``
    (images), so the held-out images never choose it. ``cancelled``: see :func:`fit_softmax`."""
    rng = np.random.default_rng(seed + 1000)
    folds = np.array_split(rng.permutation(np.unique(groups)), 3)
    best, best_l2 = -1.0, float(grid[0])
    for l2 in grid:
        scores = []
        for fold in folds:
            test = np.isin(groups, fold)
            if len(np.unique(y[~test])) < 2 or not test.any():
                continue
            model = fit_softmax(x[~test], y[~test], l2=l2, cancelled=cancelled)
            scores.append(balanced_accuracy(y[test], model.predict(x[test])))
        if scores and float(np.mean(scores)) > best:
            best, best_l2 = float(np.mean(scores)), float(l2)
    return best_l2


def split_by_image(groups: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """Which rows are held out: those of ``round(test_fraction × images)`` images of a seeded permutation (at
    least one image on each side)."""
    ids = np.unique(groups)
    if len(ids) < 2:
        raise ValueError("a held-out split by image needs boxes in at least two images")
    n_test = min(len(ids) - 1, max(1, round(test_fraction * len(ids))))
    test_ids = np.random.default_rng(seed).permutation(ids)[:n_test]
    return np.isin(groups, test_ids)


def choose_classes(names: Sequence[str], max_classes: int = 5, min_boxes: int = 5) -> list[str]:
    """The ``max_classes`` most frequent of ``names`` with at least ``min_boxes`` boxes (ties: first seen)."""
    return [name for name, n in Counter(names).most_common() if n >= min_boxes][:max_classes]


@dataclass
class ClassifierScore:
    """One kind of feature (codes or pixels) through the classifier, scored on the held-out boxes."""

    features: str  # "CNN codes" or "raw pixels"
    l2: float
    balanced_accuracy: float
    accuracy: float
    recall: np.ndarray  # [K] per class, NaN for a class with no held-out box
    confusion: np.ndarray  # [K, K] held-out counts, rows the true class, columns the predicted one
    classifier: LinearClassifier  # fitted on the training images


@dataclass
class CodeClassifierReport:
    """What the view shows: the classes, the split, both scores, and a classifier for the selected box."""

    extractor: str  # the index's extractor key: the classifier reads codes of that network only
    classes: list[str]
    rows: np.ndarray  # index rows that took part
    test: np.ndarray  # [len(rows)] bool: held out
    train_images: int
    test_images: int
    left_out: int  # boxes of classes that did not take part
    codes: ClassifierScore
    pixels: ClassifierScore | None  # None when the baseline could not be computed (``pixels_problem`` says why)
    pixels_problem: str = ""
    seed: int = 0  # of the split (and of the L2 search's folds)

    @property
    def chance(self) -> float:
        return 1.0 / len(self.classes)

    def probabilities(self, code: np.ndarray) -> list[tuple[str, float]]:
        """The classes with the codes classifier's probability for ``code``, most likely first."""
        p = self.codes.classifier.predict_proba(np.asarray(code, np.float32).reshape(1, -1))[0]
        labels = self.codes.classifier.classes
        return sorted(((self.classes[int(c)], float(q)) for c, q in zip(labels, p, strict=True)),
                      key=lambda t: -t[1])

    def held_out(self, row: int) -> bool | None:
        """Whether index row ``row`` was held out (True), trained on (False), or took no part (None)."""
        hit = np.where(self.rows == row)[0]
        return None if not len(hit) else bool(self.test[hit[0]])


def raw_pixel_rows(boxes: Sequence[LabelledBox], side: int = PIXEL_SIDE, context: int = PIXEL_CONTEXT,
                   cancelled: Callable[[], bool] | None = None) -> np.ndarray:
    """Each box warped to ``side``×``side`` RGB with ``context`` px (normalised as the codes' crops), one row
    each, in ``boxes`` order; each image is read once. An unreadable image raises."""
    out = np.zeros((len(boxes), 3 * side * side), np.float32)
    by_image: dict[str, list[int]] = {}
    for i, box in enumerate(boxes):
        by_image.setdefault(box.image, []).append(i)
    for image, rows in by_image.items():
        if cancelled is not None and cancelled():
            raise InterruptedError("stopped while reading the boxes' pixels")
        pixels = read_image(image, max_pixels=None).pixels
        arr = np.array([boxes[i].box for i in rows], np.float32)
        out[rows] = warp_crops(pixels, arr, side, context=context).reshape(len(rows), -1).numpy()
    return out


def _score(name: str, x: np.ndarray, y: np.ndarray, groups: np.ndarray, test: np.ndarray, k: int,
           seed: int, cancelled: Callable[[], bool] | None = None) -> ClassifierScore:
    l2 = choose_l2(x[~test], y[~test], groups[~test], seed, cancelled=cancelled)
    model = fit_softmax(x[~test], y[~test], l2=l2, cancelled=cancelled)
    pred = model.predict(x[test])
    truth = y[test]
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (truth, pred), 1)
    totals = confusion.sum(axis=1)
    recall = np.where(totals > 0, np.diag(confusion) / np.maximum(totals, 1), np.nan)
    return ClassifierScore(name, l2, balanced_accuracy(truth, pred), float(np.mean(pred == truth)), recall,
                           confusion, model)


def train_code_classifier(index: CodeIndex, *, max_classes: int = 5, min_boxes: int = 5,
                          test_fraction: float = 0.3, seed: int = 0, with_pixels: bool = True,
                          cancelled: Callable[[], bool] | None = None,
                          progress: Callable[[float, str], None] | None = None) -> CodeClassifierReport:
    """Train and score the classifier on ``index``'s codes (and, ``with_pixels``, on the same boxes' raw
    pixels); see the module docstring. ``progress(fraction, message)`` hears each step (the L2 search is
    most of the time); ``cancelled`` is asked throughout (InterruptedError when it says yes). Raises ValueError when the index has fewer than two classes with ``min_boxes`` boxes,
    or when the split leaves a class without a training box."""
    def say(fraction: float, message: str) -> None:
        if progress is not None:
            progress(fraction, message)

    classes = choose_classes([b.class_name for b in index.boxes], max_classes, min_boxes)
    if len(classes) < 2:
        raise ValueError(f"a classifier needs two classes with at least {min_boxes} labelled boxes each; the "
                         f"index has {len(classes)}")
    rows = np.array([r for r, b in enumerate(index.boxes) if b.class_name in classes], np.int64)
    y = np.array([classes.index(index.boxes[r].class_name) for r in rows], np.int64)
    groups = np.array([index.boxes[r].entry_index for r in rows], np.int64)
    test = split_by_image(groups, test_fraction, seed)
    missing = [classes[c] for c in range(len(classes)) if not np.any(y[~test] == c)]
    if missing:
        raise ValueError(f"the held-out split leaves no training box of {', '.join(missing)}; try another seed")
    say(0.05, f"Linear classifier on the CNN codes of {len(rows)} boxes: choosing its L2 strength on the "
                 "training images…")
    codes = _score("CNN codes", index.codes[rows], y, groups, test, len(classes), seed, cancelled)
    pixels, problem = None, ""
    if with_pixels:
        say(0.5, "Raw-pixel baseline: reading the boxes' pixels…")
        try:
            x = raw_pixel_rows([index.boxes[r] for r in rows], cancelled=cancelled)
        except InterruptedError:
            raise
        except Exception as exc:  # noqa: BLE001 - the baseline is optional; the codes' score stands alone
            problem = f"the raw-pixel baseline could not read an image: {exc}"
        else:
            say(0.6, "Raw-pixel baseline: choosing its L2 strength on the training images…")
            pixels = _score("raw pixels", x, y, groups, test, len(classes), seed, cancelled)
    return CodeClassifierReport(index.extractor, classes, rows, test, len(np.unique(groups[~test])),
                                len(np.unique(groups[test])), len(index) - len(rows), codes, pixels, problem,
                                seed)
