"""Crowd and difficult boxes in training: never a positive, and what overlaps them as much as an object's would
count is no negative either — in the RPN's anchor labels, the head's RoI sampling, R-CNN's crops and SVMs, and the
explorer's views of them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.stages.anchors.controller import AnchorsStage
from app.stages.roi_sampling.stage import counts_text, sample_job
from models.boxes import box_iou
from models.data.annotations.model import Annotation, BoxObject
from models.data.io import DecodedImage
from models.detection.anchors import IGNORED, NEGATIVE, POSITIVE, AnchorGenerator, inside_image, label_anchors
from models.detection.detectors import build_detector
from models.detection.detectors.roi_heads import sample_rois
from models.detection.ignore_regions import ignore_near, training_truth

CROWD = [100.0, 100.0, 220.0, 200.0]  # a group of people too dense to box one by one
PERSON = [20.0, 20.0, 80.0, 90.0]  # an ordinary object outside it
INSIDE_PERSON = [150.0, 120.0, 190.0, 190.0]  # an ordinary object inside the crowd's box


def _overlap(boxes: torch.Tensor) -> torch.Tensor:
    return box_iou(boxes.float().reshape(-1, 4), torch.tensor([CROWD])).max(dim=1).values


def _random_boxes(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([200.0, 140.0])
    wh = 40 + torch.rand(n, 2, generator=g) * 100
    return torch.cat([xy, xy + wh], 1)


def test_a_negative_is_ignored_where_it_overlaps_a_region_as_much_as_an_object_would_count() -> None:
    boxes = torch.tensor([[100.0, 100.0, 210.0, 190.0], [110.0, 110.0, 140.0, 140.0], [0.0, 0.0, 30.0, 30.0]])
    labels = torch.tensor([NEGATIVE, NEGATIVE, POSITIVE], dtype=torch.int8)
    # IoU 0.83 with the crowd: ignored; 0.08 (a small box inside the crowd, which VOC scoring counts as a false
    # positive): still background; a positive stays whatever it overlaps.
    assert ignore_near(labels, boxes, torch.tensor([CROWD]), 0.5).tolist() == [IGNORED, NEGATIVE, POSITIVE]
    assert ignore_near(labels, boxes, None, 0.5) is labels
    assert ignore_near(labels, boxes, torch.zeros(0, 4), 0.5) is labels


def test_training_truth_splits_crowd_and_difficult_boxes_off() -> None:
    target = {"boxes": torch.tensor([PERSON, CROWD, INSIDE_PERSON]), "labels": torch.tensor([1, 1, 1]),
              "difficult": torch.tensor([False, True, False])}
    boxes, labels, regions = training_truth(target)
    assert boxes.tolist() == [PERSON, INSIDE_PERSON] and labels.tolist() == [1, 1] and regions.tolist() == [CROWD]
    boxes, labels, regions = training_truth({"boxes": target["boxes"], "labels": target["labels"]})
    assert len(boxes) == 3 and regions.shape == (0, 4)


def test_anchors_inside_a_crowd_are_ignored_and_the_people_in_it_still_matched() -> None:
    anchors = AnchorGenerator((32, 64), (1.0,), 16)((15, 20))
    gt = torch.tensor([PERSON, INSIDE_PERSON])
    plain, _, _ = label_anchors(anchors, gt)
    labels, matched, _ = label_anchors(anchors, gt, ignore_regions=torch.tensor([CROWD]))
    near = _overlap(anchors) >= 0.3  # the RPN's negative threshold
    assert bool(((plain == NEGATIVE) & near).any())
    assert torch.equal(labels[~near], plain[~near])  # away from the crowd nothing changes
    assert not bool((labels[near] == NEGATIVE).any())  # near it: no negative left
    assert torch.equal(labels == POSITIVE, plain == POSITIVE)  # the person inside keeps its positives
    assert bool((matched[labels == POSITIVE] == 1).any())


def test_the_heads_sampler_takes_no_background_from_a_crowd_and_never_matches_it() -> None:
    proposals = _random_boxes(400, 0)
    gt = torch.tensor([PERSON, INSIDE_PERSON])
    s = sample_rois(proposals, gt, batch_size=512, positive_fraction=0.5, ignore_regions=torch.tensor([CROWD]),
                    generator=torch.Generator().manual_seed(1))
    plain = sample_rois(proposals, gt, batch_size=512, positive_fraction=0.5,
                        generator=torch.Generator().manual_seed(1))
    assert len(s.negative) and bool((_overlap(s.proposals[s.negative]) < 0.5).all())
    assert bool((_overlap(plain.proposals[plain.negative]) >= 0.5).any())
    assert len(s.positive) == len(plain.positive) and set(s.matched[s.positive].tolist()) <= {0, 1}


def test_a_detector_trains_on_an_image_whose_only_box_is_a_crowd() -> None:
    """Candidates that all overlap a crowd box leave nothing to sample: zero losses that still backpropagate
    (no crash, no NaN that would stop the run as diverged); a crowd is never a person."""
    torch.manual_seed(0)
    image = torch.rand(3, 128, 160)
    crowd = [0.0, 0.0, 160.0, 128.0]
    near = torch.tensor([[0.0, 0.0, 150.0, 120.0], [5.0, 5.0, 160.0, 128.0]])  # IoU 0.88 and 0.92 with it
    small = torch.tensor([[10.0, 70.0, 40.0, 120.0]])  # IoU 0.07: background, as VOC scoring would count it
    for generation in ("faster-rcnn", "fast-rcnn", "rcnn"):
        extra = {"anchor_sizes": (32, 64)} if generation == "faster-rcnn" else {}
        if generation == "rcnn":
            extra = {"warp.size": 32}
        model = build_detector(generation, ["person"], backbone="small", small_width=8, representation_size=32,
                               min_size=128, max_size=160, **extra).train()
        target = {"boxes": torch.tensor([crowd]), "labels": torch.tensor([1]), "difficult": torch.tensor([True]),
                  "proposals": near}
        losses = model([image], [target])
        assert all(torch.isfinite(v) for v in losses.values()), generation
        sum(losses.values()).backward()
        sampler = model.sample if generation == "rcnn" else model.roi_heads.sample
        sampled = sampler(torch.cat([near, small]), *training_truth(target))
        assert (sampled[1] == 0).all(), generation  # the crowd is no person
        assert sampled[0].tolist() == small.tolist(), generation  # only the small box is background
        if generation != "faster-rcnn":  # its own RPN proposals may be anywhere; these are all near the crowd
            assert sum(float(v.detach()) for v in losses.values()) == 0.0


def test_a_box_around_a_small_difficult_object_is_no_background() -> None:
    """IoU 0.69 with a difficult box: not a negative of a stage whose background ends at IoU 0.5 (it would be
    a positive were the box an ordinary object, and VOC scoring ignores such a detection)."""
    region, roi = torch.tensor([[0.0, 0.0, 100.0, 100.0]]), torch.tensor([[0.0, 0.0, 120.0, 120.0]])
    s = sample_rois(roi, torch.zeros(0, 4), add_gt_as_proposals=False, ignore_regions=region)
    assert s.labels.tolist() == [IGNORED] and len(s.negative) == 0
    far = torch.tensor([[0.0, 0.0, 300.0, 300.0]])  # IoU 0.11: background as before
    assert sample_rois(far, torch.zeros(0, 4), add_gt_as_proposals=False, ignore_regions=region).labels.tolist() == [0]


def test_rcnns_svm_stage_skips_an_image_with_nothing_left() -> None:
    torch.manual_seed(0)
    model = build_detector("rcnn", ["person"], backbone="small", small_width=8, representation_size=32,
                           min_size=128, max_size=160, **{"warp.size": 32}).eval()
    pixels = (np.random.default_rng(0).random((128, 160, 3)) * 255).astype(np.uint8)

    def nothing():  # only a crowd box, every proposal inside it: the loader leaves nothing
        return pixels, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros((0, 4), np.float32)

    def person():
        return (pixels, np.array([[10, 10, 60, 60]], np.float32), np.array([1]),
                np.array([[5, 5, 50, 50], [80, 80, 150, 120]], np.float32))

    stats = model.fit_classifiers([nothing, person])
    assert stats and all(np.isfinite(list(stats.values())))


def test_crops_keep_what_shows_of_a_crowd_and_centre_on_ordinary_objects() -> None:
    from models.data.augmentation import CropWindow, crop_boxes, cut_objects, draw_crop

    boxes = np.array([[0, 0, 100, 40], [150, 150, 190, 190]], np.float32)  # a crowd strip, a person
    window = CropWindow(60, 20, 200, 200)  # the crowd's centre (50, 20) falls outside
    cut, labels, regions = cut_objects(boxes, np.array([1, 1]), np.array([True, False]), window)
    np.testing.assert_allclose(cut, [[0, 0, 40, 20], [90, 130, 130, 170]])
    assert labels.tolist() == [1, 1] and regions.tolist() == [True, False]
    assert crop_boxes(boxes, window)[1].tolist() == [False, True]  # by centre, as objects are
    rng = np.random.default_rng(0)
    for _ in range(20):  # a crop drawn for the ordinary boxes always keeps the person
        w = draw_crop(rng, 200, 200, boxes[1:], 0.3)
        assert w is None or crop_boxes(boxes[1:], w)[1].all()


def test_classification_and_localisation_does_not_learn_a_crowd_as_its_object() -> None:
    from models.detection.cls_loc_targets import choose_object

    boxes = np.array([[0, 0, 300, 100], [10, 10, 50, 90]], np.float32)
    assert choose_object(boxes, np.array([1, 1])) == 0  # the largest
    assert choose_object(boxes, np.array([1, 1]), np.array([True, False])) == 1
    assert choose_object(boxes[:1], np.array([1]), np.array([True])) is None


@pytest.fixture
def crowd_canvas(detector_canvas):
    canvas, session = detector_canvas
    model = canvas.model
    rng = np.random.default_rng(0)
    canvas.set_image(DecodedImage(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), 320, 240, 1, 320, 240, 1.0))
    objects = [BoxObject("person", tuple(CROWD), crowd=True), BoxObject("person", tuple(PERSON)),
               BoxObject("person", tuple(INSIDE_PERSON), difficult=False)]
    model.set_annotation(Annotation("x.png", 320, 240, 3, objects), 320, 240)
    return canvas, session


def test_the_anchors_view_labels_as_training_does_and_numbers_objects_as_the_image(qtbot, crowd_canvas) -> None:
    canvas, session = crowd_canvas
    assert session.gt_ignored().tolist() == [True, False, False]
    stage = AnchorsStage(canvas, session)
    try:
        stage.panel.sizes_edit.setText("32, 64")
        stage.panel.ratios_edit.setText("1")
        with qtbot.waitSignal(stage.labelsReady, timeout=10_000):
            stage.panel.sizes_edit.editingFinished.emit()
            stage.panel.show_box.setChecked(True)
        lab = stage.labelling
        ref = AnchorGenerator((32, 64), (1.0,), 16)((15, 20))
        expected, _, _ = label_anchors(ref, torch.tensor([PERSON, INSIDE_PERSON]), image_size=(240, 320),
                                       ignore_regions=torch.tensor([CROWD]))
        plain, _, _ = label_anchors(ref, torch.tensor([PERSON, INSIDE_PERSON]), image_size=(240, 320))
        inside = inside_image(ref, 240, 320).numpy()
        assert np.array_equal(lab.kinds[inside], expected.numpy()[inside])
        assert int((lab.kinds == NEGATIVE).sum()) < int((plain == NEGATIVE).sum())  # the crowd's are ignored
        assert lab.best_anchor.shape == (2,)  # the crowd box has no best anchor: it is not matched
        text = stage.panel.best_label.text()
        assert "1 crowd or difficult box" in text and "GT 2 person" in text and "GT 3 person" in text
        assert "GT 1 person" not in text
        assert stage.layer._gt_numbers.tolist() == [2, 3]  # the best anchors' labels number them so too
        canvas.viewport().grab()
    finally:
        stage.shutdown()


def test_the_roi_sampling_view_samples_as_training_does(qtbot, crowd_canvas) -> None:
    canvas, session = crowd_canvas
    proposals = _random_boxes(300, 0).numpy()
    boxes, ignored = session.gt_boxes(), session.gt_ignored()
    params = dict(fg_iou=0.5, bg_iou_high=0.5, bg_iou_low=0.0, batch_size=256, positive_fraction=0.25,
                  positive_sampling="random", add_gt_as_proposals=True)

    class _Job:
        def check(self) -> None:
            pass

    batch = sample_job(_Job(), proposals, boxes[~ignored], params, 3, None, None, (0, 0), boxes[ignored])
    assert bool((_overlap(torch.from_numpy(batch.candidates[batch.negative])) < 0.5).all())
    text = counts_text(batch, ["person", "person"], np.array([2, 3]), 1)
    assert "1 crowd or difficult box" in text and "#1:" not in text and "#2:" in text
    assert "left out" not in text
    assert counts_text(batch, ["person"], np.array([2]), 1, "1 ground-truth box of tie (1) left out: …").count(
        "1 ground-truth box of tie (1) left out") == 1


def test_the_augmentation_preview_names_the_ignored_boxes(qtbot) -> None:
    from models.data.training_data import AugmentationDraws
    from models.detection.augmentation_preview import AugmentedView

    draws = AugmentationDraws(False, 0, 512, None, None, None)
    view = AugmentedView(1, np.zeros((8, 8, 3), np.uint8), np.zeros((3, 4), np.float32),
                         ["person", "person (ignored)", "person"], draws, (8, 8), np.array([False, True, False]))
    assert view.caption().endswith("3 boxes (1 ignored: crowd, difficult, centre cut away or hidden by a paste)")
    from app.stages.training.augmentation_dialog import view_pixmap

    assert not view_pixmap(view).isNull()


def test_the_models_trace_labels_its_anchors_with_the_crowd_ignored() -> None:
    from app.stages.model.jobs import trace_job

    class _Job:
        def check(self) -> None:
            pass

    torch.manual_seed(0)
    model = build_detector("faster-rcnn", ["person"], backbone="small", small_width=8, anchor_sizes=(32, 64),
                           anchor_ratios=(1.0,), representation_size=32, min_size=240, max_size=320).eval()
    pixels = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    boxes = np.array([CROWD, PERSON, INSIDE_PERSON], np.float32)
    trace = trace_job(_Job(), None, model, pixels, 1.0, boxes, 0.05, np.array([True, False, False])).trace
    anchors = trace.anchors.boxes
    expected, _, _ = label_anchors(anchors, torch.tensor([PERSON, INSIDE_PERSON]), image_size=(240, 320),
                                   ignore_regions=torch.tensor([CROWD]))
    assert torch.equal(trace.anchors.labels, expected)
    plain = trace_job(_Job(), None, model, pixels, 1.0, boxes[1:], 0.05).trace.anchors.labels
    assert int((trace.anchors.labels == NEGATIVE).sum()) < int((plain == NEGATIVE).sum())


@pytest.mark.parametrize("generation", ["rcnn", "fast-rcnn", "cls-loc"])
def test_the_model_stage_traces_a_crowd_image_with_the_generations_without_anchors(generation: str) -> None:
    """The Model stage passes the regions to ignore to every generation's trace; those with no anchors take
    them and trace the image as they would without them."""
    from app.stages.model.jobs import trace_job

    class _Job:
        def check(self) -> None:
            pass

    torch.manual_seed(0)
    extra = {"proposal_ks": (30, 60), "proposal_max_side": 200, "representation_size": 32} \
        if generation != "cls-loc" else {}
    if generation == "rcnn":
        extra.update(warp_size=32, proposals_test=50)
    model = build_detector(generation, ["person"], backbone="small", small_width=8, min_size=120, max_size=160,
                           **extra).eval()
    pixels = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    boxes = np.array([CROWD, PERSON, INSIDE_PERSON], np.float32)
    with_crowd = trace_job(_Job(), None, model, pixels, 1.0, boxes, 0.0, np.array([True, False, False])).trace
    without = trace_job(_Job(), None, model, pixels, 1.0, boxes[1:], 0.0).trace
    assert type(with_crowd) is type(without)
    assert with_crowd.factors == without.factors
