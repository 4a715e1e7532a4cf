"""Ground-truth annotations in memory, and the three file formats users bring (Pascal VOC, COCO, YOLO)."""

from models.data.annotations.atomic import atomic_write_bytes, atomic_write_text
from models.data.annotations.model import Annotation, AnnotationError, BoxObject
from models.data.annotations.voc import read_voc, voc_bytes, write_voc

__all__ = [
    "Annotation",
    "AnnotationError",
    "BoxObject",
    "atomic_write_bytes",
    "atomic_write_text",
    "read_voc",
    "voc_bytes",
    "write_voc",
]
