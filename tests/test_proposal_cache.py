"""The Selective Search proposal cache: reused for the same pixels and parameters, recomputed otherwise."""

import numpy as np

from models.proposals.cache import ProposalCache, ProposalParams, cache_dir, proposal_key


def _image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((60, 80, 3), 30, np.uint8)
    img[10:40, 15:50] = (200, 40, 40)
    img[20:55, 50:75] = (40, 200, 60)
    return np.clip(img.astype(int) + rng.integers(0, 8, img.shape), 0, 255).astype(np.uint8)


class _Counting:
    """A stand-in for Selective Search that records each call (the real one is tested elsewhere)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, image: np.ndarray, params: ProposalParams) -> np.ndarray:
        self.calls += 1
        return np.array([[0, 0, image.shape[1], image.shape[0]], [1, 2, 3 + params.seed, 4]], np.float32)


def test_second_request_reads_the_stored_boxes(tmp_path) -> None:
    compute = _Counting()
    cache = ProposalCache(tmp_path, compute=compute)
    params = ProposalParams()
    first = cache.get(_image(), params)
    again = ProposalCache(tmp_path, compute=compute).get(_image(), params)  # a new process, same folder
    assert compute.calls == 1
    np.testing.assert_array_equal(first, again)
    assert again.dtype == np.float32


def test_changed_pixels_or_parameters_miss(tmp_path) -> None:
    compute = _Counting()
    cache = ProposalCache(tmp_path, compute=compute)
    img = _image()
    cache.get(img, ProposalParams())
    edited = img.copy()
    edited[0, 0, 0] ^= 1
    cache.get(edited, ProposalParams())
    assert compute.calls == 2
    out = cache.get(img, ProposalParams(seed=3))
    assert compute.calls == 3 and out[1, 2] == 6
    cache.get(img, ProposalParams(ks=(50.0, 100.0)))
    cache.get(img, ProposalParams(max_side=300))
    assert compute.calls == 5
    cache.get(img, ProposalParams(seed=3))
    assert compute.calls == 5 and cache.hits == 1


def test_a_budget_is_a_prefix_of_one_cached_ranking(tmp_path) -> None:
    """``top`` only truncates Selective Search's ranking: every budget reads the same entry."""
    calls = []

    def ranked(image: np.ndarray, params: ProposalParams) -> np.ndarray:
        calls.append(params.top)
        return np.arange(40, dtype=np.float32).reshape(10, 4)

    cache = ProposalCache(tmp_path, compute=ranked)
    img = _image()
    five = cache.get(img, ProposalParams(top=5))
    every = cache.get(img, ProposalParams(top=None))
    eight = cache.get(img, ProposalParams(top=8))
    assert calls == [None]  # computed once, unbudgeted
    np.testing.assert_array_equal(five, every[:5])
    np.testing.assert_array_equal(eight, every[:8])
    assert len(every) == 10 and cache.hits == 2
    assert proposal_key(img, ProposalParams(top=5)) == proposal_key(img, ProposalParams(top=2000))


def test_key_depends_on_content_not_on_the_array_object() -> None:
    a = _image()
    assert proposal_key(a, ProposalParams()) == proposal_key(a.copy(), ProposalParams())
    assert proposal_key(a, ProposalParams()) != proposal_key(a[:, :-1], ProposalParams())


def test_damaged_entry_is_recomputed(tmp_path) -> None:
    compute = _Counting()
    cache = ProposalCache(tmp_path, compute=compute)
    img = _image()
    cache.get(img, ProposalParams())
    cache.path_for(proposal_key(img, ProposalParams())).write_bytes(b"not numpy")
    boxes = cache.get(img, ProposalParams())
    assert compute.calls == 2 and boxes.shape == (2, 4)


def test_unwritable_folder_still_returns_boxes(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cache = ProposalCache(blocker / "sub", compute=_Counting())
    assert cache.get(_image(), ProposalParams()).shape == (2, 4)
    assert cache.write_errors == 1


def test_real_selective_search_through_the_cache(tmp_path) -> None:
    cache = ProposalCache(tmp_path)
    params = ProposalParams(mode="single", ks=(20.0,), top=50, min_box_size=2)
    boxes = cache.get(_image(), params)
    assert 0 < len(boxes) <= 50
    assert (boxes[:, 2] <= 80).all() and (boxes[:, 3] <= 60).all()
    np.testing.assert_array_equal(cache.get(_image(), params), boxes)
    assert cache.hits == 1


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("RCNN_EXPLORER_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    assert ProposalCache().root == tmp_path / "c" / "proposals"


def test_key_follows_the_library_defaults(monkeypatch) -> None:
    import models.proposals.grouping_plans as ss  # where the defaults live (selective_search re-exports them)

    a = _image()
    before = proposal_key(a, ProposalParams())
    given = ProposalParams(ks=(100.0, 150.0, 300.0))
    given_before = proposal_key(a, given)
    monkeypatch.setattr(ss, "FAST_NEAR_DUPLICATE_IOU", 0.5)
    assert proposal_key(a, ProposalParams()) != before  # a changed default never serves old boxes
    assert proposal_key(a, given) == given_before  # given k values have their own threshold
    monkeypatch.undo()
    monkeypatch.setattr(ss, "NEAR_DUPLICATE_IOU", 0.5)
    assert proposal_key(a, given) != given_before
    monkeypatch.undo()
    # fast mode's own plan, grouping by grouping: changing one grouping's similarity set changes the key
    plan = list(ss.FAST_PLAN)
    monkeypatch.setattr(ss, "FAST_PLAN", tuple(plan[:-1]) + (ss.Strategy("lab", 200.0, "S"),))
    assert proposal_key(a, ProposalParams()) != before
    monkeypatch.undo()
    assert proposal_key(a, ProposalParams()) == before
    assert proposal_key(a, ProposalParams(groupings=("lab:200:F",))) != before


def test_keys_of_parameters_from_before_the_groupings_field_are_unchanged() -> None:
    """``groupings`` left empty is absent from the key's text: boxes cached for pinned k values stay valid."""
    assert "groupings" not in ProposalParams(ks=(75.0, 150.0, 300.0), near_duplicate_iou=0.9).to_dict()
    p = ProposalParams(groupings=("lab:200:F",))
    assert ProposalParams.from_dict(p.to_dict()) == p


def test_fast_rcnn_reuses_the_proposals_r_cnn_cached(tmp_path) -> None:
    """One key for both generations: R-CNN (500 test boxes) computes an image's Selective Search boxes once and
    Fast R-CNN (2,000) reads the same entry, and the other way round on a new image."""
    from models.detection.detectors import build_detector

    compute = _Counting()
    shared = ProposalCache(tmp_path, compute=compute)
    tiny = dict(backbone="small", small_width=8, representation_size=32, min_size=64, max_size=96)
    rcnn = build_detector("rcnn", ["a", "b"], proposals_train=500, proposals_test=500, **tiny)
    fast = build_detector("fast-rcnn", ["a", "b"], proposals_train=2000, proposals_test=2000, **tiny)
    rcnn.proposal_cache = ProposalCache(tmp_path, compute=compute)  # separate objects, one folder: as two runs
    fast.proposal_cache = shared
    img = _image()
    first = rcnn.external_proposals(img)
    second = fast.external_proposals(img)
    assert compute.calls == 1 and fast.proposal_cache.hits == 1
    np.testing.assert_array_equal(first, second[: len(first)])
    other = _image(seed=1)
    fast.external_proposals(other)
    rcnn.external_proposals(other)
    assert compute.calls == 2 and rcnn.proposal_cache.hits == 1
    assert proposal_key(img, rcnn.proposal_params) == proposal_key(img, fast.proposal_params)
