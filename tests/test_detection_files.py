"""Loading external detections: our detect JSON and COCO results, matched to a dataset's images."""

import json

import cv2
import numpy as np
import pytest

from models.data.datasets import open_dataset
from models.detection.result_files import load_detections


def _images(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        assert cv2.imwrite(str(folder / n), np.full((60, 80, 3), 100, np.uint8))


def _coco_dataset(tmp_path):
    img = tmp_path / "coco" / "images"
    _images(img, ["000000000042.png", "000000000007.png"])
    doc = {"images": [{"id": 42, "file_name": "000000000042.png", "width": 80, "height": 60},
                      {"id": 7, "file_name": "000000000007.png", "width": 80, "height": 60}],
           "categories": [{"id": 18, "name": "dog"}, {"id": 3, "name": "car"}],
           "annotations": [{"id": 1, "image_id": 42, "category_id": 18, "bbox": [1, 2, 30, 20], "area": 600,
                            "iscrowd": 0}]}
    path = tmp_path / "coco" / "instances.json"
    path.write_text(json.dumps(doc))
    return open_dataset(path)


def test_coco_results_map_ids_and_categories_through_the_open_coco_dataset(tmp_path):
    source = _coco_dataset(tmp_path)
    res = [{"image_id": 42, "category_id": 18, "bbox": [10, 20, 30, 15], "score": 0.9},
           {"image_id": 42, "category_id": 3, "bbox": [0, 0, 5, 5], "score": 0.3},
           {"image_id": 7, "category_id": 3, "bbox": [1, 1, 2, 2], "score": 0.5},
           {"image_id": 999, "category_id": 3, "bbox": [1, 1, 2, 2], "score": 0.5}]
    f = tmp_path / "results.json"
    f.write_text(json.dumps(res))
    out = load_detections(f, source)
    assert out.kind == "coco" and out.n_boxes == 3 and out.n_images == 2
    key = str(source.entries[[e.coco_id for e in source.entries].index(42)].path.resolve())
    d = out.by_path[key]
    assert d.boxes.tolist() == [[10, 20, 40, 35], [0, 0, 5, 5]]  # xywh -> xyxy
    assert d.names == ["dog", "car"] and d.scores.tolist() == pytest.approx([0.9, 0.3])
    assert any("999" in p for p in out.problems)


def test_coco_results_match_file_names_of_a_plain_folder(tmp_path):
    folder = tmp_path / "photos"
    _images(folder, ["000000000042.png", "holiday.png"])
    f = tmp_path / "r.json"
    f.write_text(json.dumps([{"image_id": 42, "category_id": 5, "bbox": [1, 2, 3, 4], "score": 0.5}]))
    out = load_detections(f, open_dataset(folder))
    (d,) = out.by_path.values()
    assert d.names == ["category 5"] and d.boxes.tolist() == [[1, 2, 4, 6]]


def test_detect_json_by_relative_path_and_by_name(tmp_path):
    folder = tmp_path / "photos"
    _images(folder, ["a.png", "b.png"])
    doc = {"images": [
        {"file": "photos/a.png", "width": 80, "height": 60, "boxes": [[1, 2, 30, 40]], "scores": [0.8],
         "labels": ["cat"]},
        {"file": "/elsewhere/b.png", "width": 80, "height": 60, "boxes": [], "scores": [], "labels": []},
        {"file": "c.png", "error": "cannot read"}]}
    f = tmp_path / "dets.json"
    f.write_text(json.dumps(doc))
    out = load_detections(f, open_dataset(folder))
    assert out.kind == "detect" and out.n_images == 2 and out.n_boxes == 1
    a = out.by_path[str((folder / "a.png").resolve())]
    assert a.names == ["cat"] and a.boxes.tolist() == [[1, 2, 30, 40]]
    # Without a dataset: paths that exist (relative to the JSON's folder) are enough.
    out = load_detections(f, None)
    assert list(out.by_path) == [str((folder / "a.png").resolve())]


@pytest.mark.parametrize("text, words", [
    ("{not json", "malformed JSON"),
    ('{"something": 1}', "neither"),
    ('[{"image_id": 1}]', "neither"),
    ('{"images": [{"file": "photos/a.png", "boxes": [[1, 2, 3]], "scores": [0.5], "labels": ["x"]}]}',
     "four numbers"),
    ('{"images": [{"file": "photos/a.png", "boxes": [[1, 2, 3, 4]], "scores": [], "labels": ["x"]}]}',
     "1 boxes, 0 scores"),
    ('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}]', "no result matches"),
])
def test_malformed_files_give_a_message(tmp_path, text, words):
    folder = tmp_path / "photos"
    _images(folder, ["a.png"])
    f = tmp_path / "bad.json"
    f.write_text(text)
    with pytest.raises(ValueError, match=words):
        load_detections(f, open_dataset(folder))
