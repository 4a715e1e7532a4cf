"""Headless detection commands: ``detect`` and ``evaluate`` (``synth`` is app/cli/synth.py).

This module parses arguments, reads files and prints; every computation lives in ``models`` (drawing in
``models.data.synthetic``, splits in ``models.data.splits``, ground truth in ``models.data.training_data``, AP
in ``models.detection.evaluation``, the detector behind ``models.detection.checkpoints.load_detector``).
"""

from __future__ import annotations

import argparse
import json
import sys

from app.cli.threads import add_threads_option, apply_threads

# ------------------------------------------------------------------------------------------- helpers


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated pixel sizes, got {text!r}") from None
    if not sizes and not text.strip():
        return ()  # '': the model's own size alone (switches off a checkpoint's multi-scale testing)
    if not sizes or min(sizes) < 32:
        raise argparse.ArgumentTypeError(f"test sizes are shorter sides of at least 32 pixels, got {text!r}")
    return sizes


def _size_range(text: str) -> tuple[float, float]:
    from models.detection.detectors.base import checked_size_range

    parts = text.split(",")
    try:
        values = [float(v) for v in parts]
    except ValueError:
        values = []
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f"expected LO,HI in pixels, got {text!r}")
    try:
        return checked_size_range(values)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _share(text: str) -> float:
    """A number in [0, 1] (for --test-glimpse)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text}")
    return value


def _add_test_sizes(p: argparse.ArgumentParser) -> None:
    p.add_argument("--test-sizes", type=_sizes, default=None, metavar="S1,S2,...",
                   help="multi-scale testing: run at each shorter side and merge (--test-merge) "
                        "(default: the checkpoint's own, usually its training size alone; '' : that size alone)")
    p.add_argument("--test-flip", dest="test_flip", action="store_true", default=None,
                   help="also run every test size on the mirrored image and merge (test-time augmentation; "
                        "default: the checkpoint's input.test_flip)")
    p.add_argument("--test-merge", choices=("nms", "vote", "average"), default=None,
                   help="how the test passes' detections are merged: nms; vote (the same NMS, then each kept "
                        "box moved to the score-weighted mean of the boxes it overlaps); average (vote, and "
                        "each score the mean over the passes); default: the checkpoint's input.test_merge")
    p.add_argument("--no-test-flip", dest="test_flip", action="store_false",
                   help="do not test mirrored even where the checkpoint says so")
    p.add_argument("--test-turns", action=argparse.BooleanOptionalAction, default=None,
                   help="classification + localisation: average the class and the box over the 8 flips and "
                        "quarter turns of the input (default: the checkpoint's cls_loc_head.test_turns)")
    p.add_argument("--test-glimpse", type=_share, default=None, metavar="SHARE",
                   help="classification + localisation: answer from a second look at a window around the first "
                        "box, which fills SHARE of its side (0: one look; default: the checkpoint's "
                        "cls_loc_head.test_glimpse)")
    p.add_argument("--test-range", type=_size_range, default=None, metavar="LO,HI",
                   help="with several --test-sizes: each size reports only objects whose square-root area, "
                        "in that size's input pixels, is in [LO, HI) — the smallest size keeps everything "
                        "above LO, the largest everything below HI (SNIP's valid ranges)")


def _apply_test_options(detector, args: argparse.Namespace) -> None:  # noqa: ANN001 - a Detector
    if hasattr(detector, "set_test_augmentation"):  # through the config: the model summary shows what ran
        from models.detection.config import ConfigError

        try:
            detector.set_test_augmentation(test_sizes=None if args.test_sizes is None else list(args.test_sizes),
                                           test_flip=args.test_flip, test_merge=getattr(args, "test_merge", None),
                                           test_size_range=args.test_range)
        except ConfigError as exc:
            raise SystemExit(f"error: {exc}") from None
    else:
        if args.test_sizes is not None:
            detector.test_sizes = tuple(args.test_sizes)
        if args.test_flip is not None:
            detector.test_flip = bool(args.test_flip)
        if args.test_range is not None:
            detector.test_size_range = args.test_range
    for option, kind in (("test_turns", bool), ("test_glimpse", float)):  # classification + localisation's own
        value = getattr(args, option, None)
        if value is None:
            continue
        if hasattr(detector, option):
            setattr(detector, option, kind(value))
        else:
            print(f"note: --{option.replace('_', '-')} applies to classification + localisation models; this "
                  f"{getattr(detector, 'generation', 'detector')} model ignores it", file=sys.stderr)


def _load_model(path: str, device: str, prog: str):  # noqa: ANN202 - a Detector, imported lazily
    """The detector in a checkpoint, or None after printing why not (missing, corrupt, foreign file)."""
    try:
        from models.detection.checkpoints import CheckpointError, load_detector
    except ImportError as exc:
        print(f"{prog}: checkpoints cannot be loaded in this build ({exc})", file=sys.stderr)
        return None
    try:
        return load_detector(path, device=device)
    except (CheckpointError, RuntimeError, FileNotFoundError, OSError, ValueError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return None


def _open_source(data: str, images: str | None, prog: str):  # noqa: ANN202 - DatasetSource
    from models.data.annotations import AnnotationError
    from models.data.datasets import open_dataset

    try:
        return open_dataset(data, image_dir=images)
    except (FileNotFoundError, NotADirectoryError, AnnotationError, OSError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return None


def _dumps(doc: object, one_line_items: bool = False) -> str:
    """JSON text; ``one_line_items`` puts each image of ``{"images": [...]}`` on one line (diffable, compact)."""
    if one_line_items and isinstance(doc, dict) and list(doc) == ["images"]:
        body = ",\n  ".join(json.dumps(rec, ensure_ascii=False) for rec in doc["images"])
        return '{"images": [\n  ' + body + "\n]}" if body else '{"images": []}'
    if isinstance(doc, list):
        return "[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in doc) + "\n]" if doc else "[]"
    return json.dumps(doc, indent=1, ensure_ascii=False)


def _write_json(path: str, doc: object, one_line_items: bool = False) -> None:
    from pathlib import Path

    from models.data.annotations.atomic import atomic_write_text

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, _dumps(doc, one_line_items) + "\n")


def _say(problems: list[str], prog: str, limit: int = 10) -> None:
    for p in problems[:limit]:
        print(f"{prog}: {p}", file=sys.stderr)
    if len(problems) > limit:
        print(f"{prog}: … and {len(problems) - limit} more", file=sys.stderr)


# -------------------------------------------------------------------------------------------- detect


def _detect_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python main.py detect",
        description="Run a trained detector on images and write the detections as JSON "
                    "(boxes [x1, y1, x2, y2] in displayed pixels, EXIF orientation applied).")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files or folders (searched recursively)")
    p.add_argument("--model", required=True, help="checkpoint written by 'train'")
    p.add_argument("--data", help="a dataset (VOC root, COCO JSON, YOLO folder, folder) instead of IMAGE…")
    p.add_argument("--split", help="with --data: only this split (e.g. test); default every image")
    p.add_argument("--images", dest="image_dir", help="with a COCO JSON: the folder holding its images")
    p.add_argument("--json", help="output file (default: print to stdout)")
    p.add_argument("--coco-results", help="also write COCO results ([{image_id, category_id, bbox, score}]); "
                                          "needs --data with a COCO dataset")
    p.add_argument("--score-threshold", type=float, default=0.05, help="drop detections below (default 0.05)")
    _add_test_sizes(p)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
    add_threads_option(p)
    return p


def run_detect(argv: list[str]) -> int:
    prog = "detect"
    args = _detect_parser().parse_args(argv)
    apply_threads(args.threads)
    from pathlib import Path

    from app.cli.progress import count_bar, show_progress
    from models.data.datasets import scan_images
    from models.data.io import ImageError, is_image_file, read_image
    from models.data.splits import dataset_splits, split_indices
    from models.detection.detection_files import coco_results, detection_record, detections_document
    from models.detection.evaluation import detect_image

    if bool(args.images) == bool(args.data):
        print(f"{prog}: give image files/folders or --data DATASET (one of the two)", file=sys.stderr)
        return 2
    # (path, dataset name, COCO image id) per image to run.
    jobs: list[tuple[Path, str | None, int | None]] = []
    category_ids: dict[str, int] = {}
    problems: list[str] = []
    if args.data:
        source = _open_source(args.data, args.image_dir, prog)
        if source is None:
            return 2
        indices = list(range(len(source.entries)))
        if args.split:
            try:
                indices = split_indices(dataset_splits(source), args.split)
            except KeyError as exc:
                print(f"{prog}: {exc.args[0]}", file=sys.stderr)
                return 2
        jobs = [(source.entries[i].path, source.entries[i].name, source.entries[i].coco_id) for i in indices]
        if source.kind == "coco":
            ds = source.store.dataset
            category_ids = dict(zip(ds.class_names, ds.category_ids, strict=True))
        problems += source.problems
    else:
        for item in args.images:
            p = Path(item)
            if p.is_dir():
                found = scan_images(p, problems)
                if not found:
                    problems.append(f"{p}: no images in this folder")
                jobs += [(f, None, None) for f in found]
            else:
                if p.exists() and not is_image_file(p):
                    problems.append(f"{p}: not an image file name; trying anyway")
                jobs.append((p, None, None))
    if args.coco_results and not category_ids:
        print(f"{prog}: --coco-results needs --data with a COCO dataset (its image and category ids)",
              file=sys.stderr)
        return 2
    detector = _load_model(args.model, args.device, prog)
    if detector is None:
        return 2
    _apply_test_options(detector, args)
    records: list[dict] = []
    coco: list[dict] = []
    failed = 0
    n_boxes = 0
    unknown_classes: set[str] = set()
    bar = count_bar(prog, len(jobs), "img", show_progress())
    for path, name, coco_id in jobs:
        bar.update(1)
        extra = {}
        if name is not None:
            extra["name"] = name
        if coco_id is not None:
            extra["image_id"] = coco_id
        try:
            img = read_image(path)
        except (ImageError, OSError) as exc:
            failed += 1
            records.append({"file": str(path), **extra, "error": str(exc)})
            bar.write(f"{prog}: {exc}", file=sys.stderr)
            continue
        det = detect_image(detector, img.pixels, args.score_threshold, img.scale)
        n_boxes += len(det.labels)
        records.append(detection_record(str(path), img.width, img.height, det, **extra))
        if args.coco_results and coco_id is not None:
            coco += coco_results(coco_id, det, category_ids)
            unknown_classes.update(n for n in det.labels if n not in category_ids)
    bar.close()
    _say(problems, prog)
    if unknown_classes:
        print(f"{prog}: classes {sorted(unknown_classes)} are not categories of the dataset; left out of "
              "the COCO results", file=sys.stderr)
    doc = detections_document(records)
    try:
        if args.json:
            _write_json(args.json, doc, one_line_items=True)
        else:
            print(_dumps(doc, one_line_items=True))
        if args.coco_results:
            _write_json(args.coco_results, coco)
    except OSError as exc:
        print(f"{prog}: cannot write output: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if args.json:
        print(f"{len(jobs) - failed} images, {n_boxes} detections → {args.json}"
              + (f"; {failed} could not be read" if failed else ""))
    return 1 if failed or not jobs else 0


# ------------------------------------------------------------------------------------------ evaluate


def _evaluate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python main.py evaluate",
        description="PASCAL VOC AP per class and mAP (IoU 0.5), with COCO AP@[.5:.95] beside it, of a "
                    "checkpoint on a dataset split or of a detections file (no images needed then).")
    p.add_argument("--data", required=True, help="dataset with ground truth (VOC root, COCO JSON, YOLO, folder)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="checkpoint to run on the split's images")
    src.add_argument("--detections", help="a 'detect' JSON, or COCO results for a COCO dataset")
    p.add_argument("--split", help="split to evaluate (default: 'test' with --model; with --detections, "
                                   "the images in the file)")
    p.add_argument("--images", dest="image_dir", help="with a COCO JSON: the folder holding its images")
    p.add_argument("--json", help="write {mAP, AP: {class: AP}, coco_AP, …} here")
    p.add_argument("--score-threshold", type=float, default=0.05, help="with --model (default 0.05)")
    _add_test_sizes(p)
    p.add_argument("--iou", type=float, default=0.5, help="IoU for a true positive (default 0.5)")
    p.add_argument("--11-point", dest="eleven", action="store_true", help="VOC2007 11-point AP")
    p.add_argument("--no-coco", dest="coco", action="store_false",
                   help="skip COCO AP@[.5:.95] (pycocotools takes seconds on large detection files)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split for a dataset without one")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
    add_threads_option(p)
    return p


def format_table(result) -> str:  # noqa: ANN001 - models.detection.evaluation.EvaluationResult
    """The per-class table the command prints."""
    width = max([len("class")] + [len(c) for c in result.AP])
    lines = [f"{'class':<{width}}  {'objects':>7}  {'difficult':>9}  {'detections':>10}  {'AP':>6}"]
    for c, ap in result.AP.items():
        shown = "  n/a" if ap != ap else f"{ap:.4f}"
        lines.append(f"{c:<{width}}  {result.n_ground_truth[c]:>7}  {result.n_difficult[c]:>9}  "
                     f"{result.n_detections[c]:>10}  {shown:>6}")
    n = len(result.classes_evaluated)
    lines.append(f"mAP@{result.iou_threshold:g} ({result.interpolation}, {n} classes, "
                 f"{result.n_images} images): {result.mAP:.4f}")
    if result.coco_AP is not None:
        lines.append(f"COCO AP@[.5:.95]: {result.coco_AP:.4f}   AP50: {result.coco_AP50:.4f}   "
                     f"AP75: {result.coco_AP75:.4f}")
    return "\n".join(lines)


def _from_detections_file(args: argparse.Namespace, source, prog: str):  # noqa: ANN001, ANN202
    """(ground truths, detections, sizes, class names, evaluated indices) for --detections, or None."""
    import numpy as np

    from models.data.annotations import AnnotationError
    from models.data.io import ImageError
    from models.data.splits import dataset_splits, split_indices
    from models.data.training_data import class_names_of, load_targets
    from models.detection.detection_files import (
        detections_from_coco_results,
        detections_from_record,
        load_detection_file,
        match_records,
    )
    from models.detection.evaluation import ImageDetections, ImageGroundTruth

    try:
        kind, doc = load_detection_file(args.detections)
    except ValueError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return None
    split = None
    if args.split:
        try:
            split = split_indices(dataset_splits(source, seed=args.seed), args.split)
        except KeyError as exc:
            print(f"{prog}: {exc.args[0]}", file=sys.stderr)
            return None
    names = class_names_of(source)
    problems: list[str] = []
    dets_by_index: dict[int, ImageDetections] = {}
    if kind == "coco":
        if source.kind != "coco":
            print(f"{prog}: COCO results need a COCO dataset (--data instances.json)", file=sys.stderr)
            return None
        ds = source.store.dataset
        indices = split if split is not None else [i for i, e in enumerate(source.entries) if e.coco_id is not None]
        ids = [source.entries[i].coco_id for i in indices]
        dets, msgs = detections_from_coco_results(doc, ids, dict(zip(ds.category_ids, ds.class_names, strict=True)))
        problems += msgs
        dets_by_index = dict(zip(indices, dets, strict=True))
    else:
        matched, unmatched = match_records(doc["images"], source)
        if unmatched:
            problems.append(f"{len(unmatched)} image(s) in {args.detections} are not in the dataset, e.g. "
                            f"{unmatched[0]}; ignored")
        if split is not None:
            missing = [i for i in split if i not in matched]
            if missing:
                problems.append(f"{len(missing)} image(s) of split '{args.split}' have no entry in the file; "
                                "counted as having no detections")
            indices = list(split)
        else:
            indices = sorted(matched)
        for i in indices:
            rec = matched.get(i)
            try:
                dets_by_index[i] = detections_from_record(rec) if rec else ImageDetections(
                    np.zeros((0, 4)), np.zeros(0), [])
            except ValueError as exc:
                problems.append(str(exc))
                dets_by_index[i] = ImageDetections(np.zeros((0, 4)), np.zeros(0), [])
    gts, dets, sizes, kept = [], [], [], []
    for i in indices:
        try:
            t, msgs = load_targets(source, i, names, need_image_info=False)
        except (AnnotationError, ImageError) as exc:
            problems.append(f"{source.entries[i].name}: {exc}; skipped")
            continue
        problems += msgs
        gts.append(ImageGroundTruth(t.boxes, t.names, t.difficult, t.crowd))
        dets.append(dets_by_index[i])
        sizes.append((t.width, t.height))
        kept.append(i)
    return gts, dets, sizes, names, kept, problems


def _training_overlap(detector, source, indices: list[int]) -> int:  # noqa: ANN001
    """How many of the images to evaluate the checkpoint was trained on (models.detection.training_overlap)."""
    from models.detection.training_overlap import training_overlap

    return training_overlap(getattr(detector, "checkpoint_info", None), source.root,
                            [source.entries[i] for i in indices])


def run_evaluate(argv: list[str]) -> int:
    prog = "evaluate"
    args = _evaluate_parser().parse_args(argv)
    apply_threads(args.threads)
    from app.cli.progress import FractionBar, show_progress
    from models.data.splits import dataset_splits, split_indices
    from models.detection.evaluation import evaluate_detections, evaluate_detector

    source = _open_source(args.data, args.image_dir, prog)
    if source is None:
        return 2
    if args.model:
        split_name = args.split or "test"
        try:
            indices = split_indices(dataset_splits(source, seed=args.seed), split_name)
        except KeyError as exc:
            print(f"{prog}: {exc.args[0]}", file=sys.stderr)
            return 2
        detector = _load_model(args.model, args.device, prog)
        if detector is None:
            return 2
        _apply_test_options(detector, args)
        trained = _training_overlap(detector, source, indices)
        if trained:
            print(f"{prog}: warning: {trained} of the {len(indices)} images of split '{split_name}' were used "
                  "to train this model; the score will be optimistic", file=sys.stderr)
        with FractionBar(prog, show_progress()) as progress:
            result, problems = evaluate_detector(detector, source, indices, None, args.score_threshold, args.iou,
                                                 args.eleven, progress=progress, coco=args.coco)
        problems = source.problems + problems
    else:
        split_name = args.split
        prepared = _from_detections_file(args, source, prog)
        if prepared is None:
            return 2
        gts, dets, sizes, names, _, problems = prepared
        problems = source.problems + problems
        result = evaluate_detections(gts, dets, names, args.iou, args.eleven, coco=args.coco, image_sizes=sizes)
    _say(problems, prog)
    if result.n_images == 0:
        print(f"{prog}: no image could be evaluated", file=sys.stderr)
        return 1
    print(format_table(result))
    one_box = None
    if args.model and getattr(detector, "generation", "") == "cls-loc":
        from models.detection.cls_loc_evaluation import evaluate_cls_loc_model, format_cls_loc

        one_box, _ = evaluate_cls_loc_model(detector, source, indices)
        print(format_cls_loc(one_box))
    if args.json:
        doc = result.to_dict()
        if one_box is not None:
            doc["cls_loc"] = one_box.as_dict()
        doc["split"] = split_name
        doc["data"] = str(args.data)
        try:
            _write_json(args.json, doc)
        except OSError as exc:
            print(f"{prog}: cannot write {args.json}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    return 0


def run(command: str, argv: list[str]) -> int:
    """Dispatch ``detect`` or ``evaluate``; returns the process exit code."""
    handlers = {"detect": run_detect, "evaluate": run_evaluate}
    if command not in handlers:
        print(f"unknown command {command!r}", file=sys.stderr)
        return 2
    return handlers[command](argv)
