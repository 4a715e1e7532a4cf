"""What the document knows about one image, and how an annotation file is recognised as unchanged.

Shared by the document and its saving and disk-watching parts (app/document_saving.py, app/document_disk.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtGui import QUndoStack

from models.data.annotations import Annotation

Signature = tuple[int, int]


def file_signature(path: Path | None) -> Signature | None:
    """(mtime in ns, size): how we tell our own writes from another program's."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


@dataclass
class ImageState:
    """What the document knows about one image."""

    loaded: bool = False
    annotation: Annotation | None = None  # None: no annotation (file absent, or unreadable)
    dirty: bool = False
    load_error: str | None = None  # the annotation file exists but could not be parsed
    overwrite_ok: bool = False  # the user agreed to replace the unreadable file
    asked_overwrite: bool = False
    decode_error: str | None = None
    save_error: str | None = None
    signature: Signature | None = None  # of the annotation file as we last read or wrote it
    warnings_shown: bool = False
    stack: QUndoStack | None = None
    warnings: list[str] = field(default_factory=list)
