"""Benchmark: an R-CNN checkpoint stage by stage — what its fine-tuned CNN, its SVMs and its box regressors each
contribute, and how much the number of test proposals and the SVMs' feature scale and C matter.

Why: a low mAP alone does not say which stage failed. This measures, on one evaluation set:

- the fc7 codes' mean L2 norm (training proposals and ground-truth boxes): the paper scales codes to a mean
  norm of 20 before its SVMs, because C = 0.001 means what it meant only at that size;
- the fine-tuned softmax's accuracy on warped test crops, foreground (IoU >= 0.5, its class) and background;
- mAP@0.5 with the softmax instead of the SVMs, with the checkpoint's SVMs, each with and without the ridge box
  regression, at each number of test proposals;
- mAP@0.5 after refitting the SVMs (hard-negative mining as in training) unscaled and scaled, at two C.

Codes go through the product's CNN-code cache, so a second run (or the codes the training run left behind) is
cheap. Choose settings on a second set (``--eval-data``, e.g. ``synth --seed 1``), not on the test split.

    python bench/rcnn_stages.py --model rcnn.pt --train-data syn400 --eval-data syn400_seed1 \
        [--proposals 500,2000] [--no-refit]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.boxes import box_iou  # noqa: E402
from models.data.datasets import open_dataset  # noqa: E402
from models.data.io import read_image  # noqa: E402
from models.data.splits import dataset_splits, split_indices  # noqa: E402
from models.data.training_data import load_targets  # noqa: E402
from models.detection.checkpoints import load_detector  # noqa: E402
from models.detection.evaluation import ImageDetections, ImageGroundTruth, evaluate_detections  # noqa: E402
from models.detection.nms import batched_nms  # noqa: E402
from models.detection.svm import mine_hard_negatives, train_linear_svm  # noqa: E402


def collect(model, data: str, split: str, proposals: int) -> list[dict]:  # noqa: ANN001
    """Per image: ground truth, the best ``proposals`` Selective Search boxes and the fc7 codes of both."""
    source = open_dataset(data)
    out = []
    for idx in split_indices(dataset_splits(source, seed=0), split):
        t, _ = load_targets(source, idx, model.class_names)
        image = read_image(t.path).pixels
        props = model.proposal_cache.get(image, dataclasses.replace(model.proposal_params, top=proposals))
        gt = t.boxes.astype(np.float32)
        codes = model.codes_of(image, np.concatenate([gt, props])).codes
        out.append({"gt": gt, "labels": t.labels, "props": props, "gt_codes": codes[: len(gt)],
                    "codes": codes[len(gt):], "size": image.shape[:2]})
    return out


def softmax_accuracy(model, images: list[dict]) -> tuple[float, float]:  # noqa: ANN001
    right_fg = right_bg = n_fg = n_bg = 0
    for d in images:
        iou = box_iou(torch.from_numpy(d["gt"]), torch.from_numpy(d["props"]))
        best, arg = iou.max(0)
        truth = torch.where(best >= 0.5, torch.from_numpy(d["labels"])[arg], torch.zeros_like(arg))
        pred = model.classifier(torch.from_numpy(d["codes"])).argmax(1)
        fg = truth > 0
        right_fg += int((pred[fg] == truth[fg]).sum())
        n_fg += int(fg.sum())
        right_bg += int((pred[~fg] == 0).sum())
        n_bg += int((~fg).sum())
    return right_fg / max(n_fg, 1), right_bg / max(n_bg, 1)


def mean_ap(model, images: list[dict], score, proposals: int, regress: bool = True) -> tuple[float, dict]:  # noqa: ANN001
    """Detections as the model's test path makes them (threshold 0.05, per-class NMS 0.3, 100 per image)."""
    names = model.class_names
    gts, dets = [], []
    for d in images:
        boxes, codes = torch.from_numpy(d["props"][:proposals]), torch.from_numpy(d["codes"][:proposals])
        p = score(codes)[:, 1:]
        cboxes = model._class_boxes(boxes, codes, d["size"])[:, 1:] if regress else \
            boxes[:, None].expand(-1, len(names), 4)
        labels = torch.arange(1, p.shape[1] + 1).expand_as(p)
        keep = p > 0.05
        b, s, lab = cboxes[keep], p[keep], labels[keep]
        kept = batched_nms(b, s, lab, 0.3)[:100]
        dets.append(ImageDetections(b[kept].numpy(), s[kept].numpy(), [names[i - 1] for i in lab[kept].tolist()]))
        gts.append(ImageGroundTruth(d["gt"], [names[i - 1] for i in d["labels"].tolist()]))
    r = evaluate_detections(gts, dets, names, coco=False)
    return round(r.mAP, 3), {k: round(v, 3) for k, v in r.AP.items()}


def refit(model, train: list[dict], scale: float, c: float) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
    """Per-class SVMs on ``scale`` × codes: GT positives, IoU < 0.3 negatives, two passes of mining."""
    k, dim = model.num_classes, train[0]["codes"].shape[1]
    weights, biases = torch.zeros(k, dim), torch.zeros(k)
    for cls in range(1, k + 1):
        pos = np.concatenate([d["gt_codes"][d["labels"] == cls] for d in train]) * scale
        negatives = []
        for d in train:
            of_class = d["gt"][d["labels"] == cls]
            iou = box_iou(torch.from_numpy(of_class), torch.from_numpy(d["props"])).numpy() if len(of_class) else \
                np.zeros((1, len(d["props"])), np.float32)
            negatives.append(d["codes"][iou.max(0) < 0.3] * scale)
        cache = negatives[0][:128]
        svm = train_linear_svm(pos, cache, c, model.svm_positive_weight)
        for _ in range(2):
            new = []
            for i, neg in enumerate(negatives):
                new.append(neg[mine_hard_negatives(svm, neg, None, 1.0)])
                if (i + 1) % 50 == 0:
                    cache = np.unique(np.concatenate([cache, *new]), axis=0)
                    new = []
                    svm = train_linear_svm(pos, cache, c, model.svm_positive_weight)
            cache = np.unique(np.concatenate([cache, *new]), axis=0)
            svm = train_linear_svm(pos, cache, c, model.svm_positive_weight)
        weights[cls - 1], biases[cls - 1] = torch.from_numpy(svm.weight) * scale, svm.bias
    return weights, biases


def svm_score(weights: torch.Tensor, biases: torch.Tensor):  # noqa: ANN201
    return lambda codes: torch.cat([torch.zeros(len(codes), 1), torch.sigmoid(codes @ weights.t() + biases)], 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--train-data", required=True, help="the set the model was trained on (its train split)")
    ap.add_argument("--eval-data", default=None, help="where to measure (its test split; default --train-data)")
    ap.add_argument("--proposals", default="500,2000", help="test proposal counts to compare")
    ap.add_argument("--no-refit", action="store_true", help="skip refitting the SVMs")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    model = load_detector(args.model, "cpu").eval()
    counts = sorted(int(v) for v in args.proposals.split(","))
    t0 = time.time()
    test = collect(model, args.eval_data or args.train_data, "test", counts[-1])
    train = collect(model, args.train_data, "train", model.proposals_train)
    print(f"codes ready in {time.time() - t0:.0f} s ({len(train)} training, {len(test)} evaluation images)")
    codes = np.concatenate([d["codes"] for d in train])
    norm = float(np.linalg.norm(codes, axis=1).mean())
    gt_norm = float(np.linalg.norm(np.concatenate([d["gt_codes"] for d in train]), axis=1).mean())
    print(f"fc7 mean L2 norm: training proposals {norm:.1f}, ground-truth boxes {gt_norm:.1f}")
    fg, bg = softmax_accuracy(model, [{**d, "props": d["props"][:counts[0]], "codes": d["codes"][:counts[0]]}
                                      for d in test])
    print(f"fine-tuned softmax on warped evaluation crops: foreground accuracy {fg:.3f}, background {bg:.3f}")
    softmax = lambda c: torch.softmax(model.classifier(c).float(), -1)  # noqa: E731
    trained = svm_score(model.svm_weight, model.svm_bias)
    for n in counts:
        print(f"[{n} proposals] softmax {mean_ap(model, test, softmax, n)}; softmax, no box regression "
              f"{mean_ap(model, test, softmax, n, False)}; checkpoint's SVMs {mean_ap(model, test, trained, n)}; "
              f"SVMs, no box regression {mean_ap(model, test, trained, n, False)}", flush=True)
    if args.no_refit:
        return
    for scale, c in ((1.0, 1e-3), (20.0 / norm, 1e-3), (20.0 / norm, 1e-2)):
        w, b = refit(model, train, scale, c)
        print(f"SVMs refitted, codes × {scale:.3f}, C {c:g}: "
              + "; ".join(f"[{n}] {mean_ap(model, test, svm_score(w, b), n)}" for n in counts), flush=True)


if __name__ == "__main__":
    main()
