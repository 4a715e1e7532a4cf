"""Training in worker processes, so the program that started it (the window) never waits on PyTorch.

Why processes and not a thread: a QThread training with two torch threads stalled the window's event loop up to
185 ms (the GIL and the OpenMP threads compete with the GUI thread); a child process shares nothing with it.
Why ``spawn``: a forked copy of a process that has started Qt, OpenMP or CUDA is undefined behaviour; a fresh
interpreter imports only what training needs.

:class:`TrainingProcess` starts one process, or ``processes`` of them for data-parallel training on the CPU
(the same DistributedDataParallel path as ``torchrun --standalone --nproc_per_node=N``: each child is given
torchrun's environment variables). Rank 0 sends its :class:`~models.detection.training.TrainEvent` s through a
queue, each step's event with the images per second and an ETA measured without the time spent paused;
:meth:`TrainingProcess.poll` drains it without blocking. Pause blocks rank 0 between two steps (the other ranks
then wait in the next gradient all-reduce); cancel sets the loop's flag, which every rank agrees on, so the
run stops after the step in progress and keeps a checkpoint.

Messages on the queue are ``(kind, payload)`` tuples: ("event", TrainEvent), ("paused", global_step),
("resumed", global_step), ("result", TrainResult) and ("error", text). Qt-free: the window wraps it in a
QObject polled by a timer; tests and benchmarks can use it directly.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import queue as queue_module
import socket
import time
import traceback
from collections import deque
from typing import Any

#: Steps whose duration makes the images-per-second figure (long enough to smooth, short enough to follow).
RATE_WINDOW = 20


def free_port() -> int:
    """A TCP port free on this machine now, for the process group's rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Reporter:
    """The callback rank 0's training loop calls: forwards events, measures throughput, honours pause."""

    def __init__(self, events: Any, running: Any, cancel: Any, images_per_step: int) -> None:
        self.events = events
        self.running = running  # set: go on; cleared: pause at the next step boundary
        self.cancel = cancel
        self.images_per_step = images_per_step
        self.last_t: float | None = None
        self.durations: deque[float] = deque(maxlen=RATE_WINDOW)

    def __call__(self, ev: Any) -> None:
        now = time.monotonic()
        extra: dict[str, float] = {}
        if ev.kind == "start":
            self.last_t = now
        elif ev.kind == "step":
            if self.last_t is not None:
                self.durations.append(now - self.last_t)
            self.last_t = now
            if self.durations:
                per_step = sum(self.durations) / len(self.durations)
                extra["images_per_s"] = self.images_per_step / per_step if per_step > 0 else 0.0
                extra["eta_s"] = per_step * max(0, ev.total_steps - ev.global_step)
        elif ev.kind in ("validation", "checkpoint"):
            self.last_t = None  # the time this took is not a training step's
        if extra:
            ev = dataclasses.replace(ev, metrics={**ev.metrics, **extra},
                                     eta_s=extra.get("eta_s", ev.eta_s))
        self.events.put(("event", ev))
        if ev.kind == "step" and not self.running.is_set() and not self.cancel.is_set():
            self.events.put(("paused", ev.global_step))
            while not self.running.wait(0.05):
                if self.cancel.is_set():
                    break
            self.events.put(("resumed", ev.global_step))
            self.last_t = time.monotonic() if self.last_t is not None else None


def _child(config: Any, events: Any, running: Any, cancel: Any, rank: int, world: int, port: int) -> None:
    """One training process (rank ``rank`` of ``world``)."""
    if world > 1:
        os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world),
                           "RANK": str(rank), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(world)})
    try:
        from models.detection.training import train

        reporter = _Reporter(events, running, cancel, int(config.batch_size) * world)
        result = train(config, callbacks=reporter, cancel=cancel)
        if rank == 0:
            events.put(("result", result))
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the window as a message
        text = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
        detail = traceback.format_exc(limit=8)
        events.put(("error", f"{text}" + (f" (process {rank + 1} of {world})" if world > 1 else ""), detail))
    finally:
        events.close()
        events.join_thread()  # flush what this process put before it exits


class TrainingProcess:
    """One training run in ``processes`` child processes. Create, :meth:`start`, then :meth:`poll` often."""

    def __init__(self, config: Any, processes: int = 1) -> None:
        if processes < 1:
            raise ValueError(f"processes must be at least 1, not {processes}")
        self.config = config
        self.processes = int(processes)
        self._ctx = mp.get_context("spawn")
        self._events = self._ctx.Queue()
        self._running = self._ctx.Event()
        self._running.set()
        self._cancel = self._ctx.Event()
        self._procs: list[Any] = []
        self.started_at: float | None = None

    def start(self) -> None:
        port = free_port() if self.processes > 1 else 0
        for rank in range(self.processes):
            p = self._ctx.Process(target=_child, name=f"rcnn-train-{rank}",
                                  args=(self.config, self._events, self._running, self._cancel, rank,
                                        self.processes, port))
            p.start()
            self._procs.append(p)
        self.started_at = time.monotonic()

    # --- control ------------------------------------------------------------------------------------------
    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def cancel(self) -> None:
        """Stop after the step in progress; the loop writes a checkpoint of what it has learnt."""
        self._cancel.set()
        self._running.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def terminate(self) -> None:
        """Kill the processes now (set-up phases that do not poll the cancel flag, or a hung run)."""
        for p in self._procs:
            if p.is_alive():
                p.terminate()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for every process; True when all have exited."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for p in self._procs:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            p.join(left)
        return not self.alive()

    def alive(self) -> bool:
        return any(p.is_alive() for p in self._procs)

    def exitcodes(self) -> list[int | None]:
        return [p.exitcode for p in self._procs]

    # --- events -------------------------------------------------------------------------------------------
    def poll(self, max_items: int = 500, budget_s: float = 0.005) -> list[tuple]:
        """Messages waiting now, oldest first, without blocking; stops after ``max_items`` or ``budget_s``
        so a burst never holds the caller (the GUI thread) for long."""
        out: list[tuple] = []
        t_end = time.monotonic() + budget_s
        while len(out) < max_items and time.monotonic() < t_end:
            try:
                out.append(self._events.get_nowait())
            except queue_module.Empty:
                break
            except (EOFError, OSError, ValueError):  # ValueError: the queue was closed
                break
        return out

    def close(self) -> None:
        """Release the queue (after the processes have exited)."""
        self._events.close()
        self._events.cancel_join_thread()
