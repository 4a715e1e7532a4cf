"""Detector checkpoints shipped with the app (weights only; see the README for how each was trained)."""

from pathlib import Path

#: The small Faster R-CNN trained on the synthetic shapes (circle, square, triangle) that `make run` loads.
SHIPPED_MODEL = Path(__file__).resolve().with_name("frcnn_shapes.pt")

#: The small Fast R-CNN trained on the same shapes (Selective Search proposals, RoIAlign 7×7 at stride 8).
SHIPPED_FAST_RCNN = Path(__file__).resolve().with_name("fast_rcnn_shapes.pt")

#: The small R-CNN trained on the same shapes (warped Selective Search crops, fc7 codes, per-class SVMs).
SHIPPED_RCNN = Path(__file__).resolve().with_name("rcnn_shapes.pt")
