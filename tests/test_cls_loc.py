"""Classification + localisation as a generation: it trains through the shared loop, overfits a few images,
reports reduced/skipped images, round-trips a checkpoint and is evaluated with its own figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.data.datasets import open_dataset
from models.data.splits import dataset_splits, split_indices
from models.data.synthetic import single_object_params, write_synthetic
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
    assert model.test_turns  # trained with flips and quarter turns (rotate90), so it averages over them
    assert model.train_colour_shuffle  # the class is the outline's, whatever the colours
    assert model.test_glimpse == pytest.approx(0.55)  # answers from a second look around the first box
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


def _mask_box(mask: torch.Tensor) -> torch.Tensor:
    """Normalised (x, y, w, h) of the non-zero pixels of a square [S, S] mask."""
    side = mask.shape[-1]
    ys, xs = torch.nonzero(mask, as_tuple=True)
    x1, y1 = float(xs.min()), float(ys.min())
    return torch.tensor([x1, y1, float(xs.max()) + 1 - x1, float(ys.max()) + 1 - y1]) / side


def test_box_turns_and_flips_follow_the_image() -> None:
    """turn_box / flip_box say where a box goes when the square image turns a quarter (torch.rot90, the
    training's rotate90) or is mirrored; unturn_box undoes a turn."""
    from models.detection.detectors.cls_loc import flip_box, turn_box, unturn_box

    mask = torch.zeros(20, 20)
    mask[3:8, 11:18] = 1  # x 11..17, y 3..7
    box = _mask_box(mask)
    assert torch.allclose(turn_box(box), _mask_box(torch.rot90(mask, 1, (-2, -1))), atol=1e-6)
    assert torch.allclose(flip_box(box), _mask_box(mask.flip(-1)), atol=1e-6)
    assert torch.allclose(unturn_box(turn_box(box)), box, atol=1e-6)
    assert torch.allclose(unturn_box(box), _mask_box(torch.rot90(mask, -1, (-2, -1))), atol=1e-6)


def test_turned_answers_average_eight_views_each_box_turned_back() -> None:
    """Test-time averaging on hand-made answers. An answer that finds the bright rectangle (it turns with the
    image) gives back that rectangle exactly, whatever the view; an answer that always says "the top-left
    quarter" and "class = how many quarter turns the view shows" averages to the centred half-size box (the
    8 views' top-left quarters, turned back, are the four quarters, each twice) and to (3/8, 1/8, 2/8, 2/8)."""
    from models.detection.detectors.cls_loc import turned_answers

    x = torch.zeros(1, 3, 20, 20)
    x[0, :, 3:8, 11:18] = 1
    truth = _mask_box(x[0, 0])

    def finds_the_rectangle(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(1, 3), _mask_box(v[0, 0])[None]

    probs, box = turned_answers(finds_the_rectangle, x)
    assert torch.allclose(box[0], truth, atol=1e-6)
    assert torch.allclose(probs[0], torch.full((3,), 1 / 3))

    views: list[torch.Tensor] = []

    def fixed(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        turns = next(k for k in range(4) if any(torch.equal(v, torch.rot90(u, k, (-2, -1)))
                                                for u in (x, x.flip(-1))))
        views.append(v)
        logits = torch.full((1, 4), -1e4)
        logits[0, turns] = 0.0
        return logits, torch.tensor([[0.0, 0.0, 0.5, 0.5]])

    probs, box = turned_answers(fixed, x)
    assert len(views) == 8
    assert torch.allclose(box[0], torch.tensor([0.25, 0.25, 0.5, 0.5]), atol=1e-6)
    assert torch.allclose(probs[0], torch.tensor([0.25, 0.25, 0.25, 0.25]), atol=1e-4)


def test_test_turns_is_what_predict_and_the_trace_answer() -> None:
    """With cls_loc_head.test_turns the model's one box and class are the mean over the 8 views (predict and
    the window's trace agree); without it, the single view's."""
    from models.detection.detectors.cls_loc import turned_answers

    torch.manual_seed(0)
    image = (np.random.default_rng(0).random((90, 120, 3)) * 255).astype(np.uint8)
    plain = build_detector("cls-loc", ["a", "b"], small_width=8, **{"cls_loc_head.hidden": 16}).eval()
    turned = build_detector("cls-loc", ["a", "b"], small_width=8, **{"cls_loc_head.hidden": 16,
                                                                      "cls_loc_head.test_turns": True}).eval()
    turned.load_state_dict(plain.state_dict())
    assert not plain.test_turns and turned.test_turns
    t, _ = turned.prepare(image)
    with torch.no_grad():
        probs, box = turned_answers(lambda v: turned.head.predict(turned.backbone(v))[1:], turned._warp([t]))
        _, _, logits, single_box = plain._outputs([t])
    dets = turned.predict([image], score_threshold=0.0)[0]
    assert dets.scores[0] == pytest.approx(float(probs.max()), abs=1e-5)
    assert np.allclose(turned.trace(image).box_output, box[0].numpy(), atol=1e-6)
    assert np.allclose(plain.trace(image).box_output, single_box[0].numpy(), atol=1e-6)
    assert plain.predict([image], score_threshold=0.0)[0].scores[0] == pytest.approx(
        float(logits.softmax(-1).max()), abs=1e-5)


def test_antialias_averages_what_the_warp_leaves_out() -> None:
    """Shrinking a one-pixel checkerboard: bilinear samples keep a pattern of whatever pixels they hit, the
    antialiased warp gives its mean grey (what a 1-pixel pattern is at a fifth of the size)."""
    board = ((torch.arange(320)[:, None] + torch.arange(320)[None, :]) % 2).float().expand(3, 320, 320)
    for antialias, spread in ((False, 0.5), (True, 0.02)):
        model = build_detector("cls-loc", ["a"], small_width=8, **{"cls_loc_head.input_size": 64,
                                                                  "cls_loc_head.antialias": antialias})
        warped = model._warp([board]) * model.image_std + model.image_mean
        if antialias:
            assert float((warped - 0.5).abs().max()) < spread
        else:
            assert float((warped - 0.5).abs().max()) >= spread


def test_a_stride_two_first_convolution_doubles_the_input_at_the_same_map() -> None:
    """backbone.options first_stride 2: a 128-px input leaves the 8×8 map a 64-px input leaves without it;
    only the shallow pooled small CNN takes it."""
    from models.detection.backbones import small_cnn

    plain = small_cnn(8, "batch", pool=True, shallow=True, last_pool=False)
    strided = small_cnn(8, "batch", pool=True, shallow=True, last_pool=False, first_stride=2)
    assert plain(torch.rand(1, 3, 64, 64)).shape == strided(torch.rand(1, 3, 128, 128)).shape == (1, 64, 8, 8)
    assert strided.stride == 16 and plain.stride == 8
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in strided.parameters())
    with pytest.raises(ValueError, match="first_stride"):
        small_cnn(8, "batch", first_stride=2)


def test_the_command_line_turns_test_time_averaging_on_and_off(capsys) -> None:
    """evaluate/detect --test-turns / --no-test-turns override the checkpoint's setting for a cls-loc model;
    a detector without it is told that it ignores the option."""
    import argparse

    from app.cli.detection import _add_test_sizes, _apply_test_options

    parser = argparse.ArgumentParser()
    _add_test_sizes(parser)
    model = build_detector("cls-loc", ["a"], small_width=8)
    _apply_test_options(model, parser.parse_args([]))
    assert not model.test_turns
    _apply_test_options(model, parser.parse_args(["--test-turns"]))
    assert model.test_turns
    _apply_test_options(model, parser.parse_args(["--no-test-turns"]))
    assert not model.test_turns
    detector = build_detector("faster-rcnn", ["a"], small_width=8)
    _apply_test_options(detector, parser.parse_args(["--test-turns"]))
    assert "ignores it" in capsys.readouterr().err and not hasattr(detector, "test_turns")


@pytest.mark.parametrize("shuffle", [False, True])
def test_train_colour_shuffle_puts_the_channels_in_a_random_order(shuffle: bool, monkeypatch) -> None:
    """cls_loc_head.train_colour_shuffle: each training image's R, G, B come in one of the 6 orders; off, as
    they are."""
    torch.manual_seed(0)
    model = build_detector("cls-loc", ["a"], small_width=8, **{"cls_loc_head.hidden": 16,
                                                              "cls_loc_head.train_colour_shuffle": shuffle})
    seen: set[tuple[float, ...]] = set()
    outputs = model._outputs

    def spy(images):  # noqa: ANN001, ANN202
        seen.update(tuple(round(float(v), 2) for v in im[:, 0, 0]) for im in images)
        return outputs(images)

    monkeypatch.setattr(model, "_outputs", spy)
    image = torch.stack([torch.full((40, 40), v) for v in (0.1, 0.5, 0.9)])
    targets = [{"boxes": torch.tensor([[10.0, 10.0, 30.0, 30.0]]), "labels": torch.tensor([1])}] * 60
    model.train()([image] * 60, targets)
    assert seen == ({(0.1, 0.5, 0.9)} if not shuffle else
                    {(0.1, 0.5, 0.9), (0.1, 0.9, 0.5), (0.5, 0.1, 0.9), (0.5, 0.9, 0.1), (0.9, 0.1, 0.5),
                     (0.9, 0.5, 0.1)})
