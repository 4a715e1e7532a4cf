"""A Fast R-CNN or R-CNN keeps the Selective Search settings it was trained with when the library's defaults
change: "the mode's" k values and near-duplicate threshold are written into the model when it is built, and a
model saved without them gets the values of its time."""

from __future__ import annotations

import pytest

import models.proposals.grouping_plans as plans
import models.proposals.selective_search as ss
from models.detection.checkpoints import load_checkpoint, load_detector, model_parts, save_checkpoint
from models.detection.config import LEGACY_FAST_KS, LEGACY_NEAR_DUPLICATES
from models.detection.detectors import build_detector

CLASSES = ["a", "b"]


@pytest.mark.parametrize("generation", ["fast-rcnn", "rcnn"])
def test_a_new_model_writes_out_the_current_defaults_and_keeps_them(generation, tmp_path, monkeypatch) -> None:
    model = build_detector(generation, CLASSES, small_width=8)
    props = model.parts.proposals
    assert props.groupings == [s.token for s in ss.FAST_PLAN] and len(props.groupings) == 13
    assert props.near_duplicates == ss.FAST_NEAR_DUPLICATE_IOU == 0.93
    assert model.proposal_params.near_duplicate_iou == ss.FAST_NEAR_DUPLICATE_IOU
    assert model.proposal_params.groupings == tuple(props.groupings)
    path = save_checkpoint(tmp_path / "m.pt", model=model, config={}, class_names=CLASSES, split={}, epoch=1)
    # The library's defaults move on; the saved model does not.
    monkeypatch.setattr(plans, "FAST_KS", (60.0, 120.0))
    monkeypatch.setattr(plans, "FAST_PLAN", (ss.Strategy("hsv", 60.0, "CTSF"),))
    monkeypatch.setattr(plans, "FAST_NEAR_DUPLICATE_IOU", 0.85)
    again = load_detector(path, device="cpu")
    assert again.parts.proposals.ks == props.ks and again.parts.proposals.near_duplicates == props.near_duplicates
    assert again.parts.proposals.groupings == props.groupings
    assert model_parts(load_checkpoint(path)).proposals == props


def test_a_model_saved_without_them_gets_the_defaults_of_its_time(tmp_path) -> None:
    model = build_detector("fast-rcnn", CLASSES, small_width=8)
    path = save_checkpoint(tmp_path / "old.pt", model=model, config={}, class_names=CLASSES, split={}, epoch=1)
    import torch

    payload = torch.load(path, weights_only=True)
    payload["model_config"]["proposals"]["ks"] = None
    payload["model_config"]["proposals"].pop("near_duplicates")  # written before the setting existed
    payload["model_config"]["proposals"].pop("groupings")  # and before this one
    torch.save(payload, path)
    props = load_detector(path, device="cpu").parts.proposals
    assert props.ks == list(LEGACY_FAST_KS) and props.near_duplicates == LEGACY_NEAR_DUPLICATES
    assert props.groupings == []  # written before fast mode had a plan of its own: every space × k


def test_a_model_saved_with_k_values_keeps_its_groupings_and_threshold(tmp_path) -> None:
    """A model pinned before fast mode's own plan (k 100, 150, 300 and 0.95 written out, no groupings) runs the
    12 groupings of those k at 0.95, not the new plan."""
    import numpy as np

    from models.detection.config import ProposalConfig
    from models.detection.detectors.fast_rcnn import proposal_params
    from models.proposals.cache import compute_proposals

    before = ProposalConfig(ks=[100.0, 150.0, 300.0], near_duplicates=0.95).pinned(legacy=True)
    assert before.groupings == [] and before.ks == [100.0, 150.0, 300.0] and before.near_duplicates == 0.95
    built = ProposalConfig(ks=[100.0, 150.0, 300.0]).pinned(legacy=False)  # k given: the threshold of given k
    assert built.groupings == [] and built.near_duplicates == ss.NEAR_DUPLICATE_IOU == 0.95
    new = ProposalConfig().pinned(legacy=False)
    rng = np.random.default_rng(0)
    image = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    image[10:30, 20:50] = (200, 40, 40)
    np.testing.assert_array_equal(compute_proposals(image, proposal_params(new)),
                                  ss.selective_search(image, "fast", top=2000, min_box_size=4.0).boxes)
    old = ss.selective_search(image, "fast", ks=(100, 150, 300), near_duplicate_iou=0.95, top=2000, min_box_size=4.0)
    np.testing.assert_array_equal(compute_proposals(image, proposal_params(before)), old.boxes)


def test_the_cache_key_follows_the_pinned_threshold() -> None:
    import numpy as np

    from models.proposals.cache import ProposalParams, proposal_key

    image = np.zeros((20, 30, 3), np.uint8)
    a = proposal_key(image, ProposalParams(ks=(75.0, 150.0, 300.0), near_duplicate_iou=0.9))
    b = proposal_key(image, ProposalParams(ks=(75.0, 150.0, 300.0), near_duplicate_iou=0.95))
    assert a != b


def test_quality_mode_pins_its_own_defaults_and_its_legacy_ladder() -> None:
    from models.detection.config import LEGACY_QUALITY_KS, ProposalConfig

    new = ProposalConfig(mode="quality").pinned(legacy=False)
    assert new.ks == list(ss.QUALITY_KS) and new.near_duplicates == ss.default_near_duplicates("quality") == 1.0
    old = ProposalConfig(mode="quality").pinned(legacy=True)
    assert old.ks == list(LEGACY_QUALITY_KS) == [50.0, 100.0, 150.0, 300.0]
    assert old.near_duplicates == LEGACY_NEAR_DUPLICATES


def test_groupings_come_from_a_command_line_string_and_bad_ones_are_refused() -> None:
    from models.detection.config import ConfigError, ProposalConfig

    assert ProposalConfig(groupings="hsv:100:CTSF, lab:200:F").groupings == ["hsv:100:CTSF", "lab:200:F"]
    with pytest.raises(ConfigError, match="groupings"):
        ProposalConfig(groupings=["lab:200:Q"])


def test_a_new_model_saves_the_k_values_its_groupings_run() -> None:
    model = build_detector("fast-rcnn", CLASSES, small_width=8)
    props = model.parts.proposals
    assert props.ks == sorted({s.k for s in ss.FAST_PLAN}) == [100.0, 150.0, 200.0, 300.0]


def test_k_values_beside_groupings_that_run_others_are_refused() -> None:
    from models.detection.config import ConfigError, ProposalConfig

    assert ProposalConfig(groupings=["lab:200:F", "hsv:100:TSF"], ks=[200, 100]).groupings  # the same k: fine
    with pytest.raises(ConfigError, match="not used when proposals.groupings is set"):
        ProposalConfig(groupings=["lab:200:F"], ks=[100, 150])


@pytest.mark.parametrize("token", ["lab:inf:F", "hsv:nan:CTSF", "lab:1e400:F", "lab:-5:F", "lab:0:F"])
def test_a_grouping_with_a_k_that_is_not_a_positive_number_is_refused(token) -> None:
    from models.detection.config import ConfigError, ProposalConfig

    with pytest.raises(ValueError, match="positive number"):
        ss.Strategy.parse(token)
    with pytest.raises(ConfigError, match="positive number"):
        ProposalConfig(groupings=[token])
    with pytest.raises(ValueError, match="positive number"):
        ss.Strategy("lab", float("inf"))


def test_one_grouping_spelled_two_ways_is_one_cache_entry() -> None:
    import numpy as np

    from models.proposals.cache import ProposalParams, proposal_key

    image = np.zeros((8, 8, 3), np.uint8)
    a = ProposalParams(groupings=("lab:200:F", "hsv:100.0:CTSF"))
    b = ProposalParams(groupings=("lab k=200 F", " hsv:100:CTSF"))
    assert a.groupings == b.groupings == ("lab:200:F", "hsv:100:CTSF")
    assert proposal_key(image, a) == proposal_key(image, b)
    precise = ss.Strategy("hsv", 100.1234567, "TSF")
    assert ss.Strategy.parse(precise.token) == precise  # the token keeps every digit of k
