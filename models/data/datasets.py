"""Turn whatever the user opens into a list of images and a place to read and write their annotations.

Recognised, in this order: a COCO instances JSON (or a folder holding one under ``annotations/``), a Pascal
VOC root (``Annotations/`` + ``JPEGImages/``), a YOLO folder (``images/`` + ``labels/`` + ``classes.txt`` or
``data.yaml``), a plain folder (VOC XML beside each image), a single image. Scanning reads directory entries
only, never pixels, so a 10,000-image folder lists in well under a second.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from models.data.annotations import Annotation, AnnotationError, read_voc, write_voc
from models.data.annotations.coco import CocoDataset, read_coco, write_coco
from models.data.annotations.fidelity import content_key
from models.data.annotations.orientation import fit_to_orientation
from models.data.annotations.yolo import (
    declares_keypoints,
    read_class_file,
    read_yolo,
    write_class_file,
    write_yolo,
)
from models.data.io import ImageInfo, is_image_file, read_image_info

_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> list:
    """``img2`` before ``img10``, case-insensitively, as a file manager sorts."""
    return [int(part) if part.isdigit() else part.lower() for part in _DIGITS.split(text)]


@dataclass
class ImageEntry:
    path: Path
    #: Path relative to the dataset root, with forward slashes: what the file list shows and filters on.
    name: str
    #: The image's id in a COCO file; None elsewhere.
    coco_id: int | None = None


class AnnotationStore:
    """Where one dataset keeps its annotations. Subclasses know one layout each."""

    kind = "none"
    #: Writing replaces one file per image (False: one file holds every image, e.g. COCO).
    per_image_files = True

    def __init__(self, class_names: list[str] | None = None) -> None:
        self.class_names: list[str] = list(class_names or [])

    def annotation_path(self, entry: ImageEntry) -> Path | None:
        raise NotImplementedError

    def has_annotation(self, entry: ImageEntry) -> bool:
        p = self.annotation_path(entry)
        return p is not None and p.exists()

    def load(self, entry: ImageEntry, info: ImageInfo | None = None) -> Annotation | None:
        """The image's annotation, None when it has none yet; raises AnnotationError when unreadable."""
        raise NotImplementedError

    def save(self, entry: ImageEntry, ann: Annotation) -> None:
        """Write atomically; raises OSError (e.g. read-only folder) with nothing half-written."""
        raise NotImplementedError

    def _remember_classes(self, ann: Annotation) -> None:
        for name in ann.class_names:
            if name not in self.class_names:
                self.class_names.append(name)


class VocStore(AnnotationStore):
    """VOC XML beside each image, or ``<annotation_dir>/<image stem>.xml``."""

    kind = "voc"

    def __init__(self, annotation_dir: Path | None = None, image_root: Path | None = None,
                 class_names: list[str] | None = None) -> None:
        super().__init__(class_names)
        self.annotation_dir = Path(annotation_dir) if annotation_dir else None
        self.image_root = Path(image_root) if image_root else None

    def annotation_path(self, entry: ImageEntry) -> Path:
        if self.annotation_dir is None:
            return entry.path.with_suffix(".xml")
        # Mirror the image's sub-folders, so a/x.png and b/x.png never share one x.xml.
        return self.annotation_dir / Path(entry.name).with_suffix(".xml")

    def load(self, entry: ImageEntry, info: ImageInfo | None = None) -> Annotation | None:
        p = self.annotation_path(entry)
        if not p.exists():
            return None
        ann = read_voc(p)
        if info is not None:
            fit_to_orientation(ann, info.orientation, info.stored_width, info.stored_height)
        self._remember_classes(ann)
        return ann

    def save(self, entry: ImageEntry, ann: Annotation) -> None:
        p = self.annotation_path(entry)
        p.parent.mkdir(parents=True, exist_ok=True)
        if not ann.filename:
            ann.filename = entry.path.name
        write_voc(ann, p, entry.path)
        self._remember_classes(ann)


class YoloStore(AnnotationStore):
    """``labels/…/<stem>.txt`` mirroring ``images/…``; classes in ``classes.txt`` or ``data.yaml``."""

    kind = "yolo"

    def __init__(self, images_dir: Path, labels_dir: Path, class_names: list[str], class_file: Path | None) -> None:
        super().__init__(class_names)
        self.images_dir = Path(images_dir)
        self.labels_dir = Path(labels_dir)
        self.class_file = class_file
        #: A pose dataset: its lines' extra fields are keypoints, never a polygon.
        self.keypoints = declares_keypoints(self.labels_dir.parent)

    def annotation_path(self, entry: ImageEntry) -> Path:
        try:
            rel = entry.path.relative_to(self.images_dir)
        except ValueError:
            rel = Path(entry.path.name)
        return self.labels_dir / rel.with_suffix(".txt")

    def load(self, entry: ImageEntry, info: ImageInfo | None = None) -> Annotation | None:
        p = self.annotation_path(entry)
        if not p.exists():
            return None
        if info is None:
            info = read_image_info(entry.path)
        return read_yolo(p, self.class_names, info.width, info.height, entry.path.name, polygons=not self.keypoints)

    def save(self, entry: ImageEntry, ann: Annotation) -> None:
        added = [n for n in ann.class_names if n not in self.class_names]
        if added:
            self.class_names.extend(added)
            target = self.class_file or (self.labels_dir.parent / "classes.txt")
            if target.suffix.lower() in (".yaml", ".yml"):
                target = target.with_name("classes.txt")
            write_class_file(target, self.class_names)
            self.class_file = target
        p = self.annotation_path(entry)
        p.parent.mkdir(parents=True, exist_ok=True)
        write_yolo(ann, p, self.class_names)


class CocoStore(AnnotationStore):
    """One JSON for every image; saving one image rewrites the file atomically, keeping what we don't model."""

    kind = "coco"
    per_image_files = False

    def __init__(self, dataset: CocoDataset) -> None:
        super().__init__(dataset.class_names)
        self.dataset = dataset
        self.class_names = dataset.class_names  # shared list: categories added on save appear here
        #: Per image: the objects as last shown or saved (``content_key``); a save that matches writes nothing.
        self._shown: dict[int, tuple] = {}
        #: Per image: (as first shown, the dataset's annotation then): saving that content again (an undone
        #: edit) puts the file's own annotation back, so the file returns to its original bytes.
        self._first: dict[int, tuple[tuple, Annotation]] = {}

    def annotation_path(self, entry: ImageEntry) -> Path | None:
        return self.dataset.path

    def has_annotation(self, entry: ImageEntry) -> bool:
        ann = self.dataset.annotations.get(entry.coco_id) if entry.coco_id is not None else None
        return bool(ann and ann.objects)

    def load(self, entry: ImageEntry, info: ImageInfo | None = None) -> Annotation | None:
        if entry.coco_id is None or entry.coco_id not in self.dataset.annotations:
            return None
        ann = self.dataset.annotations[entry.coco_id].copy()
        if info is not None:
            if not ann.width or not ann.height:
                ann.width, ann.height = info.width, info.height
            fit_to_orientation(ann, info.orientation, info.stored_width, info.stored_height)
        key = content_key(ann, verified=False)
        self._shown[entry.coco_id] = key
        self._first.setdefault(entry.coco_id, (key, self.dataset.annotations[entry.coco_id]))
        return ann

    def save(self, entry: ImageEntry, ann: Annotation) -> None:
        """Write the file when this image's objects differ from what it holds (the verified mark of a COCO
        dataset lives in the settings, not in the file)."""
        if entry.coco_id is None:
            raise ValueError(f"{entry.name} is not an image of this COCO file")
        key = content_key(ann, verified=False)
        if key == self._shown.get(entry.coco_id):
            return
        first = self._first.get(entry.coco_id)
        previous = self.dataset.annotations.get(entry.coco_id)
        stored = first[1] if first and first[0] == key else ann.copy()
        self.dataset.annotations[entry.coco_id] = stored
        for im in self.dataset.images:
            if im.image_id == entry.coco_id and stored.width and stored.height:
                im.width, im.height = stored.width, stored.height
        try:
            write_coco(self.dataset)
        except BaseException:
            if previous is not None:
                self.dataset.annotations[entry.coco_id] = previous
            raise
        self._shown[entry.coco_id] = key


@dataclass
class DatasetSource:
    """An opened path: its images, its annotation store, its named splits and what went wrong scanning."""

    kind: str  # "image", "folder", "voc", "coco", "yolo"
    root: Path
    entries: list[ImageEntry]
    store: AnnotationStore
    splits: dict[str, list[int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def class_names(self) -> list[str]:
        return self.store.class_names


def scan_images(root: Path, problems: list[str] | None = None) -> list[Path]:
    """Every image under ``root`` (recursive, hidden folders skipped), naturally sorted by relative path."""
    found: list[Path] = []
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    if e.name.startswith("."):
                        continue
                    try:
                        if e.is_dir(follow_symlinks=False):
                            stack.append(Path(e.path))
                        elif is_image_file(e.name):
                            found.append(Path(e.path))
                    except OSError:
                        continue
        except PermissionError:
            if problems is not None:
                problems.append(f"{d}: folder cannot be read (permission denied)")
        except OSError as exc:
            if problems is not None:
                problems.append(f"{d}: folder cannot be read ({exc.strerror or exc})")
    found.sort(key=lambda p: natural_key(p.relative_to(root).as_posix()))
    return found


def _entries(paths: list[Path], root: Path) -> list[ImageEntry]:
    return [ImageEntry(p, p.relative_to(root).as_posix()) for p in paths]


def _read_split_file(path: Path) -> list[str]:
    try:
        return [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError):
        return []


def open_voc_root(root: Path) -> DatasetSource:
    problems: list[str] = []
    img_dir = root / "JPEGImages"
    paths = scan_images(img_dir, problems)
    entries = _entries(paths, img_dir)
    store = VocStore(root / "Annotations", img_dir)
    splits: dict[str, list[int]] = {}
    by_stem = {Path(e.name).stem: i for i, e in enumerate(entries)}
    main = root / "ImageSets" / "Main"
    if main.is_dir():
        for f in sorted(main.glob("*.txt")):
            if "_" in f.stem:  # per-class lists such as cat_train.txt
                continue
            idx = [by_stem[s] for s in _read_split_file(f) if s in by_stem]
            if idx:
                splits[f.stem] = idx
    return DatasetSource("voc", root, entries, store, splits, problems)


def _find_class_file(root: Path) -> Path | None:
    for name in ("classes.txt", "data.yaml", "data.yml", "dataset.yaml", "obj.names"):
        if (root / name).is_file():
            return root / name
    return None


def open_yolo_root(root: Path) -> DatasetSource:
    problems: list[str] = []
    class_file = _find_class_file(root)
    names: list[str] = []
    if class_file is not None:
        try:
            names = read_class_file(class_file)
        except AnnotationError as exc:
            problems.append(str(exc))
    img_dir = root / "images"
    paths = scan_images(img_dir, problems)
    entries = _entries(paths, img_dir)
    store = YoloStore(img_dir, root / "labels", names, class_file)
    splits: dict[str, list[int]] = {}
    for i, e in enumerate(entries):
        parts = Path(e.name).parts
        if len(parts) > 1:
            splits.setdefault(parts[0], []).append(i)
    return DatasetSource("yolo", root, entries, store, splits, problems)


def find_coco_image_dir(json_path: Path, ds: CocoDataset) -> Path | None:
    """Images live beside the JSON, in a sibling folder (``../val2017``, ``../images``), or in a child."""
    if not ds.images:
        return json_path.parent
    probe = ds.images[0].file_name
    candidates = [json_path.parent, json_path.parent / "images", json_path.parent.parent]
    for base in (json_path.parent, json_path.parent.parent):
        try:
            candidates += sorted(p for p in base.iterdir() if p.is_dir())
        except OSError:
            pass
    stem = json_path.stem.split("_")[-1]  # instances_val2017 → val2017
    candidates.insert(0, json_path.parent.parent / stem)
    for c in candidates:
        if (c / probe).is_file():
            return c
    return None


def open_coco(json_path: Path, image_dir: Path | None = None) -> DatasetSource:
    ds = read_coco(json_path)
    problems = list(ds.warnings)
    if image_dir is None:
        image_dir = find_coco_image_dir(json_path, ds)
    if image_dir is None:
        problems.append(f"{json_path.name}: image folder not found beside the JSON; use --images DIR")
        image_dir = json_path.parent
    entries = [ImageEntry(image_dir / im.file_name, im.file_name, im.image_id) for im in ds.images]
    entries.sort(key=lambda e: natural_key(e.name))
    return DatasetSource("coco", image_dir, entries, CocoStore(ds), {}, problems)


def _coco_json_in(folder: Path) -> Path | None:
    ann = folder / "annotations"
    if ann.is_dir():
        jsons = sorted(ann.glob("instances_*.json")) or sorted(ann.glob("*.json"))
        if jsons:
            return jsons[0]
    return None


def open_dataset(path: str | os.PathLike, image_dir: str | os.PathLike | None = None,
                 annotation_dir: str | os.PathLike | None = None) -> DatasetSource:
    """Open anything the app accepts; raises FileNotFoundError, NotADirectoryError or AnnotationError."""
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder")
    if p.is_file():
        if p.suffix.lower() == ".json":
            return open_coco(p, Path(image_dir) if image_dir else None)
        if is_image_file(p):
            store = VocStore(Path(annotation_dir) if annotation_dir else None, p.parent)
            return DatasetSource("image", p.parent, [ImageEntry(p, p.name)], store)
        raise AnnotationError(p, "not an image, a COCO JSON or a folder")
    if (p / "Annotations").is_dir() and (p / "JPEGImages").is_dir():
        return open_voc_root(p)
    if (p / "images").is_dir() and ((p / "labels").is_dir() or _find_class_file(p) is not None):
        return open_yolo_root(p)
    coco_json = _coco_json_in(p)
    if coco_json is not None:
        return open_coco(coco_json, Path(image_dir) if image_dir else None)
    problems: list[str] = []
    paths = scan_images(p, problems)
    store = VocStore(Path(annotation_dir) if annotation_dir else None, p)
    return DatasetSource("folder", p, _entries(paths, p), store, {}, problems)
