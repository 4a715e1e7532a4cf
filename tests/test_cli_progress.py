"""One way of showing progress on a terminal: synth, detect and evaluate draw tqdm bars (as train and
eval-proposals do), and print no bar when stderr is not a terminal."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from app.cli import detection
from app.cli import main as cli_main
from tests.test_cli_detection import OracleDetector, synth  # noqa: F401 - the module fixture


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _terminal(monkeypatch: pytest.MonkeyPatch) -> _Terminal:
    """stderr as a terminal; set in the test body, since pytest's capture resets sys.stderr between phases."""
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    return term


def _bars(text: str, prog: str) -> list[str]:
    """tqdm's redrawn lines for ``prog`` (each starts after a carriage return)."""
    return [part for part in text.split("\r") if part.startswith(f"{prog}:") and "%|" in part]


def test_synth_draws_a_tqdm_bar_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _terminal(monkeypatch)
    assert cli_main(["synth", "--out", str(tmp_path / "s"), "--images", "2", "--seed", "1"]) == 0
    bars = _bars(terminal.getvalue(), "synth")
    assert bars and "100%|" in bars[-1]


def test_synth_quiet_and_pipes_get_no_bar(tmp_path: Path, capsys) -> None:
    assert cli_main(["synth", "--out", str(tmp_path / "s"), "--images", "2", "--seed", "1"]) == 0
    assert "\r" not in capsys.readouterr().err  # stderr is not a terminal here


def test_detect_and_evaluate_draw_tqdm_bars(synth: Path, tmp_path: Path,  # noqa: F811
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _terminal(monkeypatch)
    det = OracleDetector(synth)
    monkeypatch.setattr(detection, "_load_model", lambda path, device, prog: det)
    images = sorted((synth / "JPEGImages").glob("*.png"))[:3]
    assert cli_main(["detect", "--model", "m.pt", *map(str, images), "--json", str(tmp_path / "d.json")]) == 0
    bars = _bars(terminal.getvalue(), "detect")
    assert bars and "3/3" in bars[-1]
    terminal.seek(0)
    terminal.truncate()
    assert cli_main(["evaluate", "--model", "m.pt", "--data", str(synth), "--split", "test"]) == 0
    bars = _bars(terminal.getvalue(), "evaluate")
    assert bars and "100%|" in bars[-1]
