"""Faster R-CNN end to end: loss dict, predict in original pixels, the trace, and overfitting a few images."""

import numpy as np
import pytest
import torch

from models.detection.config import DetectorConfig
from models.detection.detectors import build_detector
from models.detection.detectors.base import Detections, Detector
from models.detection.detectors.faster_rcnn import FasterRCNN, FasterRCNNTrace

CLASSES = ["circle", "square", "triangle"]
TINY = dict(small_width=8, anchor_sizes=(16, 32, 64), representation_size=64, min_size=128, max_size=160,
            rpn_pre_nms_train=600, rpn_post_nms_train=300, rpn_pre_nms_test=600, rpn_post_nms_test=100)


def _tiny_model(seed: int = 0, **kw) -> FasterRCNN:
    torch.manual_seed(seed)
    return build_detector("faster-rcnn", CLASSES, backbone="small", **{**TINY, **kw})


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    """A few small drawn images (D2's generator at small sizes, noise backgrounds, no low-contrast shapes)."""
    from models.data.synthetic import SynthParams, write_synthetic

    params = SynthParams(min_image_size=128, max_image_size=160, min_objects=1, max_objects=2,
                         min_object_size=40, max_object_size=80, photo_fraction=0.0, close_colour_fraction=0.0,
                         image_format="png")
    return write_synthetic(tmp_path_factory.mktemp("tiny_synth") / "set", 6, seed=3, params=params)


def test_training_forward_gives_four_finite_losses() -> None:
    m = _tiny_model().train()
    images = [torch.rand(3, 128, 150), torch.rand(3, 140, 128)]
    targets = [{"boxes": torch.tensor([[10.0, 20.0, 60.0, 70.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[30.0, 30.0, 90.0, 80.0], [5.0, 5.0, 40.0, 40.0]]),
                "labels": torch.tensor([2, 3])}]
    losses = m(images, targets)
    assert set(losses) == {"rpn_objectness", "rpn_box", "cls", "box"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert m.backbone.body[0].weight.grad is not None
    assert m.rpn.head.conv.weight.grad is not None and m.roi_heads.predictor.cls_score.weight.grad is not None


def test_predict_returns_boxes_in_original_pixels() -> None:
    m = _tiny_model(box_score_threshold=0.0)
    image = np.random.default_rng(0).integers(0, 255, (300, 500, 3), dtype=np.uint8)
    (det,) = m.predict([image], score_threshold=0.0)
    assert isinstance(det, Detections) and det.class_names == CLASSES
    assert det.boxes.dtype == np.float32 and det.scores.dtype == np.float32 and det.labels.dtype == np.int64
    assert len(det) > 0
    assert det.boxes[:, 2].max() <= 500 and det.boxes[:, 3].max() <= 300 and det.boxes.min() >= 0
    assert det.boxes[:, 2].max() > 160  # mapped back from the 128-px network input
    assert set(det.labels.tolist()) <= {1, 2, 3}
    assert m.training  # predict() puts the model back in the mode it found it in


def test_multi_scale_testing_merges_the_scales_by_nms() -> None:
    from models.boxes import box_iou

    m = _tiny_model(box_score_threshold=0.0)
    image = np.random.default_rng(1).integers(0, 255, (300, 500, 3), dtype=np.uint8)
    plain = m.predict([image], 0.0)[0]
    m.test_sizes = (128,)  # the model's own size: the same as no multi-scale testing
    assert np.allclose(m.predict([image], 0.0)[0].boxes, plain.boxes)
    m.test_sizes = (192,)
    large = m.predict([image], 0.0)[0]
    assert large.boxes[:, 2].max() <= 500 and not np.array_equal(large.scores, plain.scores)
    m.test_sizes = (128, 192)
    merged = m.predict([image], 0.0)[0]
    assert 0 < len(merged) <= min(100, len(plain) + len(large))
    pool_boxes = np.concatenate([plain.boxes, large.boxes])
    pool_labels = np.concatenate([plain.labels, large.labels])
    for box, label in zip(merged.boxes, merged.labels, strict=True):  # nothing invented by the merge
        assert (np.abs(pool_boxes - box).max(1)[pool_labels == label] < 1e-4).any()
    assert merged.scores.max() == pytest.approx(max(plain.scores.max(), large.scores.max()))
    for k in (1, 2, 3):  # same-class survivors overlap less than the head's NMS threshold
        b = torch.from_numpy(merged.boxes[merged.labels == k])
        iou = box_iou(b, b).fill_diagonal_(0)
        assert iou.numel() == 0 or float(iou.max()) <= m.roi_heads.nms_threshold + 1e-6


def test_flip_testing_is_mirror_symmetric() -> None:
    """With test-time flips, a mirrored image gives the mirrored detections: both runs merge the same two
    passes, so the result cannot depend on which way round the image came."""
    m = _tiny_model(box_score_threshold=0.0)
    m.test_flip = True
    image = np.random.default_rng(2).integers(0, 255, (150, 200, 3), dtype=np.uint8)
    plain = m.predict([image], 0.0)[0]
    m.test_flip = False
    single = m.predict([image], 0.0)[0]
    m.test_flip = True
    mirrored = m.predict([np.ascontiguousarray(image[:, ::-1])], 0.0)[0]
    assert len(plain) > len(single) > 0 or not np.allclose(plain.scores[: len(single)], single.scores)
    assert len(plain) == len(mirrored)
    order_a, order_b = np.argsort(-plain.scores, kind="stable"), np.argsort(-mirrored.scores, kind="stable")
    assert np.allclose(plain.scores[order_a], mirrored.scores[order_b], atol=1e-5)
    back = mirrored.boxes[order_b][:, [2, 1, 0, 3]] * np.array([-1, 1, -1, 1]) + np.array([200, 0, 200, 0])
    assert np.allclose(plain.boxes[order_a], back, atol=1e-3)
    assert np.array_equal(plain.labels[order_a], mirrored.labels[order_b])


class _TwoBoxDetector(Detector):
    """Finds, in a 300-pixel-high image at any test size, a 20-pixel and a 200-pixel object, scored by the
    input height: which test size reported a surviving detection is then readable from its score."""

    def __init__(self) -> None:
        super().__init__(["a", "b"], DetectorConfig.default("faster-rcnn").with_overrides({"input.min_size": 300}))
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # a device to run on

    def forward(self, images, targets=None):  # noqa: ANN001, ANN201
        h = images[0].shape[-2]
        boxes = torch.tensor([[50.0, 50.0, 70.0, 70.0], [100.0, 50.0, 300.0, 250.0]]) * (h / 300)
        return [{"boxes": boxes, "scores": torch.full((2,), h / 1000), "labels": torch.tensor([1, 2])}]


def test_size_range_lets_each_test_size_report_its_objects() -> None:
    m = _TwoBoxDetector()
    image = np.zeros((300, 400, 3), dtype=np.uint8)
    m.test_sizes = (450, 300, 600)

    def reporting_size() -> dict[str, int]:
        det = m.predict([image], 0.0)[0]
        assert len(det) == 2  # every pass finds the same two objects; the merge keeps one of each
        return {det.class_names[int(k) - 1]: round(float(s) * 1000) for k, s in zip(det.labels, det.scores,
                                                                                    strict=True)}

    assert reporting_size() == {"a": 600, "b": 600}  # no range: the best score wins the merge
    m.test_size_range = (32.0, 150.0)
    # At sizes 300/450/600 the small object is 20/30/40 input pixels, the large one 200/300/400: the small
    # one is under 32 except at the largest size (no lower bound there), the large one over 150 except at
    # the smallest size (no upper bound there).
    assert reporting_size() == {"a": 600, "b": 300}
    m.test_size_range = (25.0, 350.0)
    assert reporting_size() == {"a": 600, "b": 450}


def test_test_time_options_survive_the_config() -> None:
    m = _tiny_model(test_sizes=(96, 160), test_flip=True, test_size_range=(16, 120))
    again = FasterRCNN.from_config(CLASSES, m.config())
    assert again.test_sizes == (96, 160) and again.test_flip and again.test_size_range == (16.0, 120.0)
    with pytest.raises(ValueError, match="lo < hi"):
        _tiny_model(test_size_range=(120, 16))


def test_trace_holds_every_stage() -> None:
    m = _tiny_model(box_score_threshold=0.0)
    image = np.random.default_rng(1).integers(0, 255, (128, 160, 3), dtype=np.uint8)
    t = m.trace(image, gt_boxes=np.array([[20.0, 20.0, 70.0, 60.0]]))
    assert isinstance(t, FasterRCNNTrace)
    n = t.anchors.boxes.shape[0]
    assert n == t.feature_size[0] * t.feature_size[1] * 9
    assert t.objectness.shape == (n,) and t.rpn_deltas.shape == (n, 4)
    assert t.anchors.labels is not None and (t.anchors.labels == 1).sum() >= 1
    assert len(t.proposal_nms.kept) >= len(t.proposals) == t.pooled_features.shape[0]
    assert np.allclose(t.proposals_pre_nms[t.proposal_nms.kept[: len(t.proposals)]], t.proposals)
    assert t.pooled_features.shape[1:] == (m.backbone.out_channels, 7, 7)
    assert t.class_scores.shape == (len(t.proposals), 4)
    assert np.allclose(t.class_scores.sum(1), 1, atol=1e-5)
    assert t.class_boxes.shape == (len(t.proposals), 4, 4)
    assert len(t.detection_nms.kept) >= len(t.detections)
    # The trace's final detections are what predict() returns.
    (det,) = m.predict([image], score_threshold=0.0)
    assert np.allclose(np.sort(det.scores), np.sort(t.detections.scores), atol=1e-5)


def test_overfits_a_few_synthetic_images(tiny_set) -> None:
    """A tiny Faster R-CNN learns four drawn images by heart: VOC mAP@0.5 on them reaches ~1.

    AdamW because from scratch it gets there in ~100 steps, where SGD needs several hundred; RoIAlign
    because on a 128-px input a stride-16 RoI max-pool quantises 40-px objects too coarsely to regress.
    """
    import math

    from models.data.io import read_image
    from models.data.training_data import DetectionDataset, collate
    from models.detection.evaluation import evaluate_detections

    idx = tiny_set.splits["train"]
    ds = DetectionDataset(tiny_set, idx, CLASSES, min_size=128, max_size=160)
    images, targets = collate([ds[i] for i in range(len(ds))])
    m = _tiny_model(seed=1, pooling="align").train()
    opt = torch.optim.AdamW(m.parameters(), lr=0.002, weight_decay=1e-4)
    iters = 120
    for it in range(iters):
        for g in opt.param_groups:
            g["lr"] = 0.002 * min(1.0, (it + 1) / 20) * 0.5 * (1 + math.cos(math.pi * it / iters))
        losses = m(images, targets)
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    gts, dets = [], []
    for k, i in enumerate(ds.indices):
        dets.append(m.predict([read_image(tiny_set.entries[i].path).pixels])[0])
        t = ds.targets[k]
        gts.append({"boxes": t.boxes, "labels": t.names, "difficult": t.difficult})
    result = evaluate_detections(gts, dets, CLASSES, coco=False)
    assert result.mAP >= 0.9, result.AP


def test_the_rpns_gradient_into_the_backbone_can_be_scaled_or_stopped() -> None:
    """rpn.backbone_gradient (DeFRCN's gradient-decoupled layer): 0 leaves the backbone untouched by the RPN's
    loss (the RPN itself still learns), 0.5 halves what the RPN's loss sends into it, 1 is the paper's."""
    images = [torch.rand(3, 128, 150, generator=torch.Generator().manual_seed(1))]
    targets = [{"boxes": torch.tensor([[10.0, 20.0, 60.0, 70.0]]), "labels": torch.tensor([1])}]

    def rpn_grads(scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        m = _tiny_model(seed=0, **{"rpn.backbone_gradient": scale}).train()
        torch.manual_seed(5)  # the anchors' sampling
        losses = m(images, targets)
        (losses["rpn_objectness"] + losses["rpn_box"]).backward()
        backbone = torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel())
                              for p in m.backbone.parameters() if p.requires_grad])
        rpn = torch.cat([p.grad.flatten() for p in m.rpn.parameters() if p.grad is not None])
        return backbone, rpn

    full, rpn_full = rpn_grads(1.0)
    half, rpn_half = rpn_grads(0.5)
    none, rpn_none = rpn_grads(0.0)
    assert full.abs().sum() > 0 and none.abs().sum() == 0
    torch.testing.assert_close(half, 0.5 * full, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(rpn_half, rpn_full)  # the RPN learns the same whatever the backbone gets
    torch.testing.assert_close(rpn_none, rpn_full)
