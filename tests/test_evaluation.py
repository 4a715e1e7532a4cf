"""VOC AP on hand-made cases whose values are worked out by hand, and a cross-check with pycocotools."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.detection.detection_files import coco_results, detections_from_coco_results, load_detection_file
from models.detection.evaluation import (
    ImageDetections,
    ImageGroundTruth,
    evaluate_detections,
    iou_matrix,
    voc_ap,
)

CLASSES = ["cat", "dog"]


def gt(boxes, labels, difficult=None) -> ImageGroundTruth:
    return ImageGroundTruth(np.array(boxes, np.float32).reshape(-1, 4), labels,
                            None if difficult is None else np.array(difficult, bool))


def det(boxes, scores, labels) -> ImageDetections:
    return ImageDetections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32), labels)


def _shift(box, dx):
    return [box[0] + dx, box[1], box[2] + dx, box[3]]


A = [10, 10, 50, 50]
B = [60, 60, 100, 120]
C = [0, 100, 30, 130]
FAR = [200, 200, 240, 240]


def test_iou_matrix_uses_exclusive_corners() -> None:
    m = iou_matrix(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [10, 10, 20, 20]]))
    assert m[0].tolist() == pytest.approx([1.0, 50 / 150, 0.0])


def test_perfect_detections_give_ap_one() -> None:
    gts = [gt([A, B], ["cat", "dog"]), gt([C], ["cat"])]
    dets = [det([A, B], [0.9, 0.8], ["cat", "dog"]), det([C], [0.7], ["cat"])]
    r = evaluate_detections(gts, dets, CLASSES)
    assert r.AP == {"cat": 1.0, "dog": 1.0} and r.mAP == 1.0
    assert r.coco_AP == pytest.approx(1.0) and r.coco_AP50 == pytest.approx(1.0)
    assert r.n_ground_truth == {"cat": 2, "dog": 1} and r.true_positives == {"cat": 2, "dog": 1}


def test_false_positive_ranked_first_gives_the_hand_computed_ap() -> None:
    # Ranked: FP (0.9), TP (0.8), TP (0.7) over 2 objects. Precision 0, 1/2, 2/3 at recall 0, 1/2, 1;
    # the interpolated precision is 2/3 at every recall, so AP = 2/3 (all-point and 11-point alike).
    gts = [gt([A], ["cat"]), gt([B], ["cat"])]
    dets = [det([FAR, A], [0.9, 0.8], ["cat", "cat"]), det([B], [0.7], ["cat"])]
    r = evaluate_detections(gts, dets, ["cat"])
    assert r.AP["cat"] == pytest.approx(2 / 3, abs=1e-12)
    assert r.false_positives["cat"] == 1 and r.true_positives["cat"] == 2
    assert evaluate_detections(gts, dets, ["cat"], use_11_point=True).AP["cat"] == pytest.approx(2 / 3)
    # pycocotools' 101-point AP50 agrees exactly here (the envelope is flat up to recall 1).
    assert r.coco_AP50 == pytest.approx(2 / 3, abs=1e-9)


def test_all_point_and_eleven_point_differ_as_computed_by_hand() -> None:
    # 4 objects; ranked TP, FP, TP, TP, FP → recall .25 .25 .5 .75 .75, precision 1 .5 .667 .75 .6.
    # All-point: 0.25·1 + 0.5·0.75 = 0.625. 11-point: t=0,.1,.2 → 1; t=.3…​.7 → .75; t=.8,.9,1 → 0 → 6.75/11.
    rec = np.array([0.25, 0.25, 0.5, 0.75, 0.75])
    prec = np.array([1, 0.5, 2 / 3, 0.75, 0.6])
    assert voc_ap(rec, prec) == pytest.approx(0.625)
    assert voc_ap(rec, prec, use_11_point=True) == pytest.approx(6.75 / 11)
    objs = [A, B, C, [120, 10, 160, 50]]
    gts = [gt(objs, ["dog"] * 4)]
    dets = [det([objs[0], FAR, objs[1], objs[2], _shift(FAR, 50)], [0.9, 0.8, 0.7, 0.6, 0.5], ["dog"] * 5)]
    r = evaluate_detections(gts, dets, CLASSES)
    assert r.AP["dog"] == pytest.approx(0.625)
    assert np.isnan(r.AP["cat"]) and r.mAP == pytest.approx(0.625)  # no cat objects: left out of mAP
    assert evaluate_detections(gts, dets, CLASSES, use_11_point=True).AP["dog"] == pytest.approx(6.75 / 11)
    # pycocotools samples recall at 101 points: (26·1 + 50·0.75) / 101, close to but not 0.625.
    assert r.coco_AP50 == pytest.approx((26 + 50 * 0.75) / 101, abs=1e-6)
    assert abs(r.coco_AP50 - r.AP["dog"]) < 0.01


def test_difficult_objects_are_neither_misses_nor_false_positives() -> None:
    gts = [gt([A, B], ["cat", "cat"], difficult=[False, True])]
    # The difficult one found (ranked first): ignored, not a FP. Missed: not a miss either.
    assert evaluate_detections(gts, [det([B, A], [0.9, 0.8], ["cat", "cat"])], ["cat"]).AP["cat"] == 1.0
    r = evaluate_detections(gts, [det([A], [0.8], ["cat"])], ["cat"])
    assert r.AP["cat"] == 1.0 and r.n_ground_truth["cat"] == 1 and r.n_difficult["cat"] == 1
    # COCO treats them as crowd regions: same verdict.
    assert r.coco_AP50 == pytest.approx(1.0)


def test_a_crowd_region_is_scored_as_coco_scores_it_and_a_difficult_box_as_voc_does() -> None:
    crowd = [0, 0, 200, 100]  # a group of people in one box, none of them boxed
    person = [150, 20, 190, 95]  # one boxed person, at the crowd's edge
    inside = [10, 10, 40, 90]  # a detection of one unboxed person in the crowd: IoU 0.12, all of it inside
    half_out = [180, 10, 240, 90]  # a third of it in the crowd: no person of the crowd
    truth = [ImageGroundTruth(np.array([crowd, person], np.float32), ["person"] * 2, np.array([True, False]),
                              np.array([True, False]))]
    found = det([inside, person, _shift(person, 2), half_out], [0.9, 0.8, 0.7, 0.6], ["person"] * 4)
    r = evaluate_detections(truth, [found], ["person"])
    # inside: unscored; person: TP; its duplicate lies inside the crowd too: unscored; half_out: FP
    assert r.true_positives["person"] == 1 and r.false_positives["person"] == 1
    assert r.AP["person"] == 1.0 and r.n_ground_truth["person"] == 1 and r.n_difficult["person"] == 1
    assert r.coco_AP50 == pytest.approx(1.0)  # pycocotools agrees
    # the same box marked difficult (VOC): a match needs IoU with it, so the detection inside is a FP ranked first
    voc = [gt([crowd, person], ["person"] * 2, difficult=[True, False])]
    r = evaluate_detections(voc, [found], ["person"])
    assert r.false_positives["person"] == 3 and r.AP["person"] == pytest.approx(0.5)
    # a detection on a boxed person that also lies in the crowd is that person's, not the crowd's
    r = evaluate_detections(truth, [det([_shift(person, -1)], [0.9], ["person"])], ["person"])
    assert r.true_positives["person"] == 1 and r.AP["person"] == 1.0


def test_duplicates_and_poor_overlap_are_false_positives() -> None:
    gts = [gt([A], ["cat"])]
    r = evaluate_detections(gts, [det([A, _shift(A, 2)], [0.9, 0.8], ["cat", "cat"])], ["cat"])
    assert r.true_positives["cat"] == 1 and r.false_positives["cat"] == 1 and r.AP["cat"] == 1.0
    # IoU of A with A shifted by 20 px is 20·40/(2·1600 − 800) = 1/3 < 0.5: a false positive, AP 0.
    r = evaluate_detections(gts, [det([_shift(A, 20)], [0.9], ["cat"])], ["cat"])
    assert r.AP["cat"] == 0.0 and r.false_positives["cat"] == 1
    # At an IoU threshold of 0.3 the same detection counts.
    assert evaluate_detections(gts, [det([_shift(A, 20)], [0.9], ["cat"])], ["cat"],
                               iou_threshold=0.3).AP["cat"] == 1.0


def test_class_with_objects_but_no_detections_counts_as_zero() -> None:
    gts = [gt([A, B], ["cat", "dog"])]
    r = evaluate_detections(gts, [det([A], [0.9], ["cat"])], CLASSES)
    assert r.AP == {"cat": 1.0, "dog": 0.0} and r.mAP == 0.5


def test_labels_as_ids_dicts_and_foreign_objects_give_the_same_result() -> None:
    class Detections:  # what a detector returns: attributes, ids 1..K
        def __init__(self, boxes, scores, labels):
            self.boxes, self.scores, self.labels = boxes, scores, labels

    gts_names = [gt([A, B], ["cat", "dog"])]
    dets_names = [det([A, B, FAR], [0.9, 0.3, 0.5], ["cat", "dog", "dog"])]
    gts_ids = [{"boxes": [A, B], "labels": [1, 2]}]
    dets_ids = [Detections(np.array([A, B, FAR], np.float32), np.array([0.9, 0.3, 0.5]), np.array([1, 2, 2]))]
    r1 = evaluate_detections(gts_names, dets_names, CLASSES)
    r2 = evaluate_detections(gts_ids, dets_ids, CLASSES)
    assert r1.AP == r2.AP and r1.AP["dog"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="outside"):
        evaluate_detections([{"boxes": [A], "labels": [0]}], [None], CLASSES)
    with pytest.raises(ValueError, match="same order"):
        evaluate_detections(gts_ids, [], CLASSES)


def test_cross_check_with_pycocotools_on_several_images_and_classes() -> None:
    rng = np.random.default_rng(0)
    gts, dets = [], []
    for _ in range(12):
        n = int(rng.integers(1, 5))
        xy = rng.uniform(0, 300, size=(n, 2))
        wh = rng.uniform(20, 80, size=(n, 2))
        boxes = np.concatenate([xy, xy + wh], axis=1)
        labels = [CLASSES[int(k)] for k in rng.integers(0, 2, size=n)]
        gts.append(gt(boxes, labels))
        keep = rng.random(n) < 0.8  # some misses
        jitter = rng.normal(0, 3, size=(n, 4))  # well above IoU 0.5, never near it
        found = (boxes + jitter)[keep]
        fps = np.concatenate([rng.uniform(400, 500, size=(2, 2)), rng.uniform(520, 560, size=(2, 2))], axis=1)
        d_boxes = np.concatenate([found, fps])
        d_labels = [lab for lab, k in zip(labels, keep, strict=True) if k] + ["cat", "dog"]
        dets.append(det(d_boxes, rng.uniform(0, 1, size=len(d_labels)), d_labels))
    r = evaluate_detections(gts, dets, CLASSES)
    assert 0.3 < r.mAP < 0.95
    # Same matches, different interpolation (VOC all points vs COCO's 101 recall samples): close, not equal.
    assert r.coco_AP50 == pytest.approx(r.mAP, abs=0.02)
    assert r.coco_AP is not None and r.coco_AP <= r.coco_AP50


def test_to_dict_and_detection_file_formats(tmp_path: Path) -> None:
    r = evaluate_detections([gt([A], ["cat"])], [det([A], [0.9], ["cat"])], CLASSES)
    doc = r.to_dict()
    assert doc["mAP"] == 1.0 and doc["AP"] == {"cat": 1.0, "dog": None} and doc["coco_AP"] == pytest.approx(1.0)
    json.dumps(doc)  # NaN must not leak into JSON
    ours = {"images": [{"file": "a.jpg", "width": 10, "height": 10, "boxes": [], "scores": [], "labels": []}]}
    (tmp_path / "d.json").write_text(json.dumps(ours))
    assert load_detection_file(tmp_path / "d.json") == ("detect", ours)
    records = coco_results(7, det([A], [0.9], ["cat"]), {"cat": 17})
    assert records == [{"image_id": 7, "category_id": 17, "bbox": [10.0, 10.0, 40.0, 40.0], "score": 0.9}]
    (tmp_path / "c.json").write_text(json.dumps(records))
    kind, loaded = load_detection_file(tmp_path / "c.json")
    assert kind == "coco"
    back, problems = detections_from_coco_results(loaded + [{"image_id": 99, "category_id": 17, "bbox": A,
                                                             "score": 1}], [7, 8], {17: "cat"})
    assert back[0].boxes.tolist() == [A] and back[0].labels == ["cat"] and len(back[1].labels) == 0
    assert problems and "not in the dataset" in problems[0]
    (tmp_path / "bad.json").write_text('{"x": 1}')
    with pytest.raises(ValueError, match="neither"):
        load_detection_file(tmp_path / "bad.json")


def test_detect_image_maps_reduced_pixels_back_and_names_labels() -> None:
    from models.detection.evaluation import detect_image

    class Det:
        boxes = np.array([[1, 2, 3, 4]], np.float32)
        scores = np.array([0.5], np.float32)
        labels = np.array([2])
        class_names = CLASSES

    class Model:
        def predict(self, images, score_threshold=0.05):
            assert score_threshold == 0.3 and images[0].shape == (4, 4, 3)
            return [Det()]

    d = detect_image(Model(), np.zeros((4, 4, 3), np.uint8), 0.3, pixel_scale=0.5)
    assert d.boxes.tolist() == [[2, 4, 6, 8]] and d.labels == ["dog"] and d.scores.tolist() == [0.5]
