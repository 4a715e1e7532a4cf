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

#: Bilinear samples per bin side of :func:`roi_align` as the detectors call it (2×2 points per bin).
ALIGN_SAMPLING_RATIO = 2


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
              spatial_scale: float = 1.0 / 16, sampling_ratio: int = ALIGN_SAMPLING_RATIO) -> Tensor:
    """RoIAlign (bilinear, no rounding) — an option later generations may prefer; same shapes as roi_pool.

    On the CPU the gradient goes through :class:`_RoIAlignCpuGrad`: torchvision's CPU backward recomputes
    every bilinear weight once per channel and runs on one thread, which made it about a sixth of a whole
    training step of the small detector; the forward values are torchvision's either way.
    """
    if isinstance(rois, list):
        rois = rois_to_tensor(rois)
    if features.dtype == torch.bfloat16:  # no bfloat16 kernel (CPU autocast); the next layer casts back
        features = features.float()
    rois = rois.to(features.dtype)
    if features.requires_grad and features.device.type == "cpu" and sampling_ratio > 0:
        return _RoIAlignCpuGrad.apply(features, rois, tuple(output_size), spatial_scale, sampling_ratio)
    return _tv_roi_align(features, rois, output_size, spatial_scale, sampling_ratio, aligned=False)


def _axis_taps(start: Tensor, length: Tensor, bins: int, grid: int, size: int) -> tuple[Tensor, Tensor]:
    """Along one axis, for every RoI, bin and sample point: the two neighbouring feature cells and their
    bilinear weights (zero for a sample more than one cell outside the map), computed as torchvision's CPU
    kernel computes them, so the gradient matches its forward. Shapes [R, bins * grid, 2]."""
    step = length / bins
    offsets = torch.arange(bins, dtype=start.dtype)[:, None] + (torch.arange(grid, dtype=start.dtype) + 0.5) / grid
    pos = (start[:, None] + offsets.reshape(1, -1) * step[:, None])
    inside = ((pos >= -1.0) & (pos <= size)).to(pos.dtype)
    pos = pos.clamp(min=0)
    low = pos.floor().long()
    at_edge = low >= size - 1
    low = low.clamp(max=size - 1)
    high = torch.where(at_edge, low, low + 1)
    frac = torch.where(at_edge, torch.zeros_like(pos), pos - low)
    return torch.stack([low, high], -1), torch.stack([(1 - frac) * inside, frac * inside], -1)


class _RoIAlignCpuGrad(torch.autograd.Function):
    """torchvision's RoIAlign forward (``aligned=False``) with a vectorised backward: each of the
    ``4 * sampling_ratio²`` bilinear taps of every bin scatters its whole channel vector with one
    ``index_add_`` into a channels-last gradient, about ten times faster than the per-channel loop."""

    @staticmethod
    def forward(ctx, features: Tensor, rois: Tensor, output_size: tuple[int, int],  # noqa: ANN001
                spatial_scale: float, sampling_ratio: int) -> Tensor:
        ctx.save_for_backward(rois)
        ctx.geometry = (features.shape, output_size, spatial_scale, sampling_ratio)
        return _tv_roi_align(features, rois, output_size, spatial_scale, sampling_ratio, aligned=False)

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> tuple:  # noqa: ANN001
        (rois,) = ctx.saved_tensors
        (n, c, h, w), (ph, pw), scale, grid = ctx.geometry
        r = len(rois)
        grad = torch.zeros(n * h * w, c, dtype=grad_out.dtype)
        if r == 0:
            return grad.view(n, h, w, c).permute(0, 3, 1, 2), None, None, None, None
        x1, y1 = rois[:, 1] * scale, rois[:, 2] * scale
        width = (rois[:, 3] * scale - x1).clamp(min=1)
        height = (rois[:, 4] * scale - y1).clamp(min=1)
        y_cells, y_weights = _axis_taps(y1, height, ph, grid, h)
        x_cells, x_weights = _axis_taps(x1, width, pw, grid, w)
        y_cells, y_weights = y_cells.view(r, ph, 1, -1, 1), y_weights.view(r, ph, 1, -1, 1)
        x_cells, x_weights = x_cells.view(r, 1, pw, 1, -1), x_weights.view(r, 1, pw, 1, -1)
        image_base = rois[:, 0].long().view(r, 1, 1, 1, 1) * (h * w)
        cells = (image_base + y_cells * w + x_cells).reshape(r * ph * pw, -1)
        weights = (y_weights * x_weights / (grid * grid)).reshape(r * ph * pw, -1).to(grad_out.dtype)
        grad_bins = grad_out.permute(0, 2, 3, 1).reshape(r * ph * pw, c)
        for tap in range(cells.shape[1]):
            grad.index_add_(0, cells[:, tap], grad_bins * weights[:, tap:tap + 1])
        return grad.view(n, h, w, c).permute(0, 3, 1, 2), None, None, None, None


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
