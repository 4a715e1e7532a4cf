"""Classification + localisation as a generation: it trains through the shared loop, overfits a few images,
reports reduced/skipped images, round-trips a checkpoint and is evaluated with its own figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.data.datasets import open_dataset
from models.data.synthetic import single_object_params, write_synthetic
from models.data.training_data import dataset_splits, split_indices
from models.detection.checkpoints import load_detector
from models.detection.cls_loc_evaluation import evaluate_cls_loc_model
from models.detection.detectors import build_detector
from models.detection.detectors.cls_loc import ClsLoc
from models.detection.training import TrainConfig, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("clsloc")
    ds = write_synthetic(root / "syn", 8, seed=2, test_fraction=0.0, params=single_object_params(photo_fraction=0))
    messages: list[str] = []
    config = TrainConfig(data=str(ds.root), out=str(root / "cl.pt"), generation="cls-loc", epochs=60,
                         batch_size=4, optimizer="adamw", lr=3e-3, warmup_iters=10, flip_prob=0.0,
                         model={"small_width": 8, "cls_loc_head.hidden": 64}, threads=1, seed=0)
    result = train(config, callbacks=lambda e: messages.append(e.message) if e.kind == "message" else None)
    return ds, result, messages


def test_builds_from_its_parts_and_rebuilds_from_a_checkpoint(trained) -> None:
    ds, result, _ = trained
    assert result.status == "completed"
    model = load_detector(result.checkpoint)
    assert isinstance(model, ClsLoc) and model.parts.cls_loc_head.alpha == pytest.approx(0.1)
    assert model.parts.roi_head is None and model.min_size == 128
    fresh = build_detector("cls-loc", ["a", "b"], small_width=8, **{"cls_loc_head.alpha": 0.3})
    assert fresh.alpha == pytest.approx(0.3)


def test_overfits_a_few_single_object_images(trained) -> None:
    ds, result, _ = trained
    assert result.history[-1]["loss_classifier"] < result.history[0]["loss_classifier"]
    assert result.history[-1]["loss_box_l2"] < result.history[0]["loss_box_l2"]
    model = load_detector(result.checkpoint)
    source = open_dataset(ds.root)
    figures, problems = evaluate_cls_loc_model(model, source, list(range(len(source.entries))))
    assert problems == []
    assert figures.images == 8 and figures.selection.single == 8
    assert figures.accuracy == 1.0
    assert figures.mean_iou > 0.6
    dets = model.predict([np.zeros((200, 300, 3), np.uint8)])[0]
    assert len(dets) == 1  # exactly one answer, whatever the image


def test_training_reports_reduced_and_skipped_images(trained, tmp_path) -> None:
    _, _, messages = trained
    assert any("8 image(s) with one object used as they are" in m for m in messages)
    many = write_synthetic(tmp_path / "many", 3, seed=5, test_fraction=0.0)  # 1–6 shapes per image
    source = open_dataset(many.root)
    from models.data.training_data import DetectionDataset

    ds = DetectionDataset(source, split_indices(dataset_splits(source), "train"), ["circle", "square", "triangle"])
    text = ClsLoc.describe_training_set(ds.targets)
    n_multi = sum(len(t.boxes) > 1 for t in ds.targets)
    assert n_multi > 0 and f"{n_multi} with several objects reduced to their largest" in text


def test_a_checkpoint_from_before_the_head_layernorm_is_refused_with_what_to_do(tmp_path) -> None:
    """Files written before commit 3ea9da3 hold the grid head without ``head.norm`` (and a model config
    without ``train_crop``/``layout``): loading one names the change and the command that replaces it."""
    from models.detection.checkpoints import CheckpointError, save_checkpoint

    model = build_detector("cls-loc", ["a", "b"], small_width=8, **{"cls_loc_head.hidden": 32})
    path = save_checkpoint(tmp_path / "old.pt", model=model, config={}, class_names=["a", "b"],
                           split={"name": "train", "files": []}, epoch=1)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"] = {k: v for k, v in payload["state_dict"].items() if not k.startswith("head.norm.")}
    head = payload["model_config"]["cls_loc_head"]
    for key in ("train_crop", "layout"):
        head.pop(key, None)
    torch.save(payload, path)
    with pytest.raises(CheckpointError) as caught:
        load_detector(path)
    message = str(caught.value)
    assert "3ea9da3" in message and "LayerNorm" in message
    assert "python main.py train --preset cls-loc-shapes-cpu" in message
    assert "missing" not in message  # the mismatch is explained, not dumped


def test_the_spatial_head_moves_its_box_with_the_object() -> None:
    """Each cell predicts the box relative to itself with one shared 1×1 convolution and a softmax over the
    cells picks where to look: an object one cell further right gives the same box one cell further right
    (what one position learns holds at every other), and the box is the weighted average of the cells'."""
    from models.detection.detectors.cls_loc import SpatialClsLocHead

    torch.manual_seed(0)
    head = SpatialClsLocHead(in_channels=4, num_classes=3, hidden=8, dropout=0.0).eval()
    with torch.no_grad():
        head.where.weight.normal_(std=3.0)
        head.box.weight.normal_(std=0.5)
    blob = torch.tensor([1.0, 0.5, 2.0, 0.0])
    left, right = torch.zeros(1, 4, 8, 8), torch.zeros(1, 4, 8, 8)
    left[0, :, 3, 2] = blob
    right[0, :, 3, 3] = blob
    with torch.no_grad():
        w_left, logits_left, box_left = head.predict(left)
        w_right, logits_right, box_right = head.predict(right)
    assert w_left.shape == (1, 1, 8, 8) and float(w_left.sum()) == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(w_right[..., 1:], w_left[..., :-1], atol=1e-6)  # the weights follow the object
    assert float(w_left[0, 0, 2:5, 1:4].sum()) > 0.99  # and sit on it (the 3×3 conv's reach)
    shift = box_right - box_left
    assert float(shift[0, 0]) == pytest.approx(1 / 8, abs=0.01)  # x moves by one cell of eight
    assert torch.allclose(shift[0, 1:], torch.zeros(3), atol=0.01)  # y, w, h stay
    assert torch.allclose(logits_left, logits_right, atol=1e-4)  # the class does not depend on where


def test_the_preset_sees_an_eight_by_eight_map_and_answers_one_box() -> None:
    """cls-loc-shapes-cpu: the shallow pooled small CNN without its last pool (stride 8) under the spatial
    head, so a 64-px input leaves 8×8 cells; the box comes back in the image's own pixels."""
    from models.detection.presets import get_preset

    preset = get_preset("cls-loc-shapes-cpu")
    model = build_detector("cls-loc", ["circle", "square", "triangle"], config=preset.model).eval()
    assert model.parts.cls_loc_head.layout == "spatial" and model.backbone.stride == 8
    trace = model.trace(np.full((240, 320, 3), 128, np.uint8))
    side = model.parts.cls_loc_head.input_size
    assert trace.feature_size == (side // 8, side // 8) and trace.pooled.shape == (1, side // 8, side // 8)
    box = trace.detections.boxes[0]
    assert 0 <= box[0] < box[2] <= 320 and 0 <= box[1] < box[3] <= 240


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_train_crop_share_is_the_share_of_images_cut_to_a_window(share: float, monkeypatch) -> None:
    """Crops only zoom in, so the preset also shows half of the images whole, as the test images are seen."""
    torch.manual_seed(0)
    model = build_detector("cls-loc", ["a", "b"], small_width=8, **{
        "cls_loc_head.hidden": 16, "cls_loc_head.train_crop": 0.5, "cls_loc_head.train_crop_share": share})
    seen: list[tuple[int, int]] = []
    outputs = model._outputs

    def spy(images):  # noqa: ANN001, ANN202
        seen.extend(tuple(im.shape[-2:]) for im in images)
        return outputs(images)

    monkeypatch.setattr(model, "_outputs", spy)
    images = [torch.rand(3, 100, 100) for _ in range(80)]
    targets = [{"boxes": torch.tensor([[40.0, 40.0, 60.0, 60.0]]), "labels": torch.tensor([1])} for _ in images]
    model.train()(images, targets)
    whole = sum(s == (100, 100) for s in seen) / len(seen)
    assert whole == pytest.approx(1.0 - share, abs=0.15)
