"""Which images of an evaluation were used to train a checkpoint: the warning that a score is optimistic.

A checkpoint records its training split by file name (relative to its dataset). Names alone are not evidence
when the evaluated dataset is another one: every synthetic set names its images ``synth_000000.jpg``, … and two
seeds share every name and no image. So when the checkpoint's training dataset is a different folder that still
exists, a name counts only if the two files have the same bytes; when it is the same folder, or it is gone, the
name decides (the cautious answer)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Protocol


class NamedImage(Protocol):
    """A dataset entry: ``name`` relative to its dataset (what the checkpoint's split records), ``path`` on disk."""

    name: str
    path: Path


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha1(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def training_overlap(checkpoint_info: dict[str, Any] | None, root: str | Path, images: list[NamedImage]) -> int:
    """How many of ``images`` (entries of the dataset at ``root``) the checkpoint was trained on."""
    info = checkpoint_info if isinstance(checkpoint_info, dict) else {}
    split = info.get("split")
    files = split.get("files") if isinstance(split, dict) else None
    if not isinstance(files, list):
        return 0
    trained = {str(f) for f in files}
    matches = [im for im in images if im.name in trained]
    config = info.get("config")
    train_root = config.get("data") if isinstance(config, dict) else None
    if not matches or not isinstance(train_root, str) or not Path(train_root).is_dir() \
            or _same_folder(Path(train_root), Path(root)):
        return len(matches)
    wanted = {Path(im.name).name for im in matches}
    elsewhere: dict[str, Path] = {}
    for path in Path(train_root).rglob("*"):
        if path.name in wanted and path.is_file():
            elsewhere.setdefault(path.name, path)
    count = 0
    for im in matches:
        other = elsewhere.get(Path(im.name).name)
        if other is None:
            count += 1  # not found beside the training data: cannot tell, so say it may have been trained on
            continue
        mine = _digest(Path(im.path))
        count += int(mine is not None and mine == _digest(other))
    return count
