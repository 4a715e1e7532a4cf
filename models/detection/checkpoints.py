"""Detector checkpoints: weights + everything needed to rebuild and reuse them, in one file.

A checkpoint holds the generation, the model's settings (one dict per part, :mod:`models.detection.config`;
read them with :func:`model_parts`, which also understands format version 1), the class names (label i is
``class_names[i-1]``), the split it was trained on (so evaluation never scores training images by accident),
the training config, the epoch and, for ``--resume``, the optimiser state. It is read with
``torch.load(weights_only=True)``: only tensors and plain containers, so opening a file from elsewhere cannot run
code. Writes are atomic (temporary file + ``os.replace``): a crash or a full disk leaves the previous
checkpoint intact, which is what "keep the last good checkpoint" relies on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from models.data.annotations.atomic import atomic_write

FORMAT = "rcnn-explorer/detector-checkpoint"
#: 2: ``model_config`` holds one dict per part (``{"backbone": {...}, "rpn": {...}, ...}``,
#: :class:`models.detection.config.DetectorConfig`); 1: one flat dict of constructor arguments. Version 1 files
#: keep loading: :func:`model_parts` migrates them (:func:`models.detection.config.migrate_v1`).
VERSION = 2


class CheckpointError(RuntimeError):
    """The file is missing, corrupt, or not one of our detector checkpoints; the message says which."""


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)  # DistributedDataParallel keeps the model in .module


def _plain(value: Any) -> Any:
    """Paths and tuples → str / list, so the payload loads under weights_only=True everywhere."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def save_checkpoint(path: str | os.PathLike, *, model: torch.nn.Module, config: dict, class_names: list[str],
                    split: dict, epoch: int, optimizer_state: dict | None = None, extra: dict | None = None) -> Path:
    """Write a checkpoint atomically and return its path. ``split``: e.g. ``{"name": "train", "indices": [...],
    "files": [...]}``; ``config``: the training config as plain data."""
    m = _unwrap(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "generation": getattr(m, "generation", "unknown"),
        "model_config": _plain(m.config()),
        "state_dict": {k: v.detach().cpu() for k, v in m.state_dict().items()},
        "class_names": [str(c) for c in class_names],
        "config": _plain(config),
        "split": _plain(split),
        "epoch": int(epoch),
        "optimizer_state": optimizer_state,
        "extra": _plain(extra or {}),
        "torch_version": str(torch.__version__),  # TorchVersion is not a weights_only-safe type
    }
    atomic_write(path, lambda fh: torch.save(payload, fh))
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read and validate a checkpoint; :class:`CheckpointError` for anything that is not a usable one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated zip, pickle with code, random bytes: all one message
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        # torch's weights_only refusal puts the useful line ("Unsupported global: ...") last, after advice
        # that does not apply here (we never fall back to unsafe loading).
        detail = next((ln for ln in lines if "WeightsUnpickler error" in ln), lines[0] if lines else "no detail")
        raise CheckpointError(
            f"{path}: not a readable detector checkpoint ({exc.__class__.__name__}: {detail[:300]}); the file "
            "may be truncated, corrupt, or saved by another program") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        what = "a plain state dict" if isinstance(payload, dict) and payload and all(
            isinstance(v, torch.Tensor) for v in payload.values()) else "something else"
        raise CheckpointError(f"{path}: not an R-CNN Explorer detector checkpoint (it holds {what}); train one "
                              "with `python main.py train` or pass a backbone file with --weights instead")
    if int(payload.get("version", 0)) > VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {payload.get('version')} is newer than this "
                              f"program understands ({VERSION}); update R-CNN Explorer")
    for key in ("generation", "model_config", "state_dict", "class_names"):
        if key not in payload:
            raise CheckpointError(f"{path}: checkpoint is missing '{key}'")
    return payload


def payload_version(payload: dict) -> int:
    """The format version a payload was written in (files before versioning count as 1)."""
    return int(payload.get("version", 1) or 1)


def model_parts(payload: dict):  # noqa: ANN201 - DetectorConfig; imported lazily like the detectors
    """The per-part settings (:class:`~models.detection.config.DetectorConfig`) of a validated payload, in
    whichever format version it was written: what to read instead of ``payload["model_config"]``'s keys.
    Settings the file left to the library's defaults are written out as the defaults of its time
    (:meth:`~models.detection.config.DetectorConfig.pinned`): the settings the loaded model runs with."""
    from models.detection.config import ConfigError, detector_config

    try:
        parts = detector_config(str(payload["generation"]), dict(payload["model_config"]), payload_version(payload))
        return parts.pinned(legacy=True)
    except ConfigError as exc:
        raise CheckpointError(f"model config cannot be read ({exc})") from exc


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` → CUDA, else Apple MPS, else CPU; an explicit device that is absent is a clear error."""
    d = str(device)
    if d == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if d.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but no CUDA GPU is available; use --device auto or cpu")
    if d == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError("--device mps was asked for but Apple MPS is not available; use --device auto or cpu")
    return torch.device(d)


def detector_from_payload(payload: dict, path: str | os.PathLike = "checkpoint"):  # noqa: ANN201
    """Rebuild the detector a validated payload describes and load its weights (CPU, train mode untouched)."""
    from models.detection.detectors import UnknownGeneration, rebuild_detector

    try:
        model = rebuild_detector(payload["generation"], list(payload["class_names"]), dict(payload["model_config"]),
                                 payload_version(payload))
    except UnknownGeneration as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: model config cannot be rebuilt ({exc})") from exc
    missing, unexpected = model.load_state_dict(payload["state_dict"], strict=False)
    if missing or unexpected:
        # A generation that changed its layout knows what an older file looks like and what to do about it.
        hint = getattr(model, "weights_mismatch_hint", None)
        why = hint(list(missing), list(unexpected)) if callable(hint) else None
        if why:
            raise CheckpointError(f"{path}: {why}")
        raise CheckpointError(f"{path}: weights do not fit the model (missing {missing[:3]}, unexpected "
                              f"{unexpected[:3]})")
    return model


def load_detector(path: str | os.PathLike, device: str | torch.device = "auto"):  # noqa: ANN201
    """The trained :class:`~models.detection.detectors.base.Detector` in a checkpoint, in eval mode on ``device``."""
    payload = load_checkpoint(path)
    model = detector_from_payload(payload, path)
    model.checkpoint_info = {k: payload.get(k) for k in ("epoch", "split", "config", "extra")}
    return model.to(resolve_device(device)).eval()


def weights_only_copy(src: str | os.PathLike, dst: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write ``src`` without its optimiser state (what a shipped model needs: about a third of the size),
    with ``extra`` merged into its ``extra`` (e.g. the test score and what it was trained on). The copy is
    an ordinary checkpoint: :func:`load_detector` reads it, ``--resume`` starts a fresh optimiser from it."""
    payload = load_checkpoint(src)
    payload["optimizer_state"] = None
    merged = dict(payload.get("extra") or {})
    merged.update(_plain(extra or {}))
    payload["extra"] = merged
    path = Path(dst)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: torch.save(payload, fh))
    return path
