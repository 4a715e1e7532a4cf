"""A dataset-wide job's progress dialog may be gone when a progress report arrives (a window-modal
QProgressDialog processes events inside ``setValue``, where the job's end can delete it): the report is then
dropped, not an "Internal C++ object already deleted" error (seen once in test_main_window's class rename)."""

from __future__ import annotations

import shiboken6
from PySide6.QtWidgets import QProgressDialog

import app.dataset_jobs as dataset_jobs
from tests.test_main_window import make_window, settings  # noqa: F401 - settings is a fixture


class _DialogEndedInsideSetValue(QProgressDialog):
    """Stands for the re-entrant end: the first real progress value deletes the dialog, as the job's
    ``finished`` handler would when it runs inside setValue's event processing."""

    made: list[_DialogEndedInsideSetValue] = []

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        _DialogEndedInsideSetValue.made.append(self)

    def setValue(self, value: int) -> None:  # noqa: N802 - Qt's name
        super().setValue(value)
        if value > 0:
            shiboken6.delete(self)


def test_progress_after_the_dialog_is_gone_is_dropped_and_the_job_still_ends(qtbot, settings, monkeypatch):  # noqa: F811
    window = make_window(qtbot, settings, thumbnails=False)
    monkeypatch.setattr(dataset_jobs, "progress_dialog",
                        lambda title, parent: _DialogEndedInsideSetValue(title, "Cancel", 0, 1000, parent))
    seen: list[float] = []

    def job(progress, cancelled):  # noqa: ANN001, ANN202 - the run_job calling convention
        for f in (0.25, 0.5, 0.75):
            progress(f, f"step {f}")
            seen.append(f)
        return "done"

    with qtbot.waitSignal(window.jobFinished, timeout=60_000) as finished:
        window.run_job("Rename class", job)
    assert finished.args == ["Rename class", "done", ""]
    assert seen == [0.25, 0.5, 0.75]
    (dialog,) = _DialogEndedInsideSetValue.made
    assert not shiboken6.isValid(dialog)  # deleted at the first report; the later ones were dropped
    assert not window.document.busy and window._job_dialog is None  # autosave runs again
