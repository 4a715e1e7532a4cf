"""Shared test set-up. Qt must never try to reach a display: without one it aborts the whole run."""

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_NUM_THREADS", "2")
# Caches (proposals, CNN codes) go to a fresh folder per test run, never the user's own cache.
if "RCNN_EXPLORER_CACHE" not in os.environ:
    import tempfile
    os.environ["RCNN_EXPLORER_CACHE"] = tempfile.mkdtemp(prefix="rcnn_explorer_test_cache_")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHARED_DATA = ROOT.parent / "shared" / "data"
