"""Per-part configuration objects: they build the detectors, travel through checkpoints as plain dicts, and
every checkpoint written before them (format version 1, flat settings) keeps loading."""

from pathlib import Path

import numpy as np
import pytest
import torch

from models.detection.checkpoints import VERSION, load_checkpoint, load_detector, model_parts, save_checkpoint
from models.detection.config import (
    ConfigError,
    DetectorConfig,
    RoIHeadConfig,
    RPNConfig,
    migrate_v1,
)
from models.detection.detectors import build_detector

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["circle", "square", "triangle"]
#: The settings tests/data/make_v1_checkpoints.py gave each tiny v1 model, as parts.
V1_EXPECTED = {
    "faster-rcnn": {"rpn.anchor_sizes": [16.0, 32.0, 64.0], "rpn.post_nms_test": 50, "roi_head.batch_size": 32,
                    "roi_head.representation_size": 32, "roi_head.score_threshold": 0.0,
                    "backbone.small_width": 8, "input.min_size": 96, "input.max_size": 128},
    "fast-rcnn": {"proposals.train": 100, "proposals.test": 100, "roi_head.batch_size": 16,
                  "roi_head.bg_iou_low": 0.1, "roi_head.representation_size": 32, "backbone.small_width": 8},
    "rcnn": {"warp.size": 32, "roi_head.batch_size": 8, "roi_head.dropout": 0.5, "proposals.test": 100,
             "roi_head.representation_size": 32, "svm.c": 1e-3, "input.max_size": 128},
}
BOXES = [[4.0, 6.0, 60.0, 70.0], [30.0, 20.0, 110.0, 90.0], [0.0, 0.0, 127.0, 95.0], [50.0, 10.0, 90.0, 40.0]]


def _reference_outputs(model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What tests/data/make_v1_checkpoints.py recorded, recomputed by today's code."""
    image = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    with torch.no_grad():
        if model.generation == "faster-rcnn":
            det = model.predict([image], 0.0)[0]
            boxes, scores, labels = det.boxes, det.scores, det.labels
        else:
            t = torch.from_numpy(image).permute(2, 0, 1).float() / 255
            out = model.forward([t], proposals=[torch.tensor(BOXES)])[0]
            boxes, scores, labels = (out[k].numpy() for k in ("boxes", "scores", "labels"))
    order = np.argsort(-scores, kind="stable")[:20]
    return boxes[order], scores[order], labels[order]


@pytest.mark.parametrize("generation", ["faster-rcnn", "fast-rcnn", "rcnn"])
def test_a_version_1_checkpoint_loads_predicts_the_same_and_maps_to_the_parts(generation) -> None:
    path = DATA / f"v1_{generation.replace('-', '_')}.pt"
    raw = torch.load(path, weights_only=True)
    assert raw["version"] == 1
    assert isinstance(raw["model_config"]["backbone"], str)  # the flat layout
    model = load_detector(path, device="cpu")
    assert model.generation == generation and model.class_names == CLASSES
    parts = model_parts(load_checkpoint(path))
    assert parts == model.parts and isinstance(parts, DetectorConfig)
    for key, value in V1_EXPECTED[generation].items():
        assert parts.get(key) == value, key
    # settings the file did not name keep the generation's defaults, as the old constructor gave them
    assert parts.roi_head.nms == 0.3 and parts.backbone.name == "small" and not parts.backbone.pretrained
    ref = raw["extra"]["reference"]
    boxes, scores, labels = _reference_outputs(model)
    assert len(scores) == len(ref["scores"]) > 0
    assert np.allclose(scores, ref["scores"], atol=1e-5)
    assert np.allclose(boxes, np.asarray(ref["boxes"], np.float32), atol=1e-3)
    assert labels.tolist() == ref["labels"]


def test_a_resaved_old_model_is_written_in_the_new_layout(tmp_path) -> None:
    old = load_detector(DATA / "v1_faster_rcnn.pt", device="cpu")
    path = save_checkpoint(tmp_path / "again.pt", model=old, config={}, class_names=CLASSES, split={}, epoch=1)
    raw = torch.load(path, weights_only=True)
    assert raw["version"] == VERSION == 2
    assert raw["model_config"]["rpn"]["anchor_sizes"] == [16.0, 32.0, 64.0]
    assert raw["model_config"]["backbone"]["small_width"] == 8
    assert load_detector(path, device="cpu").parts == old.parts


@pytest.mark.parametrize("relative", ["resources/models/frcnn_shapes.pt", "resources/models/fast_rcnn_shapes.pt",
                                      "resources/models/rcnn_shapes.pt"])
def test_every_shipped_model_keeps_loading(relative) -> None:
    path = ROOT / relative
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    payload = load_checkpoint(path)
    model = load_detector(path, device="cpu")
    assert model.parts == model_parts(payload)
    assert model.generation == payload["generation"]
    if int(payload.get("version", 1)) == 1:  # the flat settings each reach their part
        flat = payload["model_config"]
        assert model.parts.backbone.small_width == flat["small_width"]
        assert model.parts.input.min_size == flat["min_size"]
        assert model.parts.roi_head.representation_size == flat["representation_size"]
        if "anchor_sizes" in flat:
            assert model.parts.rpn.anchor_sizes == flat["anchor_sizes"]
    image = np.zeros((120, 160, 3), np.uint8)
    if model.generation == "faster-rcnn":  # the others would run Selective Search here
        assert model.predict([image], 0.5)[0].boxes.shape[1] == 4


@pytest.mark.parametrize("generation", ["faster-rcnn", "fast-rcnn", "rcnn"])
def test_the_parts_round_trip_through_a_checkpoint(tmp_path, generation) -> None:
    torch.manual_seed(0)
    parts = DetectorConfig.default(generation).with_overrides({
        "backbone.small_width": 8, "input": {"min_size": 96, "max_size": 128, "test_flip": True},
        "roi_head.representation_size": 16, "roi_head.nms": 0.4})
    if generation == "faster-rcnn":
        parts = parts.with_overrides({"rpn": RPNConfig(anchor_sizes=[24, 48], anchor_ratios=[1.0], nms=0.6)})
    model = build_detector(generation, CLASSES, config=parts)
    path = save_checkpoint(tmp_path / "m.pt", model=model, config={}, class_names=CLASSES, split={}, epoch=1)
    raw = torch.load(path, weights_only=True)  # plain dicts only
    assert raw["version"] == 2 and set(raw["model_config"]) == {name for name, _ in parts.parts()}
    assert raw["model_config"]["roi_head"]["nms"] == 0.4
    loaded = load_detector(path, device="cpu")
    assert loaded.parts == model.parts and loaded.config() == model.config()
    assert loaded.test_flip and loaded.min_size == 96
    if generation == "faster-rcnn":
        assert loaded.rpn.anchor_generator.sizes == (24.0, 48.0) and loaded.rpn.nms_threshold == 0.6
        assert loaded.roi_heads.nms_threshold == 0.4


def test_each_setting_reaches_the_network() -> None:
    m = build_detector("faster-rcnn", CLASSES, small_width=8, representation_size=16,
                       **{"rpn.batch_size": 64, "roi_head.positive_sampling": "per_object"},
                       roi_head={"fg_iou": 0.6}, rpn_pre_nms_test=500)
    assert m.rpn.batch_size_per_image == 64 and m.rpn.pre_nms_top_n["test"] == 500
    assert m.roi_heads.positive_sampling == "per_object" and m.roi_heads.fg_iou == 0.6
    assert m.roi_heads.box_head.fc6.out_features == 16
    r = build_detector("rcnn", CLASSES, small_width=8, crops_per_image=12, warp_size=32, svm_c=0.01)
    assert (r.crops_per_image, r.warp_size, r.svm_c) == (12, 32, 0.01)
    assert r.parts.roi_head.batch_size == 12 and r.parts.warp.size == 32


def test_generation_defaults_are_the_papers() -> None:
    faster, fast, rcnn = (DetectorConfig.default(g) for g in ("faster-rcnn", "fast-rcnn", "rcnn"))
    assert faster.rpn.anchor_sizes == [128.0, 256.0, 512.0] and faster.roi_head.batch_size == 128
    assert faster.proposals is None and fast.rpn is None
    assert (fast.roi_head.batch_size, fast.roi_head.bg_iou_low) == (64, 0.1)
    assert (rcnn.proposals.test, rcnn.roi_head.representation_size, rcnn.roi_head.batch_size) == (500, 512, 32)


def test_migration_maps_every_flat_name_once() -> None:
    flat = {"backbone": "small", "backbone_pretrained": False, "small_width": 8, "anchor_sizes": [16, 32],
            "rpn_nms": 0.6, "roi_batch_size": 64, "box_nms": 0.5, "min_size": 320}
    parts = migrate_v1("faster-rcnn", flat)
    assert parts.rpn.anchor_sizes == [16.0, 32.0] and parts.rpn.nms == 0.6 and parts.roi_head.batch_size == 64
    assert parts.roi_head.nms == 0.5 and parts.input.min_size == 320 and parts.backbone.small_width == 8
    assert parts.rpn.min_size == 0.0  # "min_size" is the input's; the RPN's is rpn_min_size


@pytest.mark.parametrize("bad, message", [
    ({"anchor_size": [16]}, "unknown detector setting 'anchor_size'"),
    ({"rpn.nmss": 0.5}, "no setting 'nmss'"),
    ({"proposals_train": 100}, "faster-rcnn has no proposals part"),
    ({"roi_head.pooling": "max"}, "'pool'"),
    ({"rpn.batch_size": "many"}, "rpn.batch_size expects int"),
])
def test_bad_settings_are_clear_errors(bad, message) -> None:
    with pytest.raises(ConfigError, match=message):
        DetectorConfig.default("faster-rcnn").with_overrides(bad)


def test_parts_coerce_values_and_compare_equal() -> None:
    assert RPNConfig(anchor_sizes=(16, 32)) == RPNConfig(anchor_sizes=[16.0, 32.0])
    assert RoIHeadConfig(batch_size=64.0).batch_size == 64
    assert RoIHeadConfig.help("batch_size")
    assert DetectorConfig.from_dict("rcnn", DetectorConfig.default("rcnn").to_dict()) == DetectorConfig.default("rcnn")
