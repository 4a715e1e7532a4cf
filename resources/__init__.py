"""Bundled resources (sample photographs with VOC boxes), installed with the package."""
