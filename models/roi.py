"""RoI pooling (Fast R-CNN, section 2.1): a variable-size region of the feature map → a fixed H×W grid.

The numbers come from ``torchvision.ops.roi_pool``; :func:`roi_bins` reproduces its geometry (the RoI
rounded to feature cells at ``spatial_scale``, then split into H×W bins with floor/ceil edges) as plain data,
so the explorer can draw each bin on the image and on the feature map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torchvision.ops import roi_align as _tv_roi_align
from torchvision.ops import roi_pool as _tv_roi_pool


def rois_to_tensor(rois: list[Tensor]) -> Tensor:
    """Per-image [Ni, 4] boxes → [sum Ni, 5] with the batch index first, the format torchvision ops take."""
    if not rois:
        return torch.zeros((0, 5))
    idx = [torch.full((r.shape[0], 1), i, dtype=r.dtype, device=r.device) for i, r in enumerate(rois)]
    return torch.cat([torch.cat(idx, 0), torch.cat(list(rois), 0)], dim=1)


def roi_pool(features: Tensor, rois: Tensor | list[Tensor], output_size: tuple[int, int] = (7, 7),
             spatial_scale: float = 1.0 / 16) -> Tensor:
    """Max-pool each RoI (image pixels) into ``output_size`` bins of the feature map: [K, C, H, W]."""
    if isinstance(rois, list):
        rois = rois_to_tensor(rois)
    if features.dtype == torch.bfloat16:  # no bfloat16 kernel (CPU autocast); the next layer casts back
        features = features.float()
    return _tv_roi_pool(features, rois.to(features.dtype), output_size, spatial_scale)


def roi_align(features: Tensor, rois: Tensor | list[Tensor], output_size: tuple[int, int] = (7, 7),
              spatial_scale: float = 1.0 / 16, sampling_ratio: int = 2) -> Tensor:
    """RoIAlign (bilinear, no rounding) — an option later generations may prefer; same shapes as roi_pool."""
    if isinstance(rois, list):
        rois = rois_to_tensor(rois)
    return _tv_roi_align(features, rois.to(features.dtype), output_size, spatial_scale, sampling_ratio,
                         aligned=False)


@dataclass
class RoiBins:
    """Where one RoI's bins lie. ``cells``: [H, W, 4] int feature-map cells (x1, y1, x2, y2, x2/y2 exclusive)
    each bin max-pools over; ``image_boxes``: the same bins in image pixels; ``roi_cells``: the rounded RoI."""

    roi: np.ndarray
    roi_cells: np.ndarray
    cells: np.ndarray
    image_boxes: np.ndarray
    spatial_scale: float


def roi_bins(roi: np.ndarray | Tensor, output_size: tuple[int, int] = (7, 7), spatial_scale: float = 1.0 / 16,
             feature_size: tuple[int, int] | None = None) -> RoiBins:
    """The bin geometry torchvision's roi_pool uses for one RoI ``[x1, y1, x2, y2]`` (image pixels).

    roi_pool rounds the RoI's corners to cells (``round(x * scale)``), treats the end cell as inclusive,
    and gives bin ``i`` the cells ``floor(i * size / H) .. ceil((i + 1) * size / H)``; bins are clipped to the
    feature map when its size is given.
    """
    r = np.asarray(roi.detach().cpu() if isinstance(roi, Tensor) else roi, dtype=np.float64).reshape(4)
    x1, y1, x2, y2 = (int(math.floor(v * spatial_scale + 0.5)) for v in r)  # C round(): half away from 0
    w = max(x2 - x1 + 1, 1)
    h = max(y2 - y1 + 1, 1)
    ph, pw = output_size
    cells = np.zeros((ph, pw, 4), dtype=np.int64)
    for i in range(ph):
        ys = int(math.floor(i * h / ph)) + y1
        ye = int(math.ceil((i + 1) * h / ph)) + y1
        for j in range(pw):
            xs = int(math.floor(j * w / pw)) + x1
            xe = int(math.ceil((j + 1) * w / pw)) + x1
            cells[i, j] = (xs, ys, xe, ye)
    if feature_size is not None:
        fh, fw = feature_size
        cells[..., 0::2] = np.clip(cells[..., 0::2], 0, fw)
        cells[..., 1::2] = np.clip(cells[..., 1::2], 0, fh)
    image_boxes = cells.astype(np.float32) / np.float32(spatial_scale)
    return RoiBins(r.astype(np.float32), np.array([x1, y1, x2 + 1, y2 + 1]), cells, image_boxes,
                   float(spatial_scale))
