"""bench/proposals.py splits a long comparison into chunks (--offset/--scores-json) and pools them (--combine):
the pooled table must be exactly the one a single run over all images would print."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.proposals.metrics import CURVE_BUDGETS, score_image, summarize

proposals = pytest.importorskip("bench.proposals")


def _image(rng: np.random.Generator, n_props: int, n_gt: int):
    xy = rng.uniform(0, 300, (n_props, 2))
    wh = rng.uniform(5, 200, (n_props, 2))
    props = np.concatenate([xy, xy + wh], axis=1)
    gxy = rng.uniform(0, 300, (n_gt, 2))
    gt = np.concatenate([gxy, gxy + rng.uniform(10, 150, (n_gt, 2))], axis=1)
    return score_image(props, gt, budgets=CURVE_BUDGETS)


def test_chunks_pool_to_the_single_run_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(0)
    sizes = [(40, 3), (2500, 5), (700, 1), (12, 4), (1200, 2)]
    ours = [_image(rng, n, g) for n, g in sizes]
    theirs = [_image(rng, n // 2 + 1, g) for n, g in sizes]
    secs_o, secs_t = [0.1, 0.2, 0.3, 0.4, 0.5], [1.0, 0.9, 1.1, 1.3, 0.8]
    files = []
    for part, sl in (("a", slice(0, 2)), ("b", slice(2, 5))):
        raw = {"opencv fast": proposals._raw(secs_t[sl], [s.n_proposals for s in theirs[sl]], theirs[sl]),
               "ours fast": proposals._raw(secs_o[sl], [s.n_proposals for s in ours[sl]], ours[sl])}
        f = tmp_path / f"{part}.json"
        f.write_text(json.dumps({"set fast": raw}))
        files.append(f)
    assert proposals.main(["--combine", *map(str, files)]) == 0
    pooled = capsys.readouterr().out
    assert "5 images pooled from 2 file(s)" in pooled
    proposals._print_rows([proposals._row("opencv fast", secs_t, [s.n_proposals for s in theirs], theirs,
                                          CURVE_BUDGETS),
                           proposals._row("ours fast", secs_o, [s.n_proposals for s in ours], ours, CURVE_BUDGETS)])
    direct = capsys.readouterr().out
    assert direct.strip() in pooled  # the same rows, digit for digit
    # and the round trip keeps every figure, the budget curves included
    _, _, back = proposals._unraw(proposals._raw(secs_o, [s.n_proposals for s in ours], ours))
    a, b = summarize(ours, budgets=CURVE_BUDGETS), summarize(back, budgets=CURVE_BUDGETS)
    assert a.as_dict() == b.as_dict()
    ratio = np.median([o / t for o, t in zip(secs_o, secs_t, strict=True)])
    assert f"median of per-image ratios {ratio:.3f}" in pooled
