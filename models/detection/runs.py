"""Finished and interrupted training runs: listed with their settings, time and figures, and compared.

A run is a checkpoint (``*.pt``) plus, when :func:`models.detection.training.train` wrote it, the training log
beside it (``<checkpoint>.log.jsonl``: one JSON line per call of ``train``; a resumed run adds a line). The log
says how the run ended (finished, cancelled, failed), how long it took, on which device, and every step's
losses; the checkpoint alone (a shipped model, a file copied from elsewhere) still gives the generation, the
settings, the epochs and the per-epoch mean losses. Nothing here raises for a bad file: an unreadable
checkpoint becomes a record with ``error`` set, so a list of runs never fails because of one of them.

A run's AP on a dataset (cached beside the checkpoint) is models/detection/run_evaluation.py's; its names are
imported from here as they always were.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.detection.run_evaluation import (
    EvaluationCancelled,
    RunEvaluation,
    cache_path,
    cached_evaluation,
    evaluate_run,
    evaluation_indices,
    evaluation_key,
)

#: Training-log statuses → what the runs list says.
_STATUS = {"completed": "finished", "cancelled": "cancelled", "diverged": "failed", "failed": "failed"}
#: Losses drawn first (the sum), then each part in the order the detector reports them.
TOTAL = "total"
#: How deep below the runs folder checkpoints are looked for (``runs/<timestamp>-<generation>/model.pt`` is 1).
MAX_DEPTH = 3


@dataclass
class LossCurves:
    """One run's losses against training progress, ready to plot.

    ``per_step``: one point per logged optimiser step (from the training log); otherwise one point per epoch
    (the epoch means every checkpoint keeps). ``epochs`` is the position in epochs (step / steps per epoch,
    or the epoch number), so runs with different batch sizes line up; ``steps`` the global optimiser step
    (None where the steps per epoch are unknown).
    """

    steps: list[int | None] = field(default_factory=list)
    epochs: list[float] = field(default_factory=list)
    losses: dict[str, list[float]] = field(default_factory=dict)
    per_step: bool = False
    steps_per_epoch: int | None = None

    def __len__(self) -> int:
        return len(self.epochs)

    @property
    def names(self) -> list[str]:
        """Loss names, the total first."""
        return sorted(self.losses, key=lambda k: (k != TOTAL, list(self.losses).index(k)))


@dataclass
class RunRecord:
    """What the runs list shows about one checkpoint; ``error`` set when the file is not a usable checkpoint."""

    path: Path
    name: str
    status: str  # finished, cancelled, failed, incomplete, unreadable
    message: str = ""
    generation: str = "?"
    backbone: str = "?"
    preset: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    epochs_completed: int = 0
    epochs_planned: int | None = None
    train_seconds: float | None = None
    final_losses: dict[str, float] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)
    #: Training images (file names) of the checkpoint's split: evaluating on them would flatter the model.
    train_files: list[str] = field(default_factory=list)
    #: The evaluation the checkpoint itself records (shipped models: their test score), else None.
    recorded_evaluation: dict[str, Any] | None = None
    device: str | None = None
    started_at: str | None = None
    curves: LossCurves = field(default_factory=LossCurves)
    mtime: float = 0.0
    size: int = 0
    error: str | None = None
    #: Sizes and modification times of the checkpoint and its log: an unchanged signature needs no re-read.
    signature: tuple = ()
    #: False for a run that failed before writing its first checkpoint (listed from its log alone).
    has_checkpoint: bool = True

    @property
    def readable(self) -> bool:
        return self.error is None

    @property
    def summary(self) -> str:
        """The settings in one line: what differs between two runs is usually here."""
        return settings_summary(self.settings, self.preset)


# ------------------------------------------------------------------------------------------- settings


def setting(config: dict[str, Any], key: str, default: Any = None) -> Any:
    """``config[key]``, also when the config groups its fields per part (``{"training": {"lr": ...}}``)."""
    if key in config:
        return config[key]
    for value in config.values():
        if isinstance(value, dict) and key in value:
            return value[key]
    return default


def settings_summary(config: dict[str, Any], preset: str | None = None) -> str:
    """``adamw lr 0.001 · batch 1 · 512/768 px · 18 epochs`` (plus the preset's name when there is one)."""
    if not config:
        return "settings not recorded"
    parts = []
    if preset:
        parts.append(f"preset {preset}")
    opt, lr = setting(config, "optimizer"), setting(config, "lr")
    if opt or lr is not None:
        parts.append(" ".join(str(p) for p in (opt, f"lr {lr:g}" if isinstance(lr, (int, float)) else None) if p))
    bs = setting(config, "batch_size")
    if bs is not None:
        parts.append(f"batch {bs}")
    lo, hi = setting(config, "min_size"), setting(config, "max_size")
    if lo:
        parts.append(f"{lo}/{hi} px" if hi else f"{lo} px")
    ep = setting(config, "epochs")
    if ep is not None:
        parts.append(f"{ep} epochs")
    width = _find(setting(config, "model") or {}, ("small_width", "width"))
    if width:
        parts.append(f"width {width}")
    return " · ".join(parts)


def _find(tree: Any, keys: tuple[str, ...]) -> Any:
    """The first of ``keys`` anywhere in nested dicts (flat ``small_width`` or ``{"backbone": {"width": ..}}``)."""
    if not isinstance(tree, dict):
        return None
    for k in keys:
        if k in tree and not isinstance(tree[k], dict):
            return tree[k]
    for v in tree.values():
        found = _find(v, keys)
        if found is not None:
            return found
    return None


def _backbone_name(model_config: dict[str, Any], config: dict[str, Any]) -> str:
    """Flat (format 1: ``"backbone": "small"``) or per part (format 2: ``"backbone": {"name": "small"}``)."""
    b = model_config.get("backbone")
    if isinstance(b, dict):
        b = b.get("name")
    return str(b or setting(config, "backbone") or "?")


# ---------------------------------------------------------------------------------------------- logs


LOG_SUFFIX = ".log.jsonl"


def log_path(checkpoint: str | os.PathLike) -> Path:
    return Path(str(checkpoint) + LOG_SUFFIX)


def read_log(checkpoint: str | os.PathLike) -> list[dict[str, Any]]:
    """The training-log lines of this checkpoint's current run: from its last fresh start (a line whose config
    has no ``resume``) on, so an older run written to the same file name does not mix in. Bad lines are
    skipped (a log cut short by a full disk still gives what it has)."""
    path = log_path(checkpoint)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    lines: list[dict[str, Any]] = []
    for raw in text.splitlines():
        try:
            doc = json.loads(raw)
        except ValueError:
            continue
        if isinstance(doc, dict):
            lines.append(doc)
    start = 0
    for i, doc in enumerate(lines):
        cfg = doc.get("config") if isinstance(doc.get("config"), dict) else {}
        if not setting(cfg, "resume"):
            start = i
    return lines[start:]


def _curves(lines: list[dict[str, Any]], history: list[dict[str, float]], steps_per_epoch: int | None
            ) -> LossCurves:
    """Per-step curves when the log has them (later lines win for a step run twice: a resume redoes the
    epoch a cancel interrupted), else the per-epoch means."""
    by_step: dict[int, dict[str, float]] = {}
    spe = steps_per_epoch
    for doc in lines:
        spe = int(doc.get("steps_per_epoch") or 0) or spe
        for row in doc.get("steps") or []:
            if isinstance(row, dict) and isinstance(row.get("step"), (int, float)):
                by_step[int(row["step"])] = row
    if by_step:
        order = sorted(by_step)
        names: list[str] = []
        for s in order:
            names += [k for k in by_step[s] if k not in ("step", "epoch", "lr") and k not in names]
        losses = {k: [float(by_step[s].get(k, math.nan)) for s in order] for k in names}
        epochs = [s / spe if spe else float(by_step[s].get("epoch", 0)) for s in order]
        return LossCurves(list(order), epochs, losses, True, spe)
    names = []
    for h in history:
        names += [k for k in h if k not in names]
    losses = {k: [float(h.get(k, math.nan)) for h in history] for k in names}
    epochs = [float(i + 1) for i in range(len(history))]
    steps = [int((i + 1) * spe) if spe else None for i in range(len(history))]
    return LossCurves(steps, epochs, losses, False, spe)


def loss_curves(run: RunRecord) -> LossCurves:
    """Step (or epoch) → each loss of ``run``, read when the run was listed."""
    return run.curves


# ---------------------------------------------------------------------------------------------- runs


def _display_name(path: Path, root: Path | None) -> str:
    """``20260130-101500-faster-rcnn`` for ``runs/20260130-101500-faster-rcnn/model.pt``, else the file name."""
    if path.stem == "model" and path.parent != root:
        return path.parent.name
    return path.name


def run_signature(path: str | os.PathLike) -> tuple:
    """(size, mtime) of the checkpoint and of its training log; what :func:`list_runs` compares to reuse."""
    out: list[int] = []
    for p in (Path(path), log_path(path)):
        try:
            st = p.stat()
            out += [st.st_size, st.st_mtime_ns]
        except OSError:
            out += [-1, -1]
    return tuple(out)


def read_run(path: str | os.PathLike, root: str | os.PathLike | None = None) -> RunRecord:
    """One run's record; never raises (an unreadable file gives ``status="unreadable"`` and ``error``)."""
    path = Path(path)
    signature = run_signature(path)
    record = _read_run(path, root)
    record.signature = signature
    return record


def _read_run(path: Path, root: str | os.PathLike | None) -> RunRecord:
    from models.detection.checkpoints import CheckpointError, load_checkpoint

    name = _display_name(path, Path(root) if root else None)
    try:
        st = path.stat()
        mtime, size = st.st_mtime, st.st_size
    except OSError:
        mtime, size = 0.0, 0
    lines = read_log(path)
    try:
        if not path.exists() and lines:
            # A run that failed before its first checkpoint: its log alone says what happened.
            payload = {"config": lines[-1].get("config"), "generation": lines[-1].get("generation", "?"),
                       "class_names": lines[-1].get("class_names") or [], "epoch": 0}
        else:
            payload = load_checkpoint(path)
    except CheckpointError as exc:
        return RunRecord(path, name, "unreadable", str(exc), mtime=mtime, size=size, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - a list of runs must survive any one bad file
        msg = f"{path}: cannot be read ({type(exc).__name__}: {exc})"
        return RunRecord(path, name, "unreadable", msg, mtime=mtime, size=size, error=msg)
    config = payload.get("config") if isinstance(payload.get("config"), dict) else {}
    extra = payload.get("extra") if isinstance(payload.get("extra"), dict) else {}
    model_config = payload.get("model_config") or {}
    history = [h for h in (extra.get("history") or []) if isinstance(h, dict)]
    last = lines[-1] if lines else {}
    epoch = int(payload.get("epoch") or 0)
    planned = setting(config, "epochs")
    planned = int(planned) if isinstance(planned, (int, float)) else None
    if last:
        status = _STATUS.get(str(last.get("status")), str(last.get("status") or "incomplete"))
        message = str(last.get("message") or "")
        epoch = max(epoch, int(last.get("epochs") or 0)) if status != "failed" else epoch
    elif extra.get("cancelled_in_epoch"):
        status, message = "cancelled", f"cancelled during epoch {extra['cancelled_in_epoch']}"
    elif planned is not None and epoch >= planned:
        status, message = "finished", ""
    else:
        status = "incomplete"
        message = (f"{epoch} of {planned} epochs saved and no training log: still training, or stopped "
                   "without a chance to record why")
    seconds = last.get("train_seconds", extra.get("train_seconds"))
    if seconds is None and last.get("elapsed_s") is not None:
        seconds = sum(float(d.get("elapsed_s") or 0.0) for d in lines)
    split = payload.get("split") if isinstance(payload.get("split"), dict) else {}
    spe = None
    if not lines and split.get("indices") and isinstance(setting(config, "batch_size"), int):
        spe = math.ceil(len(split["indices"]) / max(1, int(setting(config, "batch_size"))))
    curves = _curves(lines, history, spe)
    final = {k: v[-1] for k, v in curves.losses.items() if v}
    if history:
        final = dict(history[-1])  # the last epoch's mean: steadier than its last step
    evaluation = extra.get("evaluation") if isinstance(extra.get("evaluation"), dict) else None
    return RunRecord(
        path=path, name=name, status=status, message=message, generation=str(payload.get("generation", "?")),
        backbone=_backbone_name(model_config if isinstance(model_config, dict) else {}, config),
        preset=setting(config, "preset"), settings=dict(config), epochs_completed=epoch, epochs_planned=planned,
        train_seconds=None if seconds is None else float(seconds), final_losses=final,
        class_names=[str(c) for c in payload.get("class_names") or []],
        train_files=[str(f) for f in split.get("files") or []], recorded_evaluation=evaluation,
        device=last.get("device"), started_at=last.get("started_at") or (lines[0].get("started_at") if lines else None),
        curves=curves, mtime=mtime, size=size, has_checkpoint=path.exists())


def find_checkpoints(root: str | os.PathLike, max_depth: int = MAX_DEPTH) -> list[Path]:
    """Every ``*.pt`` under ``root`` (not in hidden folders), at most ``max_depth`` folders down, and the
    checkpoint path of every training log whose checkpoint was never written."""
    root = Path(root)
    found: list[Path] = []
    logs: list[Path] = []
    if not root.is_dir():
        return found
    stack = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for e in entries:
            if e.name.startswith("."):
                continue
            try:
                if e.is_dir(follow_symlinks=False) and depth < max_depth:
                    stack.append((Path(e.path), depth + 1))
                elif e.is_file() and e.name.endswith(".pt"):
                    found.append(Path(e.path))
                elif e.is_file() and e.name.endswith(".pt" + LOG_SUFFIX):
                    logs.append(Path(e.path[: -len(LOG_SUFFIX)]))
            except OSError:
                continue
    have = set(found)
    return found + [p for p in logs if p not in have]  # runs that failed before their first checkpoint


def list_runs(root: str | os.PathLike | None, extra: Iterable[str | os.PathLike] = (),
              previous: Iterable[RunRecord] = (), check: Callable[[], None] | None = None) -> list[RunRecord]:
    """The runs under ``root`` (newest first), then the ``extra`` checkpoints (e.g. ones the user added from
    elsewhere) in the order given; a path found twice is listed once. A record in ``previous`` whose files
    have not changed is reused rather than read again (a checkpoint is megabytes; the list refreshes often)."""
    known = {str(r.path): r for r in previous}
    paths = sorted(find_checkpoints(root), key=lambda p: _mtime(p), reverse=True) if root else []
    seen = {p.resolve() for p in paths}
    for p in extra:
        q = Path(p)
        if q.resolve() not in seen:
            seen.add(q.resolve())
            paths.append(q)
    out = []
    for p in paths:
        if check is not None:
            check()  # a caller's cancel point between checkpoints (each may take a second to read)
        old = known.get(str(p))
        out.append(old if old is not None and old.signature == run_signature(p) else read_run(p, root))
    return out


def _mtime(path: Path) -> float:
    """When the run last changed: its checkpoint or its log, whichever is newer."""
    times = []
    for p in (path, log_path(path)):
        try:
            times.append(p.stat().st_mtime)
        except OSError:
            pass
    return max(times, default=0.0)


def format_duration(seconds: float | None) -> str:
    """``42 s``, ``9.6 min``, ``1.0 h``; an empty string when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


__all__ = ["EvaluationCancelled", "LossCurves", "RunEvaluation", "RunRecord", "cache_path", "cached_evaluation",
           "evaluate_run", "evaluation_key", "find_checkpoints", "format_duration", "list_runs", "loss_curves",
           "read_log", "read_run", "run_signature", "setting", "settings_summary", "evaluation_indices"]
