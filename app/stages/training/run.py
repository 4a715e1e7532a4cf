"""One training run as the window sees it: a QObject in the GUI thread that polls the worker processes.

The training itself runs in :class:`models.detection.training_process.TrainingProcess` (spawned processes:
nothing of PyTorch runs in the window's process, so its event loop never stalls on it). This object lives in
the GUI thread; a QTimer drains the processes' queue a few times a second and re-emits what it finds as Qt
signals, so every slot runs in the GUI thread — no lambdas connected across threads, no QThread to join.

It also covers what the loop cannot: a process that dies without a word (killed, out of memory) becomes a
``failed`` message, and a cancel during a phase that does not poll the cancel flag (reading the dataset,
Selective Search, R-CNN's SVMs) terminates the processes after a grace period (the last epoch's checkpoint,
written atomically, stays).
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from models.detection.training_process import TrainingProcess, exit_summary, with_deaths

#: How often the queue is drained (ms). Events are small; this is what the plots' update rate follows.
POLL_MS = 100
#: After cancel: how long a phase without steps may take to notice before the processes are terminated.
CANCEL_GRACE_S = 1.0
#: After the result: how long to wait for the processes to exit before terminating them.
EXIT_GRACE_S = 5.0


class TrainingRun(QObject):
    """Signals: ``event(TrainEvent)``, ``pausedChanged(bool)``, ``finished(TrainResult)`` (completed,
    cancelled or diverged) and ``failed(str)`` (set-up error or a crashed process). Exactly one of
    ``finished``/``failed`` is emitted, once."""

    event = Signal(object)
    pausedChanged = Signal(bool)
    finished = Signal(object)
    failed = Signal(str)

    def __init__(self, config: Any, processes: int = 1, parent: QObject | None = None,
                 process: TrainingProcess | None = None) -> None:
        super().__init__(parent)
        self.config = config
        self.processes = processes
        self.process = process or TrainingProcess(config, processes)
        self.phase = "setup"  # setup, proposals, training, classifiers, done
        self.after_training = "SVMs"  # what the "classifiers" phase fits: "SVMs" or "calibration prototypes"
        self.result: Any = None
        self.error: str | None = None
        self._cancel_at: float | None = None
        self._result_at: float | None = None
        self._ended = False
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)

    # --- control ------------------------------------------------------------------------------------------
    def start(self) -> None:
        self.process.start()
        self._timer.start()

    @property
    def running(self) -> bool:
        return not self._ended

    @property
    def paused(self) -> bool:
        return self.process.paused

    def pause(self) -> None:
        if not self._ended and not self.process.cancelled:
            self.process.pause()

    def resume(self) -> None:
        if not self._ended:
            self.process.resume()

    def cancel(self) -> None:
        """Stop soon: after the step in progress (a checkpoint is written), or — in a phase without steps —
        by terminating the processes after :data:`CANCEL_GRACE_S`."""
        if self._ended or self.process.cancelled:
            return
        self.process.cancel()
        self._cancel_at = time.monotonic()

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Window closing: cancel, wait a little for the checkpoint, then make sure nothing is left running."""
        if not self._ended:
            self.process.cancel()
            deadline = time.monotonic() + timeout_s
            while self.process.alive() and time.monotonic() < deadline:
                self._drain()
                time.sleep(0.02)
            self._drain()
        self._ended = True
        self._timer.stop()
        self._finish_processes(0.5)

    # --- polling ------------------------------------------------------------------------------------------
    def _drain(self) -> None:
        for message in self.process.poll():
            kind = message[0]
            if kind == "event":
                ev = message[1]
                self._track_phase(ev)
                self.event.emit(ev)
            elif kind == "paused":
                self.pausedChanged.emit(True)
            elif kind == "resumed":
                self.pausedChanged.emit(False)
            elif kind == "result":
                self.result = message[1]
                self._result_at = time.monotonic()
            elif kind == "error" and self.error is None:
                self.error = str(message[1])

    def _track_phase(self, ev: Any) -> None:
        if ev.kind == "proposals":
            if self.phase in ("training", "classifiers"):  # after the epochs: R-CNN's SVMs or calibration prototypes
                self.after_training = "calibration prototypes" if ev.message == "calibration prototypes" else "SVMs"
            self.phase = "classifiers" if self.phase in ("training", "classifiers") else "proposals"
        elif ev.kind in ("start", "step"):
            self.phase = "training"
        elif ev.kind == "end":
            self.phase = "done"

    def _poll(self) -> None:
        if self._ended:
            return
        self._drain()
        alive = self.process.alive()
        now = time.monotonic()
        if (self._cancel_at is not None and alive and self.result is None
                and self.phase in ("setup", "proposals", "classifiers") and now - self._cancel_at > CANCEL_GRACE_S):
            self.process.terminate()
            if self.phase == "classifiers":
                self._end_cancelled(f"cancelled while fitting the {self.after_training}; the last epoch's "
                                    "checkpoint is kept", str(self.config.out))
            else:
                self._end_cancelled("cancelled before training had written a checkpoint", None)
            return
        if self.error is not None:
            codes = self._finish_processes(1.0)
            self._end(failed=with_deaths(self.error, codes))
            return
        if self.result is not None:
            if not alive or now - (self._result_at or now) > EXIT_GRACE_S:
                self._finish_processes(0.5)
                self._end(result=self.result)
            return
        if not alive:
            self._drain()  # the last messages may have arrived with the exit
            if self.result is not None:
                self._end(result=self.result)
            elif self.error is not None:
                self._end(failed=with_deaths(self.error, self.process.exitcodes()))
            else:
                self._end(failed=exit_summary(self.process.exitcodes()))

    def _end_cancelled(self, message: str, checkpoint: str | None) -> None:
        from models.detection.training import TrainResult

        self._finish_processes(0.5)
        self._end(result=TrainResult("cancelled", 0, checkpoint, message, 0.0))

    def _finish_processes(self, timeout_s: float) -> list[int | None]:
        """Wait up to ``timeout_s`` for the processes, terminate what is left; the exit codes from before
        the termination (so a process we stop is not reported as killed)."""
        self.process.join(timeout_s)
        codes = self.process.exitcodes()
        if any(c is None for c in codes):
            self.process.terminate()
            self.process.join(2.0)
        self.process.close()
        return codes

    def _end(self, result: Any = None, failed: str | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        self._timer.stop()
        self.phase = "done"
        if failed is not None:
            self.failed.emit(failed)
        else:
            self.finished.emit(result)
