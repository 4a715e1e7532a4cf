"""The proposals a training step of Faster R-CNN hands to its detection head, recomputed from a trace.

At test time the RPN keeps few proposals (e.g. 6000 → NMS → 300); in training it keeps many more (12000 → NMS
→ 2000), and the head samples its RoIs from those. To show what training learns from, the explorer needs the
training-time set: :func:`training_proposals` re-runs the RPN head on the trace's feature map (one small
convolution) and the RPN's own :meth:`RegionProposalNetwork.select` with its training settings, on a shallow
copy of the RPN whose mode flag says "train" — the model itself is never switched, so other views using it at
the same time are unaffected. Augmentation (flips, scale jitter) is not reproduced: this is the image shown.
"""

from __future__ import annotations

import copy

import numpy as np
import torch


@torch.no_grad()
def training_proposals(rpn: torch.nn.Module, features: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """[P, 4] proposals (network-input pixels) the RPN ``rpn`` would give the head in a training step, for the
    feature map ``features`` [C, h, w] of an input of ``image_size`` (height, width)."""
    feats = torch.from_numpy(np.ascontiguousarray(features, np.float32))[None]
    param = next(rpn.parameters(), None)
    if param is not None:
        feats = feats.to(param.device, param.dtype)
    logits, deltas_map = rpn.head(feats)
    objectness, deltas = rpn.flatten(logits, deltas_map)
    anchors = rpn.anchor_generator(tuple(feats.shape[-2:]))
    train_view = copy.copy(rpn)  # a new attribute dict: setting its flag leaves the model's own mode alone
    train_view.training = True
    boxes, _scores, _ = train_view.select(anchors, objectness[0], deltas[0], (int(image_size[0]), int(image_size[1])))
    return boxes.float().cpu().numpy()


__all__ = ["training_proposals"]
