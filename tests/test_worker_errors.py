"""A worker's error reaches the panels as one plain sentence, whatever raised it."""

from __future__ import annotations

import pytest

from app.workers import WorkerPool, error_summary


class CheckpointError(RuntimeError):
    """Stands for the project's own error types: reported by their text alone."""


@pytest.mark.parametrize("exc, shown", [
    (OSError("disk full"), "disk full"),
    (KeyError("boxes"), "boxes"),
    (CheckpointError("not a checkpoint of this program"), "not a checkpoint of this program"),
    (ValueError("ratio: must be positive"), "ratio: must be positive"),
])
def test_a_failing_job_is_summed_up_without_its_type_and_traceback(qtbot, exc, shown):
    pool = WorkerPool()
    errors: list[str] = []

    def failing(job):
        raise exc

    pool.start(failing, on_error=errors.append)
    qtbot.waitUntil(lambda: bool(errors), timeout=5000)
    assert pool.shutdown()
    assert "Traceback" in errors[0]  # the raw report keeps the traceback for the log
    assert error_summary(errors[0]) == shown


def test_messages_that_are_not_typed_errors_are_kept_as_they_are():
    assert error_summary("cancelled") == "cancelled"
    assert error_summary("Note: the file is read-only\nmore") == "Note: the file is read-only"
    assert error_summary("") == "error"
