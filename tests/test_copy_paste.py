"""Copy-paste augmentation: outlines read from COCO polygons, objects cut along them and pasted onto other
training images, and the labels following what shows (models.data.copy_paste, the training dataset, the
preview and the command line)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from models.data import copy_paste
from models.data.annotations.coco import coco_document, coco_from_annotations, parse_coco
from models.data.annotations.model import Annotation, BoxObject
from models.data.annotations.orientation import fit_to_orientation
from models.data.datasets import open_dataset
from models.data.training_data import DetectionDataset
from tests.tiny_training import COLOURS, outlined_coco

# -- outlines in the annotation model ---------------------------------------------------------------------------------

def test_coco_polygons_become_outlines_and_a_run_length_mask_or_a_malformed_one_does_not():
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 80}],
           "categories": [{"id": 1, "name": "person"}],
           "annotations": [
               {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 30],
                "segmentation": [[10, 10, 30, 10, 20, 40], [12, 12, 14, 12, 13, 15]]},
               {"id": 2, "image_id": 1, "category_id": 1, "bbox": [0, 0, 50, 50], "iscrowd": 1,
                "segmentation": {"counts": [0, 10], "size": [80, 100]}},
               {"id": 3, "image_id": 1, "category_id": 1, "bbox": [5, 5, 5, 5], "segmentation": [[1, 2, 3]]},
               {"id": 4, "image_id": 1, "category_id": 1, "bbox": [5, 5, 5, 5]}]}
    objects = parse_coco(doc).annotations[1].objects
    assert objects[0].outline == ((10.0, 10.0, 30.0, 10.0, 20.0, 40.0), (12.0, 12.0, 14.0, 12.0, 13.0, 15.0))
    assert [o.outline for o in objects[1:]] == [(), (), ()]
    # An outline is not part of the object's value; a moved box no longer says where the object is.
    assert objects[0] == dataclasses.replace(objects[0], outline=())
    assert objects[0].moved((0, 0, 5, 5)).outline == ()
    assert dataclasses.replace(objects[0], name="rider").outline == objects[0].outline


def test_a_box_moved_away_from_its_polygon_loses_the_outline_when_the_file_is_read_again(tmp_path):
    from models.data.annotations.coco import read_coco, write_coco

    path = outlined_coco(tmp_path)
    ds = read_coco(path)
    first = ds.annotations[1].objects[0]
    assert first.outline
    ds.annotations[1].objects[0] = first.moved((60.0, 30.0, 110.0, 80.0))  # the user corrects the box
    write_coco(ds, path)
    again = read_coco(path).annotations[1].objects[0]
    assert again.box == (60.0, 30.0, 110.0, 80.0)
    # the file keeps its polygon (nothing of the user's is deleted), but it no longer outlines the box: not used
    assert json.loads(path.read_text())["annotations"][0]["segmentation"] and again.outline == ()
    assert read_coco(path).annotations[2].objects[0].outline  # the others are kept


def test_a_coco_export_writes_the_outlines_with_their_area():
    obj = BoxObject("person", (0.0, 0.0, 10.0, 10.0), outline=((0.0, 0.0, 10.0, 0.0, 0.0, 10.0),))
    plain = BoxObject("person", (0.0, 0.0, 4.0, 5.0))
    doc = coco_document(coco_from_annotations([("a.jpg", Annotation("a.jpg", 20, 20, 3, [obj, plain]))], ["person"]))
    first, second = doc["annotations"]
    assert first["segmentation"] == [[0.0, 0.0, 10.0, 0.0, 0.0, 10.0]] and first["area"] == 50.0
    assert second["segmentation"] == [] and second["area"] == 20.0
    assert parse_coco(doc).annotations[doc["images"][0]["id"]].objects[0].outline == obj.outline


def test_outlines_turn_with_the_boxes_when_a_file_was_recorded_on_the_unrotated_image():
    # stored 100×60, EXIF 6 (displayed 60×100): (x, y) → (H - y, x)
    obj = BoxObject("person", (10.0, 5.0, 30.0, 25.0), outline=((10.0, 5.0, 30.0, 5.0, 20.0, 25.0),))
    ann = Annotation("a.jpg", 100, 60, 3, [obj])
    assert fit_to_orientation(ann, 6, 100, 60)
    assert ann.objects[0].box == (35.0, 10.0, 55.0, 30.0)
    assert ann.objects[0].outline == ((55.0, 10.0, 55.0, 30.0, 35.0, 20.0),)


# -- the paste itself -------------------------------------------------------------------------------------------------

def square(x0: float, y0: float, side: float) -> list[np.ndarray]:
    return [np.array([[x0, y0], [x0 + side, y0], [x0 + side, y0 + side], [x0, y0 + side]], np.float32)]


def test_pasted_pixels_are_the_photos_inside_the_outline_and_an_own_box_they_hide_is_ignored():
    canvas = np.zeros((100, 100, 3), np.uint8)
    photo = np.full((60, 60, 3), 200, np.uint8)
    own = np.array([[12, 12, 48, 48], [70, 70, 90, 90]], np.float32)
    out = copy_paste.paste_objects(canvas, own, np.array([1, 2]), np.array([False, False]), photo,
                                   [square(0, 0, 40)], [1], left=10, top=10)
    # the square's 40×40 pixels come from the photo, and its box is the square's
    assert out.shown.sum() == 40 * 40 and (out.pixels[out.shown] == 200).all() and (out.pixels[~out.shown] == 0).all()
    assert out.pasted == 1
    np.testing.assert_array_equal(out.boxes[2], [10, 10, 50, 50])
    assert out.labels.tolist() == [1, 2, 1]
    # the first own box is hidden entirely: an ignore region; the second untouched; the pasted one kept
    assert out.difficult.tolist() == [True, False, False]
    assert (canvas == 0).all()  # the input is not changed


def test_a_pasted_object_hidden_by_a_later_one_or_with_its_centre_off_the_canvas_is_ignored():
    canvas = np.zeros((50, 50, 3), np.uint8)
    photo = np.full((80, 80, 3), 90, np.uint8)
    under, over, cut = square(0, 0, 20), square(2, 2, 20), square(40, 40, 30)
    out = copy_paste.paste_objects(canvas, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, bool),
                                   photo, [under, over, cut], [1, 1, 1], left=0, top=0)
    assert out.pasted == 3
    # ``under`` shows only its L-shaped rim (2 px of 20): hidden by more than half, so ignored, its box what shows
    np.testing.assert_array_equal(out.boxes[0], [0, 0, 20, 20])
    np.testing.assert_array_equal(out.boxes[2], [40, 40, 50, 50])  # clipped to what shows
    assert out.difficult.tolist() == [True, False, True]


def test_an_object_of_overlapping_polygons_is_their_union():
    canvas = np.zeros((40, 40, 3), np.uint8)
    photo = np.full((40, 40, 3), 50, np.uint8)
    out = copy_paste.paste_objects(canvas, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, bool),
                                   photo, [square(0, 0, 10) + square(5, 5, 10)], [1], left=0, top=0)
    assert out.shown.sum() == 100 + 100 - 25 and out.shown[7, 7]  # the overlap is filled, not a hole
    np.testing.assert_array_equal(out.boxes[0], [0, 0, 15, 15])


def test_draw_paste_never_picks_the_item_itself():
    draws = [copy_paste.draw_paste(np.random.default_rng(s), [2, 2, 2], item=1) for s in range(100)]
    assert {d.partner for d in draws} == {0, 2}
    assert copy_paste.draw_paste(np.random.default_rng(0), [0, 2, 0], item=1) is None  # only itself has any


def test_draw_paste_picks_a_partner_with_outlines_and_at_least_one_of_its_objects():
    assert copy_paste.draw_paste(np.random.default_rng(0), [0, 0, 0]) is None
    draws = [copy_paste.draw_paste(np.random.default_rng(s), [0, 3, 0, 1]) for s in range(200)]
    assert {d.partner for d in draws} == {1, 3}
    assert all(d.chosen and max(d.chosen) < (3 if d.partner == 1 else 1) for d in draws)
    lo, hi = copy_paste.SCALE_RANGE
    assert all(lo <= d.scale <= hi for d in draws)
    assert any(len(d.chosen) > 1 for d in draws) and any(d.flip for d in draws) and not all(d.flip for d in draws)
    assert copy_paste.draw_paste(np.random.default_rng(7), [0, 3, 0, 1]) == draws[7]  # a function of the generator


def test_the_placement_keeps_a_small_photo_inside_and_a_large_one_over_the_whole_canvas():
    paste = copy_paste.Paste(0, (0,), 1.0, False, 1.0, 0.0)
    assert copy_paste.placement(100, 80, 40, 30, paste) == (60, 0)
    assert copy_paste.placement(100, 80, 140, 100, paste) == (0, -20)
    assert copy_paste.placement(100, 80, 140, 100, dataclasses.replace(paste, offset_x=0.0, offset_y=1.0)) == (-40, 0)


# -- in the training dataset ------------------------------------------------------------------------------------------

def dataset(json_path: Path, **kw) -> DetectionDataset:
    source = open_dataset(json_path)
    return DetectionDataset(source, list(range(len(source.entries))), ["person"], min_size=90, max_size=120, **kw)


def test_every_item_gets_objects_of_another_image_in_that_images_colour(tmp_path):
    data = dataset(outlined_coco(tmp_path), copy_paste_prob=1.0, seed=3)
    assert "6 outlined objects in 6 of 6" in data.copy_paste_note()
    partners = set()
    for i in range(len(data)):
        image, target = data[i]
        source_index, count = target["copy_paste"]
        partners.add(source_index)
        assert count == 1 and len(target["boxes"]) == 2 and target["labels"].tolist() == [1, 1]
        x0, y0, x1, y1 = (int(v) for v in target["boxes"][1])
        patch = (image[:, y0:y1, x0:x1].permute(1, 2, 0).numpy() * 255).round().astype(int)
        # the pasted triangle is there, in the colour of the image it was cut from
        colour = np.array(COLOURS[source_index % len(COLOURS)])
        assert (np.abs(patch - colour).sum(axis=2) < 10).sum() > 0.3 * patch.shape[0] * patch.shape[1]
    assert len(partners) > 1  # drawn over the run's images, not one


def test_a_pasted_object_is_mirrored_with_its_photo_and_an_outline_without_area_is_not_pasted(tmp_path):
    data = dataset(outlined_coco(tmp_path), copy_paste_prob=1.0, flip_prob=1.0)
    for i in range(len(data)):
        paste = data.draws(i).paste
        image, target = data[i]  # the item is mirrored too (flip_prob 1): the paste then mirrored twice
        x0, y0, x1, y1 = (int(v) for v in target["boxes"][1])
        partner = data.targets[paste.partner]
        colour = np.array(COLOURS[partner.index % len(COLOURS)])
        patch = image[:, y0:y1, x0:x1].permute(1, 2, 0).numpy() * 255
        # the outline was mirrored with the photo: what it cut out is the triangle, in its colour (an outline
        # left unmirrored would cut the grey beside the triangle of an image whose triangle is off-centre)
        assert (np.abs(patch - colour).sum(axis=2) < 10).mean() > 0.3
    flat = data.targets[0]
    flat.outlines[0] = (np.array([[5, 5], [30, 5], [50, 5]], np.float32),)  # three points on one line
    assert flat.outlined() == []


def test_the_pasted_pixels_stay_inside_their_boxes_through_crops_zoom_outs_flips_and_quarter_turns(tmp_path):
    data = dataset(outlined_coco(tmp_path), copy_paste_prob=1.0, flip_prob=0.5, rotate90=True, crop_prob=0.5,
                   zoom_out_prob=0.5)
    checked = 0
    for epoch in range(4):
        data.set_epoch(epoch)
        for i in range(len(data)):
            image, target = data[i]
            partner, count = target["copy_paste"]
            colour = np.array(COLOURS[partner % len(COLOURS)])
            for box, ignored in zip(target["boxes"][-count:], target["difficult"][-count:], strict=True):
                if ignored:
                    continue
                x0, y0, x1, y1 = (int(round(float(v))) for v in box)
                patch = image[:, y0:y1, x0:x1].permute(1, 2, 0).numpy() * 255
                assert (np.abs(patch - colour).sum(axis=2) < 10).mean() > 0.3
                checked += 1
    assert checked > 12


def test_copy_paste_off_draws_exactly_what_a_run_without_it_drew_and_mosaics_get_none(tmp_path):
    path = outlined_coco(tmp_path)
    plain, off = dataset(path, flip_prob=0.5, crop_prob=0.5), dataset(path, flip_prob=0.5, crop_prob=0.5,
                                                                       copy_paste_prob=0.0)
    for epoch in range(3):
        plain.set_epoch(epoch)
        off.set_epoch(epoch)
        assert [plain.draws(i) for i in range(len(plain))] == [off.draws(i) for i in range(len(off))]
    both = dataset(path, mosaic_prob=0.5, copy_paste_prob=1.0)
    draws = [both.draws(i) for i in range(len(both))]
    assert any(d.mosaic is not None for d in draws) and any(d.mosaic is None for d in draws)
    assert all((d.paste is None) == (d.mosaic is not None) for d in draws)
    assert all(both[i][1]["copy_paste"] is None for i, d in enumerate(draws) if d.mosaic is not None)


def test_a_box_only_dataset_pastes_nothing_and_says_so(tmp_path):
    data = dataset(outlined_coco(tmp_path, with_outlines=False), copy_paste_prob=1.0)
    assert "nothing is pasted" in data.copy_paste_note()
    assert all(data.draws(i).paste is None and data[i][1]["copy_paste"] is None for i in range(len(data)))


def test_an_out_of_range_share_is_refused_by_name():
    from models.detection.training_config import TrainConfig

    with pytest.raises(ValueError, match="copy_paste_prob"):
        TrainConfig(data="x", out="y", copy_paste_prob=1.5)


# -- preview and command line -----------------------------------------------------------------------------------------

def test_the_preview_names_the_image_objects_were_pasted_from(tmp_path):
    from models.detection.augmentation_preview import augmented_views
    from models.detection.training_config import TrainConfig

    path = outlined_coco(tmp_path)
    config = TrainConfig(data=str(path), out=str(tmp_path / "m.pt"), min_size=90, max_size=120, copy_paste_prob=1.0, classes=["person"],
                         train_indices=list(range(6)))
    views = augmented_views(config, open_dataset(path), 0, epochs=3)
    names = {f"im{i}.png" for i in range(6)}
    for view in views:
        assert view.pasted is not None and view.pasted[0] in names
        assert f"pasted from {view.pasted[0]}" in view.caption()


def test_train_copy_paste_flag_sets_the_share(tmp_path):
    from app.cli.training import command_config, parser

    path = outlined_coco(tmp_path)
    args = parser().parse_args(["--data", str(path), "--copy-paste", "0.5", "--out", str(tmp_path / "m.pt")])
    assert command_config(args).config.copy_paste_prob == 0.5


def test_a_yolo_segmentation_dataset_pastes_along_its_polygons(tmp_path):
    coco = outlined_coco(tmp_path / "coco")
    doc = json.loads(coco.read_text())
    root = tmp_path / "yolo"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("person\n")
    for image, ann in zip(doc["images"], doc["annotations"], strict=True):
        (root / "images" / image["file_name"]).write_bytes((coco.parent / "images" / image["file_name"]).read_bytes())
        points = ann["segmentation"][0]
        normalised = [v / (120 if k % 2 == 0 else 90) for k, v in enumerate(points)]
        (root / "labels" / image["file_name"].replace(".png", ".txt")).write_text(
            "0 " + " ".join(f"{v:.6f}" for v in normalised) + "\n")
    data = dataset(root, copy_paste_prob=1.0)
    assert "6 outlined objects in 6 of 6" in data.copy_paste_note()
    np.testing.assert_allclose(data.targets[0].outlines[0][0].reshape(-1), doc["annotations"][0]["segmentation"][0],
                               atol=1e-3)
    assert all(data[i][1]["copy_paste"][1] == 1 for i in range(len(data)))


def test_a_partner_whose_file_changed_size_since_it_was_read_is_not_pasted(tmp_path):
    data = dataset(outlined_coco(tmp_path), copy_paste_prob=1.0)
    for t in data.targets:  # as if every file had been replaced by a larger one after the annotations were read
        t.width += 10
    for i in range(len(data)):
        assert data.draws(i).paste is not None
        image, target = data[i]
        assert target["copy_paste"] is None and len(target["boxes"]) == 1


def test_a_coco_to_yolo_export_keeps_one_polygon_outlines_as_segmentation_lines(tmp_path):
    from models.data.annotations.yolo import parse_yolo, yolo_text

    triangle = BoxObject("person", (10.0, 20.0, 60.0, 80.0), outline=((10.0, 80.0, 35.0, 20.0, 60.0, 80.0),))
    text = yolo_text(Annotation("a.png", 100, 100, 3, [triangle]), ["person"])
    back = parse_yolo(text, ["person"], 100, 100).objects[0]
    assert back.box == pytest.approx(triangle.box) and back.outline[0] == pytest.approx(triangle.outline[0])
    # one object without an outline: the whole file in boxes, as Ultralytics reads files whole
    plain = BoxObject("person", (70.0, 10.0, 90.0, 30.0))
    lines = yolo_text(Annotation("a.png", 100, 100, 3, [triangle, plain]), ["person"]).splitlines()
    assert [len(line.split()) for line in lines] == [5, 5]


def test_an_object_in_several_parts_is_exported_to_yolo_as_one_polygon_with_the_parts_pixels(tmp_path):
    from skimage.draw import polygon as fill

    from models.data.annotations.model import joined_polygon, polygon_area
    from models.data.annotations.yolo import parse_yolo, yolo_text

    # a person behind a pole: three parts, one of them the other way round, listed far part first
    # (off the pixel grid, so that no pixel centre lies on an edge and rounding in the file cannot flip one)
    parts = ((70.0, 10.0, 90.0, 10.0, 90.0, 40.0, 70.0, 40.0), (10.0, 10.0, 10.0, 60.0, 30.0, 60.0, 30.0, 10.0),
             (40.0, 15.0, 55.0, 15.0, 55.0, 50.0))
    parts = tuple(tuple(v + 0.3 for v in p) for p in parts)
    person = BoxObject("person", (10.3, 10.3, 90.3, 60.3), outline=parts)
    joined = joined_polygon(parts)
    assert polygon_area(joined) == pytest.approx(sum(polygon_area(p) for p in parts))

    def pixels(polygons: tuple[tuple[float, ...], ...]) -> np.ndarray:
        mask = np.zeros((100, 100), bool)
        for poly in polygons:
            rr, cc = fill(np.asarray(poly[1::2]), np.asarray(poly[0::2]), mask.shape)
            mask[rr, cc] = True
        return mask

    np.testing.assert_array_equal(pixels((joined,)), pixels(parts))
    line = yolo_text(Annotation("a.png", 100, 100, 3, [person]), ["person"]).strip()
    assert len(line.split()) == 1 + len(joined)
    back = parse_yolo(line, ["person"], 100, 100).objects[0]
    assert back.box == pytest.approx(person.box, abs=1e-3)
    np.testing.assert_array_equal(pixels(back.outline), pixels(parts))
    assert joined_polygon(parts[:1]) == parts[0]  # one part: as it was


def test_an_outline_with_no_area_is_exported_to_yolo_as_a_box_that_reads_back():
    from models.data.annotations.model import joined_polygon
    from models.data.annotations.yolo import parse_yolo, yolo_text

    flat = BoxObject("person", (10.0, 10.0, 40.0, 12.0), outline=((10.0, 10.0, 25.0, 10.0, 40.0, 10.0),))
    odd = BoxObject("person", (50.0, 50.0, 60.0, 60.0), outline=((50.0, 50.0, 60.0, 50.0, 60.0),))
    assert joined_polygon(flat.outline) == () and joined_polygon(odd.outline) == ()
    text = yolo_text(Annotation("a.png", 100, 100, 3, [flat, odd]), ["person"])
    assert [len(line.split()) for line in text.splitlines()] == [5, 5]
    back = parse_yolo(text, ["person"], 100, 100).objects
    assert [v for o in back for v in o.box] == pytest.approx([*flat.box, *odd.box])
