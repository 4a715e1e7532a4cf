"""``python main.py train``: train a detector headless, with a terminal progress bar (losses and ETA).

Parses arguments into :class:`models.detection.training.TrainConfig` — a named preset
(:mod:`models.detection.presets`, ``--preset``), settings chosen from the data when neither a preset nor any
model flag is given (:mod:`app.cli.auto_training`), or the generation's paper settings, with the flags given
overriding them — and subscribes a tqdm bar to the training callbacks; the loop itself lives in
``models.detection.training``. Under ``torchrun --nproc_per_node=N`` the same command trains with
DistributedDataParallel; only rank 0 prints, draws the bar and writes the checkpoint.

With the data-chosen settings on a CPU with two or more cores, the command starts that data-parallel run itself
(two processes, :func:`models.detection.training_process.choose_processes` says why) and waits on them here:
the same checkpoint and training log as ``torchrun --standalone --nproc_per_node=2 main.py train ...``.
``--processes N`` overrides the choice (1: train in this process).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.cli.threads import positive_int

if TYPE_CHECKING:  # the CLI imports torch only when a command runs
    from models.detection.training_config import TrainConfig
    from models.detection.training_process import ProcessChoice

GENERATIONS = ("cls-loc", "rcnn", "fast-rcnn", "faster-rcnn")


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


def parser() -> argparse.ArgumentParser:
    """Every training flag defaults to None ("not given"): given flags override the preset (``--preset``) or,
    without one, the generation's paper settings (:func:`models.detection.presets.default_train_config`)."""
    p = argparse.ArgumentParser(prog="python main.py train", description="Train a detector on a dataset.")
    p.add_argument("--preset", default=None, metavar="NAME",
                   help="start from a named recipe (see --list-presets); the flags below override its fields")
    p.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    p.add_argument("--print-config", action="store_true",
                   help="print every setting this command would train with (per part) and exit")
    p.add_argument("--generation", choices=GENERATIONS, default=None,
                   help="detector generation (default faster-rcnn, or the preset's)")
    p.add_argument("--data", help="dataset: VOC root, COCO JSON, YOLO folder or annotated folder")
    p.add_argument("--out", help="checkpoint file to write (rewritten after every epoch)")
    from models.detection.backbones import backbone_infos

    infos = backbone_infos()
    listed = "; ".join(f"{i.name} ({'pretrained on ' + i.pretrained_on if i.pretrained_on else 'from scratch'}"
                       f"{'' if i.available else ', weights not installed: ' + i.when_missing})" for i in infos)
    p.add_argument("--backbone", choices=[i.name for i in infos], default=None, help=listed + " (default small)")
    p.add_argument("--weights", default=None,
                   help="backbone weights: a .pth file, 'imagenet' or 'none'; default: the backbone's pretrained "
                        "weights (efficientnet_lite0: its pip package, else an error saying what to install; "
                        "torchvision's: the local torch cache, else random; small: none)")
    p.add_argument("--epochs", type=int, default=None, help="default 12")
    p.add_argument("--batch-size", type=int, default=None,
                   help="images per step (default 2 for fast-rcnn, the paper's 2 images x 64 RoIs, and rcnn; else 1)")
    p.add_argument("--lr", type=float, default=None, help="default 0.01")
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default=None,
                   help="sgd with momentum 0.9 (the papers, the default) or adamw (faster from scratch)")
    p.add_argument("--weight-decay", type=float, default=None, help="default 1e-4")
    p.add_argument("--min-size", type=int, default=None,
                   help="shorter image side after resizing (default 600 or the preset's; with --resume, the "
                        "checkpoint's — give another to continue at that size)")
    p.add_argument("--max-size", type=int, default=None,
                   help="cap on the longer side after resizing (default 1000, the preset's or the checkpoint's)")
    p.add_argument("--train-sizes", type=_ints, default=None, metavar="S1,S2,...",
                   help="multi-scale training: each image's shorter side drawn from these (default: --min-size)")
    p.add_argument("--rotate90", action="store_true", default=None,
                   help="also turn training images by random multiples of 90 degrees (data with no 'up' only)")
    p.add_argument("--crop", type=float, default=None, metavar="PROB", dest="crop_prob",
                   help="random crops ('zoom in'): the share of training images shown as a random window that "
                        "keeps at least one object's centre (default 0: whole images)")
    p.add_argument("--crop-min-side", type=float, default=None, metavar="SHARE",
                   help="a crop's sides are each at least this share of the image's (default 0.5)")
    p.add_argument("--zoom-out", type=float, default=None, metavar="PROB", dest="zoom_out_prob",
                   help="zoom out (SSD's 'expand'): the share of training images placed on a mean-coloured canvas "
                        "up to --zoom-out-max times their side, so the objects come out smaller (default 0: off)")
    p.add_argument("--zoom-out-max", type=float, default=None, metavar="RATIO",
                   help="a zoom-out canvas's side is up to this many times the image's, 1-4 (default 2)")
    p.add_argument("--mosaic", type=float, default=None, metavar="PROB", dest="mosaic_prob",
                   help="mosaic (YOLOv4's): the share of training images shown as the top-left tile of four training "
                        "images at half size around a random centre (default 0: off)")
    p.add_argument("--copy-paste", type=float, default=None, metavar="PROB", dest="copy_paste_prob",
                   help="copy-paste (Ghiasi et al. 2021): the share of training images that get outlined objects of "
                        "another training image pasted onto them; needs outlines (COCO or YOLO polygons) (default 0: off)")
    p.add_argument("--colour-jitter", type=float, default=None, metavar="STRENGTH",
                   help="scale brightness, contrast and saturation by random factors in 1 ± STRENGTH (default 0)")
    p.add_argument("--classes", default=None, metavar="NAME,NAME,...",
                   help="train on these classes only (e.g. person of a COCO file); objects of the others are left "
                        "out and images without any of these stay in as negatives")
    p.add_argument("--backbone-lr-scale", type=float, default=None, metavar="F",
                   help="the backbone's learning rate as a fraction of --lr (default 1; the preset "
                        "finetune-photos-cpu uses 0.1, the usual choice when fine-tuning a pretrained one)")
    p.add_argument("--warmup-iters", type=int, default=None,
                   help="steps of linear learning-rate warm-up (default 200, at most a quarter of the run)")
    p.add_argument("--split", default=None, help="split to train on (default train)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default=None, help="default auto")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--resume", default=None,
                   help="continue from this checkpoint: its epoch, optimiser, images and training settings (flags "
                        "given override them; with --preset, the preset's settings instead)")
    p.add_argument("--images", default=None, help="image folder of a COCO JSON, when not beside it")
    p.add_argument("--anchor-sizes", type=_floats, default=None,
                   help="anchor sizes in pixels, comma-separated (default 128,256,512 as the paper)")
    p.add_argument("--fc-size", type=int, default=None, help="width of the two FC layers (default 4096)")
    p.add_argument("--warp-size", type=int, default=None, metavar="PX",
                   help="rcnn: side of the square each proposal is warped to (default 64, sized for the small CNN "
                        "on a CPU; 224 as the paper for an ImageNet backbone such as efficientnet_lite0), with the "
                        "paper's 16/227 of it as context unless --model-arg context=N says otherwise")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="any other detector setting as part.field (e.g. rpn.pre_nms_train=2000, roi_head.nms=0.5) "
                        "or by its flat name (rpn_pre_nms_train=2000); --print-config lists them all")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads per process (default: one per core, shared among --processes; 1 is faster on "
                        "a CPU busy with other work)")
    p.add_argument("--processes", type=int, default=None, metavar="N",
                   help="data-parallel training processes on the CPU, as torchrun --nproc_per_node=N (default: 2 "
                        "for the data-chosen settings on a CPU with 2+ cores, else 1; 1 trains in this process)")
    p.add_argument("--max-steps", type=int, default=None,
                   help="stop after this many optimiser steps in all, keeping --epochs' learning-rate schedule "
                        "(the first phase of progressive resizing; --resume continues it)")
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="fit the run into this much training time (process CPU seconds on a CPU, wall seconds on "
                        "a GPU): --epochs becomes a cap and the learning-rate schedule spans the steps the budget "
                        "buys at the measured cost per step")
    p.add_argument("--bf16", action="store_true", default=None,
                   help="CPU training in bfloat16 autocast (about 30%% faster on CPUs with AVX512-BF16 or AMX)")
    p.add_argument("--proposal-cache", default=None, metavar="DIR",
                   help="folder of the Selective Search proposal cache (fast-rcnn; default: the user cache folder, "
                        "$RCNN_EXPLORER_CACHE/proposals)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


#: Command-line flag (argparse dest) → training field, for the flags that map one to one.
_TRAINING_FLAGS = {"generation": "generation", "backbone": "backbone", "weights": "weights", "epochs": "epochs",
                   "batch_size": "batch_size", "lr": "lr", "optimizer": "optimizer", "weight_decay": "weight_decay",
                   "min_size": "min_size", "max_size": "max_size", "train_sizes": "train_sizes",
                   "rotate90": "rotate90", "crop_prob": "crop_prob", "crop_min_side": "crop_min_side",
                   "colour_jitter": "colour_jitter", "zoom_out_prob": "zoom_out_prob",
                   "zoom_out_max": "zoom_out_max", "mosaic_prob": "mosaic_prob",
                   "copy_paste_prob": "copy_paste_prob", "split": "split", "device": "device", "seed": "seed",
                   "resume": "resume",
                   "images": "images_dir", "threads": "threads", "max_steps": "max_steps", "bf16": "cpu_bf16",
                   "time_budget": "time_budget_s",
                   "proposal_cache": "proposal_cache", "backbone_lr_scale": "backbone_lr_scale",
                   "warmup_iters": "warmup_iters"}


def overrides_of(args: argparse.Namespace) -> dict:
    """The settings the command line gave explicitly: training fields, then detector settings
    (``--model-arg`` first, so the dedicated flags win over a --model-arg of the same setting)."""
    from models.detection.presets import parse_key_values

    out: dict = {field: getattr(args, dest) for dest, field in _TRAINING_FLAGS.items()
                 if getattr(args, dest) is not None}
    if args.classes:
        out["classes"] = [c.strip() for c in args.classes.split(",") if c.strip()]
    out.update(parse_key_values(args.model_arg, "--model-arg"))
    if args.anchor_sizes:
        out["rpn.anchor_sizes"] = args.anchor_sizes
    if args.fc_size:
        out["roi_head.representation_size"] = args.fc_size
    if args.warp_size is not None:
        out["warp.size"] = args.warp_size
        if not {"warp.context", "context"} & set(out):  # the paper's 16 px of 227, at this size
            out["warp.context"] = max(1, round(16 * args.warp_size / 227))
    return out


def list_presets() -> str:
    from models.detection.presets import get_preset, preset_names

    lines = []
    for name in preset_names():
        item = get_preset(name)
        lines.append(f"{name} ({item.generation})\n    {item.description}")
    return "\n".join(lines) + "\n(--preset NAME --print-config shows every setting of one)"


def format_settings(config) -> str:  # noqa: ANN001 - TrainConfig
    """Part → field → value of a training config, one ``part.field = value`` line each."""
    settings = config.detector_config().to_dict()
    settings["training"] = {k: v for k, v in config.to_dict().items() if k != "model"}
    return "\n".join(f"{part}.{k} = {v!r}" for part, values in settings.items() for k, v in values.items())


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


def is_rank0() -> bool:
    """Whether this process speaks: not one of torchrun's other ranks (only rank 0 prints)."""
    return os.environ.get("RANK", "0") == "0"


#: Errors a training process reports that need no traceback (a bad path, missing weights, a bad setting):
#: the same classes the single-process command reports in one line.
_PLAIN_ERRORS = ("BackboneWeightsError", "CheckpointError", "FileNotFoundError", "ValueError", "KeyError",
                 "AnnotationError")


def _known_error(text: str) -> bool:
    return text.split(":", 1)[0] in _PLAIN_ERRORS


def _on_cpu(device: str | None) -> bool:
    """Whether a run asked to use ``device`` trains on the CPU (an absent accelerator: not the CPU; the run
    itself then says so)."""
    from models.detection.checkpoints import resolve_device

    try:
        return resolve_device(device or "auto").type == "cpu"
    except RuntimeError:
        return False


@dataclass(frozen=True)
class CommandRun:
    """What ``train`` would start for its arguments: the run's settings, its process choice, the flags given
    as overrides, and for ``--resume`` the epochs the checkpoint has done (None: no checkpoint, or one the
    run itself will refuse with its own message)."""

    config: TrainConfig
    choice: ProcessChoice
    overrides: dict[str, Any]
    epochs_done: int | None = None


def command_config(args: argparse.Namespace) -> CommandRun:
    """The run the command would start for ``args`` (raises ValueError for a bad setting). Apart from
    :func:`run` so the window's "Settings from the data" can be checked against exactly this."""
    from models.detection.presets import default_train_config, resumed_train_config, train_config_from_preset
    from models.detection.training_process import choose_processes

    overrides = overrides_of(args)
    done = None
    if args.preset or args.resume:
        if args.preset:
            config = train_config_from_preset(args.preset, args.data, args.out, overrides)
            done = _epochs_done(args.resume)
        else:  # the run as it was saved, the flags given over it (as the window's Continue)
            from models.detection.checkpoints import CheckpointError, load_checkpoint

            try:
                payload = load_checkpoint(args.resume)
            except CheckpointError as exc:
                raise ValueError(str(exc)) from exc
            done = int(payload.get("epoch", 0) or 0)
            config = resumed_train_config(dict(payload.get("config") or {}), args.resume, args.data, args.out,
                                          overrides)
        choice = choose_processes(data_chosen=False, requested=args.processes, on_cpu=_on_cpu(config.device))
    else:
        generation = overrides.pop("generation", "faster-rcnn")
        from app.cli.auto_training import auto_overrides, wants_auto

        auto = wants_auto(args)
        choice = choose_processes(data_chosen=auto, requested=args.processes,
                                  on_cpu=_on_cpu(overrides.get("device")))
        if choice.processes > 1 and is_rank0():
            print(f"train: {choice.processes} processes: {choice.reason}", file=sys.stderr)
        # no preset, no model flags: settings from the data (app/cli/auto_training.py); given flags win
        # (one process here under torchrun: the rule then reads torchrun's WORLD_SIZE itself)
        chosen = (auto_overrides(args, overrides, processes=choice.processes if choice.processes > 1 else None)
                  if auto else {})
        config = default_train_config(args.data, args.out, generation, {**chosen, **overrides})
    if choice.processes > 1 and args.threads is None:
        import dataclasses

        config = dataclasses.replace(config, threads=choice.threads)
    return CommandRun(config, choice, overrides, done)


def _epochs_done(checkpoint: str | None) -> int | None:
    """The epochs the run in ``checkpoint`` has completed (None: no checkpoint, or one the run will refuse)."""
    if not checkpoint:
        return None
    from models.detection.checkpoints import CheckpointError, load_checkpoint

    try:
        return int(load_checkpoint(checkpoint).get("epoch", 0))
    except (CheckpointError, TypeError, ValueError):
        return None


def run(command: str, argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.list_presets:
        print(list_presets())
        return 0
    from models.detection.backbones import BackboneWeightsError
    from models.detection.checkpoints import CheckpointError
    from models.detection.training import train
    from models.detection.training_process import TrainingFailed, run_training_processes

    if not args.data or not args.out:
        print("train: --data and --out are required (or --list-presets)", file=sys.stderr)
        return 2
    try:
        planned = command_config(args)
    except ValueError as exc:  # a bad KEY=VALUE, an unknown setting or preset, a value of the wrong kind
        print(f"train: {exc}", file=sys.stderr)
        return 2
    config, choice, overrides = planned.config, planned.choice, planned.overrides
    if args.warp_size is not None and config.generation != "rcnn":
        print("train: --warp-size is R-CNN's (each proposal warped to a square); "
              f"{config.generation} pools proposals from one feature map instead", file=sys.stderr)
        return 2
    if args.warp_size is not None and args.warp_size < 16:
        print(f"train: --warp-size {args.warp_size} is too small (at least 16 px)", file=sys.stderr)
        return 2
    if args.print_config:
        print(format_settings(config))
        return 0
    done = planned.epochs_done
    if done is not None and done >= config.epochs:
        print(f"train: {args.resume} has trained {done} epochs already; --epochs above {done} trains it further",
              file=sys.stderr)
        return 2
    if args.preset and is_rank0():
        print(f"train: preset {args.preset}" + (f", overridden: {', '.join(sorted(overrides))}" if overrides else ""),
              file=sys.stderr)
        if choice.processes > 1:
            print(f"train: {choice.processes} processes ({choice.reason})", file=sys.stderr)
    cancel = threading.Event()

    def on_sigint(signum, frame) -> None:  # noqa: ANN001
        if cancel.is_set():
            raise KeyboardInterrupt
        if is_rank0():
            print("\ntrain: stopping after this step (Ctrl+C again to abort without saving)", file=sys.stderr)
        cancel.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        if choice.processes > 1:
            result = run_training_processes(config, choice.processes, callbacks=_Bar(not args.quiet), cancel=cancel)
        else:
            result = train(config, callbacks=_Bar(not args.quiet), cancel=cancel)
    except (BackboneWeightsError, CheckpointError, FileNotFoundError, ValueError,
            KeyError, RuntimeError, TypeError) as exc:
        text = str(exc)
        if isinstance(exc, TrainingFailed):
            if _known_error(text):  # as the single-process command says it: no class name, no traceback
                text = text.split(": ", 1)[1]
            else:  # a crash, a killed process, a process group that could not form
                text += ("\n" + exc.detail.rstrip()) if exc.detail else ""
                if args.processes is None:
                    text += "\n(two processes were this command's choice: --processes 1 trains in one)"
        print(f"train: {text}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if choice.processes <= 1:
            raise
        print(f"train: aborted; the training processes are stopped (the last epoch's checkpoint, if any, is "
              f"{config.out})", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
    if is_rank0():  # under torchrun only rank 0 speaks
        print(f"train: {result.message}", file=sys.stderr)
    return {"completed": 0, "cancelled": 130, "diverged": 3}.get(result.status, 1)
