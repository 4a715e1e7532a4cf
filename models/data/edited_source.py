"""A dataset seen with some images' annotations replaced by in-memory ones (the window's unsaved edits).

Why: the window autosaves within a second, but an edit can be unsaved for longer (a read-only folder, a
file changed by another program awaiting the user's answer, autosave off). Scoring a model against the files
on disk would then grade it on ground truth the user has already corrected. :func:`with_annotations` gives a
:class:`DatasetSource` whose store answers ``load`` from the given annotations for those images and from
the files for every other image, so every reader of ground truth (``load_targets``, evaluation, statistics)
sees what the user sees, without anything being written.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from models.data.annotations import Annotation
from models.data.datasets import AnnotationStore, DatasetSource, ImageEntry
from models.data.io import ImageInfo


class EditedStore(AnnotationStore):
    """``base`` with ``edits`` (image path → annotation, None for "no annotation") answered from memory.

    Read-only: ``save`` refuses, since writing is the document's job (it knows about conflicts)."""

    def __init__(self, base: AnnotationStore, edits: Mapping[Path, Annotation | None]) -> None:
        super().__init__(list(base.class_names))
        self.base = base
        self.kind = base.kind
        self.per_image_files = base.per_image_files
        self.edits = {Path(p): a for p, a in edits.items()}
        for ann in self.edits.values():
            if ann is not None:
                self._remember_classes(ann)

    def annotation_path(self, entry: ImageEntry) -> Path | None:
        return self.base.annotation_path(entry)

    def has_annotation(self, entry: ImageEntry) -> bool:
        if entry.path in self.edits:
            return self.edits[entry.path] is not None
        return self.base.has_annotation(entry)

    def load(self, entry: ImageEntry, info: ImageInfo | None = None) -> Annotation | None:
        if entry.path in self.edits:
            ann = self.edits[entry.path]
            return None if ann is None else copy.deepcopy(ann)
        return self.base.load(entry, info)

    def save(self, entry: ImageEntry, ann: Annotation) -> None:
        raise OSError("this view of the dataset holds unsaved edits and is read-only; save from the document")

    def __getattr__(self, name: str) -> Any:
        # Format-specific attributes (a COCO store's dataset, a YOLO store's class file) are the base store's.
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)


def with_annotations(source: DatasetSource, edits: Mapping[Path, Annotation | None]) -> DatasetSource:
    """``source`` whose images in ``edits`` (by image path) read their annotation from there. The
    annotations are copied, so the caller may go on editing its own while a worker reads these."""
    if not edits:
        return source
    frozen = {Path(p): (None if a is None else copy.deepcopy(a)) for p, a in edits.items()}
    return dataclasses.replace(source, store=EditedStore(source.store, frozen))


__all__ = ["EditedStore", "with_annotations"]
