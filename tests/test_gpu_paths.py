"""Devices: every generation trains under autocast (the mixed-precision path CUDA takes), and the GPU check
script says so clearly, and checks nothing, where there is no CUDA device."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.tiny_training import record_conv_output_dtypes, tiny_config, tiny_dataset

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.mktemp("gpu_paths") / "set")


@pytest.mark.parametrize("generation", ["fast-rcnn", "rcnn"])
def test_every_generation_trains_under_reduced_precision_autocast(tiny_set, tmp_path, monkeypatch,
                                                                  generation: str) -> None:
    """No CUDA here, so the CPU's bfloat16 autocast stands in for CUDA's float16 one: the same code path
    (``torch.autocast`` around the forward), the same class of failure (a float32 tensor meeting a
    reduced-precision one in an indexing or a concatenation). Faster R-CNN is covered in test_training."""
    import models.detection.training as training
    from models.detection.training import train

    monkeypatch.setattr(training, "cpu_supports_bf16", lambda: True)
    seen = record_conv_output_dtypes(monkeypatch)
    model = {k: v for k, v in tiny_config(tiny_set, "x").model.items() if not k.startswith(("rpn_", "anchor_"))}
    result = train(tiny_config(tiny_set, tmp_path / "m.pt", generation=generation, cpu_bf16=True, max_steps=2,
                               model=model, proposal_cache=str(tmp_path / "proposals")))
    assert result.status == "completed", result.message
    assert torch.bfloat16 in seen
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in result.history)


def test_gpu_check_without_cuda_says_so_and_checks_nothing(tmp_path) -> None:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--out", str(tmp_path / "w")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "no CUDA device" in proc.stdout and "nothing checked" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "w").exists()  # nothing trained, nothing written
