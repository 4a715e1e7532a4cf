"""Bring your own detections: a COCO results JSON or our ``detect`` JSON, matched to the images of a dataset.

Why here and not in the app: the explorer's Detections and NMS views and the training issue's evaluation view
all read external detections the same way, and the headless ``evaluate --detections`` does too; one loader
means one set of matching rules and one set of error messages.

Matching an entry of the file to an image:

* ``detect`` JSON (``{"images": [{"file", "boxes", "scores", "labels"}]}``, written by ``python main.py
  detect``): by the ``file`` path (absolute, or relative to the JSON's folder), then by the dataset's name for
  the image, then by a unique file name (:func:`models.detection.detection_files.match_records`). Without a dataset, a path
  that exists is enough.
* COCO results (``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]``): ``image_id`` is the id in the
  open COCO dataset; for any other dataset, the number in an image's file name (COCO's own naming,
  ``000000397133.jpg`` is image 397133). Category ids are the open COCO dataset's; elsewhere a category is named
  ``category <id>`` (a results file does not carry names).

Boxes come back in the displayed pixels of each image (what ``detect`` writes; COCO boxes are taken as they
are), as :class:`models.detection.detectors.base.Detections` with one class list for the whole file. A file that cannot
be read, is not JSON or has neither layout raises ValueError with a message for the user; single bad entries
are skipped and listed in ``problems``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.detection.detection_files import load_detection_file, match_records
from models.detection.detectors.base import Detections

#: At most this many problems are listed one by one; the rest are counted.
MAX_LISTED_PROBLEMS = 8


@dataclass
class LoadedDetections:
    """Detections read from one file: resolved image path (str) → Detections, and what went wrong."""

    by_path: dict[str, Detections]
    kind: str  # "detect" or "coco"
    path: str
    class_names: list[str]
    problems: list[str] = field(default_factory=list)
    #: Entries (detect: images; coco: result records) in the file.
    n_entries: int = 0

    @property
    def n_images(self) -> int:
        return len(self.by_path)

    @property
    def n_boxes(self) -> int:
        return sum(len(d) for d in self.by_path.values())

    def summary(self) -> str:
        """One line for the status bar."""
        what = "detect JSON" if self.kind == "detect" else "COCO results"
        text = f"{Path(self.path).name} ({what}): {self.n_boxes} detections on {self.n_images} images"
        if self.problems:
            text += f"; {len(self.problems)} problem(s): {self.problems[0]}"
        return text


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))


def _resolve(p: Path) -> str:
    try:
        return str(p.resolve())
    except OSError:
        return str(p.absolute())


def _summarise(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_LISTED_PROBLEMS:
        return problems
    return problems[:MAX_LISTED_PROBLEMS] + [f"… and {len(problems) - MAX_LISTED_PROBLEMS} more"]


def load_detections(path: str | Path, source: Any = None) -> LoadedDetections:
    """Read ``path`` (either layout) and match it to ``source.entries`` (a :class:`models.data.datasets.DatasetSource`,
    or None: file paths only). Raises ValueError when nothing usable is in the file."""
    p = Path(path)
    kind, doc = load_detection_file(p)  # ValueError for unreadable / not JSON / neither layout
    if kind == "detect":
        return _load_detect(p, doc, source)
    return _load_coco(p, doc, source)


# ---------------------------------------------------------------------------------------- detect JSON


def _record_arrays(rec: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    boxes, scores, labels = rec.get("boxes") or [], rec.get("scores") or [], rec.get("labels") or []
    if not (isinstance(boxes, list) and isinstance(scores, list) and isinstance(labels, list)):
        raise ValueError("'boxes', 'scores' and 'labels' must be lists")
    if not (len(boxes) == len(scores) == len(labels)):
        raise ValueError(f"{len(boxes)} boxes, {len(scores)} scores and {len(labels)} labels")
    for b in boxes:
        if not (isinstance(b, list) and len(b) == 4 and all(_number(v) for v in b)):
            raise ValueError(f"a box is not four numbers [x1, y1, x2, y2]: {b!r}"[:160])
    if not all(_number(s) for s in scores):
        raise ValueError("a score is not a number")
    if not all(isinstance(s, str | int) and not isinstance(s, bool) for s in labels):
        raise ValueError("a label is neither a class name nor an id")
    return (np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32).reshape(-1),
            [str(s) for s in labels])


def _load_detect(p: Path, doc: dict[str, Any], source: Any) -> LoadedDetections:
    records = [r for r in doc["images"] if not ("error" in r and not r.get("boxes"))]
    problems: list[str] = []
    resolved: dict[str, dict[str, Any]] = {}
    if source is not None and getattr(source, "entries", None):
        matched, unmatched = match_records(records, source, base=p.parent)
        for idx, rec in matched.items():
            resolved[_resolve(Path(source.entries[idx].path))] = rec
        if unmatched:
            problems.append(f"{len(unmatched)} image(s) in the file are not in the open dataset, e.g. {unmatched[0]}")
    else:
        for rec in records:
            f = Path(str(rec.get("file", "")))
            cand = [f] if f.is_absolute() else [p.parent / f, Path.cwd() / f]
            hit = next((c for c in cand if c.is_file()), None)
            if hit is None:
                problems.append(f"{f}: no such image (open the dataset the detections belong to)")
            else:
                resolved[_resolve(hit)] = rec
    arrays: dict[str, tuple[np.ndarray, np.ndarray, list[str]]] = {}
    for key, rec in resolved.items():
        try:
            arrays[key] = _record_arrays(rec)
        except ValueError as exc:
            problems.append(f"{rec.get('file')}: {exc}; skipped")
    if not arrays and records:
        raise ValueError(f"{p.name}: no image of the file could be used: " + "; ".join(_summarise(problems)))
    names = _class_list(source, [n for _, _, labels in arrays.values() for n in labels])
    index = {n: k + 1 for k, n in enumerate(names)}
    by_path = {key: Detections(b, s, np.asarray([index[n] for n in labels], np.int64), list(names))
               for key, (b, s, labels) in arrays.items()}
    return LoadedDetections(by_path, "detect", str(p), names, _summarise(problems), len(doc["images"]))


def _class_list(source: Any, seen: Sequence[str]) -> list[str]:
    """The dataset's classes first (stable colours and ids), then any others in order of appearance."""
    names = list(getattr(source, "class_names", None) or []) if source is not None else []
    for n in seen:
        if n not in names:
            names.append(n)
    return names


# ---------------------------------------------------------------------------------------- COCO results

_DIGITS = re.compile(r"(\d+)")


def _coco_maps(source: Any) -> tuple[dict[int, str], dict[int, str], str]:
    """(image id → resolved path, category id → name, how images were matched) for ``source``."""
    images: dict[int, str] = {}
    cats: dict[int, str] = {}
    how = "file names"
    if source is None:
        return images, cats, how
    dataset = getattr(getattr(source, "store", None), "dataset", None)
    if dataset is not None and hasattr(dataset, "category_ids"):
        cats = {int(c): str(n) for c, n in zip(dataset.category_ids, dataset.class_names, strict=False)}
    by_id = {int(e.coco_id): e for e in source.entries if getattr(e, "coco_id", None) is not None}
    if by_id:
        how = "the COCO dataset's image ids"
        images = {k: _resolve(Path(e.path)) for k, e in by_id.items()}
    else:
        for e in source.entries:
            digits = _DIGITS.findall(Path(e.path).stem)
            if len(digits) == 1:
                images.setdefault(int(digits[0]), _resolve(Path(e.path)))
    return images, cats, how


def _load_coco(p: Path, results: list[dict[str, Any]], source: Any) -> LoadedDetections:
    images, cats, how = _coco_maps(source)
    problems: list[str] = []
    rows: dict[str, list[tuple[list[float], float, str]]] = {}
    unknown_images: set[Any] = set()
    bad = 0
    for k, r in enumerate(results):
        bbox, score, cat, iid = r["bbox"], r["score"], r["category_id"], r["image_id"]
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_number(v) for v in bbox) and _number(score)
                and isinstance(cat, int) and isinstance(iid, int | str)):
            bad += 1
            if bad <= 3:
                problems.append(f"result {k + 1}: bbox must be [x, y, w, h] numbers, score a number, "
                                f"category_id an integer; skipped")
            continue
        key = images.get(int(iid)) if isinstance(iid, int) or str(iid).isdigit() else None
        if key is None:
            unknown_images.add(iid)
            continue
        x, y, w, h = (float(v) for v in bbox)
        rows.setdefault(key, []).append(([x, y, x + max(w, 0.0), y + max(h, 0.0)], float(score),
                                         cats.get(int(cat), f"category {cat}")))
    if bad > 3:
        problems.append(f"{bad - 3} more malformed results skipped")
    if unknown_images:
        sample = sorted(map(str, unknown_images))[:3]
        problems.append(f"{len(unknown_images)} image id(s) match no image of the open dataset (by {how}), "
                        f"e.g. {', '.join(sample)}")
    if not rows and results:
        raise ValueError(f"{p.name}: no result matches an image of the open dataset (by {how}): "
                         + "; ".join(_summarise(problems)))
    names = _class_list(source, [n for rs in rows.values() for _, _, n in rs])
    index = {n: k + 1 for k, n in enumerate(names)}
    by_path = {key: Detections(np.asarray([b for b, _, _ in rs], np.float32).reshape(-1, 4),
                               np.asarray([s for _, s, _ in rs], np.float32),
                               np.asarray([index[n] for _, _, n in rs], np.int64), list(names))
               for key, rs in rows.items()}
    return LoadedDetections(by_path, "coco", str(p), names, _summarise(problems), len(results))


__all__ = ["LoadedDetections", "load_detections"]
