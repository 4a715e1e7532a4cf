"""Tiny training for tests: a few small drawn images and an 8-channel Faster R-CNN that trains in seconds.

One definition for every test that trains, so that a change to the synthetic generator or the model's settings
is made once (the same fixture had been copied into eight test files)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

TINY_MODEL = dict(small_width=8, anchor_sizes=[16, 32, 64], representation_size=32, rpn_pre_nms_train=300,
                  rpn_post_nms_train=100, rpn_pre_nms_test=300, rpn_post_nms_test=50)


def tiny_dataset(folder: Path, count: int = 8, seed: int = 5):  # noqa: ANN201 - SyntheticDataset (path-like)
    """``count`` images of 96-128 px with one or two shapes of 24-56 px on plain backgrounds (VOC layout)."""
    from models.data.synthetic import SynthParams, write_synthetic

    params = SynthParams(min_image_size=96, max_image_size=128, min_objects=1, max_objects=2, min_object_size=24,
                         max_object_size=56, photo_fraction=0.0, image_format="png")
    return write_synthetic(folder, count, seed=seed, params=params)


def tiny_config(data: Path, out: Path, **kw):  # noqa: ANN201 - TrainConfig
    from models.detection.training import TrainConfig

    base = dict(data=str(data), out=str(out), epochs=2, batch_size=2, lr=0.01, min_size=96, max_size=128,
                device="cpu", warmup_iters=2, max_steps=4, threads=1, model=dict(TINY_MODEL))
    base.update(kw)
    return TrainConfig(**base)


def train_tiny(data: Path, out: Path, **kw):  # noqa: ANN201 - TrainResult
    from models.detection.training import train

    out.parent.mkdir(parents=True, exist_ok=True)
    return train(tiny_config(data, out, **kw))


def record_conv_output_dtypes(monkeypatch) -> list:  # noqa: ANN001 - pytest's MonkeyPatch
    """Every Conv2d output's dtype from now on, in order: what shows whether bfloat16 autocast is on."""
    import torch

    dtypes: list = []
    original = torch.nn.Conv2d.forward

    def spy(self, x):  # noqa: ANN001, ANN202
        out = original(self, x)
        dtypes.append(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Conv2d, "forward", spy)
    return dtypes


#: The colour each synthetic object is painted in, per image: a pasted pixel says where it came from.
COLOURS = [(220, 40, 40), (40, 220, 40), (40, 40, 220), (220, 220, 40), (40, 220, 220), (220, 40, 220)]


def outlined_coco(folder: Path, count: int = 6, with_outlines: bool = True) -> Path:
    """``count`` 120×90 images on grey, each holding one triangle (a person) in its own colour, and a COCO
    file whose ``segmentation`` is the triangle (or empty: a box-only dataset). Returns the JSON's path."""
    images_dir = folder / "images"
    images_dir.mkdir(parents=True)
    images, anns = [], []
    for i in range(count):
        px = np.full((90, 120, 3), 128, np.uint8)
        x0, y0 = 10 + 12 * (i % 4), 15 + 5 * (i % 3)
        tri = np.array([[x0, y0 + 50], [x0 + 25, y0], [x0 + 50, y0 + 50]], np.int32)
        cv2.fillPoly(px, [tri], COLOURS[i % len(COLOURS)])
        cv2.imwrite(str(images_dir / f"im{i}.png"), px[:, :, ::-1])
        images.append({"id": i + 1, "file_name": f"im{i}.png", "width": 120, "height": 90})
        seg = [[float(v) for v in tri.reshape(-1)]] if with_outlines else []
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [x0, y0, 51, 51], "area": 1275.0,
                     "iscrowd": 0, "segmentation": seg})
    path = folder / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": anns,
                                "categories": [{"id": 1, "name": "person"}]}))
    return path
