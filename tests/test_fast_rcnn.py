"""Fast R-CNN: external Selective Search proposals through the shared RoI head, trained and traced."""

import math

import numpy as np
import pytest
import torch

from models.detection.detectors import build_detector, rebuild_detector
from models.detection.detectors.fast_rcnn import FastRCNN, FastRCNNTrace
from models.proposals.cache import ProposalCache

CLASSES = ["circle", "square", "triangle"]
TINY = dict(small_width=8, representation_size=64, min_size=128, max_size=160, proposals_train=300,
            proposals_test=300)


def _tiny_model(seed: int = 0, cache_root=None, **kw) -> FastRCNN:
    torch.manual_seed(seed)
    m = build_detector("fast-rcnn", CLASSES, backbone="small", **{**TINY, **kw})
    if cache_root is not None:
        m.proposal_cache = ProposalCache(cache_root)
    return m


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    from models.data.synthetic import SynthParams, write_synthetic

    params = SynthParams(min_image_size=128, max_image_size=160, min_objects=1, max_objects=2,
                         min_object_size=40, max_object_size=80, photo_fraction=0.0, close_colour_fraction=0.0,
                         image_format="png")
    return write_synthetic(tmp_path_factory.mktemp("fast_synth") / "set", 6, seed=3, params=params)


def test_defaults_are_the_papers() -> None:
    m = FastRCNN.build(CLASSES, "small", small_width=8, representation_size=32)
    h = m.roi_heads
    assert (h.batch_size_per_image, h.positive_fraction, h.fg_iou, h.bg_iou_low, h.bg_iou_high) == \
        (64, 0.25, 0.5, 0.1, 0.5)
    assert h.pool_size == (7, 7) and h.spatial_scale == 1 / 16 and h.pooling == "pool"
    assert h.add_gt_as_proposals and h.nms_threshold == 0.3
    assert m.proposal_params.mode == "fast"


def test_training_needs_proposals_and_gives_the_two_losses() -> None:
    m = _tiny_model().train()
    images = [torch.rand(3, 128, 150), torch.rand(3, 140, 128)]
    targets = [{"boxes": torch.tensor([[10.0, 20.0, 60.0, 70.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[30.0, 30.0, 90.0, 80.0]]), "labels": torch.tensor([2])}]
    with pytest.raises(ValueError, match="proposals"):
        m(images, targets)
    for t in targets:
        t["proposals"] = t["boxes"] + torch.tensor([[2.0, -3.0, 4.0, 1.0]])
    losses = m(images, targets)
    assert set(losses) == {"cls", "box"} and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert m.backbone.body[0].weight.grad.abs().sum() > 0  # one map per image, gradients reach the backbone


def test_checkpoint_config_round_trips(tmp_path) -> None:
    m = _tiny_model(proposal_ks=(30, 60), proposal_max_side=200)
    again = rebuild_detector("fast-rcnn", CLASSES, m.config())
    again.load_state_dict(m.state_dict())
    assert again.config() == m.config()
    assert again.proposal_params == m.proposal_params


def test_predict_and_trace_use_cached_proposals_in_original_pixels(tmp_path) -> None:
    m = _tiny_model(cache_root=tmp_path).eval()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 60, (200, 260, 3)).astype(np.uint8)
    image[40:120, 50:150] = (220, 40, 40)
    det = m.predict([image], score_threshold=0.0)[0]
    assert m.proposal_cache.misses == 1
    assert det.boxes.shape[1] == 4 and (det.boxes[:, 2] <= 260).all() and (det.boxes[:, 3] <= 200).all()
    tr = m.trace(image, score_threshold=0.0)
    assert isinstance(tr, FastRCNNTrace)
    assert m.proposal_cache.hits == 1  # the trace read the predict's proposals back
    sy, sx = tr.factors
    np.testing.assert_allclose(tr.proposals[:, 0], np.clip(tr.proposals_original[:, 0] * sx, 0, None), atol=1e-3)
    assert tr.pooled_features.shape[0] == len(tr.proposals) == len(tr.class_scores) == len(tr.proposal_scores)
    assert tr.pooled_features.shape[2:] == (7, 7)
    assert tr.features.shape[1:] == tr.feature_size
    assert tr.class_scores.shape[1] == len(CLASSES) + 1
    assert len(tr.detections) == len(det)
    np.testing.assert_allclose(tr.detections.boxes, det.boxes, atol=1e-3)


def test_dataset_carries_proposals_through_flips(tiny_set, tmp_path) -> None:
    from models.data.training_data import DetectionDataset, attach_proposals

    m = _tiny_model()
    ds = DetectionDataset(tiny_set, tiny_set.splits["train"][:2], CLASSES, min_size=128, max_size=160, flip_prob=1.0)
    seen = []
    attach_proposals(ds, ProposalCache(tmp_path), m.proposal_params, lambda d, n: seen.append((d, n)))
    assert seen[-1] == (2, 2)
    image, target = ds[0]
    orig = ds.proposals[ds.targets[0].index]
    w = image.shape[-1]
    sx = w / ds.targets[0].width
    np.testing.assert_allclose(target["proposals"][:, 0].numpy(), w - orig[:, 2] * sx, atol=1e-3)


def test_overfits_a_few_synthetic_images(tiny_set, tmp_path) -> None:
    """A tiny Fast R-CNN learns four drawn images by heart on their Selective Search boxes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a shared, busy CPU one thread is several times faster than two spinning
    try:
        _overfit(tiny_set, tmp_path)
    finally:
        torch.set_num_threads(threads)


def _overfit(tiny_set, tmp_path) -> None:
    from models.data.io import read_image
    from models.data.training_data import DetectionDataset, attach_proposals, collate
    from models.detection.evaluation import evaluate_detections

    ds = DetectionDataset(tiny_set, tiny_set.splits["train"], CLASSES, min_size=128, max_size=160)
    m = _tiny_model(seed=1, cache_root=tmp_path, pooling="align").train()
    attach_proposals(ds, m.proposal_cache, m.proposal_params)
    items = [ds[i] for i in range(len(ds))]
    opt = torch.optim.AdamW(m.parameters(), lr=0.002, weight_decay=1e-4)
    iters = 60
    for it in range(iters):
        for g in opt.param_groups:
            g["lr"] = 0.003 * min(1.0, (it + 1) / 10) * 0.5 * (1 + math.cos(math.pi * it / iters))
        images, targets = collate([items[(2 * it) % len(items)], items[(2 * it + 1) % len(items)]])
        losses = m(images, targets)
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    gts, dets = [], []
    for k, i in enumerate(ds.indices):
        dets.append(m.predict([read_image(tiny_set.entries[i].path).pixels])[0])
        t = ds.targets[k]
        gts.append({"boxes": t.boxes, "labels": t.names, "difficult": t.difficult})
    result = evaluate_detections(gts, dets, CLASSES, coco=False)
    assert result.mAP >= 0.8, result.AP


def test_train_detect_evaluate_commands(tiny_set, tmp_path, capsys) -> None:
    """``train --generation fast-rcnn`` writes a checkpoint that ``detect`` and ``evaluate`` rebuild by its
    generation; proposals come from (and go to) the cache folder given."""
    import json

    from app.cli import main
    from models.detection.checkpoints import load_checkpoint

    out, cache = tmp_path / "fast.pt", tmp_path / "cache"
    code = main(["train", "--generation", "fast-rcnn", "--data", str(tiny_set), "--out", str(out),
                 "--epochs", "1", "--max-steps", "2", "--min-size", "96", "--max-size", "128", "--device", "cpu",
                 "--fc-size", "32", "--model-arg", "small_width=8", "--model-arg", "proposals_train=200",
                 "--proposal-cache", str(cache), "--threads", "1", "--quiet"])
    assert code == 0, capsys.readouterr().err
    payload = load_checkpoint(out)
    assert payload["generation"] == "fast-rcnn" and payload["config"]["batch_size"] == 2
    assert payload["model_config"]["proposals"]["train"] == 200
    assert payload["extra"]["train_seconds"] > 0
    assert any(cache.rglob("*.npy"))
    dets = tmp_path / "d.json"
    first = str(tiny_set.entries[0].path)
    assert main(["detect", first, "--model", str(out), "--json", str(dets), "--device", "cpu"]) == 0
    assert json.loads(dets.read_text())
    res = tmp_path / "e.json"
    assert main(["evaluate", "--data", str(tiny_set), "--model", str(out), "--json", str(res),
                 "--device", "cpu"]) == 0
    assert "mAP" in json.loads(res.read_text())
