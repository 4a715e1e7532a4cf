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
("resumed", global_step), ("result", TrainResult) and ("error", text, traceback). Qt-free: the window wraps it
in a QObject polled by a timer; the ``train`` command waits on it with :func:`run_training_processes`; tests and
benchmarks can use it directly.

:func:`choose_processes` is the one rule for how many processes a run gets when nobody said (the command line
and the window's default both ask it): two on a CPU with two or more usable cores for the data-chosen settings,
because two 1-thread processes overlap the single-threaded parts of a step (NMS, anchor matching, sampling,
Python) that a 2-thread process runs one after another (bench/README.md, run K: 0.25 s a step instead of 0.31 s).

The children ignore SIGINT: a Ctrl-C in a terminal reaches every process of its group, and a child killed in
the middle of a step would leave no checkpoint; the parent turns it into :meth:`TrainingProcess.cancel`.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import queue as queue_module
import signal
import socket
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Steps whose duration makes the images-per-second figure (long enough to smooth, short enough to follow).
RATE_WINDOW = 20
#: Two 1-thread processes against one 2-thread process on this project's 2-core CPU, steps per second
#: (bench/README.md, run K: 0.25 s a step instead of 0.31 s, the same 2 images per step).
TWO_PROCESS_SPEEDUP_PCT = 20
#: Environment variables a distributed launcher (torchrun, or this module) sets in each training process.
DISTRIBUTED_ENV = ("RANK", "WORLD_SIZE")


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask: a container or ``taskset`` may allow fewer than
    the machine has, and ``os.cpu_count`` would count those too)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ProcessChoice:
    """How many data-parallel processes a run gets, the torch threads of each (None: the run's own setting)
    and why, in words for the user."""

    processes: int
    threads: int | None
    reason: str


def choose_processes(*, data_chosen: bool, requested: int | None = None, on_cpu: bool = True,
                     cores: int | None = None, env: Mapping[str, str] | None = None) -> ProcessChoice:
    """The process count for a run (see the module docstring for why two).

    ``data_chosen``: the settings come from the data (no preset; the window: no preset named) — presets keep
    one process unless ``requested``. ``requested``: the user's count (``--processes``), which wins.
    ``on_cpu``: the run trains on the CPU (several processes on one GPU would fight over it). ``cores``: usable
    cores (default :func:`usable_cores`). ``env``: the environment (default ``os.environ``): inside a
    distributed launch (torchrun) the processes exist already. Raises ValueError for a count that cannot be.
    """
    env = os.environ if env is None else env
    cores = usable_cores() if cores is None else int(cores)
    launched = any(k in env for k in DISTRIBUTED_ENV)
    if requested is not None:
        if requested < 1:
            raise ValueError(f"--processes must be at least 1, not {requested}")
        if requested > 1 and launched:
            raise ValueError("--processes with torchrun: torchrun starts the processes already "
                             "(give one or the other)")
        if requested > 1 and not on_cpu:
            raise ValueError("--processes is for training on the CPU; on GPUs use torchrun --nproc_per_node=N "
                             "(one process per GPU)")
        threads = max(1, cores // requested) if requested > 1 else None
        return ProcessChoice(requested, threads, f"--processes {requested}")
    if launched:
        return ProcessChoice(1, None, "already one of several processes started by torchrun")
    if not data_chosen:
        return ProcessChoice(1, None, "a preset or model flags were given: one process (--processes 2 for two)")
    if not on_cpu:
        return ProcessChoice(1, None, "training on a GPU: one process")
    if cores < 2:
        return ProcessChoice(1, None, "one usable CPU core: one process")
    threads = max(1, cores // 2)
    return ProcessChoice(2, threads, (
        f"{cores} cores: two data-parallel processes ({threads} thread{'s' if threads > 1 else ''} each) train "
        f"~{TWO_PROCESS_SPEEDUP_PCT}% faster than one process with {cores} threads (--processes 1 for one)"))


def free_port() -> int:
    """A TCP port free on this machine now, for the process group's rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Reporter:
    """The callback rank 0's training loop calls: forwards events, measures throughput, honours pause."""

    def __init__(self, events: Any, running: Any, cancel: Any, images_per_step: int,
                 parent_pid: int | None = None) -> None:
        self.events = events
        self.parent_pid = parent_pid
        self.running = running  # set: go on; cleared: pause at the next step boundary
        self.cancel = cancel
        self.images_per_step = images_per_step
        self.last_t: float | None = None
        self.durations: deque[float] = deque(maxlen=RATE_WINDOW)

    def __call__(self, ev: Any) -> None:
        if self.parent_pid is not None and os.getppid() != self.parent_pid and not self.cancel.is_set():
            self.cancel.set()  # the program that started the run is gone: stop, keeping a checkpoint
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


def _child(config: Any, events: Any, running: Any, cancel: Any, rank: int, world: int, port: int,
           parent_pid: int | None = None) -> None:
    """One training process (rank ``rank`` of ``world``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what a Ctrl-C means (module docstring)
    if world > 1:
        os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world),
                           "RANK": str(rank), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(world)})
    try:
        from models.detection.training import train

        reporter = _Reporter(events, running, cancel, int(config.batch_size) * world, parent_pid)
        result = train(config, callbacks=reporter, cancel=cancel)
        if rank == 0:
            events.put(("result", result))
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the window as a message
        text = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
        detail = traceback.format_exc(limit=8)
        events.put(("error", f"{text}" + (f" (process {rank + 1} of {world})" if world > 1 else ""), detail))
    finally:
        events.close()
        if parent_pid is not None and os.getppid() != parent_pid:
            events.cancel_join_thread()  # nobody reads the queue any more: do not wait to flush it
        else:
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
        # As torchrun: each of several processes starts with OpenMP at its share of the cores (the children
        # inherit this process's environment while they start; the variable is put back afterwards).
        threads = getattr(self.config, "threads", None)
        omp = os.environ.get("OMP_NUM_THREADS")
        if self.processes > 1 and threads and omp is None:
            os.environ["OMP_NUM_THREADS"] = str(int(threads))
        try:
            for rank in range(self.processes):
                p = self._ctx.Process(target=_child, name=f"rcnn-train-{rank}",
                                      args=(self.config, self._events, self._running, self._cancel, rank,
                                            self.processes, port, os.getpid()))
                p.start()
                self._procs.append(p)
        finally:
            if omp is None:
                os.environ.pop("OMP_NUM_THREADS", None)
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


class TrainingFailed(RuntimeError):
    """A training process reported an error, or died without a word; ``detail``: its traceback, if any."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


def with_deaths(message: str, codes: Sequence[int | None]) -> str:
    """``message`` plus the processes killed by a signal (``codes``: their exit codes, None while running):
    when one dies (out of memory, killed), the first error to arrive is often its partner's "connection closed
    by peer", which hides the cause. Read ``codes`` before terminating the others yourself, or they show as
    killed too. The command and the window both word a failed run with this and :func:`exit_summary`."""
    killed = [f"process {i + 1} of {len(codes)} was killed (signal {-c})"
              for i, c in enumerate(codes) if c is not None and c < 0]
    return message if not killed else f"{'; '.join(killed)}; then {message}"


def exit_summary(codes: Sequence[int | None]) -> str:
    """Why processes ended without a result: the ones that failed (every one when none did), with the exit
    code and, for a negative one, the signal that killed it."""
    failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)] or list(enumerate(codes))
    what = ", ".join(f"process {i + 1} of {len(codes)}: exit code {c}"
                     + (f", killed by signal {-c}" if c is not None and c < 0 else "") for i, c in failed)
    return f"a training process exited without a result ({what})"


def _with_deaths(message: str, proc: TrainingProcess) -> str:
    time.sleep(0.2)  # a killed process's exit code shows a moment after its partner noticed
    return with_deaths(message, proc.exitcodes())


def run_training_processes(config: Any, processes: int, callbacks: Callable[[Any], None] | None = None,
                           cancel: threading.Event | None = None, poll_s: float = 0.1,
                           exit_grace_s: float = 0.5) -> Any:
    """Train ``config`` in ``processes`` child processes (:class:`TrainingProcess`) and wait for the end: the
    blocking counterpart of the window's polling, for the ``train`` command.

    Rank 0's events go to ``callbacks`` in this process. ``cancel`` set: the run stops after the step in
    progress and keeps a checkpoint (every rank agrees). After the result (rank 0 sends it last, when the
    checkpoint and the training log are written) the processes get ``exit_grace_s`` to exit and are then
    terminated: nothing is left for them to do but a torch interpreter's teardown, which took ~5 s on the
    loaded 2-core machine. A KeyboardInterrupt raised in this process while it
    waits (a second Ctrl-C) terminates the processes on its way out (the last epoch's checkpoint, written
    atomically, stays). Returns rank 0's
    :class:`~models.detection.training.TrainResult`; raises :class:`TrainingFailed` when a process reports an
    error or exits without a result — the others are then terminated, since a rank left alone would wait in
    its next all-reduce forever.
    """
    proc = TrainingProcess(config, processes)
    result: Any = None
    error: tuple[str, str] | None = None
    result_at: float | None = None

    def drain() -> None:
        nonlocal result, error, result_at
        for message in proc.poll(budget_s=0.05):
            kind = message[0]
            if kind == "event" and callbacks is not None:
                callbacks(message[1])
            elif kind == "result":
                result, result_at = message[1], time.monotonic()
            elif kind == "error" and error is None:
                error = (str(message[1]), str(message[2]) if len(message) > 2 else "")

    proc.start()
    try:
        while True:
            if cancel is not None and cancel.is_set() and not proc.cancelled:
                proc.cancel()
            drain()
            if error is not None:
                raise TrainingFailed(_with_deaths(error[0], proc), error[1])
            if result is not None:
                if not proc.alive() or time.monotonic() - (result_at or 0.0) > exit_grace_s:
                    return result
            else:
                codes = proc.exitcodes()
                failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
                if failed or not proc.alive():
                    time.sleep(poll_s)  # the last messages may arrive just after the exit
                    drain()
                    if error is not None:
                        raise TrainingFailed(_with_deaths(error[0], proc), error[1])
                    if result is not None:
                        continue
                    if failed or all(c is not None for c in codes):
                        raise TrainingFailed(exit_summary(proc.exitcodes()))
            time.sleep(poll_s)
    finally:
        if not proc.join(0.5):
            proc.terminate()
            proc.join(5.0)
        proc.close()
