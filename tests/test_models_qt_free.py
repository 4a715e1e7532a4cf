"""``models`` is the headless half: every module must import without Qt, so the command line, torchrun
workers and a training subprocess never load a GUI toolkit. Checked in a fresh interpreter, because the test
session itself has Qt loaded already."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_PROBE = r"""
import importlib, json, pkgutil, sys
import models
names = sorted(m.name for m in pkgutil.walk_packages(models.__path__, "models."))
qt = {}
for name in names:
    importlib.import_module(name)
    loaded = sorted(k for k in sys.modules if k.split(".")[0] in {"PySide6", "PyQt5", "PyQt6", "shiboken6", "pyqtgraph"})
    if loaded:
        qt[name] = loaded
        break
print(json.dumps({"modules": names, "qt": qt}))
"""


def test_no_models_module_imports_qt() -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "models.detection.detectors.faster_rcnn" in report["modules"]
    assert "models.proposals.selective_search" in report["modules"]
    assert "models.data.annotations.voc" in report["modules"]
    assert report["qt"] == {}, f"Qt pulled in by {report['qt']}"


def test_models_is_grouped_by_pipeline_step() -> None:
    """The layout shows the pipeline: data, then proposals, then detection; only the box primitives that all
    three share stay at the top."""
    top = sorted(p.name for p in (ROOT / "models").iterdir() if p.suffix == ".py" or (p / "__init__.py").exists())
    assert top == ["__init__.py", "boxes.py", "boxes_numpy.py", "data", "detection", "proposals"]
