"""Classification + localisation as a generation: it trains through the shared loop, overfits a few images,
reports reduced/skipped images, round-trips a checkpoint and is evaluated with its own figures."""

from __future__ import annotations

import numpy as np
import pytest

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
