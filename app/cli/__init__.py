"""Command line: ``python main.py [PATH]`` opens the app; subcommands run the same models headless.

Each subcommand lives in its own module with ``run(command, argv) -> exit code`` and is imported only when
called, so ``propose`` or ``train`` never load Qt and start fast.
"""

from __future__ import annotations

import importlib
import sys

#: Subcommand → module. These names are reserved: ``python main.py open PATH`` opens a path with such a name.
COMMANDS: dict[str, tuple[str, str]] = {
    "open": ("app.cli.gui", "open the app on an image, a folder or a dataset"),
    "superpixels": ("app.cli.proposals", "Felzenszwalb segmentation of one image"),
    "propose": ("app.cli.proposals", "Selective Search proposals for images, as JSON"),
    "eval-proposals": ("app.cli.proposals", "proposal recall and MABO over a dataset"),
    "synth": ("app.cli.synth", "write a synthetic shapes dataset (VOC)"),
    "train": ("app.cli.training", "train a detector"),
    "detect": ("app.cli.detection", "run a trained detector on images, as JSON"),
    "evaluate": ("app.cli.detection", "VOC mAP and COCO AP of a detector or a detections file"),
    "compare": ("app.cli.compare", "mAP, test time (proposals apart) and training time of several checkpoints"),
    "calibrate": ("app.cli.calibration", "give a trained detector prototype score calibration (DeFRCN)"),
}


def usage() -> str:
    lines = ["usage: python main.py [PATH]            open the app (on PATH if given)",
             "       python main.py COMMAND [ARGS]     run a command headless (COMMAND --help for its options)",
             "", "commands:"]
    lines += [f"  {name:<15} {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if args and args[0] in COMMANDS:
        module = importlib.import_module(COMMANDS[args[0]][0])
        return int(module.run(args[0], args[1:]) or 0)
    gui = importlib.import_module("app.cli.gui")
    return int(gui.run("open", args) or 0)
