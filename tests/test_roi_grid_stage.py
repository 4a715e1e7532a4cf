"""The RoI pooling grid stage in a real canvas: click a RoI, check what is drawn against torchvision."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt
from torchvision.ops import roi_align as tv_roi_align
from torchvision.ops import roi_pool as tv_roi_pool

from app.annotation_model import AnnotationModel
from app.canvas import Canvas
from app.stages.detector_session import DetectorSession
from app.stages.roi_grid.stage import RoiGridStage
from models.data.io import DecodedImage
from models.detection.detectors import build_detector

CLASSES = ["circle", "square", "triangle"]
TINY = dict(small_width=8, anchor_sizes=(16, 32, 64), representation_size=32, min_size=128, max_size=160,
            rpn_pre_nms_test=600, rpn_post_nms_test=100)


def _image(h: int = 256, w: int = 320) -> np.ndarray:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    img[40:140, 60:180] = (220, 40, 40)
    img[150:230, 200:300] = (40, 200, 60)
    return img


@pytest.fixture(params=["pool", "align"])
def setup(request, qtbot):
    torch.manual_seed(0)
    model = build_detector("faster-rcnn", CLASSES, backbone="small", pooling=request.param, **TINY).eval()
    pixels = _image()
    canvas = Canvas(AnnotationModel())
    qtbot.addWidget(canvas)
    canvas.resize(420, 340)
    canvas.show()
    canvas.set_image(DecodedImage(pixels, pixels.shape[1], pixels.shape[0], 1, pixels.shape[1], pixels.shape[0]))
    session = DetectorSession(canvas)
    session.set_model(model)
    stage = RoiGridStage(canvas, session, None)
    session.set_trace(model.trace(pixels))
    yield canvas, session, stage, model
    stage.shutdown()


def _click_scene(qtbot, canvas: Canvas, x: float, y: float) -> None:
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=canvas.mapFromScene(x, y))


def _smallest(boxes: np.ndarray) -> int:
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return int(np.argmin(area))


def test_clicking_a_roi_draws_the_bins_torchvision_pools(qtbot, setup) -> None:
    canvas, session, stage, model = setup
    t = session.trace
    assert t.factors[0] == pytest.approx(0.5)  # 256-px image, 128-px network input: boxes map ×2 to the scene
    with qtbot.waitSignal(stage.explanationShown, timeout=5000):
        stage.panel.show_box.setChecked(True)  # showing the grid explains RoI 0 at once
    assert stage.index == 0
    # click inside the largest proposal but outside every smaller one that contains the point
    area = (t.proposals[:, 2] - t.proposals[:, 0]) * (t.proposals[:, 3] - t.proposals[:, 1])
    target = int(np.argmax(area))
    box = t.proposals[target]
    view_pos = canvas.mapFromScene(float(box[0] + box[2]), float(box[1] + box[3]))  # the centre, scene = 2 × input
    clicked = canvas.mapToScene(view_pos)  # the scene point a click at that whole viewport pixel lands on
    cx, cy = clicked.x() / 2, clicked.y() / 2
    around = np.flatnonzero((t.proposals[:, 0] <= cx) & (t.proposals[:, 2] >= cx)
                            & (t.proposals[:, 1] <= cy) & (t.proposals[:, 3] >= cy))
    expect_idx = int(around[np.argmin(area[around])])
    with qtbot.waitSignal(stage.explanationShown, timeout=5000):
        qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=view_pos)
    assert stage.index == expect_idx and stage.panel.roi_spin.value() == expect_idx
    roi = t.proposals[expect_idx]
    d = stage.layer.drawing
    assert np.allclose(d.roi, roi * 2, atol=1e-3)
    feats = torch.from_numpy(t.features)[None]
    troi = torch.tensor([[0.0, *roi.tolist()]])
    heads = model.roi_heads
    assert d.bins.shape == (49, 4)
    if heads.pooling == "pool":
        expect = tv_roi_pool(feats, troi, (7, 7), heads.spatial_scale)[0].numpy()
        for ch in (0, 5):
            stage.panel.channel_spin.setValue(ch)  # redrawn at once from the explanation already computed
            d = stage.layer.drawing
            cells = (d.argmax_cells[:, :2] / 2 * heads.spatial_scale).round().astype(int)  # scene → cell
            ok = expect[ch].reshape(-1) != 0
            assert cells.shape[0] == 49  # every bin of this RoI reads cells: one arg-max cell each
            assert np.array_equal(t.features[ch, cells[:, 1], cells[:, 0]][ok], expect[ch].reshape(-1)[ok])
            bins = (d.bins / 2 * heads.spatial_scale).round().astype(int)
            inside = ((bins[:, 0] <= cells[:, 0]) & (cells[:, 0] < bins[:, 2])
                      & (bins[:, 1] <= cells[:, 1]) & (cells[:, 1] < bins[:, 3]))
            assert inside.all()  # each arg-max cell lies in its own bin
            assert np.allclose(stage.panel.pooled_map.values, expect[ch])
    else:
        expect = tv_roi_align(feats, troi, (7, 7), heads.spatial_scale, 2, aligned=False)[0].numpy()
        stage.panel.channel_spin.setValue(3)
        d = stage.layer.drawing
        assert d.argmax_cells.shape[0] == 0 and d.sample_points.shape == (49 * 4, 2)
        pts = d.sample_points / 2 * heads.spatial_scale  # scene → feature coordinates
        vals = np.array([_bilinear(t.features[3], y, x) for x, y in pts]).reshape(7, 7, 4)
        assert np.allclose(vals.mean(-1), expect[3], atol=1e-5)
        assert np.allclose(stage.panel.pooled_map.values, expect[3], atol=1e-6)


def _bilinear(fmap: np.ndarray, y: float, x: float) -> float:
    """torchvision's RoIAlign interpolation of one sample, written out on scalars."""
    h, w = fmap.shape
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    y1 = x1 = 0
    if y0 >= h - 1:
        y0 = y1 = h - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= w - 1:
        x0 = x1 = w - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    return float((1 - ly) * (1 - lx) * fmap[y0, x0] + (1 - ly) * lx * fmap[y0, x1]
                 + ly * (1 - lx) * fmap[y1, x0] + ly * lx * fmap[y1, x1])


def test_a_small_roi_shows_cells_shared_by_bins(qtbot, setup) -> None:
    canvas, session, stage, model = setup
    t = session.trace
    k = _smallest(t.proposals)
    w = t.proposals[k, 2] - t.proposals[k, 0]
    assert w * model.roi_heads.spatial_scale < 7  # fewer cells than bins
    stage.panel.show_box.setChecked(True)
    with qtbot.waitSignal(stage.explanationShown, timeout=5000,
                          check_params_cb=lambda e: np.allclose(e.roi, t.proposals[k])):
        stage.panel.roi_spin.setValue(k)
    d = stage.layer.drawing
    assert d.shared_cells.shape[0] > 0
    assert stage.explanation.bins_per_cell.max() > 1
    assert "read by more than one bin" in stage.panel.readout.text()
    img = stage.panel.feature_map.grab()  # the panel's heat maps paint without error
    assert not img.isNull()


def test_new_trace_or_no_trace_resets_the_view(qtbot, setup) -> None:
    canvas, session, stage, model = setup
    with qtbot.waitSignal(stage.explanationShown, timeout=5000):
        stage.panel.show_box.setChecked(True)
    session.set_trace(None)
    assert stage.layer.drawing is None and stage.index == -1
    assert "No model trace" in stage.panel.readout.text()
    _click_scene(qtbot, canvas, 100, 100)  # a click without a trace does nothing (and does not fail)
    assert stage.index == -1
    session.set_domain_note("This model knows only the synthetic shapes.")  # geometry still drawn, with the note
    assert not stage.panel.domain_label.isHidden() and "synthetic" in stage.panel.domain_label.text()
    session.set_domain_note("")
    assert stage.panel.domain_label.isHidden()
