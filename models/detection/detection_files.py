"""Detections as files: the ``detect`` command's JSON and COCO results records, written and read back, and the
records of a ``detect`` JSON matched to a dataset's images.

Apart from the scoring (models/detection/evaluation.py), which never touches a file; models/detection/result_files.py
builds the explorer's "bring your own detections" on these.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.detection.evaluation import ImageDetections, _boxes


def detections_document(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The ``detect`` command's JSON: ``{"images": [{"file", "width", "height", "boxes", "scores", "labels"}]}``."""
    return {"images": list(items)}


def detection_record(file: str, width: int, height: int, det: ImageDetections, **extra: Any) -> dict[str, Any]:
    """One image's entry in the ``detect`` JSON (boxes rounded to 1/100 px, scores to 1e-5)."""
    boxes = _boxes(det.boxes)
    rec: dict[str, Any] = {"file": file, "width": int(width), "height": int(height)}
    rec.update(extra)
    rec["boxes"] = [[round(float(v), 2) for v in b] for b in boxes]
    rec["scores"] = [round(float(s), 5) for s in np.asarray(det.scores).reshape(-1)]
    rec["labels"] = [str(n) for n in det.labels]
    return rec


def load_detection_file(path: str | Path) -> tuple[str, Any]:
    """("detect", our document) or ("coco", a COCO results list); raises ValueError naming what is wrong."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{p}: cannot read ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p}: malformed JSON ({exc.msg}, line {exc.lineno})") from exc
    if isinstance(doc, dict) and isinstance(doc.get("images"), list):
        for k, rec in enumerate(doc["images"]):
            if not isinstance(rec, dict) or "file" not in rec:
                raise ValueError(f"{p}: image {k + 1} has no 'file'")
        return "detect", doc
    if isinstance(doc, list) and all(isinstance(r, dict) and {"image_id", "category_id", "bbox", "score"} <= set(r)
                                     for r in doc):
        return "coco", doc
    raise ValueError(f"{p}: neither a 'detect' JSON ({{\"images\": [...]}}) nor a COCO results list "
                     "([{\"image_id\", \"category_id\", \"bbox\", \"score\"}])")


def detections_from_record(rec: dict[str, Any]) -> ImageDetections:
    boxes = np.asarray(rec.get("boxes") or [], np.float64).reshape(-1, 4)
    scores = np.asarray(rec.get("scores") or [], np.float64).reshape(-1)
    labels = list(rec.get("labels") or [])
    if not (boxes.shape[0] == scores.shape[0] == len(labels)):
        raise ValueError(f"{rec.get('file')}: {boxes.shape[0]} boxes, {scores.shape[0]} scores, {len(labels)} labels")
    return ImageDetections(boxes, scores, labels)


def detections_from_coco_results(results: Sequence[dict[str, Any]], image_ids: Sequence[int],
                                 category_names: dict[int, str]) -> tuple[list[ImageDetections], list[str]]:
    """Group COCO results by image (in ``image_ids`` order); unknown images/categories are reported."""
    by_image: dict[int, list[dict[str, Any]]] = {i: [] for i in image_ids}
    problems: list[str] = []
    unknown_images: set[Any] = set()
    unknown_cats: set[Any] = set()
    for r in results:
        if r["image_id"] not in by_image:
            unknown_images.add(r["image_id"])
            continue
        if r["category_id"] not in category_names:
            unknown_cats.add(r["category_id"])
            continue
        by_image[r["image_id"]].append(r)
    if unknown_images:
        problems.append(f"{len(unknown_images)} image id(s) in the results are not in the dataset; ignored")
    if unknown_cats:
        problems.append(f"category id(s) {sorted(unknown_cats)} are not in the dataset; ignored")
    out = []
    for i in image_ids:
        rs = by_image[i]
        boxes = np.array([[r["bbox"][0], r["bbox"][1], r["bbox"][0] + r["bbox"][2], r["bbox"][1] + r["bbox"][3]]
                          for r in rs], np.float64).reshape(-1, 4)
        out.append(ImageDetections(boxes, np.array([float(r["score"]) for r in rs]),
                                   [category_names[r["category_id"]] for r in rs]))
    return out, problems


def coco_results(image_id: int, det: ImageDetections, category_ids: dict[str, int]) -> list[dict[str, Any]]:
    """COCO results records for one image; classes without a category id are left out."""
    out = []
    for b, s, name in zip(_boxes(det.boxes), np.asarray(det.scores).reshape(-1), det.labels, strict=True):
        if name not in category_ids:
            continue
        out.append({"image_id": int(image_id), "category_id": int(category_ids[name]),
                    "bbox": [round(float(b[0]), 2), round(float(b[1]), 2), round(float(b[2] - b[0]), 2),
                             round(float(b[3] - b[1]), 2)], "score": round(float(s), 5)})
    return out


def match_records(records: Sequence[dict[str, Any]], source: Any, base: Path | None = None
                  ) -> tuple[dict[int, dict[str, Any]], list[str]]:
    """Map ``detect`` JSON records to ``source.entries`` indices: by path, then dataset name, then file name.

    Why several keys: the JSON may have been written on another machine or from another working folder;
    a unique file name is still a safe match. Returns {index: record} and the files that matched nothing.
    """
    base = Path.cwd() if base is None else base
    by_path: dict[str, int] = {}
    by_name: dict[str, int] = {}
    by_base: dict[str, list[int]] = {}
    for i, e in enumerate(source.entries):
        try:
            by_path[str(Path(e.path).resolve())] = i
        except OSError:
            pass
        by_name[e.name] = i
        by_base.setdefault(Path(e.name).name, []).append(i)
    matched: dict[int, dict[str, Any]] = {}
    unmatched: list[str] = []
    for rec in records:
        if "error" in rec and not rec.get("boxes"):
            continue  # an image the detector could not read: nothing to score
        f = str(rec.get("file", ""))
        idx = None
        try:
            idx = by_path.get(str((base / f).resolve()))
        except OSError:
            idx = None
        if idx is None and isinstance(rec.get("name"), str):
            idx = by_name.get(rec["name"])
        if idx is None:
            idx = by_name.get(f.replace("\\", "/"))
        if idx is None:
            cands = by_base.get(Path(f.replace("\\", "/")).name, [])
            idx = cands[0] if len(cands) == 1 else None
        if idx is None:
            unmatched.append(f)
        else:
            matched[idx] = rec
    return matched, unmatched
