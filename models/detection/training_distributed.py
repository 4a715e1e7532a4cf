"""What the ranks of a data-parallel run (``torchrun``, or the two processes ``train`` starts itself) must
agree on: joining the process group, waiting for each other, a cancel and a non-finite loss seen by any rank.

Why agreement matters: a rank that leaves the loop alone leaves the others waiting in the next gradient
all-reduce forever. Every function here is a no-op (no communication) for a single process.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import torch


@dataclass
class DistInfo:
    enabled: bool = False
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> DistInfo:
    """Join the process group torchrun describes in the environment (WORLD_SIZE > 1); no-op otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    import torch.distributed as dist

    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda") or device.startswith("cuda")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local)
    else:  # CPU ranks share the cores: without this each would start one thread per core and thrash
        from models.detection.training_process import usable_cores

        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        torch.set_num_threads(max(1, usable_cores() // local_world))
    return DistInfo(True, rank, world, local)


def barrier(dist_info: DistInfo) -> None:
    if dist_info.enabled:
        import torch.distributed as dist
        dist.barrier()



def cancel_requested(cancel: threading.Event | None, dist_info: DistInfo, device: torch.device) -> bool:
    """The cancel flag, agreed by all ranks: one rank leaving the loop alone would hang the others in the
    next gradient all-reduce (a GUI sets one shared flag, but the ranks read it at different moments)."""
    flag = bool(cancel is not None and cancel.is_set())
    if dist_info.enabled:
        import torch.distributed as dist
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t)
        flag = bool(t.item() > 0)
    return flag


def check_finite(losses: dict[str, torch.Tensor], dist_info: DistInfo) -> str | None:
    """Name of the first non-finite loss (on any rank, so all ranks stop together), else None."""
    bad = [k for k, v in losses.items() if not torch.isfinite(v.detach()).all()]
    if dist_info.enabled:
        import torch.distributed as dist
        flag = torch.tensor([1.0 if bad else 0.0], device=next(iter(losses.values())).device)
        dist.all_reduce(flag)
        if flag.item() > 0 and not bad:
            bad = ["(on another rank)"]
    return bad[0] if bad else None
