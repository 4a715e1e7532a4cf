"""One training loop for every detector generation.

The loop knows nothing about a particular detector: ``models.detection.detectors.build_detector(generation, ...)`` makes
the model and its ``forward(images, targets)`` returns a dict of losses that are summed (Faster R-CNN's four
losses trained jointly). Around it: seeded data order, SGD with warm-up and a decaying learning rate,
callbacks (a terminal progress bar and the GUI's live plot subscribe to the same events), a cancel flag
polled between steps, checkpoints written atomically at each epoch end, ``resume``, a stop with a clear
message when a loss turns NaN/inf (the last good checkpoint stays), AMP on CUDA, and DistributedDataParallel
when started by ``torchrun`` (gloo on CPU, NCCL on GPUs; only rank 0 writes).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler

from models.detection.checkpoints import (
    load_checkpoint,
    model_parts,
    payload_version,
    resolve_device,
    save_checkpoint,
)
from models.detection.detectors import build_detector, rebuild_detector
from models.detection.run_data import run_class_names, training_dataset, training_images
from models.detection.training_config import Callback, TrainConfig, TrainEvent, TrainResult
from models.detection.training_distributed import (
    DistInfo,
    barrier,
    cancel_requested,
    check_finite,
    init_distributed,
)
from models.detection.training_finish import fit_calibration, fit_classifiers
from models.detection.training_log import RunLog
from models.detection.training_schedule import (
    BUDGET_REPLAN,
    StepBudget,
    lr_at,
    parameter_groups,
)

log = logging.getLogger(__name__)

#: The loop and what callers build it with (the configuration, events and result live in
#: models/detection/training_config.py; they are imported from here as they always were).
__all__ = ["Callback", "TrainConfig", "TrainEvent", "TrainResult", "config_from_checkpoint", "cpu_supports_bf16",
           "seed_everything", "train"]


class _Emitter:
    def __init__(self, callbacks: Callback | Iterable[Callback] | None, active: bool) -> None:
        if callbacks is None:
            self.callbacks: list[Callback] = []
        elif callable(callbacks):
            self.callbacks = [callbacks]
        else:
            self.callbacks = list(callbacks)
        self.active = active

    def __call__(self, event: TrainEvent) -> None:
        if not self.active:
            return
        for cb in self.callbacks:
            try:
                cb(event)
            except Exception:  # noqa: BLE001 - a broken progress bar must not kill a training run
                log.exception("training callback failed")


# -------------------------------------------------------------------------------------------- helpers


def cpu_supports_bf16() -> bool:
    """Whether oneDNN runs bfloat16 natively here; elsewhere bf16 autocast is slower than float32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def _to_device(images: list[torch.Tensor], targets: list[dict], device: torch.device):  # noqa: ANN202
    images = [im.to(device, non_blocking=True) for im in images]
    targets = [{k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in t.items()}
               for t in targets]
    return images, targets


def _prepare_data(config: TrainConfig, dist_info: DistInfo, class_names: list[str] | None,
                  split_indices_fixed: list[int] | None):  # noqa: ANN202
    """Open the dataset, fix the class list and the split (rank 0 writes a missing split file first)."""
    from models.data.datasets import open_dataset
    from models.data.splits import dataset_splits, split_indices

    source = open_dataset(config.data, image_dir=config.images_dir)
    names = list(class_names) if class_names else run_class_names(config, source)
    if not names:
        raise ValueError(f"{config.data}: no labelled objects found, nothing to train on")
    if split_indices_fixed is not None:
        indices = list(split_indices_fixed)
    elif config.train_indices is not None:  # checked as the window's preview checks them
        indices = training_images(config, source)
    else:
        if dist_info.is_main:
            splits = dataset_splits(source, seed=config.seed)
        barrier(dist_info)
        if not dist_info.is_main:
            splits = dataset_splits(source, seed=config.seed)
        indices = split_indices(splits, config.split)
    dataset = training_dataset(config, source, indices, names)
    if len(dataset) == 0:
        raise ValueError(f"{config.data}: split '{config.split}' has no usable images")
    split = {"name": config.split, "indices": list(indices),
             "files": [source.entries[i].name for i in indices]}
    return source, names, dataset, split


def _attach_proposals(model: torch.nn.Module, dataset: Any, config: TrainConfig, emit: _Emitter) -> None:
    """Selective Search boxes for every training image, once, before the first step (cached on disk, so a
    second run or a resume reads them back); reported as "proposals" events (step of total_steps)."""
    from models.data.training_data import attach_proposals
    from models.proposals.cache import ProposalCache

    cache = ProposalCache(config.proposal_cache)
    model.proposal_cache = cache
    total = len(dataset)
    emit(TrainEvent("message", message=f"Selective Search proposals for {total} images (cache {cache.root})"))

    def progress(done: int, count: int) -> None:
        emit(TrainEvent("proposals", step=done, total_steps=count, elapsed_s=0.0))

    t = time.monotonic()
    attach_proposals(dataset, cache, model.proposal_params, progress)
    emit(TrainEvent("message", message=f"proposals ready in {time.monotonic() - t:.1f} s "
                                       f"({cache.hits} from the cache, {cache.misses} computed)"))


def _validation_indices(config: TrainConfig, source: Any, dist_info: DistInfo, emit: _Emitter) -> list[int]:
    """At most ``config.val_images`` images of ``config.val_split``, spread over it (rank 0 only)."""
    if config.val_images <= 0 or not dist_info.is_main:
        return []
    from models.data.splits import dataset_splits, split_indices

    try:
        indices = split_indices(dataset_splits(source, seed=config.seed), config.val_split)
    except KeyError as exc:
        emit(TrainEvent("message", message=f"no validation mAP: {exc.args[0]}"))
        return []
    if not indices:
        emit(TrainEvent("message", message=f"no validation mAP: split '{config.val_split}' is empty"))
        return []
    step = max(1, len(indices) // config.val_images)
    return indices[::step][: config.val_images]


def _validate(model: torch.nn.Module, source: Any, indices: list[int], class_names: list[str],
              cancel: threading.Event | None) -> dict[str, float]:
    """mAP@0.5 (VOC all-point) and AP per class ("AP <name>") of ``model`` on ``indices``; classes without
    ground truth there are left out rather than reported as NaN. One test pass at the model's own size, even
    when it tests at several sizes or mirrored (:meth:`~models.detection.detectors.base.Detector.single_pass`):
    the curve follows training cheaply; the model's test-time augmentation is for evaluate."""
    from contextlib import nullcontext

    from models.detection.evaluation import evaluate_detector

    single = model.single_pass() if hasattr(model, "single_pass") else nullcontext()
    with torch.no_grad(), single:
        result, _ = evaluate_detector(model, source, indices, class_names, coco=False,
                                      cancelled=(lambda: cancel.is_set()) if cancel is not None else None)
    metrics = {"mAP": float(result.mAP), "images": float(result.n_images)}
    metrics.update({f"AP {c}": float(v) for c, v in result.AP.items() if math.isfinite(v)})
    return metrics


# ----------------------------------------------------------------------------------------------- train


def train(config: TrainConfig, callbacks: Callback | Iterable[Callback] | None = None,
          cancel: threading.Event | None = None) -> TrainResult:
    """Train ``config.generation`` on ``config.data`` and write checkpoints to ``config.out``.

    Returns how it ended; raises only for set-up errors (bad paths, missing weights, unknown generation).
    An error after the first step (out of memory, a bug) is re-raised too, but first a "failed" line goes to
    the training log, so the runs list shows the run and why it stopped (``models.detection.runs``).
    """
    run_log = RunLog()
    try:
        return _train_run(config, callbacks, cancel, run_log)
    except Exception as exc:
        if run_log.started:
            run_log.write_failure(f"{type(exc).__name__}: {exc}")
        raise


def _train_run(config: TrainConfig, callbacks: Callback | Iterable[Callback] | None,
               cancel: threading.Event | None, run_log: RunLog) -> TrainResult:
    """The body of :func:`train`; ``run_log`` collects what the training log records."""
    t0 = time.monotonic()
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    dist_info = init_distributed(config.device)
    if dist_info.enabled and torch.cuda.is_available() and config.device in ("auto", "cuda"):
        device = torch.device("cuda", dist_info.local_rank)
    else:
        device = resolve_device(config.device)
    emit = _Emitter(callbacks, dist_info.is_main)
    if config.threads:
        torch.set_num_threads(int(config.threads))
    seed_everything(config.seed)
    lr_at(config, 0, 1)  # an unknown schedule fails here, before the data and model are built

    payload = load_checkpoint(config.resume) if config.resume else None
    if payload is not None and payload["generation"] != config.generation:
        raise ValueError(f"{config.resume}: holds a {payload['generation']} model, not {config.generation}")
    # A new run builds ``parts``; a resumed one keeps its checkpoint's, at the size asked for (if any).
    parts = model_parts(payload) if payload is not None else config.detector_config()
    config = dataclasses.replace(config, min_size=int(config.min_size or parts.input.min_size),
                                 max_size=int(config.max_size or parts.input.max_size))
    fixed = None
    if payload is not None and payload.get("split", {}).get("name") == config.split:
        fixed = payload["split"].get("indices")
    if fixed is not None and config.train_indices is not None:
        # The checkpoint's images win on resume; the saved config says so instead of keeping the list asked for.
        if sorted(int(i) for i in config.train_indices) != sorted(int(i) for i in fixed):
            emit(TrainEvent("message", message=f"resuming on the checkpoint's {len(fixed)} training images of split "
                                               f"'{config.split}', not the other list given "
                                               f"({len(config.train_indices)} images)"))
        config = dataclasses.replace(config, train_indices=[int(i) for i in fixed])
    source, class_names, dataset, split = _prepare_data(
        config, dist_info, payload["class_names"] if payload else None, fixed)
    for p in dataset.problems[:20]:
        emit(TrainEvent("message", message=p))
    if config.classes:
        emit(TrainEvent("message", message=f"classes {', '.join(class_names)} only: {dataset.left_out} objects of "
                                           f"other classes left out"))
    if config.copy_paste_prob > 0:
        emit(TrainEvent("message", message=dataset.copy_paste_note()))
    val_indices = _validation_indices(config, source, dist_info, emit)

    if payload is not None:
        model = rebuild_detector(payload["generation"], class_names, payload["model_config"],
                                 payload_version(payload))
        model.load_state_dict(payload["state_dict"])
        start_epoch = int(payload["epoch"])
        if (model.min_size, model.max_size) != (config.min_size, config.max_size):
            emit(TrainEvent("message", message=f"resuming at shorter side {config.min_size} (max {config.max_size})"
                                               f" instead of {model.min_size} (max {model.max_size})"))
            model.set_input_size(config.min_size, config.max_size)
    else:
        model = build_detector(config.generation, class_names, config=parts)
        start_epoch = 0
        info = getattr(getattr(model, "backbone", None), "weights_info", None)
        if info is not None:
            emit(TrainEvent("message", message=f"backbone {config.backbone}: {info.message}"))
    if getattr(model, "proposal_params", None) is not None:
        _attach_proposals(model, dataset, config, emit)
    describe = getattr(model, "describe_training_set", None)
    if describe is not None:  # e.g. classification + localisation: which images were reduced or skipped
        emit(TrainEvent("message", message=describe(dataset.targets)))
    model.to(device).train()
    groups = parameter_groups(model, config.backbone_lr_scale)
    params = [p for g in groups for p in g["params"]]
    if config.optimizer == "adamw":
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    elif config.optimizer == "sgd":
        optimizer = torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    else:
        raise ValueError(f"unknown optimizer {config.optimizer!r}; use 'sgd' or 'adamw'")
    if payload is not None and payload.get("optimizer_state"):
        optimizer.load_state_dict(payload["optimizer_state"])
    net: torch.nn.Module = model
    if dist_info.enabled:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    if dist_info.enabled:
        from torch.utils.data.distributed import DistributedSampler
        sampler = DistributedSampler(dataset, num_replicas=dist_info.world_size, rank=dist_info.rank,
                                     shuffle=True, seed=config.seed, drop_last=False)
    else:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(config.seed))
    from models.data.training_data import collate
    loader = DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, collate_fn=collate,
                        num_workers=config.num_workers, drop_last=False,
                        # Not persistent: each epoch's workers copy the dataset after its set_epoch, so the
                        # flips, sizes, crops and colours change per epoch as they do with num_workers 0.
                        persistent_workers=False,
                        pin_memory=device.type == "cuda")  # page-locked: the non_blocking copies overlap
    steps_per_epoch = len(loader)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    cap_steps = total_steps
    global_step = start_epoch * steps_per_epoch
    use_amp = bool(config.amp and device.type == "cuda")
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    use_bf16 = bool(config.cpu_bf16 and device.type == "cpu")
    if use_bf16 and not cpu_supports_bf16():
        use_bf16 = False
        emit(TrainEvent("message", message="this CPU has no fast bfloat16 (AVX512-BF16/AMX): training in float32"))
    out = Path(config.out)
    history: list[dict[str, float]] = list(payload.get("extra", {}).get("history", [])) if payload else []
    cfg_dict = config.to_dict()
    last_good = str(out) if (payload is not None and Path(config.resume).resolve() == out.resolve()) else None
    run_start = time.monotonic()
    cpu_start = time.process_time()
    budget = StepBudget(config.time_budget_s, device, dist_info) if config.time_budget_s else None
    steps_this_run = 0
    # Training time across resumed runs, stored in every checkpoint (``compare`` reports it).
    earlier_seconds = float(payload.get("extra", {}).get("train_seconds", 0.0)) if payload else 0.0

    def save(epoch: int, extra: dict | None = None) -> str | None:
        if not dist_info.is_main:
            return None
        save_checkpoint(out, model=model, config=cfg_dict, class_names=class_names, split=split, epoch=epoch,
                        optimizer_state=optimizer.state_dict(),
                        extra={"history": history, "train_seconds": round(earlier_seconds + time.monotonic() - t0, 2),
                               "train_cpu_seconds": round(time.process_time() - cpu_start, 1),
                               **(extra or {})})
        emit(TrainEvent("checkpoint", epoch=epoch, epochs=config.epochs, checkpoint=str(out),
                        elapsed_s=time.monotonic() - t0))
        return str(out)

    if dist_info.is_main:
        run_log.history = history
        run_log.start(out, {"config": cfg_dict, "generation": config.generation, "backbone": config.backbone,
                            "device": str(device), "amp": use_amp, "bf16": use_bf16,
                            "steps_per_epoch": steps_per_epoch, "world_size": dist_info.world_size,
                            "start_epoch": start_epoch, "started_at": started_at,
                            "class_names": list(class_names), "checkpoint": str(out)})
    emit(TrainEvent("start", epoch=start_epoch + 1, epochs=config.epochs, steps_per_epoch=steps_per_epoch,
                    global_step=global_step, total_steps=total_steps,
                    message=f"{len(dataset)} images, {len(class_names)} classes, device {device}"
                            + (f", {dist_info.world_size} processes" if dist_info.enabled else "")))
    status, message = "completed", ""
    epoch = start_epoch
    done_epochs = start_epoch
    for epoch in range(start_epoch + 1, config.epochs + 1):
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        else:
            sampler.generator.manual_seed(config.seed * 1000 + epoch)
        dataset.set_epoch(epoch)
        sums: dict[str, float] = {}
        n = 0
        for step, (images, targets) in enumerate(loader, start=1):
            if cancel_requested(cancel, dist_info, device):
                status = "cancelled"
                break
            if global_step >= total_steps:  # max_steps, or the time budget's plan
                break
            images, targets = _to_device(images, targets, device)
            lr = lr_at(config, global_step, total_steps)
            for g in optimizer.param_groups:
                g["lr"] = lr * g.get("lr_scale", 1.0)
            with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp), \
                    torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=use_bf16):
                losses = net(images, targets)
            bad = check_finite(losses, dist_info)
            if bad is not None:
                status = "diverged"
                value = float(losses[bad].detach()) if bad in losses else float("nan")
                message = (f"training stopped: loss '{bad}' became {value:.4g} "
                           f"at epoch {epoch}, step {step}; "
                           + (f"the last good checkpoint ({last_good}) is kept" if last_good else
                              "no checkpoint had been written yet")
                           + "; try a lower --lr")
                break
            total = sum(losses.values())
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(total).backward()
                scaler.unscale_(optimizer)
                if config.grad_clip:
                    torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
                scaler.step(optimizer)
                scaler.update()
            else:
                total.backward()
                if config.grad_clip:
                    torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
                optimizer.step()
            global_step += 1
            steps_this_run += 1
            vals = {k: float(v.detach()) for k, v in losses.items()}
            vals["total"] = float(total.detach())
            for k, v in vals.items():
                sums[k] = sums.get(k, 0.0) + v
            n += 1
            run_log.step(global_step, epoch, lr, vals)
            if budget is not None and steps_this_run % BUDGET_REPLAN == 0:
                first = not budget.planned
                total_steps = budget.plan(global_step, steps_this_run, cap_steps, device)
                if first:
                    emit(TrainEvent("message", message=(
                        f"time budget {budget.seconds:.0f} s ({'CPU time per thread' if budget.cpu else 'wall time'}): "
                        f"{budget.used() / steps_this_run:.2f} s per step so far, so {total_steps} steps "
                        f"(~{total_steps / steps_per_epoch:.1f} epochs"
                        + (f", capped by --epochs {config.epochs}" if total_steps >= cap_steps else "")
                        + "); re-planned as the cost changes")))
            elapsed = time.monotonic() - run_start
            eta = elapsed / steps_this_run * max(0, total_steps - global_step)
            emit(TrainEvent("step", epoch=epoch, epochs=config.epochs, step=step, steps_per_epoch=steps_per_epoch,
                            global_step=global_step, total_steps=total_steps, losses=vals, lr=lr,
                            elapsed_s=time.monotonic() - t0, eta_s=eta))
        if status == "diverged":
            break
        if n:
            history.append({k: v / n for k, v in sums.items()})
        if status == "cancelled":
            # Keep what was learnt; the epoch counter stays at the last complete epoch so resume redoes it.
            last_good = save(done_epochs, {"cancelled_in_epoch": epoch, "steps_done": n}) or last_good
            message = f"cancelled during epoch {epoch}; weights so far saved to {out}"
            break
        done_epochs = epoch
        if val_indices and history:
            t_val = time.monotonic()
            metrics = _validate(model, source, val_indices, class_names, cancel)
            history[-1]["val_mAP"] = metrics["mAP"]
            emit(TrainEvent("validation", epoch=epoch, epochs=config.epochs, global_step=global_step,
                            total_steps=total_steps, metrics=metrics, elapsed_s=time.monotonic() - t0,
                            message=f"validation mAP@0.5 {metrics['mAP']:.3f} on {len(val_indices)} "
                                    f"'{config.val_split}' images ({time.monotonic() - t_val:.1f} s)"))
        if config.val_images > 0:
            barrier(dist_info)  # the other ranks wait while rank 0 validates
        run_log.epochs = done_epochs
        last_good = save(epoch) or last_good
        emit(TrainEvent("epoch", epoch=epoch, epochs=config.epochs, global_step=global_step,
                        total_steps=total_steps, losses=history[-1] if history else {},
                        elapsed_s=time.monotonic() - t0))
        if global_step >= total_steps:
            break
    if status == "completed" and hasattr(model, "fit_classifiers"):
        fit_classifiers(model, dataset, emit)
        last_good = save(done_epochs) or last_good
    if status == "completed" and getattr(model, "calibrator", None) is not None:
        try:  # every rank fits its share of the images; the sums are added up (training_finish.py)
            fit_calibration(model, dataset, emit, cancel, dist_info)
        except InterruptedError:  # stopped here: the trained model stays, uncalibrated
            emit(TrainEvent("message", message="score calibration stopped: the checkpoint keeps the prototypes "
                                               "it had before this step (none for a new model)"))
        else:
            last_good = save(done_epochs) or last_good
    if status == "completed":
        message = f"trained {done_epochs} epochs; checkpoint {out}"
        if budget is not None and total_steps < cap_steps:
            message = (f"trained {global_step} steps ({global_step / steps_per_epoch:.1f} epochs), what the "
                       f"{budget.seconds:.0f}-s time budget bought; checkpoint {out}")
    if dist_info.is_main:
        run_log.write({"status": status, "message": message, "epochs": done_epochs, "history": history,
                       "elapsed_s": round(time.monotonic() - t0, 1), "global_step": global_step,
                       "train_seconds": round(earlier_seconds + time.monotonic() - t0, 2),
                       "train_cpu_seconds": round(time.process_time() - cpu_start, 1)})
        run_log.started = False  # written: an error after this point is not the run's
    barrier(dist_info)
    emit(TrainEvent("end", epoch=done_epochs, epochs=config.epochs, global_step=global_step,
                    total_steps=total_steps, message=message, elapsed_s=time.monotonic() - t0,
                    checkpoint=last_good))
    if dist_info.enabled:
        import torch.distributed as dist
        dist.destroy_process_group()
    return TrainResult(status, done_epochs, last_good, message, time.monotonic() - t0, history)


def config_from_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The training config stored in a checkpoint (for the GUI's "continue training" and for resume)."""
    return dict(load_checkpoint(path).get("config") or {})
