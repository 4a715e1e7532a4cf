"""How tests/data/v1_*.pt were made: tiny detectors of each generation saved by the checkpoint format
version 1 (flat ``model_config``), with reference outputs in ``extra["reference"]`` so a test can check that a
later program rebuilds exactly the same network from them.

Run once, from the repository root at commit 33fd24d (before the per-part configuration objects):
``python tests/data/make_v1_checkpoints.py``. Later code cannot write this format any more; that is the point.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from models.detection.checkpoints import save_checkpoint
from models.detection.detectors import build_detector

CLASSES = ["circle", "square", "triangle"]
HERE = Path(__file__).resolve().parent
#: Fixed proposals (network-input pixels of the 96×128 reference image) for the generations that take them.
BOXES = [[4.0, 6.0, 60.0, 70.0], [30.0, 20.0, 110.0, 90.0], [0.0, 0.0, 127.0, 95.0], [50.0, 10.0, 90.0, 40.0]]
SETTINGS = {
    "faster-rcnn": dict(small_width=8, anchor_sizes=(16, 32, 64), anchor_ratios=(0.5, 1.0, 2.0),
                        representation_size=32, min_size=96, max_size=128, rpn_post_nms_test=50,
                        roi_batch_size=32, box_score_threshold=0.0),
    "fast-rcnn": dict(small_width=8, representation_size=32, min_size=96, max_size=128, proposals_train=100,
                      proposals_test=100, roi_batch_size=16, box_score_threshold=0.0),
    "rcnn": dict(small_width=8, representation_size=32, min_size=96, max_size=128, proposals_train=100,
                 proposals_test=100, warp_size=32, crops_per_image=8, box_score_threshold=0.0),
}


def reference(model: torch.nn.Module) -> dict:
    """Detections of the reference image (random pixels of seed 0, 96×128) in eval mode."""
    image = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    model.eval()
    with torch.no_grad():
        if model.generation == "faster-rcnn":
            det = model.predict([image], 0.0)[0]
            boxes, scores, labels = det.boxes, det.scores, det.labels
        else:
            t = torch.from_numpy(image).permute(2, 0, 1).float() / 255
            out = model.forward([t], proposals=[torch.tensor(BOXES)])[0]
            boxes, scores, labels = (out[k].numpy() for k in ("boxes", "scores", "labels"))
    order = np.argsort(-scores, kind="stable")[:20]
    return {"boxes": boxes[order].tolist(), "scores": scores[order].tolist(), "labels": labels[order].tolist()}


def main() -> None:
    for generation, settings in SETTINGS.items():
        torch.manual_seed(0)
        model = build_detector(generation, CLASSES, backbone="small", **settings)
        if generation == "rcnn":  # trained SVMs and regressors: the scores come from them, as after training
            with torch.no_grad():
                g = torch.Generator().manual_seed(1)
                model.svm_weight.copy_(torch.randn(model.svm_weight.shape, generator=g) * 0.1)
                model.svm_bias.copy_(torch.randn(model.svm_bias.shape, generator=g) * 0.1)
                model.reg_weight.copy_(torch.randn(model.reg_weight.shape, generator=g) * 0.01)
                model.svm_trained.fill_(1)
        path = HERE / f"v1_{generation.replace('-', '_')}.pt"
        save_checkpoint(path, model=model, config={"data": "synthetic", "out": str(path.name), "epochs": 1,
                                                   "generation": generation, "model": {}},
                        class_names=CLASSES, split={"name": "train", "indices": [0]}, epoch=1,
                        extra={"reference": reference(model), "made_by": "tests/data/make_v1_checkpoints.py"})
        print(path, path.stat().st_size)


if __name__ == "__main__":
    main()
