"""Whole-dataset conversion: export to Pascal VOC, COCO JSON or YOLO, import annotations from another
dataset, and rename/merge a class across every annotation file.

Why here (no Qt): these are file-format algorithms the GUI runs in a worker thread and a command could run
headless. Every function takes ``progress(fraction, message)`` and ``cancelled() -> bool`` callbacks.

What survives a round trip: every box (to 0.01 px in VOC/COCO, ~1e-8 of the image size in YOLO), class
names, and the class order (a ``classes.txt`` is written beside every export). VOC also carries difficult,
truncated and LabelImg's verified mark; COCO carries ``iscrowd``; YOLO carries boxes and classes only, so an
export to YOLO leaves crowd and difficult boxes out (as darknet's ``voc_label.py`` and Ultralytics'
``convert_coco`` do: written as plain boxes they would teach a group of people, or an object the labeller
could not make out, as one ordinary object) and its report counts them.
Images whose annotation file cannot be parsed are skipped and listed in the report, never guessed at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from models.data.annotations import Annotation, AnnotationError, write_voc
from models.data.annotations.coco import coco_from_annotations, write_coco
from models.data.annotations.yolo import write_class_file, write_yolo
from models.data.datasets import CocoStore, DatasetSource, ImageEntry, YoloStore
from models.data.io import ImageError, read_image_info

FORMATS = ("voc", "coco", "yolo")

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]


class ConversionCancelled(Exception):
    """The user cancelled; files written so far stay (each one complete, written atomically)."""


@dataclass
class ConversionReport:
    """What a conversion did: counts, where it wrote, and every file it had to skip (with the reason)."""

    images: int = 0
    annotations: int = 0
    boxes: int = 0
    output: Path | None = None
    problems: list[str] = field(default_factory=list)
    #: Boxes the target format cannot hold as they are and the export left out (YOLO: crowd and difficult).
    left_out: int = 0
    left_out_what: tuple[str, str] = ("box", "boxes")  # singular, plural
    left_out_why: str = ""

    def summary(self) -> str:
        text = f"{self.images} images, {self.annotations} annotations, {self.boxes} boxes"
        if self.left_out:
            why = f": {self.left_out_why}" if self.left_out_why else ""
            what = self.left_out_what[0 if self.left_out == 1 else 1]
            text += f" ({self.left_out} {what} left out{why})"
        if self.output is not None:
            text += f" → {self.output}"
        if self.problems:
            text += f"; {len(self.problems)} skipped"
        return text


def _noop_progress(_f: float, _m: str) -> None:
    pass


def _never() -> bool:
    return False


def _check(cancelled: CancelFn) -> None:
    if cancelled():
        raise ConversionCancelled()


def read_all(source: DatasetSource, progress: ProgressFn = _noop_progress, cancelled: CancelFn = _never,
             overrides: dict[int, Annotation | None] | None = None,
             ) -> tuple[list[tuple[ImageEntry, Annotation | None]], list[str]]:
    """Every readable image with its annotation (None: not labelled); unreadable ones go to the problems.

    ``overrides`` (entry index → annotation) replaces what is on disk, e.g. the GUI's unsaved edits.
    """
    overrides = overrides or {}
    out: list[tuple[ImageEntry, Annotation | None]] = []
    problems: list[str] = []
    n = max(1, len(source.entries))
    for i, entry in enumerate(source.entries):
        if i % 20 == 0:
            _check(cancelled)
            progress(0.5 * i / n, f"Reading {entry.name}")
        try:
            info = read_image_info(entry.path)
        except ImageError as exc:
            problems.append(str(exc))
            continue
        if i in overrides:
            ann = overrides[i].copy() if overrides[i] is not None else None
            if ann is not None:
                ann.verified = bool(overrides[i].verified)  # type: ignore[union-attr]
        else:
            try:
                ann = source.store.load(entry, info)
            except AnnotationError as exc:
                problems.append(f"{entry.name}: annotation skipped — {exc}")
                continue
        if ann is not None:
            ann.width, ann.height = ann.width or info.width, ann.height or info.height
            ann.filename = ann.filename or entry.path.name
        out.append((entry, ann))
    return out, problems


def _class_names(source: DatasetSource, items: Iterable[tuple[ImageEntry, Annotation | None]]) -> list[str]:
    names = list(source.class_names)
    for _, ann in items:
        if ann is not None:
            for n in ann.class_names:
                if n not in names:
                    names.append(n)
    return names


def _flat_names(entries: list[ImageEntry]) -> list[str]:
    """File names for a flat VOC ``JPEGImages/``: the relative path with ``/`` → ``_`` where stems clash."""
    stems: dict[str, int] = {}
    for e in entries:
        stem = Path(e.name).stem
        stems[stem] = stems.get(stem, 0) + 1
    out = []
    for e in entries:
        p = Path(e.name)
        out.append(p.name if stems[p.stem] == 1 else e.name.replace("/", "_"))
    return out


def _copy(src: Path, dst: Path, copy_images: bool) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.resolve() == dst.resolve():
        return
    if copy_images:
        shutil.copy2(src, dst)
    else:
        if dst.exists() or dst.is_symlink():
            dst.unlink()
        os.symlink(src.resolve(), dst)


def export_dataset(source: DatasetSource, fmt: str, out_dir: str | os.PathLike, copy_images: bool = True,
                   progress: ProgressFn = _noop_progress, cancelled: CancelFn = _never,
                   overrides: dict[int, Annotation | None] | None = None) -> ConversionReport:
    """Write ``source`` (images and annotations) as a new dataset in ``out_dir`` in format ``fmt``.

    Layouts are the ones ``models.data.datasets.open_dataset`` recognises, so the export opens again as is:
    VOC ``JPEGImages/ Annotations/ ImageSets/Main/``, COCO ``images/ annotations/instances.json``,
    YOLO ``images/ labels/ classes.txt``. ``copy_images=False`` symlinks instead of copying.
    """
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out_dir)
    if out.resolve() == source.root.resolve():
        raise ValueError("export into a new folder, not the dataset's own folder")
    out.mkdir(parents=True, exist_ok=True)
    items, problems = read_all(source, progress, cancelled, overrides)
    report = ConversionReport(output=out, problems=problems)
    names = _class_names(source, items)
    n = max(1, len(items))

    def step(k: int, what: str) -> None:
        if k % 10 == 0:
            _check(cancelled)
            progress(0.5 + 0.5 * k / n, what)

    if fmt == "voc":
        (out / "Annotations").mkdir(parents=True, exist_ok=True)  # both folders mark a VOC root
        (out / "JPEGImages").mkdir(parents=True, exist_ok=True)
        flat = _flat_names([e for e, _ in items])
        by_name: dict[str, str] = {}
        for k, ((entry, ann), fname) in enumerate(zip(items, flat, strict=True)):
            step(k, f"Writing {fname}")
            _copy(entry.path, out / "JPEGImages" / fname, copy_images)
            by_name[entry.name] = Path(fname).stem
            report.images += 1
            if ann is not None:
                ann = ann.copy() if not ann.verified else _copy_verified(ann)
                ann.filename = fname
                write_voc(ann, out / "Annotations" / (Path(fname).stem + ".xml"), out / "JPEGImages" / fname)
                report.annotations += 1
                report.boxes += len(ann.objects)
        main = out / "ImageSets" / "Main"
        for split, idx in source.splits.items():
            stems = [by_name[source.entries[i].name] for i in idx if source.entries[i].name in by_name]
            if stems:
                main.mkdir(parents=True, exist_ok=True)
                (main / f"{split}.txt").write_text("\n".join(stems) + "\n", encoding="utf-8")
        write_class_file(out / "classes.txt", names)
    elif fmt == "coco":
        pairs: list[tuple[str, Annotation]] = []
        for k, (entry, ann) in enumerate(items):
            step(k, f"Copying {entry.name}")
            _copy(entry.path, out / "images" / entry.name, copy_images)
            report.images += 1
            if ann is not None:
                report.annotations += 1
                report.boxes += len(ann.objects)
                pairs.append((entry.name, ann))
            else:
                info = read_image_info(entry.path)
                pairs.append((entry.name, Annotation(entry.path.name, info.width, info.height)))
        ds = coco_from_annotations(pairs, names)
        (out / "annotations").mkdir(parents=True, exist_ok=True)
        write_coco(ds, out / "annotations" / "instances.json")
    else:
        for k, (entry, ann) in enumerate(items):
            step(k, f"Writing {entry.name}")
            _copy(entry.path, out / "images" / entry.name, copy_images)
            report.images += 1
            if ann is not None:
                label = (out / "labels" / entry.name).with_suffix(".txt")
                label.parent.mkdir(parents=True, exist_ok=True)
                plain = [o for o in ann.objects if not (o.crowd or o.difficult)]
                if len(plain) < len(ann.objects):
                    report.left_out += len(ann.objects) - len(plain)
                    report.left_out_what = ("crowd or difficult box", "crowd or difficult boxes")
                    report.left_out_why = "YOLO has no flag for them"
                    ann = replace(ann, objects=plain)
                write_yolo(ann, label, names)
                report.annotations += 1
                report.boxes += len(plain)
        (out / "labels").mkdir(parents=True, exist_ok=True)
        write_class_file(out / "classes.txt", names)
    progress(1.0, report.summary())
    return report


def _copy_verified(ann: Annotation) -> Annotation:
    out = ann.copy()
    out.verified = True
    return out


def _save_many(source: DatasetSource, items: list[tuple[ImageEntry, Annotation]], progress: ProgressFn,
               start: float = 0.5) -> None:
    """Save through the store; a COCO file is written once, not once per image."""
    store = source.store
    if isinstance(store, CocoStore):
        for entry, ann in items:
            if entry.coco_id is not None:
                store.dataset.annotations[entry.coco_id] = ann.copy()
        write_coco(store.dataset)
        return
    n = max(1, len(items))
    for k, (entry, ann) in enumerate(items):
        if k % 10 == 0:
            progress(start + (1 - start) * k / n, f"Writing {entry.name}")
        store.save(entry, ann)


def import_annotations(target: DatasetSource, other: DatasetSource, progress: ProgressFn = _noop_progress,
                       cancelled: CancelFn = _never) -> ConversionReport:
    """Copy ``other``'s annotations onto the images of ``target`` with the same relative path (or, when
    unique, the same file name), saved in ``target``'s own format. Images of ``target`` whose existing
    annotation cannot be parsed are left alone and reported."""
    report = ConversionReport(output=target.root)
    by_name = {e.name: e for e in target.entries}
    by_base: dict[str, list[ImageEntry]] = {}
    for e in target.entries:
        by_base.setdefault(Path(e.name).name, []).append(e)
    items, problems = read_all(other, lambda f, m: progress(0.5 * f, m), cancelled)
    report.problems.extend(problems)
    to_save: list[tuple[ImageEntry, Annotation]] = []
    for entry, ann in items:
        if ann is None:
            continue
        dest = by_name.get(entry.name)
        if dest is None:
            candidates = by_base.get(Path(entry.name).name, [])
            dest = candidates[0] if len(candidates) == 1 else None
        if dest is None:
            report.problems.append(f"{entry.name}: no matching image in the open dataset")
            continue
        if not ann.objects and not ann.verified and not target.store.has_annotation(dest):
            continue  # e.g. COCO lists unlabelled images too: importing "no objects" would invent a label
        try:
            target.store.load(dest)
        except AnnotationError as exc:
            report.problems.append(f"{dest.name}: existing annotation unreadable, not replaced — {exc}")
            continue
        ann = ann.copy() if not ann.verified else _copy_verified(ann)
        ann.filename = dest.path.name
        to_save.append((dest, ann))
        report.annotations += 1
        report.boxes += len(ann.objects)
    _check(cancelled)
    for name in _class_names(other, items):
        if name not in target.store.class_names and isinstance(target.store, CocoStore):
            target.store.dataset.category_id(name)
    _save_many(target, to_save, progress)
    report.images = len(to_save)
    progress(1.0, report.summary())
    return report


def rename_class(source: DatasetSource, old: str, new: str, progress: ProgressFn = _noop_progress,
                 cancelled: CancelFn = _never) -> ConversionReport:
    """Rename class ``old`` to ``new`` in every annotation; when ``new`` exists already, merge into it.

    Cancelling is honoured while reading only: for YOLO a merge renumbers classes, so once writing starts
    every file must be rewritten for the labels to stay consistent with ``classes.txt``.
    """
    new = new.strip()
    if not new or new == old:
        raise ValueError("the new class name must differ from the old one and not be empty")
    report = ConversionReport(output=source.root)
    store = source.store
    merge = new in store.class_names
    is_yolo = isinstance(store, YoloStore)
    loaded: list[tuple[ImageEntry, Annotation]] = []
    n = max(1, len(source.entries))
    for i, entry in enumerate(source.entries):
        if i % 20 == 0:
            _check(cancelled)
            progress(0.5 * i / n, f"Reading {entry.name}")
        try:
            if not store.has_annotation(entry):
                continue
            ann = store.load(entry)
        except (AnnotationError, ImageError) as exc:
            report.problems.append(f"{entry.name}: not changed — {exc}")
            continue
        if ann is None:
            continue
        hits = sum(1 for o in ann.objects if o.name == old)
        if hits or is_yolo:
            for k, o in enumerate(ann.objects):
                if o.name == old:
                    ann.objects[k] = replace(o, name=new)  # keeps its origin: the file entry is patched
            loaded.append((entry, ann))
            if hits:
                report.annotations += 1
                report.boxes += hits
    _check(cancelled)
    # The class list: rename in place (keeps YOLO indices), or drop ``old`` when merging.
    names = store.class_names
    if old in names:
        if merge:
            k = names.index(old)
            names.pop(k)
            if isinstance(store, CocoStore):
                store.dataset.category_ids.pop(k)
        else:
            names[names.index(old)] = new
    elif not merge and new not in names:
        names.append(new)
    if is_yolo:
        assert isinstance(store, YoloStore)
        target = store.class_file or (store.labels_dir.parent / "classes.txt")
        if target.suffix.lower() in (".yaml", ".yml"):
            target = target.with_name("classes.txt")
        write_class_file(target, names)
        store.class_file = target
    _save_many(source, loaded, progress)
    report.images = len(loaded)
    progress(1.0, report.summary())
    return report
