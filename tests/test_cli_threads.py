"""``detect --threads N`` and ``evaluate --threads N`` set torch's intra-op threads before the model is loaded
(as ``train --threads`` does), leave torch's default without the option, and refuse a count below 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from app.cli import detection
from app.cli import main as cli_main
from tests.test_cli_detection import OracleDetector, synth  # noqa: F401 - synth is a fixture


@pytest.fixture
def events(synth: Path, monkeypatch: pytest.MonkeyPatch) -> list:  # noqa: F811
    """What happened, in order: ("threads", n) for each torch.set_num_threads, "load" when the model loads."""
    seen: list = []
    det = OracleDetector(synth)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: seen.append(("threads", n)))

    def load(path, device, prog):  # noqa: ANN001, ANN202
        seen.append("load")
        return det

    monkeypatch.setattr(detection, "_load_model", load)
    return seen


def test_evaluate_and_detect_set_the_threads_before_loading_the_model(synth: Path, events: list,  # noqa: F811
                                                                      tmp_path: Path) -> None:
    rep = tmp_path / "e.json"
    assert cli_main(["evaluate", "--model", "m.pt", "--data", str(synth), "--no-coco", "--threads", "1",
                     "--json", str(rep)]) == 0
    assert events == [("threads", 1), "load"] and json.loads(rep.read_text())["mAP"] == 1.0
    events.clear()
    image = sorted((synth / "JPEGImages").glob("*.png"))[0]
    assert cli_main(["detect", "--model", "m.pt", str(image), "--threads", "3", "--json",
                     str(tmp_path / "d.json")]) == 0
    assert events == [("threads", 3), "load"]
    events.clear()  # without the option torch keeps its default
    assert cli_main(["detect", "--model", "m.pt", str(image), "--json", str(tmp_path / "d.json")]) == 0
    assert events == ["load"]


def test_the_option_really_sets_torchs_threads(synth: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                               tmp_path: Path) -> None:
    before = torch.get_num_threads()
    monkeypatch.setattr(detection, "_load_model", lambda path, device, prog: OracleDetector(synth))
    target = 2 if before == 1 else 1
    try:
        assert cli_main(["evaluate", "--model", "m.pt", "--data", str(synth), "--no-coco", "--threads",
                         str(target)]) == 0
        assert torch.get_num_threads() == target
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("command", [["evaluate", "--model", "m.pt", "--data", "nowhere"],
                                     ["train", "--data", "nowhere", "--out", "m.pt"]])
@pytest.mark.parametrize("bad", ["0", "-2", "two"])
def test_a_thread_count_below_one_is_refused(command: list, bad: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:  # train used to take 0 and quietly use torch's default
        cli_main([*command, "--threads", bad])
    assert exc.value.code == 2 and "--threads" in capsys.readouterr().err
