"""The class list of one dataset: where it is stored, how it is derived, and how it is written back.

Why this is the dataset's, not the user's: keys 1–9 pick the first nine classes, so the list's order is part
of how a dataset is labelled. A list kept globally leaked from one dataset to the next (COCO's
``dining table`` beside VOC's ``diningtable``, key 3 meaning another class). The rules, per format:

- YOLO: the class file (``classes.txt``/``data.yaml``) *is* the id order; the list is that file, and a
  class the user adds is appended to it (ids of existing classes never move).
- COCO: the categories of the JSON, in id order; a new class becomes a category when a box uses it.
- VOC root, plain folder: LabelImg's ``classes.txt`` beside the images (its order first), then every object
  name found in the annotation files, in image order. The list is written back to that ``classes.txt``
  when it changes, so the keys mean the same classes the next time the dataset is opened.
- A single image: the ``classes.txt`` beside it if present; nothing is written into its folder.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from models.data.annotations import AnnotationError
from models.data.annotations.yolo import read_class_file, write_class_file
from models.data.datasets import DatasetSource, VocStore

CLASS_FILE = "classes.txt"
#: The first ``<name>`` after each ``<object>`` (VOC writes the object's name before its parts).
_OBJECT_NAME = re.compile(rb"<object\b[^>]*>.*?<name>\s*(.*?)\s*</name>", re.DOTALL)


@dataclass
class DatasetClasses:
    """A dataset's class list as opened: the names in key order and where the list lives."""

    names: list[str]
    #: The file the list is read from / written to (None: derived only, e.g. COCO categories).
    path: Path | None
    #: Whether ``save_classes`` may write ``path`` (False for COCO and single images).
    writable: bool
    problems: list[str] = field(default_factory=list)


def unique(names: Iterable[str]) -> list[str]:
    """Names in first-seen order, stripped, without blanks or duplicates."""
    seen: dict[str, None] = {}
    for n in names:
        n = str(n).strip()
        if n:
            seen.setdefault(n, None)
    return list(seen)


def class_file_for(source: DatasetSource) -> Path | None:
    """Where this dataset's class list is stored (None when the format keeps it inside, as COCO does)."""
    if source.kind == "coco":
        return None
    if source.kind == "yolo":
        current = getattr(source.store, "class_file", None)
        if current is not None and Path(current).suffix.lower() not in (".yaml", ".yml"):
            return Path(current)
        return source.root / CLASS_FILE
    return source.root / CLASS_FILE


def _read(path: Path | None, problems: list[str]) -> list[str]:
    if path is None or not path.is_file():
        return []
    try:
        return read_class_file(path)
    except AnnotationError as exc:
        problems.append(str(exc))
        return []


def voc_names_in(source: DatasetSource, cancelled: Callable[[], bool] | None = None,
                 max_files: int | None = None) -> list[str]:
    """Object names in the dataset's VOC files, in image order (a byte scan, no XML parse: ~10k files/s)."""
    store = source.store
    if not isinstance(store, VocStore):
        return []
    names: list[str] = []
    for k, entry in enumerate(source.entries):
        if max_files is not None and k >= max_files:
            break
        if cancelled is not None and k % 200 == 0 and cancelled():
            break
        path = store.annotation_path(entry)
        try:
            data = path.read_bytes()
        except OSError:
            continue
        for m in _OBJECT_NAME.finditer(data):
            try:
                names.append(html.unescape(m.group(1).decode("utf-8")))
            except UnicodeDecodeError:
                continue
    return unique(names)


def dataset_classes(source: DatasetSource, scan: bool = True) -> DatasetClasses:
    """The class list of ``source`` in key order (see the module docstring); ``scan`` reads VOC files."""
    problems: list[str] = []
    if source.kind in ("yolo", "coco"):
        path = class_file_for(source)
        return DatasetClasses(unique(source.class_names), path, source.kind == "yolo", problems)
    path = class_file_for(source)
    names = _read(path, problems) + list(source.class_names)
    if scan and source.kind in ("voc", "folder"):
        names += voc_names_in(source)
    return DatasetClasses(unique(names), path, source.kind in ("voc", "folder"), problems)


def save_classes(source: DatasetSource, classes: DatasetClasses, names: list[str]) -> Path | None:
    """Write ``names`` to the dataset's class file when it is writable and they differ from the file.

    For YOLO only an *extension* of the file's list is written (appending keeps every box's id); any other
    change (a rename) is the dataset-wide rename job's business. Returns the path written, or None.
    Raises OSError when the folder cannot be written (the caller keeps the list in memory).
    """
    names = unique(names)
    if not classes.writable or classes.path is None or not names:
        return None
    on_disk = _read(classes.path, [])
    if names == on_disk:
        return None
    if source.kind == "yolo":
        store_names = source.store.class_names
        if names[: len(store_names)] != store_names:
            return None
        store_names.extend(n for n in names if n not in store_names)  # saves use the same ids
        names = list(store_names)
        source.store.class_file = classes.path  # type: ignore[attr-defined]
    write_class_file(classes.path, names)
    return classes.path
