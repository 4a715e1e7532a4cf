"""The session's detections and NMS candidates in scene pixels, with class names: what the NMS, Detections and
Suggestions stages draw.

Why a conversion step: a trace keeps boxes where the network computed them. ``trace.candidates`` are in the
pixels of the *network input* (the image resized to the model's scale; ``trace.factors`` = (sy, sx) maps the
decoded image to it) and ``trace.detections`` in the pixels of the decoded image, which for a huge photo is a
reduced preview (``DecodedImage.scale``). Layers and ground truth use the scene: full-resolution displayed
pixels. Stored detections (folder inference, a results file) are in scene pixels already. This is only a
change of units (no algorithm), so it lives beside the stages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.stages.detector_session import DetectorSession

#: Where boxes came from, as the panels say it.
FROM_MODEL = "model"
FROM_FILE = "stored"


@dataclass
class SceneBoxes:
    """Boxes [N, 4] float32 scene xyxy, scores [N], class ids [N] (1..K into ``class_names``), and origin."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    origin: str  # FROM_MODEL or FROM_FILE
    description: str  # one line for the panel

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def names(self) -> list[str]:
        return [self.class_names[int(k) - 1] if 1 <= int(k) <= len(self.class_names) else f"class {int(k)}"
                for k in self.labels]


def _decoded_scale(session: DetectorSession) -> float:
    d = session.decoded
    return float(d.scale) if d is not None and d.scale > 0 else 1.0


def _from_detections(det: Any, scale_to_scene: float, origin: str, description: str) -> SceneBoxes:
    boxes = np.asarray(det.boxes, np.float32).reshape(-1, 4)
    if scale_to_scene != 1.0:
        boxes = boxes * np.float32(scale_to_scene)
    return SceneBoxes(boxes, np.asarray(det.scores, np.float32).reshape(-1),
                      np.asarray(det.labels, np.int64).reshape(-1),
                      list(getattr(det, "class_names", []) or []), origin, description)


def scene_detections(session: DetectorSession) -> SceneBoxes | None:
    """Final detections of the current image: the live trace's, else the stored ones, else None.

    None as well while ``session.detections_hidden``: the loaded model knows none of the classes labelled on
    this image (its boxes would be nonsense; the Model stage shows why, and "show anyway" re-emits the trace).
    """
    if session.detections_hidden:
        return None
    trace = session.trace
    det = getattr(trace, "detections", None)
    if det is not None:
        name = session.model_path.rsplit("/", 1)[-1] if session.model_path else "the model"
        return _from_detections(det, 1.0 / _decoded_scale(session), FROM_MODEL, f"detections of {name}")
    stored = session.stored_detections()
    if stored is None:
        return None
    return _from_detections(stored, 1.0, FROM_FILE, f"from {session.stored_source or 'a results file'}")


def scene_calibration(session: DetectorSession) -> Any:
    """What the live model's prototype score calibration did to the detections :func:`scene_detections`
    returns (a :class:`~models.detection.score_calibration.ScoreCalibration`, same order), else None: no trace,
    a model that does not calibrate, stored detections, or detections hidden."""
    if session.detections_hidden or getattr(session.trace, "detections", None) is None:
        return None
    return getattr(session.trace, "calibration", None)


@dataclass
class SecondLook:
    """A classification + localisation model's second look, in scene pixels: the window [4] xyxy the image was
    cut to, and the first look's own answer (one box) that placed it."""

    window: np.ndarray
    first: SceneBoxes


def scene_second_look(session: DetectorSession) -> SecondLook | None:
    """The live trace's second look (``ClsLocTrace.glimpse_window`` and ``first_look``), else None: no trace,
    a model that took one look, or detections hidden (as :func:`scene_detections`)."""
    if session.detections_hidden:
        return None
    trace = session.trace
    window = getattr(trace, "glimpse_window", None)
    first = getattr(trace, "first_look", None)
    if window is None or first is None:
        return None
    s = np.float32(1.0 / _decoded_scale(session))
    return SecondLook(np.asarray(window, np.float32).reshape(4) * s,
                      _from_detections(first, float(s), FROM_MODEL, "the first look's answer"))


def scene_candidates(session: DetectorSession) -> SceneBoxes | None:
    """The boxes NMS runs on: the trace's candidates (every class score above the trace's threshold, before
    per-class NMS), else the stored detections (already after their detector's NMS), else None (and None
    while ``session.detections_hidden``, as :func:`scene_detections`)."""
    if session.detections_hidden:
        return None
    trace = session.trace
    cand = getattr(trace, "candidates", None)
    if cand is not None:
        sy, sx = trace.factors
        s = 1.0 / _decoded_scale(session)
        boxes = np.asarray(cand.boxes, np.float32).reshape(-1, 4).copy()
        boxes[:, 0::2] *= np.float32(s / sx)
        boxes[:, 1::2] *= np.float32(s / sy)
        name = session.model_path.rsplit("/", 1)[-1] if session.model_path else "the model"
        merge = getattr(trace, "merge", None)
        what = f"candidates of {name} before its per-class NMS"
        if merge is not None:  # test-time augmentation: the passes' detections before the merging NMS
            what = (f"detections of {name}'s {len(merge.passes)} test passes "
                    f"({'; '.join(p.name for p in merge.passes)}) before the NMS that merges them")
        return SceneBoxes(boxes, np.asarray(cand.scores, np.float32).reshape(-1),
                          np.asarray(cand.labels, np.int64).reshape(-1), list(cand.class_names), FROM_MODEL, what)
    det = scene_detections(session)
    if det is not None:
        det.description += " (already after NMS)"
    return det


@dataclass
class SceneMerge:
    """What a model's vote/average merge of its test passes made of the NMS survivors, in scene pixels:
    ``detections[i]`` is candidate ``kept_index[i]`` moved by the vote (and, for "average", scored by the mean
    over the passes); survivors not in ``kept_index`` fell under the threshold or the cap after scoring."""

    detections: SceneBoxes
    kept_index: np.ndarray
    method: str  # "vote" or "average"
    passes: int
    iou_threshold: float


def scene_merge(session: DetectorSession) -> SceneMerge | None:
    """The model's merge of its test passes when it moved boxes or changed scores (``test_merge`` vote or
    average), else None: plain NMS over the candidates is then the whole merge."""
    if session.detections_hidden:
        return None
    merge = getattr(session.trace, "merge", None)
    if merge is None or merge.method not in ("vote", "average") or len(merge.passes) < 2:
        return None
    det = _from_detections(merge.detections, 1.0 / _decoded_scale(session), FROM_MODEL, "merged detections")
    return SceneMerge(det, np.asarray(merge.kept_index, np.int64).reshape(-1), str(merge.method),
                      len(merge.passes), float(merge.nms.iou_threshold))


def no_boxes_text(session: DetectorSession) -> str:
    """What a panel says when :func:`scene_detections` gives nothing: the model's domain note, or how to get
    detections."""
    if session.detections_hidden:
        return f"Detections hidden: {session.domain_note}"
    return "No detections for this image: run a model on it (Detector menu) or load a detections file"


def ground_truth_ignored(session: DetectorSession) -> np.ndarray:
    """[N] bool: difficult or crowd ground-truth boxes (never missed, never a false positive's match)."""
    return np.asarray([bool(o.difficult or o.crowd) for o in session.canvas.model.objects], bool)


def ground_truth_crowd(session: DetectorSession) -> np.ndarray:
    """[N] bool: COCO crowd regions among the ground-truth boxes (scored by COCO's rule: a detection mostly
    inside one is not scored, models/detection/matching.py)."""
    return np.asarray([bool(o.crowd) for o in session.canvas.model.objects], bool)


__all__ = ["FROM_FILE", "FROM_MODEL", "SceneBoxes", "SceneMerge", "SecondLook", "ground_truth_crowd",
           "ground_truth_ignored",
           "no_boxes_text", "scene_calibration", "scene_candidates", "scene_detections", "scene_merge",
           "scene_second_look"]
