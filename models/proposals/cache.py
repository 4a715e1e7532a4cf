"""Selective Search proposals cached on disk, keyed by image content and the proposal parameters.

Why: R-CNN and Fast R-CNN need Selective Search boxes for every training image in every epoch and for every
image at test time; ``fast`` mode costs about a second per image on this CPU, a whole epoch's worth of
proposals would cost more than the training step itself. The boxes depend only on the pixels and on the
parameters, so they are computed once and read back afterwards.

Key = SHA-256 of (the decoded pixels' shape, dtype and bytes) + (the Selective Search parameters as canonical
JSON + a format version). A renamed or copied image still hits; an edited image, or any changed parameter
(mode, k values, working size, seed, smallest box, ...), misses. How many boxes a caller wants (``top``) is
NOT part of the key: Selective Search ranks its boxes once and ``top`` only truncates that ranking, so an
entry holds the whole ranked list and every budget is a prefix of it. R-CNN (500 or 2,000 test boxes) and
Fast R-CNN (2,000) thus share one entry per image instead of each computing its own. Nothing is ever invalidated by hand: stale entries are
simply never asked for again. Each entry is one small ``.npy`` file written atomically, so concurrent
readers never see half a file and two processes computing the same entry both write the same bytes.

Location: ``proposals/`` in the product's cache folder (:func:`models.detection.features.cache_dir`:
``$RCNN_EXPLORER_CACHE``, else ``$XDG_CACHE_HOME/rcnn-explorer``, else ``~/.cache/rcnn-explorer``, beside the
CNN-code cache) — a user cache rather than beside the dataset, because datasets are
often read-only (shared folders, the bundled samples); pass ``root`` to put it anywhere else.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from models.data.annotations.atomic import atomic_write_bytes
from models.detection.features import CACHE_ENV, cache_dir, image_key  # one cache folder and image identity

#: Bump when the stored format or the meaning of the parameters changes: old entries then miss.
FORMAT_VERSION = 2  # 2: entries hold every ranked box; ``top`` left out of the key


@dataclass(frozen=True)
class ProposalParams:
    """Every argument of :func:`models.proposals.selective_search.selective_search` that changes its boxes.

    Defaults: ``fast`` mode at working size 500 (the settings bench/README.md measured), the best 2,000 boxes
    (R-CNN's and Fast R-CNN's test-time budget), boxes at least 4 px on each side (thinner ones cannot hold
    an object a detector is asked for and waste RoIs). ``top`` is the caller's budget, applied to the
    cached ranking, not a parameter of the search (:meth:`search_params`).
    """

    mode: str = "fast"
    ks: tuple[float, ...] | None = None
    max_side: int | None = 500
    seed: int = 0
    top: int | None = 2000
    min_box_size: float = 4.0
    near_duplicate_iou: float | None = None  # None: the mode's default (default_near_duplicates)
    #: The groupings as tokens ("lab:200:F"), in place of the mode's × ``ks``; None or (): from mode and ks.
    groupings: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.groupings:  # one spelling per grouping ("lab:200.0:F" is "lab:200:F"): one cache key
            from models.proposals.selective_search import Strategy

            object.__setattr__(self, "groupings", tuple(Strategy.parse(g).token for g in self.groupings))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ks"] = None if self.ks is None else [float(k) for k in self.ks]
        if self.groupings:
            d["groupings"] = list(self.groupings)
        else:  # absent, not empty: parameters from before the field keep their cache keys
            del d["groupings"]
        return d

    def search_params(self) -> ProposalParams:
        """These parameters without the budget: what the boxes and their order depend on (the cache key)."""
        return replace(self, top=None)

    @classmethod
    def from_dict(cls, d: dict) -> ProposalParams:
        d = dict(d)
        if d.get("ks") is not None:
            d["ks"] = tuple(float(k) for k in d["ks"])
        if d.get("groupings") is not None:
            d["groupings"] = tuple(str(g) for g in d["groupings"])
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def image_digest(image: np.ndarray) -> str:
    """Hash of an image's decoded content (shape, dtype, pixels): the same identity as the CNN-code cache."""
    return image_key(image)


def proposal_key(image: np.ndarray, params: ProposalParams) -> str:
    """The cache key of ``image``'s proposals under ``params`` (``params.top`` is ignored: one key for every
    budget, so all generations share an entry).

    The library's defaults that ``params`` leaves implicit (the mode's k values, the near-duplicate threshold)
    go into the key as their values, so boxes cached before a default changed are never served after it.
    """
    from models.proposals.selective_search import default_near_duplicates, own_plan, strategies_for

    effective = {"ks": sorted({s.k for s in strategies_for(params.mode, params.ks)}),
                 "near_duplicate_iou": (default_near_duplicates(params.mode, params.ks)
                                        if params.near_duplicate_iou is None else float(params.near_duplicate_iou))}
    plan = own_plan(params.mode, params.ks)
    if plan is not None and not params.groupings:
        # the mode's own plan, grouping by grouping (only here: the keys of given k values stay as they were)
        effective["groupings"] = [s.token for s in plan]
    h = hashlib.sha256(image_digest(image).encode())
    search = params.search_params().to_dict()
    del search["top"]
    h.update(json.dumps({"v": FORMAT_VERSION, **search, "effective": effective}, sort_keys=True).encode())
    return h.hexdigest()[:40]


def compute_proposals(image: np.ndarray, params: ProposalParams) -> np.ndarray:
    """Selective Search boxes (float32 [N, 4], the image's pixels, best-ranked first) without the cache."""
    from models.proposals.selective_search import Strategy, selective_search

    extra: dict = {} if params.near_duplicate_iou is None else {"near_duplicate_iou": float(params.near_duplicate_iou)}
    if params.groupings:
        extra["strategies"] = [Strategy.parse(g) for g in params.groupings]
    props = selective_search(image, params.mode, ks=params.ks, max_side=params.max_side, seed=params.seed,
                             top=params.top, min_box_size=params.min_box_size, **extra)
    return np.ascontiguousarray(props.boxes, dtype=np.float32).reshape(-1, 4)


class ProposalCache:
    """Get-or-compute Selective Search boxes; ``hits``/``misses`` count what happened (for tests and logs).

    ``root=None`` uses :func:`cache_dir`/proposals; ``enabled=False`` always computes (and writes nothing).
    An unwritable cache folder is not an error: the boxes are returned and the failure is counted in
    ``write_errors`` so a read-only home never stops a training run.
    """

    def __init__(self, root: str | os.PathLike | None = None, enabled: bool = True,
                 compute: Callable[[np.ndarray, ProposalParams], np.ndarray] = compute_proposals) -> None:
        self.root = Path(root) if root is not None else cache_dir() / "proposals"
        self.enabled = bool(enabled)
        self.compute = compute
        self.hits = 0
        self.misses = 0
        self.write_errors = 0

    def path_for(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def get(self, image: np.ndarray, params: ProposalParams) -> np.ndarray:
        """``image``'s best ``params.top`` proposals (all when None): read back when cached, else computed
        (the whole ranking, which is what is stored) and stored."""
        top = params.top if params.top is not None and params.top > 0 else None
        return self._ranked(image, params.search_params())[:top]

    def _ranked(self, image: np.ndarray, params: ProposalParams) -> np.ndarray:
        if not self.enabled:
            self.misses += 1
            return np.ascontiguousarray(self.compute(image, params), dtype=np.float32).reshape(-1, 4)
        key = proposal_key(image, params)
        path = self.path_for(key)
        if path.is_file():
            try:
                boxes = np.load(path, allow_pickle=False)
                if boxes.ndim == 2 and boxes.shape[1] == 4:
                    self.hits += 1
                    return boxes.astype(np.float32, copy=False)
            except (OSError, ValueError):
                pass  # a damaged entry is recomputed and overwritten
        self.misses += 1
        boxes = np.ascontiguousarray(self.compute(image, params), dtype=np.float32).reshape(-1, 4)
        buf = io.BytesIO()
        np.save(buf, boxes, allow_pickle=False)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, buf.getvalue())
        except OSError:
            self.write_errors += 1
        return boxes

    def get_many(self, images: Sequence[Callable[[], np.ndarray]], params: ProposalParams,
                 progress: Callable[[int, int], None] | None = None) -> list[np.ndarray]:
        """Proposals of several images given as loaders (so only one image is in memory at a time);
        ``progress(done, total)`` after each."""
        out = []
        for i, load in enumerate(images):
            out.append(self.get(load(), params))
            if progress is not None:
                progress(i + 1, len(images))
        return out


__all__ = ["CACHE_ENV", "FORMAT_VERSION", "ProposalCache", "ProposalParams", "cache_dir", "compute_proposals",
           "image_digest", "proposal_key"]
