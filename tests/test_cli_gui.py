"""``python main.py [open] PATH`` and ``--samples``: argument handling, the samples copy, the bundled data."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from app.cli import main
from app.cli.gui import SAMPLES, build_parser, create_window, prepare_samples, run
from models.data.annotations import read_voc
from models.data.datasets import open_dataset
from tests.test_main_window import write_image


def test_bundled_samples_are_small_licensed_and_labelled():
    images = sorted(p for p in SAMPLES.iterdir() if p.suffix in (".png", ".jpg"))
    assert 3 <= len(images) <= 5
    licences = (SAMPLES / "LICENSES.md").read_text()
    classes = (SAMPLES / "classes.txt").read_text().split()
    for img in images:
        assert img.stat().st_size < 1_000_000 and img.name in licences
        ann = read_voc(img.with_suffix(".xml"))
        with Image.open(img) as im:
            assert (ann.width, ann.height) == im.size
        assert ann.objects and not ann.warnings  # every box inside the image
        assert all(o.name in classes for o in ann.objects)


def test_prepare_samples_copies_once_and_never_overwrites(tmp_path):
    copy = prepare_samples(tmp_path)
    assert copy == tmp_path / "samples" and (copy / "astronaut.xml").exists()
    (copy / "astronaut.xml").write_text("edited")
    assert prepare_samples(tmp_path) == copy
    assert (copy / "astronaut.xml").read_text() == "edited"
    assert open_dataset(SAMPLES).kind == "folder"  # the tracked originals are untouched
    assert read_voc(SAMPLES / "astronaut.xml").objects


def test_arguments_and_missing_path(tmp_path, capsys):
    args = build_parser().parse_args(["x", "--annotations", "out"])
    assert args.path == "x" and args.annotations == "out" and not args.samples
    assert run("open", [str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["open", str(tmp_path / "missing")]) == 2  # 'open' works for any path
    assert main([str(tmp_path / "missing")]) == 2  # a bare path too


@pytest.mark.parametrize("use_samples", [False, True])
def test_create_window_opens_the_path_or_the_samples(qtbot, tmp_path, monkeypatch, use_samples):
    monkeypatch.setenv("RCNN_EXPLORER_SETTINGS", str(tmp_path / "s.ini"))
    monkeypatch.setenv("RCNN_EXPLORER_DATA", str(tmp_path / "data"))
    write_image(tmp_path / "imgs" / "a.png")
    argv = ["--samples"] if use_samples else [str(tmp_path / "imgs"), "--annotations", str(tmp_path / "ann")]
    window = create_window(build_parser().parse_args(argv))
    qtbot.addWidget(window)
    doc = window.document
    if use_samples:
        assert Path(doc.source.root) == tmp_path / "data" / "samples" and len(window.model) > 0
    else:
        assert doc.source.store.annotation_dir == tmp_path / "ann"
    window.close()
