"""The training log: what one call of ``train`` appends to ``<checkpoint>.log.jsonl`` (models/detection/runs.py
reads it to list and compare runs)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class RunLog:
    """What one call of :func:`train` appends to ``<checkpoint>.log.jsonl``: one JSON line per call (a resumed
    run adds a line), with the settings, how it ended, the per-epoch means and every step's losses, the
    device and the wall-clock start. ``models.detection.runs`` reads it to list and compare runs."""

    VERSION = 2

    def __init__(self) -> None:
        self.started = False
        self.path: Path | None = None
        self.base: dict[str, Any] = {}
        self.steps: list[dict[str, float]] = []
        self.history: list[dict[str, float]] = []
        self.t0 = time.monotonic()
        self.epochs = 0

    def start(self, out: Path, base: dict[str, Any]) -> None:
        self.started, self.path, self.base = True, Path(str(out) + ".log.jsonl"), dict(base)

    def step(self, global_step: int, epoch: int, lr: float, losses: dict[str, float]) -> None:
        row = {"step": int(global_step), "epoch": int(epoch), "lr": float(f"{lr:.6g}")}
        row.update({k: float(f"{v:.6g}") for k, v in losses.items()})
        self.steps.append(row)

    def record(self, fields: dict[str, Any]) -> dict[str, Any]:
        return {**fields, **self.base, "log_version": self.VERSION,
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "steps": self.steps}

    def write(self, fields: dict[str, Any]) -> None:
        if self.path is None:
            return
        try:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(self.record(fields)) + "\n")
        except OSError as exc:
            log.warning("could not write the training log: %s", exc)

    def write_failure(self, message: str) -> None:
        self.write({"status": "failed", "message": message, "epochs": self.epochs, "history": self.history,
                    "elapsed_s": round(time.monotonic() - self.t0, 1)})
