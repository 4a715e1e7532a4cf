"""``python main.py train``: train a detector headless, with a terminal progress bar (losses and ETA).

Parses arguments into :class:`models.detection.training.TrainConfig` and subscribes a tqdm bar to the training
callbacks; the loop itself lives in ``models.detection.training``. Under ``torchrun --nproc_per_node=N`` the same
command trains with DistributedDataParallel; only rank 0 draws the bar and writes the checkpoint.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

GENERATIONS = ("rcnn", "fast-rcnn", "faster-rcnn")


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from exc


def _model_args(items: list[str]) -> dict:
    """``KEY=VALUE`` pairs; values parsed as JSON when they can be (numbers, lists, true/false), else text."""
    import json

    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--model-arg expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python main.py train", description="Train a detector on a dataset.")
    p.add_argument("--generation", choices=GENERATIONS, default="faster-rcnn", help="detector generation")
    p.add_argument("--data", required=True, help="dataset: VOC root, COCO JSON, YOLO folder or annotated folder")
    p.add_argument("--out", required=True, help="checkpoint file to write (rewritten after every epoch)")
    from models.detection.backbones import backbone_infos

    infos = backbone_infos()
    listed = "; ".join(f"{i.name} ({'pretrained on ' + i.pretrained_on if i.pretrained_on else 'from scratch'}"
                       f"{'' if i.available else ', weights not installed'})" for i in infos)
    p.add_argument("--backbone", choices=[i.name for i in infos], default="small", help=listed)
    p.add_argument("--weights", default=None,
                   help="backbone weights: a .pth file, 'imagenet' or 'none'; default: the backbone's pretrained "
                        "weights when present offline (efficientnet_lite0: its pip package; torchvision's: the "
                        "local torch cache), else random")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=None,
                   help="images per step (default 2 for fast-rcnn, the paper's 2 images x 64 RoIs, and rcnn; else 1)")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd",
                   help="sgd with momentum 0.9 (the papers) or adamw (faster from scratch)")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--min-size", type=int, default=None,
                   help="shorter image side after resizing (default 600; with --resume, the checkpoint's — "
                        "give another to continue at that size)")
    p.add_argument("--max-size", type=int, default=None,
                   help="cap on the longer side after resizing (default 1000, or the checkpoint's)")
    p.add_argument("--train-sizes", type=_ints, default=None, metavar="S1,S2,...",
                   help="multi-scale training: each image's shorter side drawn from these (default: --min-size)")
    p.add_argument("--rotate90", action="store_true",
                   help="also turn training images by random multiples of 90 degrees (data with no 'up' only)")
    p.add_argument("--split", default="train", help="split to train on (default train)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", default=None, help="continue from this checkpoint (its epoch, optimiser, split)")
    p.add_argument("--images", default=None, help="image folder of a COCO JSON, when not beside it")
    p.add_argument("--anchor-sizes", type=_floats, default=None,
                   help="anchor sizes in pixels, comma-separated (default 128,256,512 as the paper)")
    p.add_argument("--fc-size", type=int, default=None, help="width of the two FC layers (default 4096)")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="any other detector argument, e.g. rpn_pre_nms_train=2000 or box_nms=0.5 (repeatable; "
                        "see models.detection.detectors.faster_rcnn.FasterRCNN)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads (default: one per core; 1 is faster on a CPU busy with other work)")
    p.add_argument("--max-steps", type=int, default=None,
                   help="stop after this many optimiser steps in all, keeping --epochs' learning-rate schedule "
                        "(the first phase of progressive resizing; --resume continues it)")
    p.add_argument("--bf16", action="store_true",
                   help="CPU training in bfloat16 autocast (about 30%% faster on CPUs with AVX512-BF16 or AMX)")
    p.add_argument("--proposal-cache", default=None, metavar="DIR",
                   help="folder of the Selective Search proposal cache (fast-rcnn; default: the user cache folder, "
                        "$RCNN_EXPLORER_CACHE/proposals)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


class _Bar:
    """tqdm over all steps: postfix with the running-mean losses; tqdm itself shows rate and ETA."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None
        self.side_bar = None
        self.avg: dict[str, float] = {}

    def __call__(self, ev) -> None:  # noqa: ANN001 - models.detection.training.TrainEvent
        from tqdm import tqdm

        if ev.kind == "proposals":  # before training (proposals) or after it (R-CNN's SVM stage): own bar
            if self.enabled and self.side_bar is None:
                self.side_bar = tqdm(total=ev.total_steps, unit="step", desc=ev.message or "proposals",
                                     dynamic_ncols=True, file=sys.stderr, leave=False)
            if self.side_bar is not None:
                self.side_bar.update(ev.step - self.side_bar.n)
                if ev.step >= ev.total_steps:
                    self.side_bar.close()
                    self.side_bar = None
        elif ev.kind == "message":
            (tqdm.write if self.bar is not None else print)(f"train: {ev.message}", file=sys.stderr)
        elif ev.kind == "start":
            print(f"train: {ev.message}", file=sys.stderr)
            if self.enabled:
                self.bar = tqdm(total=ev.total_steps, initial=ev.global_step, unit="step", dynamic_ncols=True,
                                file=sys.stderr)
        elif ev.kind == "step":
            for k, v in ev.losses.items():
                self.avg[k] = v if k not in self.avg else 0.9 * self.avg[k] + 0.1 * v
            if self.bar is not None:
                self.bar.set_description(f"epoch {ev.epoch}/{ev.epochs}")
                self.bar.set_postfix({k: f"{v:.3f}" for k, v in self.avg.items()}, refresh=False)
                self.bar.update(ev.global_step - self.bar.n)
        elif ev.kind == "epoch":
            text = ", ".join(f"{k} {v:.3f}" for k, v in ev.losses.items())
            msg = f"epoch {ev.epoch}/{ev.epochs}: {text} ({ev.elapsed_s:.0f} s)"
            (tqdm.write if self.bar is not None else print)(msg, file=sys.stderr)
        elif ev.kind == "end" and self.bar is not None:
            self.bar.close()


def run(command: str, argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.batch_size is None:
        args.batch_size = 2 if args.generation in ("fast-rcnn", "rcnn") else 1
    from models.detection.backbones import BackboneWeightsError
    from models.detection.checkpoints import CheckpointError
    from models.detection.training import TrainConfig, train

    try:
        model: dict = _model_args(args.model_arg)
    except ValueError as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 2
    if args.anchor_sizes:
        model["anchor_sizes"] = args.anchor_sizes
    if args.fc_size:
        model["representation_size"] = args.fc_size
    config = TrainConfig(data=args.data, out=args.out, generation=args.generation, backbone=args.backbone,
                         weights=args.weights, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         optimizer=args.optimizer, weight_decay=args.weight_decay,
                         min_size=args.min_size, max_size=args.max_size, split=args.split, device=args.device,
                         seed=args.seed, resume=args.resume, images_dir=args.images, model=model,
                         threads=args.threads, rotate90=args.rotate90, train_sizes=args.train_sizes,
                         cpu_bf16=args.bf16, max_steps=args.max_steps, proposal_cache=args.proposal_cache)
    cancel = threading.Event()

    def on_sigint(signum, frame) -> None:  # noqa: ANN001
        if cancel.is_set():
            raise KeyboardInterrupt
        print("\ntrain: stopping after this step (Ctrl+C again to abort without saving)", file=sys.stderr)
        cancel.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        result = train(config, callbacks=_Bar(not args.quiet), cancel=cancel)
    except (BackboneWeightsError, CheckpointError, FileNotFoundError, ValueError,
            KeyError, RuntimeError, TypeError) as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGINT, previous)
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 speaks
        print(f"train: {result.message}", file=sys.stderr)
    return {"completed": 0, "cancelled": 130, "diverged": 3}.get(result.status, 1)
