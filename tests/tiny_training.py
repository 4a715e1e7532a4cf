"""Tiny training for tests: a few small drawn images and an 8-channel Faster R-CNN that trains in seconds.

One definition for every test that trains, so that a change to the synthetic generator or the model's settings
is made once (the same fixture had been copied into eight test files)."""

from __future__ import annotations

from pathlib import Path

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
