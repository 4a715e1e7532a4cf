"""How fast and how long a run trains: the learning rate at each step (warm-up, then the schedule), the
optimiser's parameter groups (the pretrained backbone at a fraction of the rate), and the step budget that
sizes a run to a number of CPU seconds.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import torch

from models.detection.training_distributed import DistInfo

if TYPE_CHECKING:
    from models.detection.training_config import TrainConfig


#: Learning-rate schedules after the warm-up: "cosine" decays smoothly to ~0 at the last step; "step" divides
#: by 10 for the last third (Fast / Faster R-CNN); "constant" keeps ``lr``.
LR_SCHEDULES = ("cosine", "step", "constant")


def lr_at(config: TrainConfig, step: int, total: int) -> float:
    """Linear warm-up from lr/1000, then the schedule; ``step`` counts from 0.

    The warm-up is capped at a quarter of the run, so a short run still reaches its learning rate. An unknown
    schedule is an error, not a silent constant rate (a typo would otherwise train a whole run undecayed).
    """
    if config.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown lr_schedule {config.lr_schedule!r}; use one of {', '.join(LR_SCHEDULES)}")
    base = config.lr
    warmup = min(config.warmup_iters, max(1, total // 4))
    if step < warmup:
        alpha = step / warmup
        warm = 0.001 * (1 - alpha) + alpha
    else:
        warm = 1.0
    if config.lr_schedule == "cosine":
        decay = 0.5 * (1 + math.cos(math.pi * min(step, total) / max(1, total)))
        return base * warm * max(decay, 0.001)
    if config.lr_schedule == "step":
        return base * warm * (0.1 if step >= int(total * 2 / 3) else 1.0)
    return base * warm


def parameter_groups(model: torch.nn.Module, backbone_lr_scale: float = 1.0) -> list[dict[str, Any]]:
    """The trainable parameters as optimiser groups: the backbone's with ``lr_scale`` = ``backbone_lr_scale``,
    the rest (RPN, heads, and the backbone's :attr:`~models.detection.backbones.Backbone.new_layers`) with 1.
    One group when the scale is 1, so checkpoints of earlier runs resume."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if float(backbone_lr_scale) == 1.0:
        return [{"params": [p for _, p in trainable], "lr_scale": 1.0}]
    owner = getattr(model, "backbone", None)
    is_new = getattr(owner, "is_new_layer", lambda name: False)
    # the backbone's own new (random) layers learn at the heads' rate, like the heads
    in_backbone = [n.startswith("backbone.") and not is_new(n[len("backbone."):]) for n, _ in trainable]
    backbone = [p for (_, p), b in zip(trainable, in_backbone, strict=True) if b]
    rest = [p for (_, p), b in zip(trainable, in_backbone, strict=True) if not b]
    groups = [{"params": rest, "lr_scale": 1.0}]
    if backbone:
        groups.append({"params": backbone, "lr_scale": float(backbone_lr_scale)})
    return groups



#: Steps after which a time-budgeted run first measures its cost per step (the first steps pay one-off costs:
#: allocations, oneDNN kernel selection), then re-plans every this many steps (the load of a shared machine
#: changes; the cumulative cost keeps the plan steady).
BUDGET_REPLAN = 20


class StepBudget:
    """Sizes a run to ``seconds`` of training: process CPU time per thread on a CPU, wall time on a GPU (whose
    work a CPU clock does not see). :meth:`plan` returns the total steps the run should have."""

    def __init__(self, seconds: float, device: torch.device, dist_info: DistInfo) -> None:
        self.seconds = float(seconds)
        self.cpu = device.type == "cpu"
        self.dist_info = dist_info
        self.start = self.now()
        self.planned = False

    def now(self) -> float:
        """CPU: process CPU time per torch thread (alone on a quiet machine, about the wall time; on a shared
        one, what the run would have taken alone). GPU: wall time."""
        return time.process_time() / max(1, torch.get_num_threads()) if self.cpu else time.monotonic()

    def used(self) -> float:
        return self.now() - self.start

    def plan(self, global_step: int, steps_this_run: int, cap: int, device: torch.device) -> int:
        """Total steps: those done plus what the rest of the budget buys at the mean cost so far, at most
        ``cap`` and at least one more than done until the budget is spent. All ranks agree (the slowest's)."""
        used = self.used()
        cost = used / max(1, steps_this_run)
        if self.dist_info.enabled:
            import torch.distributed as dist
            t = torch.tensor([cost, used], dtype=torch.float64, device=device)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            cost, used = float(t[0]), float(t[1])
        self.planned = True
        left = self.seconds - used
        if left <= 0:
            return min(cap, global_step)
        return min(cap, global_step + max(1, int(left / max(cost, 1e-9))))
