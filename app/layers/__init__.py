"""Canvas layers: each overlay is ONE graphics item painting all its boxes in one pass (see ``base``)."""

from app.layers.base import (
    BoxArrayLayer,
    BoxColors,
    OverlayLayer,
    class_color,
    paint_boxes,
    paint_labels,
    prepare_colors,
)
from app.layers.ground_truth import GroundTruthLayer
from app.layers.image_layer import ImageLayer

__all__ = [
    "BoxArrayLayer",
    "BoxColors",
    "GroundTruthLayer",
    "ImageLayer",
    "OverlayLayer",
    "class_color",
    "paint_boxes",
    "paint_labels",
    "prepare_colors",
]
