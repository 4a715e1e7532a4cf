"""Atomic file writes: a crash or a full disk mid-write leaves the old file, never half a new one.

Why the mode handling: ``tempfile.mkstemp`` creates its file owner-only (0600) and ``os.replace`` keeps the
temp file's mode, so without it every save would lock a shared dataset's other users (and a training job
under another account) out of the file. A file we replace keeps its mode and, where the user may set it,
its group; a new file gets what ``open()`` would give it: 0666 less the process umask.
"""

from __future__ import annotations

import os
import stat
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the platform allows (Linux: /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_lock:  # the only portable way: set and restore (briefly visible to other threads)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _target_mode(target: Path) -> tuple[int, int | None]:
    """(permission bits, group id or None) the written file should have."""
    try:
        st = os.stat(target)
    except OSError:
        return 0o666 & ~current_umask(), None
    return stat.S_IMODE(st.st_mode), st.st_gid


def _apply_mode(fd: int, tmp: str, mode: int, gid: int | None) -> None:
    if gid is not None and hasattr(os, "fchown"):
        try:  # the group first: chown may clear set-gid bits that the chmod below then restores
            os.fchown(fd, -1, gid)
        except OSError:
            pass  # not a member of that group: the file keeps ours, as any editor would
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
        else:
            os.chmod(tmp, mode)
    except OSError:
        pass


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write`` on a temp file in the same folder, fsync, then ``os.replace`` over the target.

    Takes a writer rather than bytes so large payloads (checkpoints) stream to disk without a second copy
    in memory. The result has the replaced file's mode and group, or the umask's default for a new file.
    """
    target = Path(path)
    mode, gid = _target_mode(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        _apply_mode(fd, tmp, mode, gid)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable; not every filesystem allows fsync on a directory
        dfd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
