"""synth, detect and evaluate end to end in a temporary folder, with a detector that knows the answers.

The oracle detector recognises each synthetic image by its pixels and returns its ground truth, so a
round trip (detect → JSON → evaluate) must give mAP 1, and any loss on the way (box units, EXIF, label
ids, file matching, COCO ids) shows up as a lower number.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.cli import detection
from app.cli import main as cli_main
from models.data.annotations.coco import coco_from_annotations, write_coco
from models.data.datasets import open_dataset
from models.data.synthetic import SynthParams, write_synthetic
from tests.conftest import SHARED_DATA

CLASSES = ["circle", "square", "triangle"]


class _Det:
    def __init__(self, boxes, scores, labels, class_names):
        self.boxes, self.scores, self.labels, self.class_names = boxes, scores, labels, class_names


class OracleDetector:
    """Returns the ground truth of images it has seen (plus one low-scoring false positive)."""

    def __init__(self, root: Path, drop_class: str | None = None) -> None:
        self.class_names = list(CLASSES)
        self.truth: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.calls = 0
        src = open_dataset(root)
        for e in src.entries:
            ann = src.store.load(e)
            objs = [o for o in ann.objects if o.name != drop_class]
            px = cv2.cvtColor(cv2.imread(str(e.path)), cv2.COLOR_BGR2RGB)
            self.truth[hashlib.sha1(px.tobytes()).hexdigest()] = (
                np.array([o.box for o in objs], np.float32).reshape(-1, 4),
                np.array([CLASSES.index(o.name) + 1 for o in objs], np.int64))

    def predict(self, images, score_threshold=0.05):
        out = []
        for px in images:
            self.calls += 1
            boxes, labels = self.truth.get(hashlib.sha1(np.ascontiguousarray(px).tobytes()).hexdigest(),
                                           (np.zeros((0, 4), np.float32), np.zeros(0, np.int64)))
            fp = np.array([[0, 0, 7, 7]], np.float32)
            scores = np.concatenate([np.full(len(labels), 0.9, np.float32), [0.06]]).astype(np.float32)
            all_boxes = np.concatenate([boxes, fp])
            all_labels = np.concatenate([labels, [1]])
            keep = scores >= score_threshold
            out.append(_Det(all_boxes[keep], scores[keep], all_labels[keep], self.class_names))
        return out


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "shapes"
    write_synthetic(root, 8, seed=4, params=SynthParams(image_format="png"))
    return root


@pytest.fixture
def oracle(synth: Path, monkeypatch: pytest.MonkeyPatch) -> OracleDetector:
    det = OracleDetector(synth)
    monkeypatch.setattr(detection, "_load_model", lambda path, device, prog: det)
    return det


def test_synth_command_writes_the_requested_split(tmp_path: Path, capsys) -> None:
    out = tmp_path / "s"
    assert cli_main(["synth", "--out", str(out), "--images", "8", "--seed", "3", "--test-fraction", "0.5"]) == 0
    assert "train 4, test 4" in capsys.readouterr().out
    assert len((out / "ImageSets" / "Main" / "test.txt").read_text().split()) == 4
    assert cli_main(["synth", "--out", str(out), "--images", "8", "--seed", "3"]) == 2  # not over a set
    assert "--force" in capsys.readouterr().err
    assert cli_main(["synth", "--out", str(out), "--images", "2", "--seed", "3", "--force"]) == 0


def test_detect_then_evaluate_the_json_gives_map_one(synth: Path, oracle: OracleDetector, tmp_path: Path,
                                                     capsys) -> None:
    images = sorted((synth / "JPEGImages").glob("*.png"))[:3]
    out = tmp_path / "det.json"
    rc = cli_main(["detect", "--model", "m.pt", *map(str, images), "--json", str(out)])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert [r["file"] for r in doc["images"]] == [str(p) for p in images]
    first = doc["images"][0]
    assert set(first) >= {"file", "width", "height", "boxes", "scores", "labels"}
    assert all(lab in CLASSES for lab in first["labels"]) and len(first["boxes"]) == len(first["scores"])
    # Detections of three images only: evaluation covers those three (the file says which were run).
    rep = tmp_path / "eval.json"
    capsys.readouterr()
    assert cli_main(["evaluate", "--data", str(synth), "--detections", str(out), "--json", str(rep)]) == 0
    printed = capsys.readouterr().out
    assert "mAP@0.5" in printed and "circle" in printed
    result = json.loads(rep.read_text())
    assert result["mAP"] == 1.0 and result["images"] == 3
    assert set(result) >= {"mAP", "AP", "coco_AP"} and result["coco_AP"] == pytest.approx(1.0)


def test_folder_input_and_threshold(synth: Path, oracle: OracleDetector, tmp_path: Path) -> None:
    out = tmp_path / "det.json"
    assert cli_main(["detect", "--model", "m.pt", str(synth / "JPEGImages"), "--json", str(out),
                     "--score-threshold", "0.5"]) == 0
    doc = json.loads(out.read_text())
    assert len(doc["images"]) == 8
    assert all(s >= 0.5 for r in doc["images"] for s in r["scores"])


def test_unreadable_image_gives_an_error_entry_and_a_nonzero_exit(synth: Path, oracle: OracleDetector,
                                                                  tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    good = sorted((synth / "JPEGImages").glob("*.png"))[0]
    out = tmp_path / "det.json"
    assert cli_main(["detect", "--model", "m.pt", str(bad), str(good), "--json", str(out)]) == 1
    doc = json.loads(out.read_text())
    assert "error" in doc["images"][0] and "broken.jpg" in doc["images"][0]["error"]
    assert doc["images"][1]["boxes"]


def test_evaluate_model_on_the_test_split(synth: Path, oracle: OracleDetector, tmp_path: Path, capsys) -> None:
    rep = tmp_path / "e.json"
    assert cli_main(["evaluate", "--model", "m.pt", "--data", str(synth), "--json", str(rep)]) == 0
    doc = json.loads(rep.read_text())
    assert doc["mAP"] == 1.0 and doc["split"] == "test" and doc["images"] == 2
    assert oracle.calls == 2
    # 11-point and a stricter IoU still give 1 for exact boxes.
    assert cli_main(["evaluate", "--model", "m.pt", "--data", str(synth), "--split", "train",
                     "--11-point", "--iou", "0.9", "--json", str(rep)]) == 0
    doc = json.loads(rep.read_text())
    assert doc["mAP"] == 1.0 and doc["images"] == 6 and doc["interpolation"] == "11-point"
    assert cli_main(["evaluate", "--model", "m.pt", "--data", str(synth), "--no-coco", "--json", str(rep)]) == 0
    assert json.loads(rep.read_text())["coco_AP"] is None
    assert cli_main(["evaluate", "--model", "m.pt", "--data", str(synth), "--split", "nope"]) == 2
    assert "test, train" in capsys.readouterr().err


def test_a_missed_class_lowers_map(synth: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    det = OracleDetector(synth, drop_class="square")
    monkeypatch.setattr(detection, "_load_model", lambda path, device, prog: det)
    rep = tmp_path / "e.json"
    assert cli_main(["evaluate", "--model", "m.pt", "--data", str(synth), "--split", "train",
                     "--json", str(rep)]) == 0
    doc = json.loads(rep.read_text())
    assert doc["AP"]["square"] == 0.0 and doc["AP"]["circle"] == 1.0
    present = [c for c in CLASSES if doc["ground_truth"][c] > 0]
    assert doc["mAP"] == pytest.approx(sum(doc["AP"][c] for c in present) / len(present))


def test_coco_dataset_round_trip_with_coco_results(synth: Path, oracle: OracleDetector, tmp_path: Path) -> None:
    src = open_dataset(synth)
    items = [(e.path.name, src.store.load(e)) for e in src.entries]
    ds = coco_from_annotations(items, CLASSES)
    ds.category_ids = [11, 12, 13]  # ids that are not 1..K, as in real COCO files
    coco_json = tmp_path / "instances.json"
    write_coco(ds, coco_json)
    out, res = tmp_path / "det.json", tmp_path / "res.json"
    assert cli_main(["detect", "--model", "m.pt", "--data", str(coco_json), "--images", str(synth / "JPEGImages"),
                     "--json", str(out), "--coco-results", str(res)]) == 0
    results = json.loads(res.read_text())
    assert results and set(results[0]) == {"image_id", "category_id", "bbox", "score"}
    assert {r["category_id"] for r in results} <= {11, 12, 13}
    rep = tmp_path / "e.json"
    # COCO results need no images: evaluate against the JSON alone.
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "instances.json").write_text(coco_json.read_text())
    assert cli_main(["evaluate", "--data", str(lone / "instances.json"), "--detections", str(res),
                     "--json", str(rep)]) == 0
    assert json.loads(rep.read_text())["mAP"] == 1.0
    # Our JSON against the same COCO set matches images by name.
    assert cli_main(["evaluate", "--data", str(coco_json), "--images", str(synth / "JPEGImages"),
                     "--detections", str(out), "--json", str(rep)]) == 0
    assert json.loads(rep.read_text())["mAP"] == 1.0
    # --coco-results without a COCO dataset is refused before any work.
    assert cli_main(["detect", "--model", "m.pt", str(synth), "--coco-results", str(res)]) == 2


@pytest.mark.skipif(not (SHARED_DATA / "coco_tiny").is_dir(), reason="shared coco_tiny data not present")
def test_real_coco_ground_truth_as_results_scores_one(tmp_path: Path) -> None:
    coco_json = SHARED_DATA / "coco_tiny" / "annotations" / "instances_val2017.json"
    doc = json.loads(coco_json.read_text())
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
               for a in doc["annotations"] if not a.get("iscrowd")]
    res = tmp_path / "res.json"
    res.write_text(json.dumps(results))
    rep = tmp_path / "e.json"
    assert cli_main(["evaluate", "--data", str(coco_json), "--detections", str(res), "--json", str(rep)]) == 0
    out = json.loads(rep.read_text())
    assert out["mAP"] == pytest.approx(1.0) and out["coco_AP"] == pytest.approx(1.0)
    assert sum(out["difficult"].values()) == sum(1 for a in doc["annotations"] if a.get("iscrowd"))


def test_bad_inputs_give_clear_errors(tmp_path: Path, capsys) -> None:
    assert cli_main(["detect", "--model", str(tmp_path / "none.pt"), str(tmp_path)]) == 2
    assert cli_main(["evaluate", "--data", str(tmp_path / "missing"), "--detections", "x.json"]) == 2
    assert "missing" in capsys.readouterr().err
    (tmp_path / "x.json").write_text("{not json")
    (tmp_path / "a.png").write_bytes(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    assert cli_main(["evaluate", "--data", str(tmp_path), "--detections", str(tmp_path / "x.json")]) == 2
    assert "malformed JSON" in capsys.readouterr().err


class _Corner:
    """Reports one box over the top-left 10×20 pixels of whatever it is given."""

    class_names = ["thing"]

    def predict(self, images, score_threshold=0.05):
        return [_Det(np.array([[0, 0, 10, 20]], np.float32), np.array([0.8], np.float32), np.array([1]),
                     self.class_names) for _ in images]


def test_detect_reports_displayed_size_of_exif_rotated_images(tmp_path: Path, monkeypatch) -> None:
    from PIL import Image

    stored = np.zeros((30, 50, 3), np.uint8)  # stored 50 wide × 30 high, shown rotated 90° (orientation 6)
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = 6
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif)
    monkeypatch.setattr(detection, "_load_model", lambda p, d, prog: _Corner())
    out = tmp_path / "d.json"
    assert cli_main(["detect", "--model", "m.pt", str(path), "--json", str(out)]) == 0
    rec = json.loads(out.read_text())["images"][0]
    assert (rec["width"], rec["height"]) == (30, 50)
    assert rec["boxes"] == [[0.0, 0.0, 10.0, 20.0]] and rec["labels"] == ["thing"]


def test_real_checkpoint_detect_and_evaluate(synth: Path, tmp_path: Path, capsys) -> None:
    """An untrained tiny Faster R-CNN through the real checkpoint loader: the plumbing, not the score."""
    from models.detection.checkpoints import save_checkpoint
    from models.detection.detectors import build_detector

    model = build_detector("faster-rcnn", CLASSES, backbone="small", small_width=8, min_size=96, max_size=128,
                           representation_size=32, anchor_sizes=(32, 64, 128), rpn_pre_nms_test=200,
                           rpn_post_nms_test=20)
    src = open_dataset(synth)
    train = src.splits["train"]
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(ckpt, model=model, config={}, class_names=CLASSES, epoch=0,
                    split={"name": "train", "indices": train, "files": [src.entries[i].name for i in train]})
    out, rep = tmp_path / "d.json", tmp_path / "e.json"
    test_files = [str(src.entries[i].path) for i in src.splits["test"]]
    assert cli_main(["detect", "--model", str(ckpt), *test_files, "--json", str(out), "--device", "cpu",
                     "--score-threshold", "0.0"]) == 0
    doc = json.loads(out.read_text())
    assert len(doc["images"]) == 2
    for rec in doc["images"]:
        boxes = np.array(rec["boxes"]).reshape(-1, 4)
        assert set(rec["labels"]) <= set(CLASSES)
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= rec["width"]).all()  # original, not resized, pixels
    capsys.readouterr()
    assert cli_main(["evaluate", "--model", str(ckpt), "--data", str(synth), "--json", str(rep),
                     "--device", "cpu"]) == 0
    result = json.loads(rep.read_text())
    assert result["images"] == 2 and 0.0 <= result["mAP"] <= 1.0
    assert "warning" not in capsys.readouterr().err  # test images were not trained on
    assert cli_main(["evaluate", "--model", str(ckpt), "--data", str(synth), "--test-sizes", "96,144",
                     "--device", "cpu", "--json", str(rep)]) == 0
    assert json.loads(rep.read_text())["images"] == 2
    with pytest.raises(SystemExit):
        cli_main(["evaluate", "--model", str(ckpt), "--data", str(synth), "--test-sizes", "big"])
    assert cli_main(["evaluate", "--model", str(ckpt), "--data", str(synth), "--test-sizes", "96,144",
                     "--test-flip", "--test-range", "16,120", "--device", "cpu", "--json", str(rep)]) == 0
    assert 0.0 <= json.loads(rep.read_text())["mAP"] <= 1.0
    for bad in ("16", "120,16", "a,b"):
        with pytest.raises(SystemExit):
            cli_main(["evaluate", "--model", str(ckpt), "--data", str(synth), "--test-range", bad])
    assert cli_main(["evaluate", "--model", str(ckpt), "--data", str(synth), "--split", "train",
                     "--device", "cpu"]) == 0
    assert "were used to train this model" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert cli_main(["evaluate", "--model", str(tmp_path / "junk.pt"), "--data", str(synth)]) == 2
    assert "junk.pt" in capsys.readouterr().err
