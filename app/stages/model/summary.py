"""What a checkpoint says about its model, as the Model panel shows it: what it is and what it was trained on.

Read from the checkpoint's own fields (``generation``, ``model_config``, ``class_names``, ``config``, ``split``,
``epoch``) and from ``extra``, where a shipped or evaluated model records its test score::

    extra["evaluation"] = {"mAP": 0.81, "iou": 0.5, "split": "test", "images": 100, "data": "...",
                           "test_sizes": "single size 512"}
    extra["trained_on"] = "synthetic shapes (python main.py synth --images 400 --seed 0)"
    extra["recipe"] = {"synth": "python main.py synth ...", "train": "python main.py train ..."}
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ModelSummary:
    path: str
    generation: str
    backbone: str
    class_names: list[str]
    input_size: str  # "shorter side 512, longer side ≤ 768"
    trained_on: str  # "300 images of /data/syn400 (split train), 18 epochs"
    test_map: float | None = None
    test_map_detail: str = ""
    extra_lines: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return Path(self.path).name

    def to_html(self) -> str:
        """Rows for the panel's read-out (rich text)."""
        e = html.escape
        rows = [("Model", f"<b>{e(self.name)}</b>"), ("Generation", e(self.generation)),
                ("Backbone", e(self.backbone)),
                ("Classes", f"{len(self.class_names)}: {e(', '.join(self.class_names))}"),
                ("Input size", e(self.input_size)), ("Trained on", e(self.trained_on))]
        if self.test_map is not None:
            rows.append(("Test mAP@0.5", f"<b>{self.test_map:.3f}</b> {e(self.test_map_detail)}"))
        else:
            rows.append(("Test mAP", "not recorded in the checkpoint (run <tt>python main.py evaluate</tt>)"))
        rows += [("", e(line)) for line in self.extra_lines]
        body = "".join(f"<tr><td style='padding-right:8px'><i>{k}</i></td><td>{v}</td></tr>" for k, v in rows)
        return f"<table>{body}</table>"


def _backbone(parts: Any) -> str:
    """The backbone in words, from a :class:`~models.detection.config.DetectorConfig` (None: unknown)."""
    if parts is None:
        return "unknown"
    bb = parts.backbone
    if bb.name == "small":
        words = [f"small CNN (width {bb.small_width}, stride {bb.small_stride}"]
        if bb.small_context:
            words.append("context stage")
        if parts.warp is None and parts.roi_head is not None:  # pools RoIs (R-CNN warps, cls-loc has none)
            words.append(f"RoI {'Align' if parts.roi_head.pooling == 'align' else 'pooling'}")
        return ", ".join(words) + ")"
    pre = " from ImageNet" if bb.pretrained else ""
    return f"{bb.name}{pre}"


def summarize(payload: dict[str, Any], path: str | Path) -> ModelSummary:
    """A :class:`ModelSummary` of a validated checkpoint payload (missing fields read as "unknown")."""
    from models.detection.checkpoints import CheckpointError, model_parts

    try:
        parts = model_parts(payload)
    except (CheckpointError, KeyError, TypeError, ValueError):
        parts = None
    train = payload.get("config") or {}
    split = payload.get("split") or {}
    extra = payload.get("extra") or {}
    size = "unknown"
    if parts is not None:
        size = f"shorter side {parts.input.min_size}, longer side ≤ {parts.input.max_size}"
        if parts.input.test_sizes:
            size += f"; tests at {', '.join(str(s) for s in parts.input.test_sizes)}"
            lo_hi = parts.input.test_size_range
            if lo_hi is not None and len(parts.input.test_sizes) > 1:
                size += f", each size reporting objects of √area {lo_hi[0]:g}–{lo_hi[1]:g} input px"
        if parts.input.test_flip:
            size += "; tests mirrored too"
        if (parts.input.test_sizes or parts.input.test_flip) and parts.input.test_merge != "nms":
            size += f" (passes merged by {parts.input.test_merge})"
        if parts.roi_head is not None and parts.roi_head.calibration == "prototype":
            counts = (payload.get("state_dict") or {}).get("calibrator.counts")
            boxes = int(counts.sum()) if counts is not None else 0
            size += (f"; scores calibrated by ImageNet prototypes of {boxes} training boxes "
                     f"(α {parts.roi_head.calibration_alpha:g})" if boxes else
                     "; prototype calibration not fitted (training stopped before its end): scores uncalibrated")
    trained_on = str(extra.get("trained_on") or "")
    n_files = len(split.get("files") or split.get("indices") or []) if isinstance(split, dict) else 0
    data = str(train.get("data") or "")
    if not trained_on:
        trained_on = (f"{n_files} images of {data}" if n_files else data) or "unknown"
        if isinstance(split, dict) and split.get("name"):
            trained_on += f" (split {split['name']})"
    epochs = train.get("epochs")
    epoch = payload.get("epoch")
    if epoch is not None:
        trained_on += f", {epoch} of {epochs} epochs" if epochs else f", {epoch} epochs"
    ev = extra.get("evaluation") if isinstance(extra.get("evaluation"), dict) else {}
    test_map = ev.get("mAP")
    detail = ""
    if test_map is not None:
        bits = [f"{ev['split']} split" if ev.get("split") else "", f"{ev['images']} images" if ev.get("images") else "",
                str(ev.get("test_sizes") or "")]
        detail = "(" + ", ".join(b for b in bits if b) + ")" if any(bits) else ""
    return ModelSummary(path=str(path), generation=str(payload.get("generation", "?")), backbone=_backbone(parts),
                        class_names=[str(c) for c in payload.get("class_names") or []], input_size=size,
                        trained_on=trained_on, test_map=None if test_map is None else float(test_map),
                        test_map_detail=detail)
