"""Classification + localisation: a CNN that names the one object of an image and regresses its box.

The step before R-CNN (Sermanet et al.'s OverFeat and the ImageNet localisation task, 2013): the image is
warped to a fixed square, a backbone computes its feature map, and a head turns the map into two outputs: K
class scores and 4 box numbers ``(x / W, y / H, w / W, h / H)``. The ``grid`` head averages the map to a small
grid (so it still knows *where* — a global average would keep only *what*) under one fully connected layer;
the ``spatial`` head lets every cell propose the box relative to itself and weighs the cells by a softmax
(:class:`SpatialClsLocHead`, what the shapes preset uses). The box numbers: :mod:`models.detection.cls_loc_targets`.
The loss is ``alpha * cross-entropy + (1 - alpha) * L2(box)``.
At test time it may take a second look (``cls_loc_head.test_glimpse``): the image cut to a window around the
first box, so a small object fills more of the square (:func:`glimpse_window`).

It answers with exactly one box, which is its limit and the reason detection needed region proposals: an
image with two objects gets one answer. It shares the :class:`Detector` interface, so ``predict``, ``train``,
``evaluate``, ``compare`` and the window take it like the three detectors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.detection.backbones import Backbone, config_with_backbone
from models.detection.cls_loc_targets import (
    SelectionReport,
    choose_object,
    cls_loc_loss,
    decode_boxes,
    encode_boxes,
)
from models.detection.config import DetectorConfig
from models.detection.detectors.base import Detections, Detector


@dataclass
class ClsLocTrace:
    """Everything between the image and its one box. ``input_size`` is the warped square's (h, w);
    ``factors`` (sy, sx) map the decoded image to it, as in the detectors' traces."""

    input_size: tuple[int, int]
    factors: tuple[float, float]
    feature_size: tuple[int, int]
    features: np.ndarray  # [C, h, w] the backbone's map
    pooled: np.ndarray  # grid head: [C, grid, grid] what it sees; spatial head: [1, h, w] its weights per cell
    class_scores: np.ndarray  # [K] softmax (with test_turns: the mean over the 8 flips and turns)
    box_output: np.ndarray  # [4] the raw (x/W, y/H, w/W, h/H) (test_turns: the mean, turned back; test_glimpse:
    # the second look's, mapped back to the whole image)
    detections: Detections  # the one box, in ORIGINAL image pixels
    #: with test_glimpse: the window (x1, y1, x2, y2, ORIGINAL pixels) of the second look, whose answer is the
    #: one given; the maps above stay those of the first look at the whole image
    glimpse_window: np.ndarray | None = None
    #: with test_glimpse: the first look's own answer (one box in ORIGINAL pixels, its class and score), which
    #: placed the window; the window shows it beside the final answer so the correction can be seen
    first_look: Detections | None = None


def random_crop(image: Tensor, box: Tensor, fraction: float) -> tuple[Tensor, Tensor]:
    """A random window of ``image`` [3, H, W] holding all of ``box`` (xyxy pixels), each side between
    ``fraction`` and 1 of the image's (never smaller than the box), and the box in its pixels.
    ``fraction`` 1 returns the image as it is. Draws from torch's generator (seeded by the training run)."""
    if fraction >= 1.0:
        return image, box
    h, w = image.shape[-2:]
    x1, y1, x2, y2 = (float(v) for v in box)
    u = torch.rand(4).tolist()
    cw = min(float(w), max(x2 - x1, (fraction + (1.0 - fraction) * u[0]) * w))
    ch = min(float(h), max(y2 - y1, (fraction + (1.0 - fraction) * u[1]) * h))
    lo_x, hi_x = max(0.0, x2 - cw), min(x1, w - cw)
    lo_y, hi_y = max(0.0, y2 - ch), min(y1, h - ch)
    x0 = int(lo_x + u[2] * max(0.0, hi_x - lo_x))
    y0 = int(lo_y + u[3] * max(0.0, hi_y - lo_y))
    xe = min(w, int(np.ceil(max(x0 + cw, x2))))
    ye = min(h, int(np.ceil(max(y0 + ch, y2))))
    offset = torch.tensor([x0, y0, x0, y0], dtype=box.dtype, device=box.device)
    return image[:, y0:ye, x0:xe], box - offset


def turn_box(box: Tensor) -> Tensor:
    """[..., 4] normalised ``(x, y, w, h)`` of a square turned a quarter counter-clockwise
    (``torch.rot90(image, 1, (-2, -1))``): a pixel at (x, y) moves to (y, 1 − x)."""
    x, y, w, h = box.unbind(-1)
    return torch.stack([y, 1.0 - x - w, h, w], dim=-1)


def unturn_box(box: Tensor) -> Tensor:
    """The inverse of :func:`turn_box` (a quarter turn clockwise)."""
    x, y, w, h = box.unbind(-1)
    return torch.stack([1.0 - y - h, x, h, w], dim=-1)


def flip_box(box: Tensor) -> Tensor:
    """[..., 4] normalised ``(x, y, w, h)`` of an image mirrored left-right (its own inverse)."""
    x, y, w, h = box.unbind(-1)
    return torch.stack([1.0 - x - w, y, w, h], dim=-1)


def turned_answers(answer: Callable[[Tensor], tuple[Tensor, Tensor]], x: Tensor) -> tuple[Tensor, Tensor]:
    """Test-time averaging over the 8 symmetries of the square (identity, 3 quarter turns, each mirrored).

    ``answer`` maps a batch of square inputs [B, 3, S, S] to (class logits [B, K], boxes [B, 4] normalised
    ``(x, y, w, h)``). Each transformed batch's boxes are turned back to the input's frame before averaging;
    the class is the mean of the 8 softmax distributions. Why it is sound for a model trained with flips and
    quarter turns: the right answer for a turned image is the turned answer, so the 8 are 8 estimates of one
    thing whose errors (a low-contrast edge caught on one side, not on another) are partly independent.
    Returns (probabilities [B, K], boxes [B, 4])."""
    probs, boxes = [], []
    for mirrored in (False, True):
        xm = x.flip(-1) if mirrored else x
        for turns in range(4):
            logits, box = answer(torch.rot90(xm, turns, (-2, -1)) if turns else xm)
            for _ in range(turns):
                box = unturn_box(box)
            boxes.append(flip_box(box) if mirrored else box)
            probs.append(logits.softmax(-1))
    return torch.stack(probs).mean(0), torch.stack(boxes).mean(0)


def glimpse_window(box: Tensor, width: int, height: int, share: float) -> tuple[int, int, int, int]:
    """The window ``(x1, y1, x2, y2)`` (integer pixels of a ``width`` × ``height`` image) for a second look at
    a first answer ``box`` (normalised ``(x, y, w, h)``): centred on the box, each side the box's divided by
    ``share`` (so the box fills ``share`` of it), never larger than the image and shifted inside it at the
    borders, at least 2 pixels.

    Why: the network sees every image warped to its small square (64 px in the shapes preset), where an object
    of 15 % of the side is ~10 px and a low-contrast outline is averaged away. Cut to this window, the same
    object fills ``share`` of the square, the size the larger objects of the training images have, with the
    context around it; the first look only has to find it (the coarse-to-fine "glimpse")."""
    x, y, w, h = (float(v) for v in box)
    cw = min(float(width), max(2.0, w * width / share))
    ch = min(float(height), max(2.0, h * height / share))
    cx, cy = (x + w / 2) * width, (y + h / 2) * height
    x1 = int(round(min(max(cx - cw / 2, 0.0), width - cw)))
    y1 = int(round(min(max(cy - ch / 2, 0.0), height - ch)))
    return x1, y1, min(width, x1 + int(round(cw))), min(height, y1 + int(round(ch)))


def box_from_window(box: Tensor, window: tuple[int, int, int, int], width: int, height: int) -> Tensor:
    """A box normalised to ``window`` (``(x, y, w, h)`` / the window's size, what the model answers for the
    window) as the same box normalised to the whole ``width`` × ``height`` image."""
    x1, y1, x2, y2 = window
    ww, wh = x2 - x1, y2 - y1
    x, y, w, h = box.unbind(-1)
    return torch.stack([(x1 + x * ww) / width, (y1 + y * wh) / height, w * ww / width, h * wh / height], dim=-1)


class ClsLocHead(nn.Module):
    """Grid-averaged features (where) and the map's global maximum per channel (what: a shape detector's
    strongest response, wherever the shape is) → one hidden layer → K class logits and 4 box numbers.

    The hidden layer is normalised (LayerNorm) before its ReLU. Without it the head died from scratch: its
    ~3,300 inputs are all ≥ 0 (ReLU features), and Adam moves every weight of a unit by about the learning
    rate in the same direction, so one step shifts the unit's pre-activation by lr × Σ inputs ≈ 2e-3 × 3,300
    × 0.45 ≈ 3 — enough to push it below zero for every image. Measured on the shapes: 94 % of the 256
    hidden units gave 0 for a whole batch after 20 steps, 98 % after 50; the outputs were then constant, the
    cross-entropy stayed at ln 3 and the box at the mean box. Normalised, every unit keeps a zero-mean
    pre-activation across the layer and about half stay alive."""

    def __init__(self, in_channels: int, num_classes: int, grid: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.grid = int(grid)
        self.fc = nn.Linear(in_channels * (grid * grid + 1), hidden)
        self.norm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.cls_score = nn.Linear(hidden, num_classes)
        self.box_pred = nn.Linear(hidden, 4)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.normal_(self.box_pred.weight, std=0.001)
        # Start at a centred box of half the image: the mean of the 15–60 % shapes, not a point at 0.
        with torch.no_grad():
            self.box_pred.bias.copy_(torch.tensor([0.3, 0.3, 0.4, 0.4]))

    def pool(self, features: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(features, self.grid)

    def forward(self, pooled: Tensor, peak: Tensor) -> tuple[Tensor, Tensor]:
        x = self.dropout(F.relu(self.norm(self.fc(torch.cat([pooled.flatten(1), peak.flatten(1)], dim=1)))))
        return self.cls_score(x), self.box_pred(x)

    def predict(self, features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(what the trace shows as the head's input, class logits, box outputs)."""
        pooled = self.pool(features)
        logits, box = self(pooled, features.amax(dim=(-2, -1)))
        return pooled, logits, box


class SpatialClsLocHead(nn.Module):
    """Every cell of the feature map proposes the object's box; a softmax over the cells says which cells to
    believe; the answer is their weighted average. The class is read from the features those same cells hold
    (weighted the same way) and from the map's per-channel maximum.

    Why not one fully connected layer over a grid (:class:`ClsLocHead`): that layer learns "a shape in cell
    (3, 5) means x ≈ 0.7" separately for each cell, from the few training images whose object happened to be
    there — with 400 images it fitted its training boxes to a mean IoU of only 0.65 and reached 0.59 on new
    images. Here one 1×1 convolution is shared by all cells and predicts the box *relative to its cell* (the
    centre's offset in cell units, the size in image units), so what it learns at one position holds at every
    other: the same translation equivariance the convolutions have. The weighted average is differentiable,
    so the loss is still ``alpha·CE + (1 − alpha)·L2`` on the four numbers ``(x/W, y/H, w/W, h/H)``.

    A 3×3 convolution first widens each cell's view (a large shape is more than one cell's receptive field)."""

    def __init__(self, in_channels: int, num_classes: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_channels, hidden, 3, padding=1, bias=False),
                                  nn.GroupNorm(min(8, hidden), hidden), nn.ReLU(inplace=True))
        self.where = nn.Conv2d(hidden, 1, 1)  # which cells hold the object (softmax over cells)
        self.box = nn.Conv2d(hidden, 4, 1)  # per cell: centre offset (dx, dy) in cells, size (w, h) / image side
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.cls_score = nn.Linear(2 * hidden, num_classes)
        nn.init.zeros_(self.where.weight)
        nn.init.zeros_(self.where.bias)
        nn.init.normal_(self.box.weight, std=0.001)
        with torch.no_grad():  # start: every cell says "centred on me, 40 % of the image" (the shapes' mean)
            self.box.bias.copy_(torch.tensor([0.0, 0.0, 0.4, 0.4]))
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.zeros_(self.cls_score.bias)

    def predict(self, features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(the softmax weights over the cells [B, 1, h, w], class logits [B, K], box outputs [B, 4])."""
        x = self.conv(features)
        b, _, h, w = x.shape
        weights = self.where(x).flatten(1).softmax(-1).view(b, 1, h, w)
        cells = self.box(x)
        ys = (torch.arange(h, device=x.device, dtype=x.dtype) + 0.5) / h
        xs = (torch.arange(w, device=x.device, dtype=x.dtype) + 0.5) / w
        cx = xs.view(1, 1, w) + cells[:, 0] / w
        cy = ys.view(1, h, 1) + cells[:, 1] / h
        bw, bh = cells[:, 2], cells[:, 3]
        per_cell = torch.stack([cx - bw / 2, cy - bh / 2, bw, bh], dim=1)  # [B, 4, h, w]
        box = (per_cell * weights).sum(dim=(-2, -1))
        attended = (x * weights).sum(dim=(-2, -1))
        logits = self.cls_score(self.dropout(torch.cat([attended, x.amax(dim=(-2, -1))], dim=1)))
        return weights, logits, box


class ClsLoc(Detector):
    generation = "cls-loc"

    def __init__(self, class_names: list[str], config: DetectorConfig | None = None, *,
                 backbone: Backbone | None = None) -> None:
        config, backbone = config_with_backbone(self.generation, config, backbone)
        super().__init__(class_names, config)
        head = config.cls_loc_head
        self.backbone = backbone
        self.input_side = head.input_size
        self.alpha = head.alpha
        self.train_crop = head.train_crop
        self.train_crop_share = head.train_crop_share
        self.antialias = head.antialias
        self.train_colour_shuffle = head.train_colour_shuffle
        self.test_turns = head.test_turns
        self.test_glimpse = head.test_glimpse
        if head.layout == "spatial":
            self.head: nn.Module = SpatialClsLocHead(backbone.out_channels, len(class_names), head.hidden,
                                                     head.dropout)
        else:
            self.head = ClsLocHead(backbone.out_channels, len(class_names), head.grid, head.hidden, head.dropout)

    # --- the network ----------------------------------------------------------------------------------------
    def _warp(self, images: list[Tensor]) -> Tensor:
        """Each [3, H, W] 0..1 image warped (aspect not kept) to the square input and normalised."""
        side = self.input_side
        warped = [F.interpolate(im[None], size=(side, side), mode="bilinear", align_corners=False,
                                antialias=self.antialias)[0] for im in images]
        return (torch.stack(warped) - self.image_mean) / self.image_std

    def _outputs(self, images: list[Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        features = self.backbone(self._warp(images))
        pooled, logits, box = self.head.predict(features)
        return features, pooled, logits, box

    def _look(self, images: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Class probabilities [B, K] and box outputs [B, 4] of one look at each image: as it is, or with
        ``test_turns`` the mean over its 8 flips and quarter turns (:func:`turned_answers`)."""
        if not self.test_turns:
            _, _, logits, box = self._outputs(images)
            return logits.softmax(-1), box
        return turned_answers(lambda t: self.head.predict(self.backbone(t))[1:], self._warp(images))

    def _answers(self, images: list[Tensor]) -> tuple[Tensor, Tensor, list[tuple[int, int, int, int]] | None]:
        """:meth:`_looks` without the first look's own answer."""
        probs, box, windows, _ = self._looks(images)
        return probs, box, windows

    def _looks(self, images: list[Tensor]
               ) -> tuple[Tensor, Tensor, list[tuple[int, int, int, int]] | None, tuple[Tensor, Tensor] | None]:
        """The test-time answer: class probabilities [B, K], box outputs [B, 4] normalised to each whole image,
        and (with ``test_glimpse``) each image's second-look window in its pixels and the first look's own
        (probabilities, boxes) that placed it, else None and None.

        With ``test_glimpse`` the first look only finds the object; each image is then cut to
        :func:`glimpse_window` around that box and the answer is the second look's (its class, its box mapped
        back by :func:`box_from_window`). Not an average with the first: the second sees the object at a few
        times the pixels, and the first look's class is the one it is there to correct."""
        probs, box = self._look(images)
        if not self.test_glimpse:
            return probs, box, None, None
        first = (probs, box)
        sizes = [(int(im.shape[-1]), int(im.shape[-2])) for im in images]
        windows = [glimpse_window(b, w, h, self.test_glimpse) for b, (w, h) in zip(box, sizes, strict=True)]
        crops = [im[:, y1:y2, x1:x2] for im, (x1, y1, x2, y2) in zip(images, windows, strict=True)]
        probs, inner = self._look(crops)
        box = torch.stack([box_from_window(b, win, w, h) for b, win, (w, h) in zip(inner, windows, sizes, strict=True)])
        return probs, box, windows, first

    def forward(self, images: list[Tensor], targets: list[dict] | None = None):  # noqa: ANN201
        if self.training:
            if targets is None:
                raise ValueError("training needs targets")
            return self._losses(images, targets)
        all_probs, box, _ = self._answers(images)
        out = []
        for im, probs, bx in zip(images, all_probs, box, strict=True):
            h, w = im.shape[-2:]
            score, label = probs.max(-1)
            out.append({"boxes": decode_boxes(bx[None], w, h), "scores": score[None],
                        "labels": (label + 1)[None]})
        return out

    def _losses(self, images: list[Tensor], targets: list[dict]) -> dict[str, Tensor]:
        chosen = [(i, choose_object(t["boxes"], t["labels"], t.get("difficult"))) for i, t in enumerate(targets)]
        chosen = [(i, k) for i, k in chosen if k is not None]
        if not chosen:  # no image of the batch has an object: nothing to learn, but keep the graph
            zero = sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0
            return {"loss_classifier": zero, "loss_box_l2": zero}
        kept, goals = [], []
        for i, k in chosen:
            cropped = self.train_crop_share >= 1.0 or float(torch.rand(())) < self.train_crop_share
            image, box = random_crop(images[i], targets[i]["boxes"][k].float(),
                                     self.train_crop if cropped else 1.0)
            if self.train_colour_shuffle:
                image = image[torch.randperm(3)]
            kept.append(image)
            goals.append(encode_boxes(box, image.shape[-1], image.shape[-2]))
        _, _, logits, box = self._outputs(kept)
        labels = torch.stack([targets[i]["labels"][k] for i, k in chosen]).to(logits.device) - 1
        return cls_loc_loss(logits, box, labels.long(), torch.stack(goals).to(box.device), self.alpha)

    def _forward_test(self, image: np.ndarray, t: Tensor, factors: tuple[float, float]) -> dict[str, Tensor]:
        return self.forward([t])[0]

    # --- older checkpoints ----------------------------------------------------------------------------------
    @staticmethod
    def weights_mismatch_hint(missing: list[str], unexpected: list[str]) -> str | None:
        """Why a saved state dict does not fit, when it is a layout this generation used to have.

        Before commit 3ea9da3 (2026-11-30) the grid head had no LayerNorm (``head.norm``) in its hidden layer
        (its units died when trained from scratch); a fresh LayerNorm put into such a file's head would change
        what it computes without saying so. The way out is to train again, and the message says how."""
        del unexpected
        if missing and set(missing) <= {"head.norm.weight", "head.norm.bias"}:
            return ("a classification + localisation checkpoint in the head layout used before commit 3ea9da3 "
                    "(2026-11-30), whose hidden layer had no LayerNorm (its units died when trained from "
                    "scratch). This version cannot load it; train a new model, e.g. `python main.py train "
                    "--preset cls-loc-shapes-cpu --data DATA --out MODEL.pt`")
        return None

    # --- what training reports ------------------------------------------------------------------------------
    @staticmethod
    def describe_training_set(targets: list) -> str:
        """How the training images became one-object examples (each ``ImageTargets`` with ``boxes``)."""
        report = SelectionReport()
        for t in targets:
            report.add(len(t.boxes))
        return "classification + localisation: " + report.message()

    # --- inspection -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def trace(self, image: np.ndarray, gt_boxes: np.ndarray | None = None,
              score_threshold: float | None = None, ignore_regions: np.ndarray | None = None) -> ClsLocTrace:
        """The one box and what led to it. ``gt_boxes``, ``score_threshold`` and ``ignore_regions`` are taken
        for the same call as the detectors' traces (the window's Model stage passes them all) and unused: there
        are no anchors to label, and the one answer is kept whatever its score (a softmax over K classes gives
        at least 1/K)."""
        del gt_boxes, score_threshold, ignore_regions
        was_training = self.training
        self.eval()
        try:
            height, width = image.shape[:2]
            t, factors = self.prepare(image)
            features, pooled, logits, box = self._outputs([t])
            probs = logits[0].softmax(-1)
            window = first_look = None
            if self.test_turns or self.test_glimpse:  # the answer predict gives; the maps stay the first look's
                all_probs, box, windows, first = self._looks([t])
                probs = all_probs[0]
                if windows is not None and first is not None:
                    sy, sx = factors
                    x1, y1, x2, y2 = windows[0]
                    window = np.array([x1 / sx, y1 / sy, x2 / sx, y2 / sy], np.float32)
                    first_look = self._one_box(first[0][0], first[1], width, height)
            side = self.input_side
            return ClsLocTrace((side, side), (side / height, side / width), tuple(features.shape[-2:]),
                               features[0].cpu().numpy(), pooled[0].cpu().numpy(), probs.cpu().numpy(),
                               box[0].cpu().numpy(), self._one_box(probs, box, width, height), window, first_look)
        finally:
            self.train(was_training)

    def _one_box(self, probs: Tensor, box: Tensor, width: int, height: int) -> Detections:
        """One answer (probabilities [K], box outputs [1, 4]) as a :class:`Detections` of one box in the pixels
        of a ``width`` × ``height`` image, clamped to it."""
        score, label = probs.max(-1)
        boxes = decode_boxes(box, width, height).clamp(min=0)
        boxes[:, 0::2] = boxes[:, 0::2].clamp(max=width)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(max=height)
        return Detections(boxes.cpu().numpy().astype(np.float32), score[None].cpu().numpy().astype(np.float32),
                          (label + 1)[None].cpu().numpy().astype(np.int64), list(self.class_names))
