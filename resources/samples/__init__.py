"""Sample photographs with Pascal VOC ground truth; see LICENSES.md."""
