"""Background work: a QObject worker moved to its own QThread, with progress, result, error and cancel.

Why the relay: a signal connected to a plain Python callable (lambda, function) runs that callable in the
*emitting* thread, i.e. a worker thread touching widgets. Every callback here is therefore called from a
``_Relay`` QObject that lives in the GUI thread, so Qt queues the call onto the GUI event loop.

A job is any function ``fn(job: Job, *args)`` that calls ``job.progress(fraction, message)`` now and then
and checks ``job.cancelled`` (or calls ``job.check()``, which raises ``Cancelled``) at least every 100 ms.

``LatestRunner`` is the pattern for work driven by fast user input (slider drags, holding the next-image
key): at most one thread per job kind, a new request replaces the pending one and cancels the running one,
and a result that a newer request has made stale is dropped, never shown.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot


def error_summary(message: str) -> str:
    """The sentence a person reads from a worker's error: its first line, without the exception type.

    ``Worker`` reports an error as ``"TypeName: text"`` followed by the traceback; panels show only the text.
    A ``KeyError`` quotes its key (``KeyError: 'boxes'``), so its quotes go too.
    """
    lines = (message or "").strip().splitlines()
    line = lines[0] if lines else "error"
    head, sep, rest = line.partition(": ")
    if sep and head.isidentifier() and head.endswith(("Error", "Exception", "Cancelled")):
        line = rest.strip("'\"") if head == "KeyError" else rest
    return line


class Cancelled(Exception):
    """Raised inside a job by ``Job.check`` when the user cancelled it."""


class Job:
    """What a job function sees: a progress callback and the cooperative cancel flag."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker

    @property
    def cancelled(self) -> bool:
        return self._worker.is_cancelled()

    def check(self) -> None:
        if self.cancelled:
            raise Cancelled()

    def progress(self, fraction: float, message: str = "") -> None:
        self._worker.progress.emit(float(fraction), str(message))


class Worker(QObject):
    """Runs ``fn(job, *args, **kwargs)`` once in whatever thread it lives in (see ``WorkerPool``)."""

    progress = Signal(float, str)
    result = Signal(object)
    error = Signal(str)
    finished = Signal()

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self._fn = fn
        self._args = args
        self._kwargs = kwargs
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Ask the job to stop at its next check (thread-safe)."""
        self._cancel.set()

    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    @Slot()
    def run(self) -> None:
        try:
            out = self._fn(Job(self), *self._args, **self._kwargs)
        except Cancelled:
            self.error.emit("cancelled")
        except Exception as exc:  # reported to the GUI, never lost in a thread
            self.error.emit(f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}")
        else:
            if not self.is_cancelled():
                self.result.emit(out)
            else:
                self.error.emit("cancelled")
        finally:
            self.finished.emit()


class _Relay(QObject):
    """Lives in the GUI thread; its slots call the Python callbacks there."""

    def __init__(self, on_progress: Callable[[float, str], None] | None,
                 on_result: Callable[[Any], None] | None, on_error: Callable[[str], None] | None,
                 on_finished: Callable[[], None] | None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._cbs = (on_progress, on_result, on_error, on_finished)

    @Slot(float, str)
    def progress(self, fraction: float, message: str) -> None:
        if self._cbs[0] is not None:
            self._cbs[0](fraction, message)

    @Slot(object)
    def result(self, value: object) -> None:
        if self._cbs[1] is not None:
            self._cbs[1](value)

    @Slot(str)
    def error(self, message: str) -> None:
        if self._cbs[2] is not None:
            self._cbs[2](message)

    @Slot()
    def finished(self) -> None:
        if self._cbs[3] is not None:
            self._cbs[3]()


class WorkerPool(QObject):
    """Starts workers in their own threads and quits and waits for every one of them on ``shutdown``."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._running: list[tuple[Worker, QThread, _Relay]] = []

    def start(self, fn: Callable[..., Any], *args: Any, on_progress: Callable[[float, str], None] | None = None,
              on_result: Callable[[Any], None] | None = None, on_error: Callable[[str], None] | None = None,
              on_finished: Callable[[], None] | None = None, **kwargs: Any) -> Worker:
        worker = Worker(fn, *args, **kwargs)
        thread = QThread()
        relay = _Relay(on_progress, on_result, on_error, on_finished, self)
        worker.moveToThread(thread)
        worker.progress.connect(relay.progress)
        worker.result.connect(relay.result)
        worker.error.connect(relay.error)
        worker.finished.connect(relay.finished)
        worker.finished.connect(thread.quit)
        thread.finished.connect(self._reap)
        thread.started.connect(worker.run)
        self._running.append((worker, thread, relay))
        thread.start()
        return worker

    @property
    def active(self) -> int:
        return sum(1 for _, t, _ in self._running if t.isRunning())

    @Slot()
    def _reap(self) -> None:
        """Forget threads that have finished (their objects are freed with the references)."""
        keep = []
        for w, t, r in self._running:
            if t.isFinished():
                r.deleteLater()
            else:
                keep.append((w, t, r))
        self._running = keep

    def cancel_all(self) -> None:
        for w, _, _ in self._running:
            w.cancel()

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel, quit and wait every thread; True when all stopped in time."""
        self.cancel_all()
        ok = True
        for _, t, _ in self._running:
            t.quit()
            ok = t.wait(timeout_ms) and ok
        self._running = []
        return ok


class LatestRunner(QObject):
    """One job kind, one thread at a time, the latest request wins (see the module docstring)."""

    def __init__(self, pool: WorkerPool, fn: Callable[..., Any], on_result: Callable[[Any], None],
                 on_error: Callable[[str], None] | None = None,
                 on_progress: Callable[[float, str], None] | None = None,
                 on_idle: Callable[[], None] | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = pool
        self._fn = fn
        self._on_result = on_result
        self._on_error = on_error
        self._on_progress = on_progress
        self._on_idle = on_idle
        self._generation = 0
        self._pending: tuple[int, tuple] | None = None
        self._running: tuple[int, Worker] | None = None
        #: Results that arrived after a newer request and were dropped (for tests and diagnostics).
        self.dropped = 0

    @property
    def busy(self) -> bool:
        return self._running is not None or self._pending is not None

    @property
    def generation(self) -> int:
        return self._generation

    def request(self, *args: Any) -> int:
        """Run ``fn(job, *args)`` as soon as the current run (if any) has stopped; returns its generation."""
        self._generation += 1
        self._pending = (self._generation, args)
        if self._running is not None:
            self._running[1].cancel()
        else:
            self._start_pending()
        return self._generation

    def cancel(self) -> None:
        """Forget the pending request and stop the running one; nothing more will be delivered."""
        self._generation += 1
        self._pending = None
        if self._running is not None:
            self._running[1].cancel()

    def _start_pending(self) -> None:
        if self._pending is None:
            return
        gen, args = self._pending
        self._pending = None
        worker = self._pool.start(
            self._fn, *args,
            on_progress=lambda f, m, g=gen: self._progress(g, f, m),
            on_result=lambda r, g=gen: self._result(g, r),
            on_error=lambda e, g=gen: self._error(g, e),
            on_finished=lambda g=gen: self._finished(g))
        self._running = (gen, worker)

    def _progress(self, gen: int, fraction: float, message: str) -> None:
        if gen == self._generation and self._on_progress is not None:
            self._on_progress(fraction, message)

    def _result(self, gen: int, value: Any) -> None:
        if gen != self._generation:
            self.dropped += 1
            return
        self._on_result(value)

    def _error(self, gen: int, message: str) -> None:
        if gen == self._generation and message != "cancelled" and self._on_error is not None:
            self._on_error(message)

    def _finished(self, gen: int) -> None:
        if self._running is not None and self._running[0] == gen:
            self._running = None
        if self._pending is not None:
            self._start_pending()
        elif self._running is None and self._on_idle is not None:
            self._on_idle()
