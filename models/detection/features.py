"""CNN codes: a trained network as a fixed feature extractor for boxes, with one on-disk cache for the product.

R-CNN (Girshick et al. 2014) and the transfer-learning recipe it popularised turn each box into a fixed-length
vector: crop the box from the image, warp it to the network's square input (with some context around it),
run the network and keep the activations before its classifier. A linear classifier on those "CNN codes"
(:mod:`models.detection.linear_classifier`) then tells classes apart that the network never saw as such.

Computing codes is the expensive part (a full CNN pass per box), and the same boxes are asked for again and
again: each run of a benchmark, R-CNN's SVM rounds with hard-negative mining, the window re-opening an image.
So every code goes through :class:`FeatureCache`, ONE SQLite file for the whole product, keyed by

- the image's *content* (a hash of its decoded pixels: a renamed or copied file still hits, an edited one
  does not),
- the box coordinates (float32, exact),
- a hash of the network's *weights* together with how crops are made (input size, context) and which layer
  is read — not the backbone's name, so a fine-tuned network never reads its ImageNet twin's codes.

Changing any of them misses the cache; nothing has to be deleted by hand. SQLite makes writes atomic and lets
several processes share the file.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.ops import roi_align

from models.detection import efficientnet

CACHE_ENV = "RCNN_EXPLORER_CACHE"


def cache_dir() -> Path:
    """Where the product keeps caches: ``$RCNN_EXPLORER_CACHE``, else ``$XDG_CACHE_HOME/rcnn-explorer``,
    else ``~/.cache/rcnn-explorer``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "rcnn-explorer"


def image_key(image: np.ndarray) -> str:
    """Hash of an image's decoded content (shape, dtype and pixels): the cache's image identity."""
    arr = np.ascontiguousarray(image)
    h = hashlib.sha256(f"{arr.shape}|{arr.dtype}".encode())
    h.update(memoryview(arr).cast("B"))
    return h.hexdigest()[:32]


def weights_digest(module: nn.Module) -> str:
    """Hash of every parameter and buffer (names and values) of ``module``."""
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


# --- warping boxes to the network's input ------------------------------------------------------------------

def context_boxes(boxes: np.ndarray, size: int, context: int) -> np.ndarray:
    """Boxes grown so that, once warped to ``size``×``size``, the original box is surrounded by ``context``
    pixels of its surroundings on every side (R-CNN's "padding p = 16")."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if context <= 0:
        return boxes.copy()
    if 2 * context >= size:
        raise ValueError(f"context {context} px leaves nothing of a {size}-px crop")
    grow = context / (size - 2 * context)  # per side, as a fraction of the box's own size
    w = (boxes[:, 2] - boxes[:, 0])[:, None]
    h = (boxes[:, 3] - boxes[:, 1])[:, None]
    return boxes + np.concatenate([-w, -h, w, h], axis=1) * grow


def warp_crops(image: np.ndarray, boxes: np.ndarray, size: int, context: int = 0,
               mean: Sequence[float] = efficientnet.IMAGENET_MEAN,
               std: Sequence[float] = efficientnet.IMAGENET_STD) -> torch.Tensor:
    """Each box (with ``context``) warped anisotropically to ``size``×``size``: ``[N, 3, size, size]``,
    normalised with ``mean``/``std`` (ImageNet's unless the network was trained with others). Parts outside
    the image are the mean colour (0 after normalisation), as R-CNN fills them. Bilinear sampling with
    several samples per output pixel (RoIAlign), so a large box is averaged down rather than aliased."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255.0)[None]
    x = (x - torch.tensor(list(mean)).view(1, 3, 1, 1)) / torch.tensor(list(std)).view(1, 3, 1, 1)
    grown = torch.from_numpy(context_boxes(boxes, size, context))
    if grown.shape[0] == 0:
        return x.new_zeros((0, 3, size, size))
    rois = torch.cat([grown.new_zeros((grown.shape[0], 1)), grown], dim=1)
    return roi_align(x, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=-1, aligned=True)


# --- the extractor ---------------------------------------------------------------------------------------

@dataclass
class CnnCodes:
    """Codes of one image's boxes. ``cached[i]``: code ``i`` came from the cache (no network pass)."""

    boxes: np.ndarray  # [N, 4] float32
    codes: np.ndarray  # [N, D] float32
    cached: np.ndarray  # [N] bool
    crops: torch.Tensor | None = None  # [M, 3, S, S] normalised warped crops of the boxes computed now


class CnnCodeExtractor:
    """A network read as a fixed feature extractor for boxes.

    ``embed(network, crops) -> [N, D]`` names the layer read (``layer`` is its label in the cache key).
    The weights hash is recomputed only when a parameter changed: torch bumps a tensor's version on every
    in-place write (optimiser steps, ``load_state_dict``), so fine-tuning between two calls is noticed.
    """

    def __init__(self, network: nn.Module, embed: Callable[[nn.Module, torch.Tensor], torch.Tensor], *,
                 input_size: int, layer: str, context: int = 0, batch_size: int = 32,
                 device: str | torch.device = "cpu", mean: Sequence[float] = efficientnet.IMAGENET_MEAN,
                 std: Sequence[float] = efficientnet.IMAGENET_STD) -> None:
        self.network = network
        #: The input normalisation the network was trained with (part of how crops are made, so of the key).
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.embed = embed
        self.input_size = int(input_size)
        self.layer = str(layer)
        self.context = int(context)
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self._fingerprint: tuple | None = None
        self._key = ""

    def _versions(self) -> tuple:
        return tuple((id(t), t._version) for t in self.network.state_dict(keep_vars=True).values())

    @property
    def key(self) -> str:
        """What the cache files codes under: weights hash + crop geometry + layer."""
        versions = self._versions()
        if versions != self._fingerprint:
            spec = f"{weights_digest(self.network)}|size={self.input_size}|context={self.context}|{self.layer}"
            if (self.mean, self.std) != (tuple(efficientnet.IMAGENET_MEAN), tuple(efficientnet.IMAGENET_STD)):
                spec += f"|mean={self.mean}|std={self.std}"  # ImageNet's leave the keys of existing codes as they were
            self._key = hashlib.sha256(spec.encode()).hexdigest()[:32]
            self._fingerprint = versions
        return self._key

    @property
    def description(self) -> str:
        return f"{self.layer} at {self.input_size} px, context {self.context} px"

    def compute(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        """Codes of ``boxes`` without any cache, and the crops the network saw."""
        crops = warp_crops(image, boxes, self.input_size, self.context, self.mean, self.std)
        was_training = self.network.training
        self.network.eval()
        out = []
        try:
            with torch.no_grad():
                for start in range(0, crops.shape[0], self.batch_size):
                    batch = crops[start:start + self.batch_size].to(self.device)
                    out.append(self.embed(self.network, batch).float().cpu())
        finally:
            self.network.train(was_training)
        codes = torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)
        return codes.astype(np.float32, copy=False), crops


def efficientnet_extractor(context: int = 0, input_size: int = efficientnet.INPUT_SIZE,
                           weights: str | os.PathLike | None = None, batch_size: int = 32,
                           device: str | torch.device = "cpu") -> CnnCodeExtractor:
    """EfficientNet-Lite0's 1280-d pooled head activations (before its ImageNet classifier) as codes."""
    net = efficientnet.imagenet_classifier(weights).to(device)
    return CnnCodeExtractor(net, lambda m, x: m.features(x), input_size=input_size, layer="pool1280",
                            context=context, batch_size=batch_size, device=device)


#: R-CNN's 16 px of context at the 224-px warp: what the product's own ImageNet codes use.
RCNN_CONTEXT = 16
_SHARED: dict[str, CnnCodeExtractor] = {}


def shared_imagenet_extractor(device: str | torch.device = "cpu") -> CnnCodeExtractor:
    """The product's one ImageNet EfficientNet-Lite0 extractor per device (R-CNN's context), built on first
    use: the CNN codes dock and prototype score calibration read the same network, loaded once."""
    key = str(torch.device(device))
    if key not in _SHARED:
        _SHARED[key] = efficientnet_extractor(context=RCNN_CONTEXT, device=device)
    return _SHARED[key]


def random_efficientnet_extractor(seed: int = 0, context: int = 0, input_size: int = efficientnet.INPUT_SIZE,
                                  batch_size: int = 32, device: str | torch.device = "cpu") -> CnnCodeExtractor:
    """The same network and layer as :func:`efficientnet_extractor` with random weights (seeded, so its cache
    key is stable): the control that shows what ImageNet training, not the architecture, puts in a code."""
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(int(seed))
        net = efficientnet.EfficientNetLite0(norm=efficientnet.frozen_batch_norm).eval().to(device)
        # He initialisation (variance-preserving through ReLU): with torch's default init the activations
        # shrink layer by layer and every box's code comes out ~0, which would show nothing at all.
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
    finally:
        torch.random.set_rng_state(generator_state)
    return CnnCodeExtractor(net, lambda m, x: m.features(x), input_size=input_size, layer=f"pool1280-random{seed}",
                            context=context, batch_size=batch_size, device=device)


def code_distances(query: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Euclidean distance of one code ``query`` [D] to each of ``codes`` [N, D] — the distance every
    nearest-neighbour view of CNN codes uses (Krizhevsky et al. 2012 compared images by the Euclidean distance
    of their last hidden layer's activations)."""
    q = np.asarray(query, np.float64).reshape(1, -1)
    c = np.asarray(codes, np.float64).reshape(len(codes), -1)
    return np.sqrt(np.maximum(((c - q) ** 2).sum(axis=1), 0.0))


# --- the cache -------------------------------------------------------------------------------------------

@dataclass
class CacheStats:
    codes: int
    extractors: int
    bytes: int


class FeatureCache:
    """CNN codes on disk, one SQLite file for the product (default ``cache_dir()/cnn_codes.sqlite``).

    Rows: (image key, extractor key, box) → float32 code. A different image content, box, weights or crop
    geometry is a different key, so stale codes are never returned; :meth:`prune` drops what other extractors
    left behind.
    """

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else cache_dir() / "cnn_codes.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("""CREATE TABLE IF NOT EXISTS codes (image TEXT, extractor TEXT, x1 REAL, y1 REAL,
            x2 REAL, y2 REAL, dim INTEGER, code BLOB, PRIMARY KEY (image, extractor, x1, y1, x2, y2))
            WITHOUT ROWID""")
        self._db.execute("""CREATE TABLE IF NOT EXISTS extractors (extractor TEXT PRIMARY KEY,
            description TEXT, created REAL)""")
        self._db.commit()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> FeatureCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, image: str, extractor: str, boxes: np.ndarray) -> list[np.ndarray | None]:
        """The stored code of each box, or None where there is none."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        rows = self._db.execute("SELECT x1, y1, x2, y2, code FROM codes WHERE image = ? AND extractor = ?",
                                (image, extractor)).fetchall()
        stored = {tuple(r[:4]): r[4] for r in rows}
        out: list[np.ndarray | None] = []
        for box in boxes.astype(np.float64):
            blob = stored.get(tuple(box.tolist()))
            out.append(None if blob is None else np.frombuffer(blob, np.float32).copy())
        return out

    def put(self, image: str, extractor: str, boxes: np.ndarray, codes: np.ndarray, description: str = "") -> None:
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4).astype(np.float64)
        codes = np.ascontiguousarray(codes, np.float32)
        with self._db:  # one transaction: all or nothing
            self._db.execute("INSERT OR IGNORE INTO extractors VALUES (?, ?, ?)", (extractor, description, time.time()))
            self._db.executemany(
                "INSERT OR REPLACE INTO codes VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(image, extractor, *map(float, b), int(c.shape[0]), c.tobytes()) for b, c in zip(boxes, codes,
                                                                                                   strict=True)])

    def stats(self) -> CacheStats:
        n = self._db.execute("SELECT COUNT(*) FROM codes").fetchone()[0]
        e = self._db.execute("SELECT COUNT(DISTINCT extractor) FROM codes").fetchone()[0]
        return CacheStats(int(n), int(e), self.path.stat().st_size if self.path.exists() else 0)

    def prune(self, keep: list[str]) -> int:
        """Delete the codes of every extractor not in ``keep``; returns how many rows went."""
        marks = ",".join("?" * len(keep)) or "''"
        with self._db:
            cur = self._db.execute(f"DELETE FROM codes WHERE extractor NOT IN ({marks})", keep)
            self._db.execute(f"DELETE FROM extractors WHERE extractor NOT IN ({marks})", keep)
        return int(cur.rowcount)


def cnn_codes(image: np.ndarray, boxes: np.ndarray, extractor: CnnCodeExtractor,
              cache: FeatureCache | None = None, image_id: str | None = None, keep_crops: bool = False) -> CnnCodes:
    """Codes of ``boxes`` in ``image`` (HxWx3 uint8 RGB): from ``cache`` where present, else computed and
    stored. ``image_id``: a precomputed :func:`image_key` (saves hashing the pixels again)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if cache is None:
        codes, crops = extractor.compute(image, boxes)
        return CnnCodes(boxes, codes, np.zeros(len(boxes), bool), crops if keep_crops else None)
    ikey, ekey = image_id or image_key(image), extractor.key
    found = cache.get(ikey, ekey, boxes)
    todo = [i for i, code in enumerate(found) if code is None]
    crops = None
    if todo:
        new, crops = extractor.compute(image, boxes[todo])
        cache.put(ikey, ekey, boxes[todo], new, extractor.description)
        for i, code in zip(todo, new, strict=True):
            found[i] = code
    dim = next((c.shape[0] for c in found if c is not None), 0)
    codes = np.stack(found).astype(np.float32) if found else np.zeros((0, dim), np.float32)
    cached = np.ones(len(boxes), bool)
    cached[todo] = False
    return CnnCodes(boxes, codes, cached, crops if keep_crops else None)
