"""The default Selective Search settings keep their localisation on real, hand-labelled photographs.

The bundled sample photographs (4 photos, 17 objects in VOC XML, nothing difficult) with the defaults of ``fast`` (k 75,
150, 300; near-duplicates at 0.9) and seed 0 at max side 500. The figures were measured once
(bench/README.md, where OpenCV-contrib's fast mode scores recall@0.7 0.941, MABO 0.859 and AR 0.776 with
1,065 boxes per image on the same photos); the tolerances allow numeric noise, not a regression: one object
more or less at IoU 0.7 is 1/17 ≈ 0.06.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from models.data.datasets import open_dataset
from models.proposals.metrics import evaluate_dataset
from models.proposals.selective_search import FAST_KS, NEAR_DUPLICATE_IOU

SAMPLES = Path(__file__).resolve().parents[1] / "resources" / "samples"
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """The four photographs and their XML alone (the samples folder also holds synthetic shapes)."""
    for name in PHOTOS:
        for f in (SAMPLES / name, (SAMPLES / name).with_suffix(".xml")):
            (tmp_path / f.name).symlink_to(f)
    return tmp_path


def test_fast_defaults_localise_on_the_bundled_samples(photos: Path) -> None:
    assert FAST_KS == (75.0, 150.0, 300.0) and NEAR_DUPLICATE_IOU == 0.9
    report = evaluate_dataset(open_dataset(photos), "fast", seed=0, max_side=500)
    s = report.summary
    assert s.images == 4 and s.gt_boxes == 17 and not report.skipped
    assert s.recall[0.5] == 1.0
    assert s.recall[0.7] == pytest.approx(16 / 17, abs=0.06)
    assert s.mabo == pytest.approx(0.866, abs=0.01)
    assert s.average_recall == pytest.approx(0.788, abs=0.02)
    assert s.boxes_per_image == pytest.approx(1210, rel=0.05)
    # the named trade: compact keeps fewer boxes and loses localisation, never recall@0.5 here
    compact = evaluate_dataset(open_dataset(photos), "fast", seed=0, max_side=500,
                               near_duplicate_iou="compact").summary
    assert compact.boxes_per_image < 0.95 * s.boxes_per_image
    assert compact.recall[0.5] == 1.0 and compact.mabo <= s.mabo
