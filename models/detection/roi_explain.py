"""What RoI pooling does to ONE region, as plain data the explorer draws (Fast R-CNN 2.1; Mask R-CNN 3).

RoI max pooling (``method="pool"``) divides the RoI by the stride, *rounds* it to whole feature cells, splits
those cells into H×W bins with floor/ceil edges and keeps the maximum of each bin: :func:`explain_roi_pooling`
returns that geometry (:func:`models.detection.roi.roi_bins`), the cell each bin's maximum came from for every channel,
and how many bins read each cell — a RoI smaller than H×W cells makes neighbouring bins read the same cells,
so the pooled grid repeats values. RoIAlign (``method="align"``) rounds nothing: each bin averages
``sampling_ratio``² bilinear samples at fractional positions; the explanation gives those points and the four
cells (with weights) each one reads, computed as torchvision's ``roi_align(aligned=False)`` computes them.
The pooled numbers themselves are always torchvision's (:mod:`models.detection.roi`), never a re-implementation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from models.detection.roi import ALIGN_SAMPLING_RATIO, roi_align, roi_bins, roi_pool

METHODS = ("pool", "align")


@dataclass
class ChannelView:
    """One channel (or the mean over channels, ``channel=None``) of an explanation, ready to draw.

    ``window_map``: the feature map under the RoI's window (see :attr:`RoiPoolingExplanation.window`);
    ``pooled``: the H×W pooled output (for the mean: the mean over channels of the pooled output, which is what
    the head receives, averaged); ``argmax_cells``: RoI pooling only, [H, W, 2] (x, y) feature cell each bin's
    maximum came from (for the mean: the cell that is the maximum for most channels), -1 for an empty bin;
    ``argmax_share``: the fraction of channels whose maximum is that cell (1 for one channel);
    ``sample_values``: RoIAlign only, [H, W, g, g] bilinear value at each sampling point.
    """

    channel: int | None
    window_map: np.ndarray
    pooled: np.ndarray
    argmax_cells: np.ndarray | None
    argmax_share: np.ndarray | None
    sample_values: np.ndarray | None


@dataclass
class RoiPoolingExplanation:
    """How one RoI (network-input pixels) becomes the head's fixed-size input. Feature coordinates are in
    cells of the feature map (x right, y down; cell (x, y) covers [x, x+1) × [y, y+1))."""

    method: str  # "pool" | "align"
    roi: np.ndarray  # [4] float32 x1, y1, x2, y2 in network-input pixels
    spatial_scale: float  # 1 / stride
    output_size: tuple[int, int]  # (H, W)
    feature_size: tuple[int, int]  # (h, w) of the whole map
    roi_on_features: np.ndarray  # [4] roi * spatial_scale, before any rounding
    region: np.ndarray  # [4] what the bins divide: pool: the rounded cells (end exclusive); align: continuous
    bins: np.ndarray  # [H, W, 4]; pool: integer cell ranges clipped to the map (end exclusive); align: continuous
    bins_per_cell: np.ndarray  # [h, w] int32: how many bins read each cell (> 1: cells shared by bins)
    window: tuple[int, int, int, int]  # x1, y1, x2, y2 cells (end exclusive) of window_features
    window_features: np.ndarray  # [C, y2-y1, x2-x1] float32: the map under the RoI plus a margin
    pooled: np.ndarray  # [C, H, W] float32: torchvision's output for this RoI
    argmax: np.ndarray | None  # pool: [C, H, W] flat cell index (y * w + x) of each bin's maximum; -1 empty
    sampling_ratio: int  # align: sample points per bin side
    sample_points: np.ndarray | None  # align: [H, W, g, g, 2] (x, y)
    tap_cells: np.ndarray | None  # align: [H, W, g, g, 4, 2] (x, y) the four cells each sample interpolates
    tap_weights: np.ndarray | None  # align: [H, W, g, g, 4] their bilinear weights (0 outside the map)

    @property
    def num_channels(self) -> int:
        return int(self.pooled.shape[0])

    @property
    def image_bins(self) -> np.ndarray:
        """[H, W, 4] the bins in network-input pixels."""
        return self.bins / self.spatial_scale

    @property
    def image_region(self) -> np.ndarray:
        """[4] the region the bins divide, in network-input pixels (pool: the RoI after rounding)."""
        return self.region / self.spatial_scale

    @property
    def shared_cells(self) -> int:
        """Cells read by more than one bin (RoI pooling of a RoI smaller than H×W cells repeats cells)."""
        return int((self.bins_per_cell > 1).sum())

    @property
    def empty_bins(self) -> int:
        """Bins that read no cell (RoI pooling gives 0 there: the RoI lies partly off the map)."""
        if self.method == "pool":
            b = self.bins
            return int(((b[..., 2] <= b[..., 0]) | (b[..., 3] <= b[..., 1])).sum())
        return int((self.tap_weights.sum(axis=(2, 3, 4)) == 0).sum())

    def view(self, channel: int | None = None) -> ChannelView:
        """The channel ``channel`` (None: the mean over channels) of this explanation."""
        if channel is not None and not 0 <= channel < self.num_channels:
            raise ValueError(f"channel {channel} outside 0..{self.num_channels - 1}")
        wf = self.window_features
        win = wf.mean(0) if channel is None else wf[channel]
        pooled = self.pooled.mean(0) if channel is None else self.pooled[channel]
        argmax_cells = share = samples = None
        if self.method == "pool":
            argmax_cells, share = self._argmax_view(channel)
        else:
            samples = self._sample_values(win)
        return ChannelView(channel, win, pooled, argmax_cells, share, samples)

    def _argmax_view(self, channel: int | None) -> tuple[np.ndarray, np.ndarray]:
        fw = self.feature_size[1]
        ph, pw = self.output_size
        if channel is not None:
            flat = self.argmax[channel]
            share = np.where(flat >= 0, 1.0, 0.0)
        else:  # the cell most channels take their maximum from
            flat = np.full((ph, pw), -1, np.int64)
            share = np.zeros((ph, pw))
            for i in range(ph):
                for j in range(pw):
                    col = self.argmax[:, i, j]
                    if col[0] < 0:
                        continue
                    vals, counts = np.unique(col, return_counts=True)
                    k = int(np.argmax(counts))
                    flat[i, j] = vals[k]
                    share[i, j] = counts[k] / col.size
        cells = np.stack([flat % fw, flat // fw], -1)
        cells[flat < 0] = -1
        return cells, share

    def _sample_values(self, win: np.ndarray) -> np.ndarray:
        x0, y0 = self.window[0], self.window[1]
        xs = self.tap_cells[..., 0] - x0
        ys = self.tap_cells[..., 1] - y0
        ok = (xs >= 0) & (ys >= 0) & (xs < win.shape[1]) & (ys < win.shape[0])  # weight-0 taps may fall outside
        vals = win[np.clip(ys, 0, win.shape[0] - 1), np.clip(xs, 0, win.shape[1] - 1)]
        return (np.where(ok, vals, 0.0) * self.tap_weights).sum(-1)


def bilinear_taps(x: np.ndarray, y: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The four cells (x, y) and weights torchvision's RoIAlign interpolates a sample at (x, y) from.

    Its rules, kept so the drawn weights are the computed ones: a sample more than one cell outside the map
    reads nothing; coordinates below 0 are clamped to 0; on the last row/column both taps are that cell.
    Returns cells [..., 4, 2] int64 and weights [..., 4] float64.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    empty = (y < -1.0) | (y > height) | (x < -1.0) | (x > width)
    y = np.maximum(y, 0.0)
    x = np.maximum(x, 0.0)

    def axis(v: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        low = np.floor(v).astype(np.int64)
        edge = low >= size - 1
        low = np.where(edge, size - 1, low)
        high = np.where(edge, size - 1, low + 1)
        frac = np.where(edge, 0.0, v - low)
        return low, high, frac

    yl, yh, ly = axis(y, height)
    xl, xh, lx = axis(x, width)
    hy, hx = 1.0 - ly, 1.0 - lx
    cells = np.stack([np.stack([xl, yl], -1), np.stack([xh, yl], -1),
                      np.stack([xl, yh], -1), np.stack([xh, yh], -1)], -2)
    weights = np.stack([hy * hx, hy * lx, ly * hx, ly * lx], -1)
    weights = np.where(empty[..., None], 0.0, weights)
    return cells, weights


def explain_roi_pooling(features: np.ndarray, roi: np.ndarray, *, method: str = "pool",
                        output_size: tuple[int, int] = (7, 7), spatial_scale: float = 1.0 / 16,
                        sampling_ratio: int = ALIGN_SAMPLING_RATIO, margin: int = 1) -> RoiPoolingExplanation:
    """Explain how ``roi`` ([4] network-input pixels) is pooled from ``features`` ([C, h, w], one image).

    ``margin`` cells around the RoI are kept in ``window_features`` so the view shows what lies just outside.
    """
    if method not in METHODS:
        raise ValueError(f"pooling method {method!r}: choose from {', '.join(METHODS)}")
    feats = np.ascontiguousarray(np.asarray(features, np.float32))
    if feats.ndim != 3 or feats.shape[1] == 0 or feats.shape[2] == 0:
        raise ValueError(f"features must be [C, h, w] with a non-empty map, got shape {feats.shape}")
    box = np.asarray(roi, np.float64).reshape(4)
    if not np.all(np.isfinite(box)):
        raise ValueError("the RoI has non-finite coordinates")
    c, fh, fw = feats.shape
    ph, pw = (int(output_size[0]), int(output_size[1]))
    t_feats = torch.from_numpy(feats)[None]
    t_roi = torch.tensor([[0.0, *box.tolist()]], dtype=torch.float32)
    scaled = box * spatial_scale
    argmax = points = tap_cells = tap_weights = None
    counts = np.zeros((fh, fw), np.int32)
    if method == "pool":
        pooled = roi_pool(t_feats, t_roi, (ph, pw), spatial_scale)[0].numpy()
        rb = roi_bins(box.astype(np.float32), (ph, pw), spatial_scale, feature_size=(fh, fw))
        bins = rb.cells.astype(np.float64)
        region = rb.roi_cells.astype(np.float64)
        argmax = np.full((c, ph, pw), -1, np.int64)
        for i in range(ph):
            for j in range(pw):
                x1, y1, x2, y2 = (int(v) for v in rb.cells[i, j])
                if x2 <= x1 or y2 <= y1:
                    continue
                counts[y1:y2, x1:x2] += 1
                local = feats[:, y1:y2, x1:x2].reshape(c, -1).argmax(1)
                argmax[:, i, j] = (y1 + local // (x2 - x1)) * fw + x1 + local % (x2 - x1)
    else:
        margin = max(margin, 1)  # a sample's right/bottom tap may be the cell just past the region
        pooled = roi_align(t_feats, t_roi, (ph, pw), spatial_scale, sampling_ratio)[0].numpy()
        x1, y1 = scaled[0], scaled[1]
        rw = max(scaled[2] - x1, 1.0)
        rh = max(scaled[3] - y1, 1.0)
        region = np.array([x1, y1, x1 + rw, y1 + rh])
        bw, bh = rw / pw, rh / ph
        jj, ii = np.meshgrid(np.arange(pw), np.arange(ph))
        bins = np.stack([x1 + jj * bw, y1 + ii * bh, x1 + (jj + 1) * bw, y1 + (ii + 1) * bh], -1)
        g = int(sampling_ratio)
        off = (np.arange(g) + 0.5) / g
        py = y1 + (ii[:, :, None, None] + off[None, None, :, None]) * bh  # [H, W, g(y), 1]
        px = x1 + (jj[:, :, None, None] + off[None, None, None, :]) * bw  # [H, W, 1, g(x)]
        py, px = np.broadcast_arrays(py, px)
        points = np.stack([px, py], -1)
        tap_cells, tap_weights = bilinear_taps(px, py, fh, fw)
        for i in range(ph):
            for j in range(pw):
                read = tap_cells[i, j][tap_weights[i, j] > 0]
                if read.size:
                    uniq = np.unique(read[:, 1] * fw + read[:, 0])
                    counts.reshape(-1)[uniq] += 1
    lo = np.floor(np.minimum(region[:2], scaled[:2])).astype(int) - margin
    hi = np.ceil(np.maximum(region[2:], scaled[2:])).astype(int) + margin
    wx1, wy1 = int(np.clip(lo[0], 0, fw - 1)), int(np.clip(lo[1], 0, fh - 1))
    wx2, wy2 = int(np.clip(hi[0], wx1 + 1, fw)), int(np.clip(hi[1], wy1 + 1, fh))
    window = (wx1, wy1, wx2, wy2)
    return RoiPoolingExplanation(
        method=method, roi=box.astype(np.float32), spatial_scale=float(spatial_scale), output_size=(ph, pw),
        feature_size=(fh, fw), roi_on_features=scaled, region=region, bins=bins, bins_per_cell=counts,
        window=window, window_features=feats[:, wy1:wy2, wx1:wx2].copy(), pooled=pooled, argmax=argmax,
        sampling_ratio=int(sampling_ratio), sample_points=points, tap_cells=tap_cells, tap_weights=tap_weights)


def explain_for_head(features: np.ndarray, roi: np.ndarray, heads: object) -> RoiPoolingExplanation:
    """:func:`explain_roi_pooling` with the settings of a detection head (:class:`RoIHeads`: ``pooling``,
    ``pool_size``, ``spatial_scale``), so the view shows the pooling that model actually does."""
    return explain_roi_pooling(features, roi, method=heads.pooling, output_size=tuple(heads.pool_size),
                               spatial_scale=float(heads.spatial_scale))


def roi_at(boxes: np.ndarray, x: float, y: float) -> int:
    """Index of the smallest box containing the point (x, y), or -1: with hundreds of nested proposals the
    smallest one around a click is the most specific thing the user can mean (ties: the lower index)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    inside = np.flatnonzero((b[:, 0] <= x) & (x <= b[:, 2]) & (b[:, 1] <= y) & (y <= b[:, 3]))
    if inside.size == 0:
        return -1
    area = (b[inside, 2] - b[inside, 0]) * (b[inside, 3] - b[inside, 1])
    return int(inside[np.argmin(area)])


__all__ = ["METHODS", "ChannelView", "RoiPoolingExplanation", "bilinear_taps", "explain_for_head",
           "explain_roi_pooling", "roi_at"]
