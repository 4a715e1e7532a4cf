"""Draw the curve points that ``bench/proposals.py --curves-json`` wrote as PNG files, with the app's own plot
widget (pyqtgraph; no matplotlib). Run with the app's environment (PySide6), not .venv-bench:

    .venv/bin/python bench/plot_curves.py /tmp/curves.json --out bench/figures

One pair of PNGs per dataset (the part of each key before " · "): recall vs IoU threshold with all boxes, and
a metric (``--metric``, default average recall) vs the number of best-ranked boxes per image.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("curves", type=Path, help="JSON written by bench/proposals.py --curves-json")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "figures", help="folder for the PNG files")
    ap.add_argument("--metric", default="ar", choices=("ar", "recall@0.5", "recall@0.7", "mabo"))
    ap.add_argument("--skip", default="@opencv", help="leave out methods whose name contains this")
    ap.add_argument("--width", type=int, default=800)
    args = ap.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from app.proposal_curves import ProposalCurves

    app = QApplication.instance() or QApplication([])
    data = json.loads(args.curves.read_text())
    groups: dict[str, dict[str, dict]] = {}
    for key, points in data.items():
        dataset, _, method = key.partition(" · ")
        if args.skip and args.skip in method:
            continue
        groups.setdefault(dataset, {})[method] = points
    args.out.mkdir(parents=True, exist_ok=True)
    for dataset, methods in groups.items():
        widget = ProposalCurves()
        widget.metric_combo.setCurrentIndex(widget.metric_combo.findData(args.metric))
        for method, points in methods.items():
            widget.add_run(method, points)
        widget.resize(2 * args.width, int(0.7 * args.width))
        widget.show()
        app.processEvents()
        slug = re.sub(r"[^a-z0-9]+", "_", dataset.lower()).strip("_")
        iou_png, budget_png = args.out / f"{slug}_recall_vs_iou.png", args.out / f"{slug}_{args.metric}_vs_boxes.png"
        widget.export_png(iou_png, budget_png, args.width)
        print(f"{dataset}: {iou_png}, {budget_png}")
        widget.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
