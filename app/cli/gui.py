"""``python main.py [PATH]``, ``python main.py open PATH`` and ``python main.py --samples``: start the app.

Why ``--samples`` copies: ``make run`` opens the bundled photographs so a newcomer sees labelled images at
once, but labelling them must never change files tracked in git, so the app works on a copy in the
user's data folder (made once, never overwritten).
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
    return p


def prepare_samples(dest_root: Path | None = None) -> Path:
    """Copy the bundled samples to ``<data dir>/samples`` unless a copy exists; returns the copy's path."""
    from app.settings import data_dir

    dest = (dest_root or data_dir()) / "samples"
    if dest.is_dir() and any(dest.iterdir()):
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted(SAMPLES.iterdir()):
        if f.is_file() and f.suffix.lower() in (".png", ".jpg", ".jpeg", ".xml", ".txt", ".md"):
            shutil.copy2(f, dest / f.name)
    return dest


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
    return window


def run(command: str, argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.path and not Path(args.path).expanduser().exists():
        print(f"error: {args.path}: no such file or folder", file=sys.stderr)
        return 2
    from PySide6.QtWidgets import QApplication

    from app.errors import ErrorReporter
    from app.settings import APPLICATION, ORGANIZATION, data_dir

    qapp = QApplication.instance() or QApplication(sys.argv[:1])
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
