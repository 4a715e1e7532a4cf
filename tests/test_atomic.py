"""Atomic writes keep a shared dataset shared: the mode (and group) of the file they replace, the umask's
default for a new one — never the temp file's owner-only 0600."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.data.annotations import Annotation, BoxObject, write_voc
from models.data.annotations.atomic import atomic_write, atomic_write_bytes, atomic_write_text, current_umask
from models.data.annotations.coco import coco_from_annotations, write_coco
from models.data.annotations.yolo import write_class_file, write_yolo

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def _ann() -> Annotation:
    return Annotation("a.jpg", 100, 80, 3, [BoxObject("cat", (1.0, 2.0, 30.0, 40.0))])


WRITERS = {
    "bytes": lambda p: atomic_write_bytes(p, b"x"),
    "text": lambda p: atomic_write_text(p, "x"),
    "stream": lambda p: atomic_write(p, lambda f: f.write(b"x")),
    "voc": lambda p: write_voc(_ann(), p),
    "yolo": lambda p: write_yolo(_ann(), p, ["cat"]),
    "classes": lambda p: write_class_file(p, ["cat", "dog"]),
    "coco": lambda p: write_coco(coco_from_annotations([("a.jpg", _ann())], ["cat"]), p),
}


@pytest.mark.parametrize("kind", sorted(WRITERS))
@pytest.mark.parametrize("mode", [0o644, 0o664, 0o640, 0o600])
def test_existing_file_keeps_its_mode(tmp_path: Path, umask_022: None, kind: str, mode: int) -> None:
    p = tmp_path / "f.out"
    p.write_bytes(b"old")
    os.chmod(p, mode)
    WRITERS[kind](p)
    assert _mode(p) == mode
    assert p.read_bytes() != b"old"


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_new_file_gets_the_umask_default(tmp_path: Path, umask_022: None, kind: str) -> None:
    p = tmp_path / "new.out"
    WRITERS[kind](p)
    assert _mode(p) == 0o644


def test_new_file_follows_another_umask(tmp_path: Path) -> None:
    old = os.umask(0o002)
    try:
        assert current_umask() == 0o002
        atomic_write_text(tmp_path / "g.txt", "x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "g.txt") == 0o664


def test_existing_file_keeps_its_group(tmp_path: Path) -> None:
    groups = [g for g in os.getgroups() if g != os.getegid()]
    if not groups:
        pytest.skip("the user belongs to one group only")
    p = tmp_path / "f.xml"
    p.write_bytes(b"old")
    os.chown(p, -1, groups[0])
    atomic_write_bytes(p, b"new")
    assert os.stat(p).st_gid == groups[0]


def test_checkpoint_keeps_mode(tmp_path: Path, umask_022: None) -> None:
    torch = pytest.importorskip("torch")
    p = tmp_path / "m.pt"
    p.write_bytes(b"old")
    os.chmod(p, 0o664)
    atomic_write(p, lambda fh: torch.save({"a": 1}, fh))
    assert _mode(p) == 0o664
