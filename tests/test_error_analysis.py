"""Confusion matrix, per-image errors and the evaluation report (models only, no Qt)."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest

from models.detection.confusion import BACKGROUND_ROW, MISSED_COLUMN
from models.detection.error_analysis import BY_ERRORS, BY_FALSE_POSITIVES, BY_MISSED, analyse_errors
from models.detection.evaluation import ImageDetections, ImageGroundTruth, evaluate_detections
from models.detection.evaluation_report import (
    ap_table_rows,
    build_report,
    csv_text,
    inputs_from_detections,
    pr_curve_rows,
    rescore,
    worst_rows,
    write_csv,
)

CLASSES = ["cat", "dog"]


def scene() -> tuple[list[ImageGroundTruth], list[ImageDetections]]:
    """Two images, every kind of outcome, each box's fate written beside it."""
    gt0 = ImageGroundTruth(np.array([[10, 10, 60, 60], [100, 20, 180, 100], [120, 110, 150, 140],
                                     [20, 90, 60, 140]], float),
                           ["cat", "dog", "cat", "dog"], np.array([False, False, True, False]))
    det0 = ImageDetections(np.array([
        [11, 11, 60, 60],      # cat on the cat: TP                                  → [cat, cat]
        [10, 12, 60, 62],      # cat again: duplicate                                → [background, cat]
        [100, 20, 178, 100],   # cat on the dog (IoU 0.97): wrong class              → [dog, cat]
        [10, 10, 35, 35],      # cat on a quarter of the cat: poor localisation      → [background, cat]
        [150, 0, 199, 15],     # dog on nothing: background                          → [background, dog]
        [120, 110, 150, 140],  # cat on the difficult cat: ignored                   → nowhere
        [101, 21, 180, 100],   # dog on the dog: TP                                  → [dog, dog]
        [20, 90, 60, 140],     # dog on the second dog, but scores below 0.5: not counted at 0.5
    ], float), np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.55, 0.52, 0.3]),
        ["cat", "cat", "cat", "cat", "dog", "cat", "dog", "dog"])
    # Second image: one cat found, one cat missed, and a dog box half on the found cat (IoU 0.33: a wrong name
    # on a barely overlapped object, not above t_f → background row).
    gt1 = ImageGroundTruth(np.array([[0, 0, 40, 40], [100, 100, 140, 140]], float), ["cat", "cat"])
    det1 = ImageDetections(np.array([[0, 0, 40, 40], [20, 0, 60, 40]], float), np.array([0.9, 0.8]),
                           ["cat", "dog"])
    return [gt0, gt1], [det0, det1]


def direct_count(gts, dets, score_threshold):
    """The matrix counted box by box from the comments above (what a user would tally by hand)."""
    expected = {("cat", "cat"): 1 + 1, ("background", "cat"): 2, ("dog", "cat"): 1, ("background", "dog"): 1 + 1,
                ("dog", "dog"): 1, ("cat", "missed"): 1, ("dog", "missed"): 1}
    if score_threshold <= 0.3:  # the low-scoring dog finds the second dog: a TP, and that dog is no longer missed
        expected[("dog", "dog")] += 1
        del expected[("dog", "missed")]
    return expected


@pytest.mark.parametrize("score_threshold", [0.5, 0.0])
def test_confusion_matrix_against_a_direct_count(score_threshold):
    gts, dets = scene()
    analysis = analyse_errors(gts, dets, CLASSES, score_threshold=score_threshold)
    cm = analysis.confusion
    assert cm.row_labels == ["cat", "dog", BACKGROUND_ROW] and cm.column_labels == ["cat", "dog", MISSED_COLUMN]
    expected = direct_count(gts, dets, score_threshold)
    for r in cm.row_labels:
        for c in cm.column_labels:
            assert cm.cell(r, c) == expected.get((r, c), 0), (r, c)
    # Column sums: the class's detections at that score, less the one on the difficult cat.
    shown = [n for d in dets for n, s in zip(d.labels, d.scores, strict=True) if s >= score_threshold]
    assert cm.counts[:, 0].sum() == shown.count("cat") - 1
    assert cm.counts[:, 1].sum() == shown.count("dog")
    # Per class: diagonal + missed = non-difficult objects.
    assert cm.cell("cat", "cat") + cm.cell("cat", "missed") == 3
    assert cm.cell("dog", "dog") + cm.cell("dog", "missed") == 2
    assert cm.cell(BACKGROUND_ROW, MISSED_COLUMN) == 0
    rows = cm.rows()
    assert rows[0][1:] == ["cat", "dog", "missed"] and rows[-1][0] == "background"


def test_error_counts_at_score_zero_equal_the_ap_counts():
    gts, dets = scene()
    result = evaluate_detections(gts, dets, CLASSES, coco=False)
    table = analyse_errors(gts, dets, CLASSES, score_threshold=0.0).errors
    for c in CLASSES:
        t = table.totals(c)
        assert t["tp"] == result.true_positives[c]
        assert t["fp"] == result.false_positives[c]
        assert t["ground_truth"] == result.n_ground_truth[c]
        assert t["tp"] + t["missed"] == result.n_ground_truth[c]


def test_worst_images_orders():
    gts, dets = scene()
    table = analyse_errors(gts, dets, CLASSES, indices=[7, 9], image_names=["a.png", "b.png"]).errors
    cat = table.worst("cat", BY_ERRORS)
    # image a: 3 cat FPs (duplicate, wrong class, localisation), no cat missed; image b: 0 cat FP, 1 missed.
    assert [(w.name, w.false_positives, w.missed) for w in cat] == [("a.png", 3, 0), ("b.png", 0, 1)]
    assert cat[0].index == 7
    assert cat[0].reasons == {"duplicate": 1, "wrong_class": 1, "localisation": 1, "background": 0}
    assert [w.name for w in table.worst("cat", BY_MISSED)] == ["b.png"]
    assert [w.name for w in table.worst("cat", BY_FALSE_POSITIVES)] == ["a.png"]
    # dog: a has 1 FP (background) + 1 missed; b has 1 FP (the half-overlapping dog box).
    dog = table.worst("dog")
    assert [(w.name, w.errors) for w in dog] == [("a.png", 2), ("b.png", 1)]
    with pytest.raises(ValueError, match="order"):
        table.worst("dog", "nonsense")
    rows = worst_rows(dog)
    assert rows[0][:4] == ["image", "class", "false positives", "missed"] and rows[1][:4] == ["a.png", "dog", "1", "1"]


def test_report_tables_and_rescore():
    gts, dets = scene()
    from models.detection.evaluation import DetectorRun

    run = DetectorRun([0, 1], gts, dets, [(200, 150), (200, 150)], list(CLASSES), [])
    report = build_report(run, ["a.png", "b.png"], score_threshold=0.5)
    direct = evaluate_detections(gts, dets, CLASSES)
    assert report.result.mAP == pytest.approx(direct.mAP)
    assert report.result.AP == pytest.approx(direct.AP)
    # COCO per class: pycocotools' overall figure is the mean of the per-class ones.
    per_class = report.result.coco_AP_per_class
    assert set(per_class) == set(CLASSES)
    assert np.mean(list(per_class.values())) == pytest.approx(report.result.coco_AP, abs=1e-9)
    per_class50 = report.result.coco_AP50_per_class  # the same at IoU 0.5 alone
    assert set(per_class50) == set(CLASSES)
    assert np.mean(list(per_class50.values())) == pytest.approx(report.result.coco_AP50, abs=1e-9)
    assert all(per_class50[c] >= per_class[c] - 1e-9 for c in CLASSES)
    rows = ap_table_rows(report)
    assert rows[0][0] == "class" and rows[1][0] == "cat" and rows[2][0] == "dog"
    cat = dict(zip(rows[0], rows[1], strict=True))
    assert cat["objects"] == "3" and cat["TP (score ≥ 0.5)"] == "2" and cat["FP (score ≥ 0.5)"] == "3"
    assert float(cat["AP@0.5 (all-point)"]) == pytest.approx(direct.AP["cat"], abs=1e-4)
    assert rows[-1][1] == f"{direct.mAP:.4f}"
    # Parsed back as CSV, the text is the same table.
    assert list(csv.reader(io.StringIO(csv_text(rows)))) == rows
    # Re-scoring moves the matrix, not the AP; COCO figures are carried over, not recomputed.
    low = rescore(report, score_threshold=0.0)
    assert low.result.mAP == pytest.approx(report.result.mAP)
    assert low.result.coco_AP == report.result.coco_AP
    assert low.analysis.confusion.cell("dog", "dog") == 2
    strict = rescore(report, iou_threshold=0.99)
    assert strict.result.mAP < report.result.mAP
    assert strict.result.mAP == pytest.approx(evaluate_detections(gts, dets, CLASSES, 0.99, coco=False).mAP)
    pr = pr_curve_rows(report.result, "cat")
    assert pr[0] == ["score", "recall", "precision"] and len(pr) - 1 == len(report.result.curves["cat"][0])
    assert float(pr[1][0]) == pytest.approx(0.95)


def test_inputs_from_a_detect_file_match_the_command(tmp_path):
    from models.data.splits import dataset_splits, split_indices
    from models.data.synthetic import SynthParams, write_synthetic
    from models.data.training_data import class_names_of, load_targets
    from models.detection.result_files import load_detections

    source = write_synthetic(tmp_path / "set", 4, seed=5, params=SynthParams(image_format="png"))
    names = class_names_of(source)
    # A "detect" JSON with the ground truth itself, slightly moved, for the test split only.
    test = split_indices(dataset_splits(source), "test")
    images = []
    for i in test:
        t, _ = load_targets(source, i, names)
        boxes = (t.boxes + 1.0).tolist()
        images.append({"file": str(source.entries[i].path), "boxes": boxes, "scores": [0.9] * len(boxes),
                       "labels": list(t.names)})
    path = tmp_path / "dets.json"
    path.write_text(json.dumps({"images": images}))
    loaded = load_detections(path, source)
    run = inputs_from_detections(source, loaded.by_path)
    assert run.indices == test
    report = build_report(run, [source.entries[i].name for i in run.indices])
    assert report.result.mAP == pytest.approx(1.0)
    # With every image asked for, the ones the file lacks count as having no detections.
    everything = inputs_from_detections(source, loaded.by_path, list(range(len(source.entries))))
    assert len(everything.indices) == 4 and any("no entry" in p for p in everything.problems)
    missed = build_report(everything).analysis.errors
    assert int(missed.missed.sum()) == sum(len(load_targets(source, i, names)[0].names)
                                           for i in range(4) if i not in test)
    out = tmp_path / "ap.csv"
    write_csv(out, ap_table_rows(report))
    assert out.read_text(encoding="utf-8").splitlines()[0].startswith("class,AP@0.5 (all-point),COCO AP@[.5:.95],objects")
    assert not math.isnan(report.result.mAP)
