"""Benchmark: our Faster R-CNN inference beside torchvision's FasterRCNN built from the same parts.

Both models get the same MobileNetV3-Large body cut at stride 16 (ImageNet weights when cached, else random
— the timing does not depend on them), the same weights in every layer (ours are copied into torchvision's
RPN head, box head and predictor), the same sizes (shorter side 600, longer at most 1000), anchors
(128/256/512 × 0.5/1/2), proposal counts (6000 → 300 at test), thresholds (RPN NMS 0.7, score 0.05, box
NMS 0.3, 100 detections) and RoIAlign 7×7. Images are run one at a time, alternating between the two models
so that load from other processes on a shared CPU hits both alike; the same images, one run.

    python bench/detectors.py [--images N] [--threads T] [--data DIR]

Prints seconds per image for each and the ratio ours / torchvision (target ≤ 1.0).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.detection.detectors.base import to_tensor  # noqa: E402
from models.detection.detectors.faster_rcnn import FasterRCNN  # noqa: E402

SETTINGS = dict(min_size=600, max_size=1000, anchor_sizes=(128, 256, 512), anchor_ratios=(0.5, 1.0, 2.0),
                rpn_pre_nms_test=6000, rpn_post_nms_test=300, rpn_nms=0.7, box_score_threshold=0.05,
                box_nms=0.3, detections_per_image=100, representation_size=1024, pooling="align")


def _images(n: int, data: Path | None) -> list[np.ndarray]:
    from models.data.datasets import scan_images
    from models.data.io import read_image

    folder = data or (ROOT.parent / "shared" / "data" / "coco_tiny")
    paths = scan_images(folder) if folder.is_dir() else []
    if paths:
        return [read_image(p).pixels for p in paths[:n]]
    from models.data.synthetic import draw_image

    return [draw_image(0, i).pixels for i in range(n)]


def build_pair(num_classes: int = 20, seed: int = 0):  # noqa: ANN201
    from torchvision.models.detection import FasterRCNN as TvFasterRCNN
    from torchvision.models.detection.rpn import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    torch.manual_seed(seed)
    ours = FasterRCNN.build([f"c{i}" for i in range(num_classes)], "mobilenet_v3", **SETTINGS).eval()
    body = ours.backbone

    class Body(torch.nn.Module):  # torchvision wants .out_channels and a tensor (or dict) out
        def __init__(self) -> None:
            super().__init__()
            self.body = body.body
            self.out_channels = body.out_channels

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x)

    tv = TvFasterRCNN(
        Body(), num_classes=num_classes + 1, min_size=SETTINGS["min_size"], max_size=SETTINGS["max_size"],
        rpn_anchor_generator=AnchorGenerator((SETTINGS["anchor_sizes"],), (SETTINGS["anchor_ratios"],)),
        box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2), rpn_pre_nms_top_n_test=SETTINGS["rpn_pre_nms_test"],
        rpn_post_nms_top_n_test=SETTINGS["rpn_post_nms_test"], rpn_nms_thresh=SETTINGS["rpn_nms"],
        rpn_score_thresh=0.0, box_score_thresh=SETTINGS["box_score_threshold"],
        box_nms_thresh=SETTINGS["box_nms"], box_detections_per_img=SETTINGS["detections_per_image"],
        representation_size=SETTINGS["representation_size"]).eval()
    with torch.no_grad():
        tv.rpn.head.conv[0][0].weight.copy_(ours.rpn.head.conv.weight)
        tv.rpn.head.conv[0][0].bias.copy_(ours.rpn.head.conv.bias)
        tv.rpn.head.cls_logits.load_state_dict(ours.rpn.head.cls_logits.state_dict())
        tv.rpn.head.bbox_pred.load_state_dict(ours.rpn.head.bbox_pred.state_dict())
        tv.roi_heads.box_head.fc6.load_state_dict(ours.roi_heads.box_head.fc6.state_dict())
        tv.roi_heads.box_head.fc7.load_state_dict(ours.roi_heads.box_head.fc7.state_dict())
        tv.roi_heads.box_predictor.load_state_dict(ours.roi_heads.predictor.state_dict())
    return ours, tv


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", type=Path, default=None, help="image folder (default: ../shared/data/coco_tiny)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    images = _images(args.images, args.data)
    ours, tv = build_pair()
    print(f"backbone: MobileNetV3-Large to stride 16 ({ours.backbone.weights_info.message}); "
          f"{len(images)} images, {args.threads} threads")
    with torch.no_grad():
        ours.predict([images[0]])  # warm-up: allocator, oneDNN kernels
        tv([to_tensor(images[0])])
        t_ours = t_tv = 0.0
        n_ours = n_tv = 0
        for i, img in enumerate(images):
            pair = [("ours", lambda im=img: ours.predict([im])), ("tv", lambda im=img: tv([to_tensor(im)]))]
            if i % 2:
                pair.reverse()
            for name, fn in pair:
                t0 = time.perf_counter()
                out = fn()
                dt = time.perf_counter() - t0
                if name == "ours":
                    t_ours += dt
                    n_ours += len(out[0])
                else:
                    t_tv += dt
                    n_tv += len(out[0]["boxes"])
    k = len(images)
    print(f"ours        {t_ours / k:.3f} s/image  ({n_ours / k:.1f} detections/image)")
    print(f"torchvision {t_tv / k:.3f} s/image  ({n_tv / k:.1f} detections/image)")
    print(f"ratio ours/torchvision: {t_ours / t_tv:.3f}  (target <= 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
