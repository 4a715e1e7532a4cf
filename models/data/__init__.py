"""Data in and out: safe image decoding, annotation formats (VOC, COCO, YOLO), datasets and their splits,
training samples, synthetic shapes, and export between formats."""
