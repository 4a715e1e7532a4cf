"""``train`` with no preset and no model flags: settings chosen from the data, printed with their reasons.

Kept apart from ``app/cli/training.py`` (argument parsing and the progress bar) so the rule of when the
data decides stays in one place: a Faster R-CNN on the small backbone, started fresh (no ``--resume``), with
none of the flags that describe the model (``--anchor-sizes``, ``--fc-size``, ``--model-arg``,
``--min-size``, ``--max-size``, ``--train-sizes``) and no ``--preset``. Training flags given explicitly
(``--epochs``, ``--lr``, ``--optimizer``, ``--batch-size``, ...) still win over the chosen ones, field by field
(the caller lays the given flags over what this returns).
"""

from __future__ import annotations

import argparse
import os
import sys

#: argparse destinations of the flags that describe the model: any of them means the user chose the model.
MODEL_FLAGS = ("anchor_sizes", "fc_size", "min_size", "max_size", "train_sizes")


def wants_auto(args: argparse.Namespace) -> bool:
    """Whether the data should choose: see the module docstring (flags default to None: "not given")."""
    return (args.generation in (None, "faster-rcnn") and args.backbone in (None, "small") and not args.resume
            and not args.preset and not args.model_arg and all(getattr(args, f) is None for f in MODEL_FLAGS))


def auto_overrides(args: argparse.Namespace, given: dict, processes: int | None = None) -> dict:
    """Measure the training split and return the chosen settings as overrides (training fields and flat
    detector names), after printing each with its reason; ``given``: the flags the user gave (they win).
    ``processes``: the data-parallel processes the run will have (None: torchrun's ``WORLD_SIZE``, else 1);
    the rule sizes batch and epochs per process. Only rank 0 of a torchrun launch prints.

    Returns {} (after saying why) when the dataset gives nothing to choose from: the paper settings remain.
    """
    from app.cli.training import is_rank0
    from models.data.annotations import AnnotationError
    from models.data.datasets import open_dataset
    from models.detection.auto_settings import split_auto_settings

    split = args.split or "train"
    speak = is_rank0()  # under torchrun only rank 0 prints
    try:
        source = open_dataset(args.data, image_dir=args.images)
        # several processes: each has its own core and budget, so the rule sizes the run per process
        if processes is None:
            processes = int(os.environ.get("WORLD_SIZE", "1") or 1)
        chosen, stats = split_auto_settings(source, split, seed=args.seed or 0, processes=processes)
    except (FileNotFoundError, NotADirectoryError, AnnotationError, KeyError, ValueError, OSError) as exc:
        if speak:
            print(f"train: settings from the data not possible ({exc}); using the paper settings", file=sys.stderr)
        return {}
    out = chosen.overrides()
    if not speak:
        return out
    print(f"train: no preset and no model flags: settings chosen from the {stats.n_boxes} boxes of the "
          f"{stats.n_images} '{split}' images (give --preset or any model flag to choose yourself):",
          file=sys.stderr)
    for line in chosen.lines():
        print(f"  {line}", file=sys.stderr)
    kept = sorted(k for k in given if k in out)
    if kept:
        print(f"  (yours kept: {', '.join(f'{k} {given[k]}' for k in kept)})", file=sys.stderr)
    return out
