"""Benchmark: Faster R-CNN fine-tuned from the ImageNet EfficientNet-Lite0 on a few dozen photos, under k-fold
cross-validation, against the same recipe from scratch (issue 14).

One class of a dataset (default: ``person`` of coco_tiny, 80 images, 49 with a person); images without that
class stay in, as negatives. Folds are made from the dataset deterministically by ``--seed``, stratified by
"has the class" (:func:`models.data.folds.k_folds`). Each fold trains through ``models.detection.training``
on the other folds' images and is scored on its own: VOC AP@0.5 of the class (all-point), crowd regions scored
as COCO scores them (a detection half inside one is not scored; rows since 2026-12-01 21:20 UTC say so in
``scoring``, older rows treated a crowd box as VOC's difficult: ``models.detection.evaluation``).
Prints per fold and the mean ± standard deviation over folds.

The recipe is the "fine-tune on my photos" preset (``finetune-photos-cpu``, models/detection/presets.py, whose
description says why each setting; bench/README.md has the history), chosen by principle, not by these folds'
scores: shorter side 512 (longer ≤ 853); the ImageNet EfficientNet-Lite0 at stride 16, its batch norm and
first three stages frozen, the rest at a tenth of the head's learning rate; anchors 32-512 px at 1:2, 1:1, 2:1,
also across the border; RoIAlign and two 512-wide layers; AdamW 1e-3, 50 warm-up steps and a cosine decay over
24 epochs (1,536 steps of one image, 13-16 CPU-min); flips, scale jitter (448-576), a four-image mosaic on half
the items, zoom-out on half the others and copy-paste on half the non-mosaic ones; crowd boxes ignored in
training as in scoring; tested at 512 and 640 px, each mirrored, the passes averaged, the scores calibrated by
DeFRCN's prototypes. ``--scratch`` trains the same recipe from random weights (nothing frozen, ordinary batch
norm, the backbone at the full learning rate: a random backbone has nothing to keep).

    python bench/finetune_cv.py --threads 1 --lock /tmp/heavy2.lock             # pretrained, 5 folds
    python bench/finetune_cv.py --threads 1 --lock /tmp/heavy2.lock --scratch   # from scratch
    python bench/finetune_cv.py --folds-only 0,1 ...                             # some folds (others later)
    python bench/finetune_cv.py --set roi_head.positive_sampling=per_object ...  # a probe of one setting
    python bench/finetune_cv.py --summary RESULTS.jsonl                          # mean ± spread of saved rows
    python bench/finetune_cv.py --rescore OLD.jsonl --results NEW.jsonl          # saved folds, new test settings
    python bench/finetune_cv.py --evaluate 0=F0.pt --evaluate 1=F1.pt ... --test-sizes 512,640 --test-flip \
        --test-merge average --results NEW.jsonl      # fold checkpoints from anywhere, test-time augmentation
    python bench/finetune_cv.py --evaluate 0=F0.pt ... --calibrate prototype      # old folds, calibrated

``--lock FILE`` takes an exclusive ``flock`` on FILE around each fold only (training + scoring), so other
short jobs sharing that lane get the CPU between folds. ``--max-minutes`` caps each fold's training, counted
in this process's CPU time: with ``--threads 1`` that is the wall time the fold takes on a quiet machine,
while the wall time on a shared one depends on everyone else (both are reported). At the cap the run stops
after its current step and the weights so far are scored (the row says so).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: The recipe: the "fine-tune on my photos" preset (models/detection/presets.py).
PRESET = "finetune-photos-cpu"
#: How a row's AP50 was scored (older rows lack it: crowd boxes as VOC's difficult, IoU-matched).
SCORING = "VOC all-point AP, crowd regions by COCO's rule"


@contextlib.contextmanager
def lane_lock(path: str | None) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (no-op without one); released when the fold is done."""
    if not path:
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def folds_of(data: str, cls: str, k: int, seed: int) -> tuple[object, list[list[int]], list[bool]]:
    """The opened dataset, its k folds (test indices) stratified by "has ``cls``", and that flag per image."""
    from models.data.datasets import open_dataset
    from models.data.folds import k_folds

    source = open_dataset(data)
    has = []
    for entry in source.entries:
        ann = source.store.load(entry, None)
        has.append(bool(ann is not None and any(o.name == cls and not o.crowd for o in ann.objects)))
    return source, k_folds(len(source.entries), k, seed, strata=has), has


def run_fold(args: argparse.Namespace, source: object, folds: list[list[int]], fold: int) -> dict:
    """Train on every fold but ``fold``, score ``args.cls`` AP@0.5 on ``fold``; one result row."""
    import torch

    from models.data.folds import train_indices
    from models.detection.checkpoints import load_detector
    from models.detection.evaluation import evaluate_detector
    from models.detection.presets import train_config_from_preset
    from models.detection.training import train

    tag = "scratch" if args.scratch else "pretrained"
    out = Path(args.out_dir) / f"{tag}_seed{args.seed}_fold{fold}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.unlink()  # a fresh run, never a silent resume of an older one
    overrides: dict = {"classes": [args.cls], "train_indices": train_indices(folds, fold),
                       "split": f"cv{len(folds)}-seed{args.seed}-fold{fold}", "seed": args.seed, "device": "cpu",
                       "threads": args.threads}
    if args.scratch:
        overrides.update({"backbone.weights": "none", "backbone_lr_scale": 1.0})
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    overrides.update(args.settings)
    config = train_config_from_preset(PRESET, args.data, str(out), overrides)
    cancel = threading.Event()
    budget = args.max_minutes * 60.0
    state = {"last": 0.0}
    cpu0 = time.process_time()

    def watch(ev) -> None:  # noqa: ANN001 - TrainEvent
        if ev.kind == "step":
            if time.process_time() - cpu0 > budget:
                cancel.set()
            if ev.elapsed_s - state["last"] >= 60 or ev.global_step == ev.total_steps:
                state["last"] = ev.elapsed_s
                loss = ", ".join(f"{k} {v:.3f}" for k, v in ev.losses.items())
                print(f"  fold {fold}: step {ev.global_step}/{ev.total_steps} ({ev.elapsed_s:.0f} s wall, "
                      f"{time.process_time() - cpu0:.0f} s CPU) {loss}",
                      flush=True)
        elif ev.kind == "message":
            print(f"  fold {fold}: {ev.message}", flush=True)

    t0 = time.monotonic()
    result = train(config, callbacks=watch, cancel=cancel)
    train_s = time.monotonic() - t0
    train_cpu_s = time.process_time() - cpu0
    if result.checkpoint is None:
        raise RuntimeError(f"fold {fold}: {result.message}")
    if args.threads:
        torch.set_num_threads(args.threads)
    t1 = time.monotonic()
    model = load_detector(result.checkpoint, device="cpu")
    res, _ = evaluate_detector(model, source, folds[fold], [args.cls])
    eval_s = time.monotonic() - t1
    ap = float(res.AP[args.cls])
    row = {"tag": tag, "seed": args.seed, "fold": fold, "folds": len(folds), "class": args.cls, "AP50": ap,
           "scoring": SCORING, **coco_scores(res, args.cls), "test_images": len(folds[fold]), "test_objects": int(res.n_ground_truth.get(args.cls, 0)),
           "detections": int(res.n_detections.get(args.cls, 0)), "status": result.status,
           "epochs_completed": result.epochs_completed, "train_s": round(train_s, 1),
           "train_cpu_s": round(train_cpu_s, 1), "eval_s": round(eval_s, 1),
           "preset": PRESET, "overrides": {k: v for k, v in overrides.items() if k != "train_indices"},
           "set": args.settings, "calibration": calibration_info(model), "machine": machine()}
    note = "" if result.status == "completed" else f" [{result.status} at the {args.max_minutes:g}-min cap]"
    print(f"{tag} fold {fold}: AP@0.5 {args.cls} {ap:.3f} on {row['test_images']} images "
          f"({row['test_objects']} objects), trained {train_cpu_s / 60:.1f} min CPU ({train_s / 60:.1f} min wall), "
          f"scored {eval_s:.0f} s{note}", flush=True)
    return row


#: What the cross-validation itself sets on every fold; ``--set`` may not change it (``--epochs`` is its option).
PROTOCOL_KEYS = ("classes", "train_indices", "split", "seed", "device", "threads", "epochs")


def parse_settings(items: list[str]) -> dict:
    """``--set part.field=VALUE`` items as preset overrides; a value is read as JSON where it parses
    (``24``, ``[448, 512]``, ``true``), else kept as text (``per_object``). A probe of one setting then
    needs no throw-away wrapper, and its rows record the setting (the summary keeps it apart). The settings
    the protocol fixes (:data:`PROTOCOL_KEYS`) are refused."""
    from models.detection.presets import parse_key_values

    try:
        out = parse_key_values(items, "--set", "part.field=VALUE")
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    for key in out:
        if key in PROTOCOL_KEYS:
            raise SystemExit(f"--set {key}: the cross-validation sets that itself"
                             + (" (use --epochs)" if key == "epochs" else ""))
    return out


def machine() -> dict:
    """The CPU and torch a row was measured with. The same code and seed gave the same fold score twice on
    one machine, but a fold need not reproduce on another: seed 0's fold 0 scored 0.434 in one session and
    0.328 in a later one with the same recipe, as if another seed had been drawn (other kernels round
    differently, and 1,536 steps grow that into another model). Rows that will be compared should say so."""
    import platform

    import torch

    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    return {"cpu": cpu or platform.processor(), "capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__}


def coco_scores(res: object, cls: str) -> dict:
    """pycocotools' AP@[.5:.95] and AP@0.5 of ``cls`` on the fold beside our VOC AP@0.5: COCO's own protocol
    (101-point interpolation, crowd boxes matched as ``iscrowd``), the figures a COCO detector is quoted with.
    The class's own, not ``coco_AP``: that averages over every class of the dataset's ground truth, which a
    one-class model scores 0 on."""
    return {"coco_AP": res.coco_AP_per_class.get(cls), "coco_AP50": res.coco_AP50_per_class.get(cls)}


#: Test-time settings of the RoI head that :func:`rescore_fold` takes from the preset (training never reads them).
TEST_SETTINGS = {"nms": "nms_threshold", "score_threshold": "score_threshold",
                 "detections_per_image": "detections_per_image"}


def rescore_fold(args: argparse.Namespace, source: object, folds: list[list[int]], prior: dict) -> dict:
    """Score a fold's saved checkpoint again with the preset's test-time settings (:data:`TEST_SETTINGS` and the
    test-time augmentation of :func:`test_options`), without training: for a change that only acts at test
    time (the detections' NMS, test-time augmentation), the folds trained before it need not be trained again. The row keeps ``prior``'s training figures and records the score
    it replaces."""
    from models.detection.checkpoints import load_detector
    from models.detection.evaluation import evaluate_detector

    fold = int(prior["fold"])
    ckpt = Path(args.out_dir) / f"{prior['tag']}_seed{prior['seed']}_fold{fold}.pt"
    if not ckpt.is_file():
        raise FileNotFoundError(f"fold {fold}: no checkpoint {ckpt} to rescore")
    model = load_detector(ckpt, device="cpu")
    changed, _ = apply_test_settings(model, args)
    t1 = time.monotonic()
    res, _ = evaluate_detector(model, source, folds[fold], [args.cls])
    ap = float(res.AP[args.cls])
    row = {**prior, "AP50": ap, "scoring": SCORING, **coco_scores(res, args.cls),
           "detections": int(res.n_detections.get(args.cls, 0)),
           "eval_s": round(time.monotonic() - t1, 1), "rescored": {"from_AP50": prior["AP50"], "changed": changed}}
    print(f"{prior['tag']} fold {fold}: AP@0.5 {args.cls} {ap:.3f} rescored (was {prior['AP50']:.3f}; "
          f"{', '.join(f'{k} {a} -> {b}' for k, (a, b) in changed.items()) or 'no test setting changed'})",
          flush=True)
    return row


def apply_test_settings(model: object, args: argparse.Namespace) -> tuple[dict, dict]:
    """Give a loaded fold model the preset's test-time settings: the RoI head's (:data:`TEST_SETTINGS`), the
    same NMS and cap for merging test passes, and the test-time augmentation of :func:`test_options`. Returns
    what changed (``"part.field" -> [before, after]``, for a rescored row) and the augmentation applied."""
    from models.detection.presets import get_preset

    head = get_preset(PRESET).model.roi_head
    changed = {}
    for field, attr in TEST_SETTINGS.items():
        value = getattr(head, field)
        if getattr(model.roi_heads, attr) != value:
            changed[f"roi_head.{field}"] = [getattr(model.roi_heads, attr), value]
            setattr(model.roi_heads, attr, value)
    model.merge_nms, model.merge_max_detections = head.nms, head.detections_per_image
    tta = test_options(args)
    before = {k: model.config()["input"][k] for k in tta}
    changed.update({f"input.{k}": [before[k], v] for k, v in tta.items() if before[k] != v})
    model.set_test_augmentation(**tta)
    return changed, tta


def test_options(args: argparse.Namespace) -> dict:
    """The test-time augmentation the command line asks for (``input`` part fields), over the preset's."""
    from models.detection.presets import get_preset

    inp = get_preset(PRESET).model.input
    sizes, flip, merge = (getattr(args, k, None) for k in ("test_sizes", "test_flip", "test_merge"))
    return {"test_sizes": list(inp.test_sizes) if sizes is None else [int(v) for v in sizes.split(",") if v],
            "test_flip": bool(inp.test_flip if flip is None else flip),
            "test_merge": inp.test_merge if merge is None else merge}


def calibrate_fold(model: object, args: argparse.Namespace, source: object, folds: list[list[int]],
                   fold: int) -> dict | None:
    """``--calibrate``: "prototype" fits the model's prototype calibration on the fold's training images
    (:func:`models.detection.score_calibration.fit_on_dataset`), "none" turns calibration off; None keeps the
    checkpoint's. Returns what the row records: the boxes per class and alpha, or None when not calibrated."""
    from models.data.folds import train_indices
    from models.detection.score_calibration import enable_calibration, fit_on_dataset

    choice = getattr(args, "calibrate", None)
    if choice == "none" and "calibrator" in model._modules:
        del model._modules["calibrator"]
    elif choice == "prototype":
        enable_calibration(model)
        counts, _ = fit_on_dataset(model, source, train_indices(folds, fold))
        return {"alpha": model.calibrator.alpha, "boxes": counts}
    return calibration_info(model)


def calibration_info(model: object) -> dict | None:
    """What a row records of the model's prototype calibration: alpha and the boxes per class, or None."""
    calibrator = model.fitted_calibrator()
    if calibrator is None:
        return None
    counts = calibrator.counts.tolist()
    return {"alpha": calibrator.alpha, "boxes": {n: int(c) for n, c in zip(model.class_names, counts, strict=True)}}


def evaluate_fold(args: argparse.Namespace, source: object, folds: list[list[int]], fold: int, ckpt: str) -> dict:
    """Score a saved fold checkpoint (any directory) on its fold, no training: the preset's test-time settings
    of the RoI head (:data:`TEST_SETTINGS`) and test-time augmentation (:func:`test_options`), with the
    command line's overrides. Checks that the checkpoint was trained on that fold's split. The row times the
    scoring (wall and this process's CPU) per image."""
    from models.detection.checkpoints import load_checkpoint, load_detector
    from models.detection.evaluation import evaluate_detector
    from models.detection.presets import get_preset

    payload = load_checkpoint(ckpt)
    split = (payload.get("config") or {}).get("split")
    want = f"cv{len(folds)}-seed{args.seed}-fold{fold}"
    if split != want:
        raise ValueError(f"{ckpt} was trained on split {split!r}, not {want!r}")
    weights = (payload["model_config"].get("backbone") or {}).get("weights")
    tag = "scratch" if weights == "none" else "pretrained"
    model = load_detector(ckpt, device="cpu")
    _, tta = apply_test_settings(model, args)
    calibration = calibrate_fold(model, args, source, folds, fold)
    head = get_preset(PRESET).model.roi_head
    t1, c1 = time.monotonic(), time.process_time()
    res, _ = evaluate_detector(model, source, folds[fold], [args.cls])
    eval_s, eval_cpu = time.monotonic() - t1, time.process_time() - c1
    ap = float(res.AP[args.cls])
    n = len(folds[fold])
    row = {"tag": tag, "seed": args.seed, "fold": fold, "folds": len(folds), "class": args.cls, "AP50": ap,
           "scoring": SCORING, **coco_scores(res, args.cls), "test_images": n, "test_objects": int(res.n_ground_truth.get(args.cls, 0)),
           "detections": int(res.n_detections.get(args.cls, 0)), "checkpoint": str(ckpt),
           "test": {**tta, "nms": head.nms, "calibration": calibration}, "eval_s": round(eval_s, 1),
           "eval_cpu_s": round(eval_cpu, 1),
           "eval_cpu_s_per_image": round(eval_cpu / max(1, n), 3), "train_s": 0.0, "train_cpu_s": 0.0,
           "evaluated_only": True}
    print(f"{tag} fold {fold}: AP@0.5 {args.cls} {ap:.3f} ({row['detections']} detections; test sizes "
          f"{tta['test_sizes'] or 'the model size'}, flip {tta['test_flip']}, merge {tta['test_merge']}); "
          f"{eval_cpu / max(1, n):.2f} CPU-s per image ({eval_s:.0f} s wall for {n})", flush=True)
    return row


#: What ``--scratch`` itself overrides (not a probe of the scratch recipe).
SCRATCH_KEYS = ("backbone.weights", "backbone_lr_scale")


def run_label(row: dict) -> str:
    """The row's recipe: its tag, and the ``--set`` settings of a probe (read from the row's overrides for
    rows written before they were recorded apart), so a probe's folds never pool with the preset's."""
    sets = row.get("set")
    if sets is None:
        skip = PROTOCOL_KEYS + (SCRATCH_KEYS if row["tag"] == "scratch" else ())
        sets = {k: v for k, v in (row.get("overrides") or {}).items() if k not in skip}
    return row["tag"] + "".join(f" {k}={json.dumps(v)}" for k, v in sorted(sets.items()))


def summarise(rows: list[dict]) -> str:
    """Mean ± standard deviation (and min-max) of AP@0.5 over folds, per recipe (:func:`run_label`) and seed;
    over all seeds where there are several."""
    lines = []
    by_recipe: dict[str, list[dict]] = {}
    for r in rows:
        by_recipe.setdefault(run_label(r), []).append(r)
    for key in sorted({(label, r["seed"]) for label, sel in by_recipe.items() for r in sel}):
        sel = sorted((r for r in by_recipe[key[0]] if r["seed"] == key[1]), key=lambda r: r["fold"])
        ap = np.array([r["AP50"] for r in sel])
        mins = np.array([r["train_cpu_s"] for r in sel]) / 60
        wall = np.array([r["train_s"] for r in sel]) / 60
        folds = sel[0]["folds"]
        per = " ".join(f"{r['AP50']:.3f}" for r in sel)
        lines.append(f"{key[0]:>10} seed {key[1]}: {len(sel)}/{folds} folds AP@0.5 {sel[0]['class']} "
                     f"{ap.mean():.3f} ± {ap.std(ddof=1) if len(ap) > 1 else 0.0:.3f} (sd; min {ap.min():.3f}, max "
                     f"{ap.max():.3f}) [{per}]; training {mins.mean():.1f} min CPU/fold (max {mins.max():.1f}; wall "
                     f"{wall.mean():.1f}, max {wall.max():.1f})")
        coco = [r.get("coco_AP") for r in sel]
        if all(v is not None for v in coco):
            lines.append(f"{'':>10} COCO AP@[.5:.95] {np.mean(coco):.3f}, COCO AP@0.5 "
                         f"{np.mean([r['coco_AP50'] for r in sel]):.3f} (pycocotools)")
    for tag, sel in sorted(by_recipe.items()):
        seeds = sorted({r["seed"] for r in sel})
        if len(seeds) > 1:  # repeated cross-validation: the mean over every fold of every seed
            ap = np.array([r["AP50"] for r in sel])
            means = [np.mean([r["AP50"] for r in sel if r["seed"] == s]) for s in seeds]
            lines.append(f"{tag:>10} over {len(sel)} folds of seeds {', '.join(map(str, seeds))}: AP@0.5 "
                         f"{ap.mean():.3f} ± {ap.std(ddof=1):.3f} (sd over folds; the seeds' means "
                         f"{' '.join(f'{m:.3f}' for m in means)})")
    if {"pretrained", "scratch"} <= set(by_recipe):  # the preset itself against its from-scratch twin, no probes
        pre = np.mean([r["AP50"] for r in by_recipe["pretrained"]])
        scr = np.mean([r["AP50"] for r in by_recipe["scratch"]])
        lines.append(f"pretrained / scratch: {pre / scr:.1f}×" if scr > 0 else "scratch AP is 0")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = next((d for d in (ROOT.parent / "shared" / "data" / "coco_tiny",
                                     ROOT.parents[1] / "shared" / "data" / "coco_tiny") if d.exists()),
                        ROOT.parent / "shared" / "data" / "coco_tiny")  # a worktree sits one level deeper
    ap.add_argument("--data", default=str(default_data))
    ap.add_argument("--class", dest="cls", default="person")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0, help="makes the folds and seeds each training")
    ap.add_argument("--folds-only", default=None, metavar="I,J", help="run only these folds (0-based)")
    ap.add_argument("--scratch", action="store_true", help="the same recipe from random weights")
    ap.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    ap.add_argument("--set", action="append", default=[], metavar="PART.FIELD=VALUE",
                    help="override one of the preset's settings for this run (repeat for several), e.g. "
                         "roi_head.positive_sampling=per_object; the rows record it")
    ap.add_argument("--max-minutes", type=float, default=20.0, help="cap on each fold's training time")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--lock", default=None, help="flock this file around each fold (a shared heavy-job lane)")
    ap.add_argument("--out-dir", default="/tmp/finetune_cv", help="checkpoints per fold go here")
    ap.add_argument("--results", default=None, help="append one JSON row per fold to this file")
    ap.add_argument("--summary", default=None, metavar="JSONL", help="only summarise the rows of this file")
    ap.add_argument("--rescore", default=None, metavar="JSONL",
                    help="no training: score again the checkpoints (in --out-dir) of these rows' folds with the "
                         "preset's test-time settings; new rows go to --results")
    ap.add_argument("--evaluate", action="append", default=[], metavar="FOLD=CKPT",
                    help="no training: score this saved checkpoint on its fold (repeat for several folds), with "
                         "the preset's test-time settings and the --test-* options; rows go to --results")
    ap.add_argument("--test-sizes", default=None, metavar="S1,S2",
                    help="with --evaluate: shorter sides to test at ('' : the model's own size alone)")
    ap.add_argument("--test-flip", action=argparse.BooleanOptionalAction, default=None,
                    help="with --evaluate: also test on the mirrored image")
    ap.add_argument("--test-merge", choices=("nms", "vote", "average"), default=None,
                    help="with --evaluate: how the passes' detections are merged")
    ap.add_argument("--calibrate", choices=("prototype", "none"), default=None,
                    help="with --evaluate: 'prototype' fits DeFRCN's prototype calibration on the fold's training "
                         "images first (what the preset's training now does at its end), 'none' scores without "
                         "it; default: the checkpoint's own")
    args = ap.parse_args(argv)
    args.settings = parse_settings(args.set)
    if args.settings and (args.rescore or args.evaluate):
        raise SystemExit("--set changes training; --rescore and --evaluate train nothing")
    if args.summary:
        rows = [json.loads(line) for line in Path(args.summary).read_text().splitlines() if line.strip()]
        print(summarise(rows))
        return 0
    if not Path(args.data).exists():
        print(f"no data at {args.data}", file=sys.stderr)
        return 2
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    source, folds, has = folds_of(args.data, args.cls, args.folds, args.seed)
    print(f"{len(has)} images, {sum(has)} with a {args.cls}; {len(folds)} folds of "
          f"{', '.join(str(len(f)) for f in folds)} test images (seed {args.seed})", flush=True)
    wanted = range(len(folds)) if args.folds_only is None else [int(v) for v in args.folds_only.split(",")]
    tag = "scratch" if args.scratch else "pretrained"
    priors: dict[int, dict] = {}
    if args.rescore:
        for line in Path(args.rescore).read_text().splitlines():
            r = json.loads(line) if line.strip() else None
            if r and r["tag"] == tag and r["seed"] == args.seed and r["folds"] == len(folds):
                priors[int(r["fold"])] = r  # the last row of a fold wins
        wanted = [f for f in wanted if f in priors]
    rows = []

    def record(row: dict) -> None:  # kept as each fold ends: a long run stopped halfway keeps its folds
        rows.append(row)
        if args.results:
            with open(args.results, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")

    if args.evaluate:
        for item in args.evaluate:
            fold_text, _, ckpt = item.partition("=")
            with lane_lock(args.lock):
                record(evaluate_fold(args, source, folds, int(fold_text), ckpt))
        print(summarise(rows))
        return 0
    for fold in wanted:
        with lane_lock(args.lock):
            record(rescore_fold(args, source, folds, priors[fold]) if args.rescore
                   else run_fold(args, source, folds, fold))
    print(summarise(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
