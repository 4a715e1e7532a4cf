"""Test-time augmentation (several test sizes, mirrored): every pass's boxes come back in the original image's
pixels, the merge (NMS, or NMS then box voting) is what predict, evaluate and the trace all show, and the
settings are the model's own (saved with it, overridable at evaluate time)."""

import argparse

import numpy as np
import pytest
import torch

from models.detection.config import ConfigError, DetectorConfig
from models.detection.detectors import build_detector
from models.detection.detectors.base import Detector, box_vote


class _FixedBox(Detector):
    """Always "finds" the same box in the pixels of the network input it is given, whatever the image: where
    that box lands in the original image says how a pass's boxes were mapped back. Counts its passes."""

    BOX = (10.0, 20.0, 40.0, 60.0)

    def __init__(self, **inp: object) -> None:
        cfg = DetectorConfig.default("faster-rcnn").with_overrides({"input": {"min_size": 100, "max_size": 400,
                                                                              **inp}})
        super().__init__(["person"], cfg)
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # a device to run on
        self.calls = 0

    def forward(self, images, targets=None):  # noqa: ANN001, ANN201
        self.calls += 1
        return [{"boxes": torch.tensor([self.BOX]), "scores": torch.tensor([0.9]), "labels": torch.tensor([1])}]


class _BrightSquare(Detector):
    """Finds the bright pixels of its input, as a detector should: every pass, mirrored or resized, must then
    report the same square in the original image."""

    def __init__(self, **inp: object) -> None:
        cfg = DetectorConfig.default("faster-rcnn").with_overrides({"input": {"min_size": 100, "max_size": 400,
                                                                              **inp}})
        super().__init__(["person"], cfg)
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, images, targets=None):  # noqa: ANN001, ANN201
        ys, xs = torch.where(images[0].mean(0) > 0.5)
        box = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()[None]
        return [{"boxes": box, "scores": torch.tensor([0.8]), "labels": torch.tensor([1])}]


def test_a_box_found_on_the_mirrored_or_resized_image_maps_back_to_the_original() -> None:
    """Image 100 × 200 (model size 100: factor 1). The mirrored pass's box is the mirror image of the fixed
    box; at test size 200 (factor 2) every coordinate is halved."""
    m = _FixedBox(test_flip=True, test_sizes=[100, 200])
    image = np.zeros((100, 200, 3), np.uint8)
    merge = m.merge_passes(image, 0.0)
    got = {(p.size, p.flip): p.detections.boxes[0].tolist() for p in merge.passes}
    assert got == {(100, False): [10.0, 20.0, 40.0, 60.0], (100, True): [160.0, 20.0, 190.0, 60.0],
                   (200, False): [5.0, 10.0, 20.0, 30.0], (200, True): [180.0, 10.0, 195.0, 30.0]}
    assert m.calls == 4 and len(merge.candidates) == 4 and merge.pass_index.tolist() == [0, 1, 2, 3]
    # The four boxes do not overlap at the head's NMS IoU, so the merge keeps all four.
    assert len(merge.detections) == 4 and sorted(merge.nms.kept.tolist()) == [0, 1, 2, 3]


def test_every_pass_of_a_real_detection_agrees_in_original_pixels() -> None:
    """A bright square at x 120-150, y 30-70 of a 100 × 200 image: found at both sizes, mirrored or not, in
    the same place of the original image; the merge keeps one box, there (NMS and vote alike)."""
    image = np.zeros((100, 200, 3), np.uint8)
    image[30:70, 120:150] = 255
    for merge_method in ("nms", "vote"):
        m = _BrightSquare(test_flip=True, test_sizes=[100, 160], test_merge=merge_method)
        merge = m.merge_passes(image, 0.0)
        assert len(merge.passes) == 4
        for p in merge.passes:
            assert np.allclose(p.detections.boxes[0], [120, 30, 150, 70], atol=1.0), (p.name, p.detections.boxes)
        (det,) = m.predict([image], 0.0)
        assert len(det) == 1 and np.allclose(det.boxes[0], [120, 30, 150, 70], atol=1.0)


def test_box_voting_moves_each_kept_box_to_its_voters_weighted_mean() -> None:
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [2.0, 0.0, 12.0, 10.0], [50.0, 50.0, 60.0, 60.0],
                          [1.0, 0.0, 11.0, 10.0]])
    scores = torch.tensor([0.9, 0.3, 0.8, 0.6])
    labels = torch.tensor([1, 1, 1, 2])  # the last box overlaps the first but is of another class
    moved, voters = box_vote(boxes, scores, labels, torch.tensor([0, 2, 3]), 0.5)
    assert torch.allclose(moved[0], torch.tensor([0.5, 0.0, 10.5, 10.0]))  # (0.9·b0 + 0.3·b1) / 1.2
    assert torch.allclose(moved[1], boxes[2]) and torch.allclose(moved[2], boxes[3])
    assert [v.tolist() for v in voters] == [[0, 1], [2], [3]]


def test_vote_keeps_nms_scores_and_count_and_moves_the_boxes() -> None:
    """Two passes that place the object 4 px apart: NMS keeps the better-scored box, the vote their mean."""

    class _Shifting(_FixedBox):
        def forward(self, images, targets=None):  # noqa: ANN001, ANN201
            shift = 4.0 if images[0].shape[-2] == 200 else 0.0  # the 200-px pass places it 4 original px right
            box = torch.tensor([[10.0 + shift, 20.0, 50.0 + shift, 60.0]]) * (images[0].shape[-2] / 100)
            score = 0.9 if images[0].shape[-2] == 100 else 0.3
            return [{"boxes": box, "scores": torch.tensor([score]), "labels": torch.tensor([1])}]

    image = np.zeros((100, 200, 3), np.uint8)
    nms = _Shifting(test_sizes=[100, 200]).predict([image], 0.0)[0]
    vote = _Shifting(test_sizes=[100, 200], test_merge="vote").predict([image], 0.0)[0]
    assert np.allclose(nms.boxes, [[10, 20, 50, 60]]) and np.allclose(nms.scores, [0.9])
    assert np.allclose(vote.boxes, [[11, 20, 51, 60]]) and np.allclose(vote.scores, [0.9])  # x: (0.9·10 + 0.3·14) / 1.2
    average = _Shifting(test_sizes=[100, 200], test_merge="average").predict([image], 0.0)[0]
    assert np.allclose(average.boxes, vote.boxes) and np.allclose(average.scores, [0.6])  # (0.9 + 0.3) / 2


def test_average_ranks_what_the_passes_agree_on_first() -> None:
    """Pass A (model size) sees a strong box only it reports and a weaker one both report; the mean over the
    passes puts the agreed one first, NMS would rank by the single strongest score."""

    class _TwoPasses(_FixedBox):
        def forward(self, images, targets=None):  # noqa: ANN001, ANN201
            k = images[0].shape[-2] / 100
            if k == 1:  # pass A: a lone box (0.8) and the shared one (0.6)
                boxes, scores = [[120.0, 10.0, 150.0, 50.0], [10.0, 20.0, 50.0, 60.0]], [0.8, 0.6]
            else:  # pass B: the shared one only (0.7)
                boxes, scores = [[10.0, 20.0, 50.0, 60.0]], [0.7]
            return [{"boxes": torch.tensor(boxes) * k, "scores": torch.tensor(scores),
                     "labels": torch.ones(len(scores), dtype=torch.long)}]

    image = np.zeros((100, 200, 3), np.uint8)
    nms = _TwoPasses(test_sizes=[100, 200]).predict([image], 0.0)[0]
    average = _TwoPasses(test_sizes=[100, 200], test_merge="average").predict([image], 0.0)[0]
    assert np.allclose(nms.scores, [0.8, 0.7]) and np.allclose(nms.boxes[0], [120, 10, 150, 50])
    assert np.allclose(average.scores, [0.65, 0.4]) and np.allclose(average.boxes[1], [120, 10, 150, 50])
    with pytest.raises(ConfigError, match="size range"):
        _FixedBox(test_sizes=[100, 200], test_merge="average", test_size_range=[10, 50])


def test_the_options_round_trip_through_a_saved_checkpoint(tmp_path) -> None:
    from models.detection.checkpoints import load_detector, save_checkpoint

    torch.manual_seed(0)
    m = build_detector("faster-rcnn", ["person"], backbone="small", small_width=8, min_size=96, max_size=128,
                       representation_size=32)
    assert m.test_passes == [(None, False)]
    m.set_test_augmentation(test_sizes=[96, 128], test_flip=True, test_merge="vote")
    assert m.test_passes == [(96, False), (96, True), (128, False), (128, True)]
    path = save_checkpoint(tmp_path / "m.pt", model=m, config={}, class_names=["person"], split={}, epoch=1)
    again = load_detector(path, device="cpu")
    assert again.test_sizes == (96, 128) and again.test_flip and again.test_merge == "vote"
    assert again.parts.input.test_merge == "vote"
    image = np.random.default_rng(0).integers(0, 255, (100, 140, 3), dtype=np.uint8)
    a, b = m.predict([image], 0.0)[0], again.predict([image], 0.0)[0]
    assert np.allclose(a.boxes, b.boxes) and np.allclose(a.scores, b.scores)
    with pytest.raises(ConfigError, match="test_merge"):
        m.set_test_augmentation(test_merge="mean")


def test_evaluate_runs_every_pass_and_the_command_line_overrides_the_model(tmp_path) -> None:
    """evaluate_detector goes through predict, so a model's test passes all run on every image; evaluate's
    --test-sizes / --test-flip / --no-test-flip / --test-merge change the model's config (what its summary and
    a saved copy then say)."""
    from app.cli.detection import _add_test_sizes, _apply_test_options
    from models.data.datasets import open_dataset
    from models.data.synthetic import SynthParams, write_synthetic
    from models.detection.evaluation import evaluate_detector

    params = SynthParams(min_image_size=100, max_image_size=120, min_objects=1, max_objects=1,
                         min_object_size=30, max_object_size=50, photo_fraction=0.0, image_format="png")
    root = write_synthetic(tmp_path / "set", 3, seed=1, params=params)
    source = open_dataset(root)
    m = _FixedBox(test_flip=True, test_sizes=[100, 150])
    evaluate_detector(m, source, [0, 1, 2], coco=False)
    assert m.calls == 3 * 4

    parser = argparse.ArgumentParser()
    _add_test_sizes(parser)
    _apply_test_options(m, parser.parse_args([]))  # nothing asked: the model's own
    assert m.test_passes == [(100, False), (100, True), (150, False), (150, True)]
    _apply_test_options(m, parser.parse_args(["--test-sizes", "100,200", "--no-test-flip", "--test-merge", "vote"]))
    assert m.test_passes == [(100, False), (200, False)] and m.test_merge == "vote"
    assert m.config()["input"]["test_sizes"] == [100, 200] and m.config()["input"]["test_flip"] is False
    m.calls = 0
    evaluate_detector(m, source, [0], coco=False)
    assert m.calls == 2
    _apply_test_options(m, parser.parse_args(["--test-sizes", ""]))  # '': the model's own size alone
    assert m.test_passes == [(None, False)]
    with pytest.raises(SystemExit, match="size range"):  # a clear message, not a traceback
        _apply_test_options(m, parser.parse_args(["--test-sizes", "100,150", "--test-merge", "average",
                                                  "--test-range", "10,50"]))


def test_the_trace_shows_the_merge_that_predict_returns() -> None:
    """With test passes the trace's last stage is the merge: its candidates are every pass's detections (in
    the trace's input pixels, as a single pass's are), its NMS the merging one, its detections predict's."""
    torch.manual_seed(0)
    m = build_detector("faster-rcnn", ["a", "b"], backbone="small", small_width=8, min_size=96, max_size=128,
                       representation_size=32, anchor_sizes=(16, 32), box_score_threshold=0.0)
    image = np.random.default_rng(3).integers(0, 255, (120, 150, 3), dtype=np.uint8)
    single = m.trace(image)
    assert single.merge is None
    m.set_test_augmentation(test_sizes=[96, 128], test_flip=True)
    traced = m.trace(image)
    (det,) = m.predict([image], m.roi_heads.score_threshold)
    merge = traced.merge
    assert merge is not None and len(merge.passes) == 4
    assert len(traced.candidates) == sum(len(p.detections) for p in merge.passes)
    sy, sx = traced.factors
    assert np.allclose(traced.candidates.boxes[:, 0::2] / sx, merge.candidates.boxes[:, 0::2], atol=1e-3)
    assert np.allclose(traced.candidates.boxes[:, 1::2] / sy, merge.candidates.boxes[:, 1::2], atol=1e-3)
    assert np.array_equal(traced.detection_nms.kept[: len(det)], np.asarray(merge.nms.kept)[: len(det)])
    assert np.allclose(traced.detections.boxes, det.boxes) and np.allclose(traced.detections.scores, det.scores)
    # The stages before the merge stay the single pass's (the RPN view, the RoI grid, the class scores).
    assert np.allclose(traced.class_scores, single.class_scores)


class _Mirrored(_FixedBox):
    """Two objects, scored differently by the plain and the mirrored pass: the plain pass sees object A at
    0.1 and not B; the mirrored one A at 0.3 and B at 0.2 (boxes in the mirrored input's pixels)."""

    def forward(self, images, targets=None):  # noqa: ANN001, ANN201
        self.calls += 1
        if not getattr(self, "_mirror_next", False):
            self._mirror_next = True
            boxes, scores = [[10.0, 20.0, 40.0, 60.0]], [0.1]
        else:
            self._mirror_next = False
            boxes, scores = [[160.0, 20.0, 190.0, 60.0], [20.0, 30.0, 60.0, 90.0]], [0.3, 0.2]
        return [{"boxes": torch.tensor(boxes), "scores": torch.tensor(scores),
                 "labels": torch.ones(len(scores), dtype=torch.long)}]


def test_average_scores_do_not_depend_on_the_threshold_and_none_fall_below_it() -> None:
    """A pass's score under the caller's threshold still counts in the mean (the passes run at the head's
    own threshold), and the threshold applies to the averaged score: A = (0.1 + 0.3) / 2 = 0.2 stays at a
    0.15 threshold, B = (0 + 0.2) / 2 = 0.1 goes (it used to come back at 0.10, and A at 0.15)."""
    image = np.zeros((100, 200, 3), np.uint8)
    m = _Mirrored(test_flip=True, test_merge="average")
    low = m.predict([image], 0.05)[0]
    assert np.allclose(low.scores, [0.2, 0.1])
    high = m.predict([image], 0.15)[0]
    assert np.allclose(high.scores, [0.2]) and np.allclose(high.boxes, low.boxes[:1])
    assert (high.scores >= 0.15).all()


def test_the_detection_cap_applies_after_averaging() -> None:
    """With room for one detection, the one the passes agree on (0.65) wins over the lone strong box (0.8
    from one pass of two: 0.4): the cap is taken over the averaged ranking, not NMS's max-score order."""

    class _TwoPasses(_FixedBox):
        def forward(self, images, targets=None):  # noqa: ANN001, ANN201
            k = images[0].shape[-2] / 100
            if k == 1:
                boxes, scores = [[120.0, 10.0, 150.0, 50.0], [10.0, 20.0, 50.0, 60.0]], [0.8, 0.6]
            else:
                boxes, scores = [[10.0, 20.0, 50.0, 60.0]], [0.7]
            return [{"boxes": torch.tensor(boxes) * k, "scores": torch.tensor(scores),
                     "labels": torch.ones(len(scores), dtype=torch.long)}]

    image = np.zeros((100, 200, 3), np.uint8)
    m = _TwoPasses(test_sizes=[100, 200], test_merge="average")
    m.merge_max_detections = 1
    (det,) = m.predict([image], 0.0)
    assert np.allclose(det.scores, [0.65]) and np.allclose(det.boxes, [[10, 20, 50, 60]])


def test_classification_localisation_refuses_the_detectors_test_passes() -> None:
    """cls-loc answers one box per image; the detectors' merge of test passes would return several. Its
    config refuses test sizes and flips and names its own averaging; the command line says so in one line,
    and switching them off ('' / --no-test-flip) is fine."""
    from app.cli.detection import _add_test_sizes, _apply_test_options

    for setting in ({"input.test_sizes": [128]}, {"input.test_flip": True}):
        with pytest.raises(ConfigError, match="cls_loc_head.test_turns"):
            build_detector("cls-loc", ["a"], small_width=8, **setting)
    model = build_detector("cls-loc", ["a"], small_width=8)
    with pytest.raises(ConfigError, match="test_turns"):
        model.set_test_augmentation(test_flip=True)
    assert model.test_passes == [(None, False)] and not model.parts.input.test_flip
    parser = argparse.ArgumentParser()
    _add_test_sizes(parser)
    with pytest.raises(SystemExit) as exc:
        _apply_test_options(model, parser.parse_args(["--test-sizes", "128,160"]))
    assert "test_turns" in str(exc.value) and "\n" not in str(exc.value)
    _apply_test_options(model, parser.parse_args(["--test-sizes", "", "--no-test-flip"]))
    assert model.test_passes == [(None, False)]


def test_training_validation_runs_one_pass_and_gives_the_test_passes_back(tmp_path) -> None:
    """The per-epoch validation curve is one pass per image at the model's own size (4 passes would cost 4×
    the CPU on every epoch); afterwards, and after an error, the model tests as it was set to."""
    from models.data.datasets import open_dataset
    from models.data.synthetic import SynthParams, write_synthetic
    from models.detection.training import _validate

    params = SynthParams(min_image_size=100, max_image_size=120, min_objects=1, max_objects=1,
                         min_object_size=30, max_object_size=50, photo_fraction=0.0, image_format="png")
    source = open_dataset(write_synthetic(tmp_path / "set", 3, seed=1, params=params))
    m = _FixedBox(test_flip=True, test_sizes=[100, 150], test_merge="average")
    passes, saved = m.test_passes, m.config()
    metrics = _validate(m, source, [0, 1, 2], ["person"], None)
    assert m.calls == 3 and metrics["images"] == 3
    assert m.test_passes == passes and m.config() == saved

    class _Broken(_FixedBox):
        def forward(self, images, targets=None):  # noqa: ANN001, ANN201
            raise RuntimeError("out of memory")

    broken = _Broken(test_flip=True, test_sizes=[100, 150])
    with pytest.raises(RuntimeError, match="out of memory"):
        _validate(broken, source, [0], ["person"], None)
    assert broken.test_passes == passes and broken.config()["input"]["test_flip"] is True


def test_the_model_summary_says_every_test_time_setting(tmp_path) -> None:
    """Sizes, mirroring, the merge, and the size range each size may report (what evaluate will run)."""
    from app.stages.model.summary import summarize
    from models.detection.checkpoints import load_checkpoint, save_checkpoint

    m = build_detector("faster-rcnn", ["person"], backbone="small", small_width=8, min_size=96, max_size=128,
                       representation_size=32)
    m.set_test_augmentation(test_sizes=[96, 128], test_flip=True, test_merge="vote", test_size_range=[16, 64])
    path = save_checkpoint(tmp_path / "m.pt", model=m, config={}, class_names=["person"], split={}, epoch=1)
    size = summarize(load_checkpoint(path), path).input_size
    assert "tests at 96, 128" in size and "mirrored" in size and "merged by vote" in size
    assert "√area 16–64 input px" in size
