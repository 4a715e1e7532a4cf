"""Writing back what was read: the bookkeeping every format shares.

The standard (ARCHITECTURE.md): a file we read and did not change is written back byte-identical, or not at
all; what we do not model, we keep. A reader therefore attaches a :class:`SourceRecord` to the annotation
(``Annotation.source``) and tags each object with its ``origin`` (which element, entry or line it came from);
the writer of the same format then

* writes the original bytes when the annotation has no real change since it was loaded (:func:`unchanged`:
  the objects and the verified mark, which is all a user can edit; an edit that was undone is no change);
* otherwise patches only what differs from the file: changed objects in place, deleted ones removed, new ones
  appended, everything else (other tools' tags and keys, formatting, comments) left as it was.

Origins carry the record's ``key`` so an object pasted from another image's file is recognised as new here.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from models.data.annotations.model import Annotation, BoxObject

_keys = itertools.count(1)

#: Coordinates closer than this (pixels) are the same: a value read, shown and saved untouched must not count
#: as an edit because of float noise.
SAME_COORD = 1e-6


def new_key() -> int:
    """A process-wide unique key for one read of one file."""
    return next(_keys)


def content_key(ann: Annotation, verified: bool = True) -> tuple:
    """What a user can change in an annotation: its objects (in order) and the verified mark (when the format
    stores it: VOC does, COCO and YOLO files do not)."""
    return (bool(ann.verified) if verified else None,
            tuple((o.name, tuple(round(float(v), 6) for v in o.box), bool(o.difficult), bool(o.truncated),
                   bool(o.crowd)) for o in ann.objects))


@dataclass(eq=False)
class SourceRecord:
    """What a reader saw. Subclasses add what their writer needs to patch the file."""

    key: int
    #: The file's bytes as read.
    data: bytes
    #: The objects as the file states them, by origin index (before any orientation fitting).
    file_objects: list[BoxObject] = field(default_factory=list)
    #: ``content_key`` of the annotation as first shown (after orientation fitting); see :func:`unchanged`.
    loaded: tuple | None = None
    #: The format stores the verified mark (VOC); otherwise it is no change to the file.
    stores_verified = True

    def remember_loaded(self, ann: Annotation) -> None:
        self.loaded = content_key(ann, self.stores_verified)


def source_of(ann: Annotation, kind: type) -> SourceRecord | None:
    """``ann.source`` when it is a record of ``kind`` (a VOC writer ignores what a COCO reader left)."""
    src = ann.source
    return src if isinstance(src, kind) else None


def unchanged(ann: Annotation, src: SourceRecord) -> bool:
    """No real change since the file was read: write its bytes back (or nothing)."""
    return src.loaded is not None and content_key(ann, src.stores_verified) == src.loaded


def same_box(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(abs(float(x) - float(y)) <= SAME_COORD for x, y in zip(a, b, strict=True))


def match_origins(objects: Sequence[BoxObject], src: SourceRecord,
                  candidates: Sequence[int] | None = None) -> list[int | None]:
    """For each object, the index of the file entry it updates (None: a new entry).

    An origin counts once (a box duplicated by copy-paste is new) and only when it comes from ``src`` (and is
    one of ``candidates``, e.g. the entries of this image in a COCO file). An object without a usable origin
    that is identical to a file entry nobody claimed (a class renamed by a tool that rebuilt the object, a box
    cut and pasted back) takes that entry, so its other fields survive.
    """
    allowed = range(len(src.file_objects)) if candidates is None else candidates
    allowed_set = set(allowed)
    claimed: set[int] = set()
    out: list[int | None] = []
    for o in objects:
        idx = None
        if o.origin is not None and o.origin[0] == src.key and o.origin[1] in allowed_set \
                and o.origin[1] not in claimed:
            idx = o.origin[1]
            claimed.add(idx)
        out.append(idx)
    for k, o in enumerate(objects):
        if out[k] is not None:
            continue
        for j in allowed:
            f = src.file_objects[j]
            if j not in claimed and same_box(o.box, f.box) and o.difficult == f.difficult \
                    and o.truncated == f.truncated:
                out[k] = j
                claimed.add(j)
                break
    return out


def new_object_groups(targets: Sequence[int | None]) -> dict[int, list[int]]:
    """New objects (target None) grouped by how many kept objects precede them in memory order: group g goes
    right after the g-th kept object as the file will hold them (group 0 before the first), so reading the
    file back gives the objects in the order the user sees them."""
    groups: dict[int, list[int]] = {}
    kept = 0
    for k, j in enumerate(targets):
        if j is None:
            groups.setdefault(kept, []).append(k)
        else:
            kept += 1
    return groups


__all__ = ["SAME_COORD", "SourceRecord", "content_key", "match_origins", "new_key", "new_object_groups", "same_box",
           "source_of", "unchanged"]
