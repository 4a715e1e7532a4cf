"""``python main.py [PATH]``, ``python main.py open PATH`` and ``python main.py --samples``: start the app.

Why ``--samples`` copies: ``make run`` opens the bundled photographs so a newcomer sees labelled images at
once, but labelling them must never change files tracked in git, so the app works on a copy in the
user's data folder (made once, never overwritten). The copy also holds ``shapes/``: synthetic images the
shipped detector was made for, so ``make run`` starts on one of them with detections, anchors and RoI grids
drawn, no training needed (the photographs show what a model does outside what it knows).

The window starts with a detector loaded (the most recent model, else the shipped one) unless ``--no-model``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python main.py [open]",
                                description="Open the labelling window on an image, a folder or a dataset "
                                            "(Pascal VOC root, COCO JSON, YOLO folder).")
    p.add_argument("path", nargs="?", help="image, folder, VOC root, COCO instances JSON or YOLO folder")
    p.add_argument("--samples", action="store_true",
                   help="open a copy of the bundled sample photographs (made in the user's data folder)")
    p.add_argument("--images", metavar="DIR", help="image folder of a COCO JSON (when not found beside it)")
    p.add_argument("--annotations", metavar="DIR", help="save VOC files into DIR instead of beside the images")
    p.add_argument("--no-model", action="store_true",
                   help="start without loading a detector (default: the most recent model, else the shipped one)")
    return p


SAMPLE_SUFFIXES = (".png", ".jpg", ".jpeg", ".xml", ".txt", ".md")


def _copy_files(src: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.iterdir()):
        if f.is_file() and f.suffix.lower() in SAMPLE_SUFFIXES:
            shutil.copy2(f, dest / f.name)


def prepare_samples(dest_root: Path | None = None) -> Path:
    """Copy the bundled samples to ``<data dir>/samples`` unless a copy exists; returns the copy's path.

    A bundled sub-folder (``shapes/``) missing from an existing copy joins it once (a copy made by an older
    version); nothing already in the copy is ever overwritten."""
    from app.settings import data_dir

    dest = (dest_root or data_dir()) / "samples"
    if not (dest.is_dir() and any(dest.iterdir())):
        _copy_files(SAMPLES, dest)
    for sub in sorted(p for p in SAMPLES.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        if not (dest / sub.name).exists():
            _copy_files(sub, dest / sub.name)
    return dest


def _first_shapes_image(window: object) -> int:
    """Index of the first ``shapes/`` sample in the open dataset, or -1."""
    source = getattr(getattr(window, "document", None), "source", None)
    for i, entry in enumerate(getattr(source, "entries", []) or []):
        if entry.name.startswith("shapes/"):
            return i
    return -1


def create_window(args: argparse.Namespace, settings: object = None) -> object:
    """The main window, opened on what ``args`` ask for (a QApplication must exist)."""
    from app.main_window import MainWindow
    from app.settings import Settings

    window = MainWindow(settings if isinstance(settings, Settings) else None)
    path = args.path
    if args.samples and not path:
        path = str(prepare_samples())
    if path:
        window.open_path(path, args.images, args.annotations)
    else:
        recent = window.settings.recent_files()
        if recent and Path(recent[0]).exists():
            window.open_path(recent[0])
    if not getattr(args, "no_model", False):
        from app.stages.model import ModelStage

        for stage in window.stages:
            if isinstance(stage, ModelStage) and stage.load_startup_model() and args.samples and not args.path:
                first = _first_shapes_image(window)
                if first >= 0:
                    window.document.go_to(first)  # the images the shipped model was made for
                    show_detector_overview(window)
    return window


def show_detector_overview(window: object) -> None:
    """Turn on the anchors (every cell centre, coloured by its label against the ground truth) and the RoI
    grid (of the top RoI) beside the detections: what ``make run`` shows a newcomer before any click."""
    from app.stages.anchors.controller import AnchorsStage
    from app.stages.roi_grid.stage import RoiGridStage

    for stage in getattr(window, "stages", []):
        if isinstance(stage, (AnchorsStage, RoiGridStage)):
            stage.panel.show_box.setChecked(True)


def run(command: str, argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.path and not Path(args.path).expanduser().exists():
        print(f"error: {args.path}: no such file or folder", file=sys.stderr)
        return 2
    from PySide6.QtWidgets import QApplication

    from app.errors import ErrorReporter
    from app.gui_gc import install_gui_thread_gc
    from app.settings import APPLICATION, ORGANIZATION, data_dir

    qapp = QApplication.instance() or QApplication(sys.argv[:1])
    install_gui_thread_gc(qapp)  # Qt objects in reference cycles must die in the GUI thread (app/gui_gc.py)
    qapp.setOrganizationName(ORGANIZATION)
    qapp.setApplicationName(APPLICATION)
    window = create_window(args)
    reporter = ErrorReporter(data_dir() / "errors.log", lambda: window)  # type: ignore[arg-type, return-value]
    reporter.install()
    window.show()  # type: ignore[attr-defined]
    try:
        return int(qapp.exec())
    finally:
        reporter.uninstall()
        window.shutdown()  # type: ignore[attr-defined]
