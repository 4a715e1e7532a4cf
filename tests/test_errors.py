"""The error log is rotated: an exception repeating on every repaint must not fill the disk."""

from __future__ import annotations

from pathlib import Path

from app.errors import ErrorReporter


def _boom(reporter: ErrorReporter, k: int) -> None:
    try:
        raise RuntimeError(f"boom {k} " + "x" * 200)
    except RuntimeError as exc:
        reporter.handle(type(exc), exc, exc.__traceback__)


def test_log_rotates_and_keeps_a_bounded_number_of_files(tmp_path: Path, capsys) -> None:
    log = tmp_path / "errors.log"
    reporter = ErrorReporter(log, show_dialog=False, max_bytes=4000, backups=2)
    for k in range(200):
        _boom(reporter, k)
    capsys.readouterr()  # the tracebacks also go to stderr
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["errors.log", "errors.log.1", "errors.log.2"]
    assert all((tmp_path / f).stat().st_size <= 4000 for f in files)
    assert "boom 199" in log.read_text()  # the newest entry is in the current file
    assert "boom 0 " not in "".join((tmp_path / f).read_text() for f in files)  # the oldest are gone
    assert reporter.count == 200


def test_default_reporter_rotates_at_a_limit(tmp_path: Path, capsys) -> None:
    reporter = ErrorReporter(tmp_path / "errors.log", show_dialog=False)
    assert 0 < reporter.max_bytes <= 10_000_000 and reporter.backups >= 1
    huge = "y" * (reporter.max_bytes * 2)
    reporter.handle(ValueError, ValueError(huge), None)
    capsys.readouterr()
    assert (tmp_path / "errors.log").stat().st_size <= reporter.max_bytes
