"""``superpixels``, ``propose`` and ``eval-proposals`` through ``app.cli.main`` on small generated files."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.cli import main
from models.data.annotations import Annotation, BoxObject, write_voc
from models.data.annotations.coco import coco_from_annotations, write_coco
from models.proposals.metrics import iou_matrix

BOX = (20, 15, 55, 40)  # x1, y1, x2, y2 (exclusive) of the red rectangle


def _image(w: int = 80, h: int = 60, box: tuple[int, int, int, int] = BOX) -> np.ndarray:
    """BGR, for cv2.imwrite: a red rectangle on blue."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = (200, 120, 30)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = (40, 40, 220)
    return img


def _write(path: Path, img: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), img)
    return path


def _ann(name: str, w: int = 80, h: int = 60) -> Annotation:
    return Annotation(name, w, h, objects=[BoxObject("thing", tuple(float(v) for v in BOX)),
                                           BoxObject("thing", (0.0, 0.0, 7.0, 9.0), difficult=True)])


def test_superpixels_prints_count_and_writes_labels(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    img = _write(tmp_path / "a.png", _image())
    out = tmp_path / "labels.png"
    # min_size above the rings of in-between colour that pre-smoothing leaves around the rectangle
    assert main(["superpixels", str(img), "--scale", "150", "--sigma", "0.8", "--min-size", "150",
                 "--color-space", "rgb", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 segments" in text and "rgb" in text
    labels = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert labels.dtype == np.uint16 and labels.shape == (60, 80)
    assert len(np.unique(labels)) == 2
    assert (labels[15:40, 20:55] == labels[20, 30]).all() and labels[0, 0] != labels[20, 30]


def test_superpixels_labels_match_the_displayed_size_of_large_images(tmp_path: Path) -> None:
    img = _write(tmp_path / "big.png", _image(900, 600, (200, 150, 550, 400)))
    out = tmp_path / "labels.png"
    assert main(["superpixels", str(img), "--max-side", "300", "--out", str(out)]) == 0
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).shape == (600, 900)


def test_superpixels_unreadable_image(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    assert main(["superpixels", str(bad)]) == 1
    assert "bad.jpg" in capsys.readouterr().err


def test_propose_writes_json_and_fails_after_finishing_the_others(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.png", _image())
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    b = _write(tmp_path / "b.jpg", _image(120, 90, (10, 10, 60, 50)))
    out = tmp_path / "out" / "props.json"
    code = main(["propose", str(a), str(bad), str(b), "--mode", "fast", "--seed", "3", "--json", str(out)])
    assert code != 0
    doc = json.loads(out.read_text())
    assert [e["file"] for e in doc["images"]] == [str(a), str(bad), str(b)]
    first, broken, last = doc["images"]
    assert set(first) == {"file", "width", "height", "boxes", "seconds"}
    assert (first["width"], first["height"]) == (80, 60)
    assert iou_matrix(np.array([BOX]), np.array(first["boxes"])).max() >= 0.8
    assert first["seconds"] >= 0
    assert "error" in broken and "boxes" not in broken and broken["error"]
    assert len(last["boxes"]) > 0 and (last["width"], last["height"]) == (120, 90)


def test_propose_top_seed_and_max_side(tmp_path: Path) -> None:
    img = _write(tmp_path / "big.png", _image(1000, 400, (100, 50, 700, 300)))
    out1, out2 = tmp_path / "1.json", tmp_path / "2.json"
    args = ["propose", str(img), "--max-side", "250", "--top", "4", "--seed", "5"]
    assert main([*args, "--json", str(out1)]) == 0
    assert main([*args, "--json", str(out2)]) == 0
    e1 = json.loads(out1.read_text())["images"][0]
    assert e1 == {**json.loads(out2.read_text())["images"][0], "seconds": e1["seconds"]}
    assert 1 <= len(e1["boxes"]) <= 4
    boxes = np.array(e1["boxes"])
    assert boxes[:, 2].max() <= 1000 and boxes[:, 3].max() <= 400
    assert boxes[:, 2].max() > 250  # original pixels, not the 250-px working image


def test_propose_takes_a_named_k_plan(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    img = _write(tmp_path / "a.png", _image())
    out = tmp_path / "split.json"
    assert main(["propose", str(img), "--ks", "split", "--json", str(out)]) == 0
    boxes = np.array(json.loads(out.read_text())["images"][0]["boxes"])
    assert iou_matrix(np.array([BOX]), boxes).max() >= 0.8
    with pytest.raises(SystemExit):
        main(["propose", str(img), "--ks", "spilt", "--json", str(out)])
    assert "split" in capsys.readouterr().err  # the message names the plans there are


def test_propose_requires_json(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["propose", "x.png"])


def _voc_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "voc"
    folder.mkdir()
    for i in range(3):
        img = _write(folder / f"img{i}.png", _image())
        write_voc(_ann(img.name), folder / f"img{i}.xml", img)
    return folder


def test_eval_proposals_on_a_folder_with_voc_xml(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = _voc_folder(tmp_path)
    out = tmp_path / "eval.json"
    assert main(["eval-proposals", str(folder), "--mode", "fast", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert {"images", "gt_boxes", "boxes_per_image", "recall@0.5", "recall@0.7", "mabo",
            "seconds_per_image"} <= set(doc)  # the keys of older files stay
    new_keys = {"ar"} | {f"recall@{t:g}" for t in (0.55, 0.6, 0.65, 0.75, 0.8, 0.85, 0.9, 0.95)}
    for n in (100, 300, 1000, 2000):
        new_keys |= {f"ar@{n}", f"recall@0.5@{n}", f"recall@0.7@{n}", f"mabo@{n}", f"boxes_per_image@{n}"}
    assert new_keys <= set(doc)
    assert doc["ar"] == 1.0 and doc["recall@0.95"] == 1.0
    assert doc["boxes_per_image@100"] == doc["boxes_per_image"] < 100  # fewer boxes than the budget: all
    assert doc["images"] == 3 and doc["gt_boxes"] == 3  # the difficult object is left out
    assert doc["recall@0.5"] == 1.0 and doc["recall@0.7"] == 1.0 and doc["mabo"] == 1.0
    assert doc["boxes_per_image"] > 1 and doc["seconds_per_image"] > 0
    printed = capsys.readouterr().out
    for word in ("images", "recall@0.5", "recall@0.7", "MABO", "seconds per image", "boxes per image", "AR",
                 "recall at IoU", "best-ranked N"):
        assert word in printed


def test_eval_proposals_lists_and_skips_unreadable_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = _voc_folder(tmp_path)
    (folder / "img1.xml").write_text("<annotation><object>", encoding="utf-8")  # broken XML
    (folder / "img9.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")  # unreadable image
    out = tmp_path / "eval.json"
    code = main(["eval-proposals", str(folder), "--top", "50", "--json", str(out)])
    assert code != 0
    err = capsys.readouterr().err
    assert "img1" in err and "img9.png" in err
    doc = json.loads(out.read_text())
    assert doc["images"] == 2 and doc["gt_boxes"] == 2
    assert doc["boxes_per_image"] <= 50


def test_eval_proposals_on_coco_json_with_images_dir(tmp_path: Path) -> None:
    images = tmp_path / "pictures"
    images.mkdir()
    items = []
    for i in range(2):
        _write(images / f"p{i}.jpg", _image())
        items.append((f"p{i}.jpg", _ann(f"p{i}.jpg")))
    ds = coco_from_annotations(items, ["thing"])
    for ann in ds.annotations.values():  # COCO has no "difficult": mark the second object iscrowd
        ann.objects[1].crowd = True
    json_path = tmp_path / "ann" / "instances.json"
    json_path.parent.mkdir()
    write_coco(ds, json_path)
    out = tmp_path / "eval.json"
    assert main(["eval-proposals", str(json_path), "--images", str(images), "--mode", "single",
                 "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["images"] == 2 and doc["gt_boxes"] == 2  # crowd objects left out
    assert doc["recall@0.5"] == 1.0


def test_eval_proposals_missing_dataset(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["eval-proposals", str(tmp_path / "nothing")]) == 2
    assert "nothing" in capsys.readouterr().err


def test_propose_and_eval_proposals_run_given_groupings(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from models.proposals.selective_search import Strategy, selective_search

    img = _write(tmp_path / "a.png", _image())
    out = tmp_path / "own.json"
    assert main(["propose", str(img), "--groupings", "lab:200:F,hsv:100:TSF", "--json", str(out)]) == 0
    boxes = np.array(json.loads(out.read_text())["images"][0]["boxes"])
    rgb = cv2.cvtColor(_image(), cv2.COLOR_BGR2RGB)
    expected = selective_search(rgb, "fast", strategies=[Strategy("lab", 200, "F"), Strategy("hsv", 100, "TSF")])
    assert np.allclose(boxes, np.round(expected.boxes, 2), atol=0.01)
    one = tmp_path / "one.json"  # a single grouping whose smallest region is bigger than the rectangle
    assert main(["eval-proposals", str(_voc_folder(tmp_path)), "--groupings", "hsv:5000:CTSF", "--json", str(one)]) == 0
    assert json.loads(one.read_text())["boxes_per_image"] == 1  # the whole image only: fast's plan gives 5
    with pytest.raises(SystemExit):
        main(["propose", str(img), "--groupings", "lab:inf:F", "--json", str(out)])
    assert "positive number" in capsys.readouterr().err
