"""``compare``: one row per checkpoint with accuracy, test time (proposals apart) and training time."""

import json

import pytest
import torch

from models.detection.checkpoints import save_checkpoint
from models.detection.detectors import build_detector

CLASSES = ["circle", "square", "triangle"]


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    from models.data.synthetic import SynthParams, write_synthetic

    params = SynthParams(min_image_size=96, max_image_size=128, min_objects=1, max_objects=2,
                         min_object_size=30, max_object_size=60, photo_fraction=0.0, close_colour_fraction=0.0,
                         image_format="png")
    return write_synthetic(tmp_path_factory.mktemp("compare_synth") / "set", 8, seed=4, params=params)


def _checkpoint(path, generation: str, train_seconds: float | None, train_cpu_seconds: float | None = None,
                **kw) -> str:
    torch.manual_seed(0)
    model = build_detector(generation, CLASSES, backbone="small", small_width=8, representation_size=32,
                           min_size=96, max_size=128, **kw)
    extra = {} if train_seconds is None else {"train_seconds": train_seconds}
    if train_cpu_seconds is not None:
        extra["train_cpu_seconds"] = train_cpu_seconds
    save_checkpoint(path, model=model, config={"generation": generation}, class_names=CLASSES,
                    split={"name": "train", "indices": [], "files": []}, epoch=1, extra=extra)
    return str(path)


def test_three_checkpoints_give_one_row_each(tiny_set, tmp_path, capsys) -> None:
    from app.cli import main

    paths = [_checkpoint(tmp_path / "rcnn.pt", "rcnn", 120.0, 270.0, proposals_test=30, proposals_train=30),
             _checkpoint(tmp_path / "fast.pt", "fast-rcnn", 60.0, proposals_test=30, proposals_train=30),
             _checkpoint(tmp_path / "faster.pt", "faster-rcnn", None, anchor_sizes=(16, 32, 64),
                         rpn_pre_nms_test=300, rpn_post_nms_test=30)]
    out = tmp_path / "cmp.json"
    code = main(["compare", "--data", str(tiny_set), "--models", *paths, "--device", "cpu", "--limit", "2",
                 "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    rows = json.loads(out.read_text())["models"]
    assert [r["generation"] for r in rows] == ["rcnn", "fast-rcnn", "faster-rcnn"]
    assert [r["train_seconds"] for r in rows] == [120.0, 60.0, None]
    assert [r["train_cpu_seconds"] for r in rows] == [270.0, None, None]  # wall and CPU time apart
    assert all(r["images"] == 2 for r in rows)
    # Selective Search was recomputed for the two older generations; Faster R-CNN has no external proposals
    assert rows[0]["proposal_seconds_per_image"] > 0 and rows[1]["proposal_seconds_per_image"] > 0
    assert rows[2]["proposal_seconds_per_image"] == 0
    for r in rows:
        assert r["seconds_per_image"] == pytest.approx(r["proposal_seconds_per_image"]
                                                       + r["network_seconds_per_image"])
    table = printed.strip().splitlines()
    assert len(table) == 4 and all(p in printed for p in paths)
    assert "2.0 min" in printed and "4.5 min" in printed and "n/a" in printed
    assert table[0].split()[-3:] == ["time", "train", "CPU"]


def test_unreadable_checkpoint_is_a_message(tiny_set, tmp_path, capsys) -> None:
    from app.cli import main

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"nope")
    assert main(["compare", "--data", str(tiny_set), "--models", str(bad)]) == 2
    assert "bad.pt" in capsys.readouterr().err


def _cls_loc_checkpoint(path) -> str:
    torch.manual_seed(0)
    model = build_detector("cls-loc", CLASSES, backbone="small", small_width=8)
    save_checkpoint(path, model=model, config={"generation": "cls-loc"}, class_names=CLASSES,
                    split={"name": "train", "indices": [], "files": []}, epoch=1, extra={"train_seconds": 30.0})
    return str(path)


def test_cls_loc_row_has_its_own_figures_and_detectors_leave_them_blank(tiny_set, tmp_path, capsys) -> None:
    from app.cli import main
    from models.data.datasets import open_dataset
    from models.detection.checkpoints import load_detector
    from models.detection.cls_loc_evaluation import evaluate_cls_loc_model
    from models.detection.compare import compare_checkpoints

    one_box = _cls_loc_checkpoint(tmp_path / "clsloc.pt")
    faster = _checkpoint(tmp_path / "faster.pt", "faster-rcnn", None, anchor_sizes=(16, 32, 64),
                         rpn_pre_nms_test=300, rpn_post_nms_test=30)
    source = open_dataset(str(tiny_set))
    rows, _ = compare_checkpoints([one_box, faster], source, [0, 1, 2], device="cpu", coco=False)
    expected, _ = evaluate_cls_loc_model(load_detector(one_box, "cpu"), source, [0, 1, 2])
    assert rows[0].generation == "cls-loc" and rows[0].images == 3
    assert (rows[0].accuracy, rows[0].mean_iou, rows[0].localisation_accuracy) == pytest.approx(
        (expected.accuracy, expected.mean_iou, expected.localisation_accuracy))
    assert (rows[1].accuracy, rows[1].mean_iou, rows[1].localisation_accuracy) == (None, None, None)

    out = tmp_path / "cmp.json"
    assert main(["compare", "--data", str(tiny_set), "--models", one_box, faster, "--device", "cpu",
                 "--limit", "2", "--json", str(out)]) == 0
    table = capsys.readouterr().out.strip().splitlines()
    head, clsloc_line, faster_line = table
    assert head.split()[-6:] == ["cls", "acc", "mean", "IoU", "loc", "acc"]
    assert clsloc_line.split()[-1] == f"{json.loads(out.read_text())['models'][0]['localisation_accuracy']:.3f}"
    assert faster_line.rstrip().endswith("n/a")  # its train time is the last thing: the three columns are blank
    saved = json.loads(out.read_text())["models"]
    assert saved[1]["accuracy"] is None and saved[0]["accuracy"] is not None
