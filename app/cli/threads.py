"""``--threads N`` for the commands that run a network outside training (``detect``, ``evaluate``).

Why an option: torch's default is one intra-op thread per core. On a CPU busy with other work (a training in
the background, other users) those threads wait on each other at every operation's barrier, and the same
evaluation can cost more CPU time and more wall time than with one thread; how much depends on the contention.
Measured on this project's 2-core machine, shared (load 2-3), ``evaluate --model resources/models/frcnn_shapes.pt``
on 15 synthetic images, process start and imports included: ``--threads 1`` 7.6-8.8 CPU-s and 8.2-9.4 s wall
in 4 runs; the default 8.3-15.3 CPU-s and 7.2-15.3 s wall in 4 runs (the 15.3 under the most contention).

``train --threads`` passes its number in the TrainConfig, and the training loop calls ``torch.set_num_threads``
with it; these commands have no config, so they set it here, before the model is loaded.
"""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An integer ≥ 1 (for --threads)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


def add_threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="CPU threads torch may use (default: one per core; 1 costs far less CPU time on a CPU "
                        "busy with other work, as train --threads)")


def apply_threads(threads: int | None) -> None:
    """``torch.set_num_threads(threads)`` when given; None leaves torch's default."""
    if threads is None:
        return
    import torch

    torch.set_num_threads(int(threads))


__all__ = ["add_threads_option", "apply_threads", "positive_int"]
