"""Checkpoints: round trip, atomic writes, and a clear CheckpointError for corrupt or foreign files."""

import pickle

import numpy as np
import pytest
import torch

from models.detection.checkpoints import CheckpointError, load_checkpoint, load_detector, save_checkpoint
from models.detection.detectors import build_detector

CLASSES = ["circle", "square", "triangle"]
TINY = dict(small_width=8, anchor_sizes=(16, 32, 64), representation_size=32, min_size=96, max_size=128)


def _model():
    torch.manual_seed(0)
    return build_detector("faster-rcnn", CLASSES, backbone="small", box_score_threshold=0.0, **TINY)


def test_round_trip_rebuilds_the_same_detector(tmp_path) -> None:
    m = _model()
    with torch.no_grad():  # make the norm layer non-default so it must travel too
        m.backbone.body[1].weight.mul_(1.5)
    path = save_checkpoint(tmp_path / "sub" / "m.pt", model=m, config={"lr": 0.01, "data": tmp_path},
                           class_names=CLASSES, split={"name": "train", "indices": [0, 2]}, epoch=3,
                           extra={"note": "x"})
    assert [p.name for p in path.parent.iterdir()] == ["m.pt"]  # no temporary file left behind
    payload = load_checkpoint(path)
    assert payload["epoch"] == 3 and payload["class_names"] == CLASSES
    assert payload["split"] == {"name": "train", "indices": [0, 2]}
    assert payload["config"]["data"] == str(tmp_path)
    loaded = load_detector(path, device="cpu")
    assert not loaded.training and loaded.generation == "faster-rcnn" and loaded.class_names == CLASSES
    assert loaded.config() == m.config()
    image = np.random.default_rng(0).integers(0, 255, (100, 120, 3), dtype=np.uint8)
    a, b = m.predict([image], 0.0)[0], loaded.predict([image], 0.0)[0]
    assert np.allclose(a.boxes, b.boxes, atol=1e-4) and np.allclose(a.scores, b.scores, atol=1e-5)


def test_overwrite_keeps_a_valid_file(tmp_path) -> None:
    m = _model()
    path = tmp_path / "m.pt"
    for epoch in (1, 2):
        save_checkpoint(path, model=m, config={}, class_names=CLASSES, split={}, epoch=epoch)
    assert load_checkpoint(path)["epoch"] == 2


@pytest.mark.parametrize("kind", ["truncated", "random", "text", "pickle_code", "state_dict", "missing"])
def test_bad_files_raise_a_clear_error(tmp_path, kind: str) -> None:
    path = tmp_path / "bad.pt"
    good = tmp_path / "good.pt"
    save_checkpoint(good, model=_model(), config={}, class_names=CLASSES, split={}, epoch=1)
    if kind == "truncated":
        path.write_bytes(good.read_bytes()[:2000])
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    elif kind == "text":
        path.write_text("hello\n")
    elif kind == "pickle_code":  # a pickle that would run code if loaded unsafely
        path.write_bytes(pickle.dumps(print))
    elif kind == "state_dict":  # a torchvision-style weights file: valid torch, but not our checkpoint
        torch.save({"conv.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(CheckpointError) as err:
        load_detector(path)
    msg = str(err.value)
    assert str(path) in msg
    if kind == "missing":
        assert "not found" in msg
    elif kind == "state_dict":
        assert "not an R-CNN Explorer detector checkpoint" in msg
    else:
        assert "not a readable detector checkpoint" in msg


def test_unknown_generation_is_a_clear_error(tmp_path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", model=_model(), config={}, class_names=CLASSES, split={}, epoch=1)
    payload = torch.load(path, weights_only=True)
    payload["generation"] = "yolo-v99"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="unknown detector generation .yolo-v99. .available: cls-loc, fast-rcnn, faster-rcnn, rcnn"):
        load_detector(path)
