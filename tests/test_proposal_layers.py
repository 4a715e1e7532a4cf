"""Superpixels, proposals and hierarchy-playback layers: what they draw for a given result object.

Real layers on a real canvas (offscreen), small synthetic images: the label map must land on the right scene
pixels (working resolution stretched to full resolution), top-N must bound what is painted, the hover
hit-test must pick the outline under the cursor, and playback must highlight merge s at step s.
"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor, QImage, QPainter

from app.annotation_model import AnnotationModel
from app.canvas import Canvas
from app.layers.hierarchy import COLOR_A, COLOR_B, HierarchyLayer
from app.layers.proposals import COLOR_BY_IOU, COLOR_BY_RANK, IOU_BANDS, NO_GT_COLOR, ProposalsLayer
from app.layers.superpixels import (
    BOUNDARIES,
    FILL_MEAN,
    FILL_RANDOM,
    SuperpixelLayer,
    boundary_raster_size,
    paint_raster,
    upsample_labels,
)
from models.data.io import DecodedImage
from models.proposals.segmentation import felzenszwalb
from models.proposals.selective_search import selective_search


def quadrants(h: int = 60, w: int = 80) -> np.ndarray:
    """Four flat quadrants: four segments whatever k (within reason)."""
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2, : w // 2] = (220, 30, 30)
    img[: h // 2, w // 2:] = (30, 200, 40)
    img[h // 2:, : w // 2] = (40, 40, 220)
    img[h // 2:, w // 2:] = (230, 230, 40)
    return img


def decoded(pixels: np.ndarray, width: int, height: int) -> DecodedImage:
    scale = pixels.shape[1] / width
    return DecodedImage(pixels, width, height, 1, width, height, scale)


def render(layer, width: int, height: int) -> QImage:
    """Paint ``layer`` alone at one screen pixel per scene pixel onto a transparent image."""
    img = QImage(width, height, QImage.Format.Format_ARGB32)
    img.fill(QColor(0, 0, 0, 0))
    p = QPainter(img)
    layer.paint(p, None)
    p.end()
    return img


@pytest.fixture
def canvas(qtbot):
    c = Canvas(AnnotationModel())
    qtbot.addWidget(c)
    c.resize(300, 240)
    return c


def test_superpixels_fill_maps_working_labels_onto_full_resolution(canvas):
    # The image is shown at 160×120 but segmented at 80×60 (a reduced copy): each label pixel covers 2×2.
    work = quadrants(60, 80)
    seg = felzenszwalb(work, k=50, sigma=0.0, min_size=10, color_space="rgb", scale=0.5)
    assert seg.n_regions == 4
    canvas.set_image(decoded(np.repeat(np.repeat(work, 2, 0), 2, 1), 160, 120))
    layer = SuperpixelLayer()
    canvas.add_layer(layer)
    layer.setVisible(True)
    layer.setOpacity(1.0)
    layer.set_segmentation(seg)
    assert layer.n_regions == 4
    raster = layer.raster
    assert raster.shape == (60, 80, 4)
    assert len(np.unique(raster.reshape(-1, 4), axis=0)) == 4  # one colour per region
    colors = seg.random_colors(0)
    img = render(layer, 160, 120)
    # Scene pixel (150, 110) is in the bottom-right quadrant: label of work pixel (55, 75).
    expected = colors[seg.labels[55, 75]]
    got = img.pixelColor(150, 110)
    assert (got.red(), got.green(), got.blue()) == tuple(int(v) for v in expected)
    got = img.pixelColor(10, 10)
    assert (got.red(), got.green(), got.blue()) == tuple(int(v) for v in colors[seg.labels[5, 5]])

    # A deep zoom paints only the raster pixels in the exposed rect, still on the right scene pixels.
    img = QImage(160, 120, QImage.Format.Format_ARGB32)
    img.fill(QColor(0, 0, 0, 0))
    p = QPainter(img)
    p.scale(4, 4)
    paint_raster(p, layer.pixmap, layer.image_rect(), QRectF(30, 20, 10, 10))
    p.end()
    got = img.pixelColor(4 * 35, 4 * 25)  # scene (35, 25): work pixel (12, 17)
    assert (got.red(), got.green(), got.blue()) == tuple(int(v) for v in colors[seg.labels[12, 17]])
    assert img.pixelColor(4 * 10, 4 * 10).alpha() == 0  # outside the exposed rect: not painted

    layer.set_style(FILL_MEAN)
    got = render(layer, 160, 120).pixelColor(150, 110)
    assert (got.red(), got.green(), got.blue()) == (230, 230, 40)

    layer.set_style(BOUNDARIES)
    alpha = layer.raster[:, :, 3]
    # Boundaries are traced at the displayed size (160×120), one display pixel thick along the two borders.
    assert alpha.shape == (120, 160)
    assert alpha[10, 10] == 0 and alpha[110, 150] == 0
    assert alpha[59, 20] == 255 and alpha[20, 79] == 255
    assert alpha[58, 20] == 0 and alpha[60, 20] == 0 and alpha[20, 78] == 0 and alpha[20, 80] == 0
    assert render(layer, 160, 120).pixelColor(150, 110).alpha() == 0
    assert render(layer, 160, 120).pixelColor(20, 59).alpha() == 255

    layer.set_segmentation(None)
    assert layer.n_regions == 0 and layer.raster is None
    with pytest.raises(ValueError):
        layer.set_style("polka dots")
    layer.set_style(FILL_RANDOM)


def test_superpixel_boundaries_are_thin_at_display_resolution_on_large_images(canvas):
    # A 2,000×1,500 photo segmented at 500×375 (scale 0.25): traced at working resolution and stretched, a
    # boundary would be a 4-pixel band with 4-pixel steps; traced after upsampling the labels it is 1 px.
    work = np.zeros((375, 500, 3), np.uint8)
    work[:] = (200, 40, 40)
    yy, xx = np.mgrid[0:375, 0:500]
    work[(xx - 250) ** 2 + (yy - 190) ** 2 < 120 ** 2] = (40, 40, 200)  # a disc: a curved boundary
    seg = felzenszwalb(work, k=50, sigma=0.0, min_size=10, color_space="rgb", scale=0.25)
    assert seg.n_regions == 2
    canvas.set_image(decoded(np.repeat(np.repeat(work, 4, 0), 4, 1), 2000, 1500))
    layer = SuperpixelLayer()
    canvas.add_layer(layer)
    layer.set_style(BOUNDARIES)
    layer.set_segmentation(seg)
    alpha = layer.raster[:, :, 3]
    assert alpha.shape == (1500, 2000)
    # down the column through the disc's centre: two crossings, each exactly one pixel thick
    column = alpha[:, 1000] > 0
    assert column.sum() == 2
    assert not (column[1:] & column[:-1]).any()
    # the line follows the labels (the region changes right below / right of each boundary pixel)
    big = np.repeat(np.repeat(seg.labels, 4, 0), 4, 1)
    ys = np.flatnonzero(column)
    assert all(big[y, 1000] != big[y + 1, 1000] for y in ys)
    # it is painted where the image is, with the stretch of the other styles
    img = render(layer, 2000, 1500)
    assert img.pixelColor(1000, int(ys[0])).alpha() == 255
    assert img.pixelColor(1000, int(ys[0]) + 2).alpha() == 0
    np.testing.assert_array_equal(upsample_labels(seg.labels, 2000, 1500), big)

    # shown at half size, the lines are traced at the zoom: one screen pixel, with no gaps along the circle
    half = QImage(1000, 750, QImage.Format.Format_ARGB32)
    half.fill(QColor(0, 0, 0, 0))
    p = QPainter(half)
    p.scale(0.5, 0.5)
    layer.paint(p, None)
    p.end()
    assert layer.raster.shape[:2] == (750, 1000) == layer.boundary_size(0.5)[::-1]
    shown = np.array([[half.pixelColor(x, y).alpha() for x in (500,)] for y in range(750)])[:, 0] > 0
    assert shown.sum() == 2 and not (shown[1:] & shown[:-1]).any()
    ring = [(500 + round(239.5 * np.cos(a)), 380 + round(239.5 * np.sin(a))) for a in np.linspace(0, 2 * np.pi, 90)]
    near = [max(half.pixelColor(x + dx, y + dy).alpha() for dx in (-2, -1, 0, 1, 2) for dy in (-2, -1, 0, 1, 2))
            for x, y in ring]
    assert min(near) == 255  # the boundary is drawn all the way round
    # sizes: never below the labels' own, capped above, the zoom rounded down to a quarter octave
    assert boundary_raster_size((375, 500), (8000, 6000)) == (4096, 3072)
    assert boundary_raster_size((375, 500), (400, 300)) == (500, 375)
    assert layer.boundary_size(0.2) == (500, 375)
    w, h = layer.boundary_size(0.34)
    assert 500 < w <= 0.34 * 2000 and w >= 0.34 / 2 ** 0.25 * 2000 - 1


def test_proposals_layer_top_n_colouring_and_hover(canvas):
    canvas.set_image(decoded(quadrants(60, 80), 80, 60))
    layer = ProposalsLayer()
    canvas.add_layer(layer)
    layer.setVisible(True)
    boxes = np.array([[0, 0, 40, 30], [40, 0, 80, 30], [0, 30, 40, 60], [10, 10, 20, 20], [0, 0, 80, 60]],
                     np.float32)
    iou = np.array([0.9, 0.6, 0.1, 0.0, 0.55])
    layer.set_proposals(boxes, iou)
    assert layer.shown_count == 5
    render(layer, 80, 60)
    assert layer.last_painted == 5

    layer.set_top_n(2)
    assert layer.shown_count == 2
    assert sum(idx.size for idx, _, _ in layer.groups) == 2
    render(layer, 80, 60)
    assert layer.last_painted == 2
    layer.set_top_n(0)  # all
    assert layer.shown_count == 5

    # Rank colouring: the best-ranked group is painted last (on top) and in its own colour.
    assert layer.color_by == COLOR_BY_RANK
    assert 0 in layer.groups[-1][0]
    layer.set_color_by(COLOR_BY_IOU)
    by_color = {c.rgba(): set(idx.tolist()) for idx, c, _ in layer.groups}
    bands = {lo: c.rgba() for lo, c, _ in IOU_BANDS}
    assert by_color[bands[0.0]] == {2, 3}
    assert by_color[bands[0.5]] == {1, 4}
    assert by_color[bands[0.7]] == {0}
    assert layer.groups[-1][0].tolist() == [0]  # hits drawn on top
    layer.set_best_iou(None)
    assert [c.rgba() for _, c, _ in layer.groups] == [NO_GT_COLOR.rgba()]

    # Hover: the outline under the point, best rank first; interiors do not count.
    assert layer.hit_test(15, 10, zoom=1.0) == 3  # on box 3's top edge, inside box 0 (not on its outline)
    assert layer.hit_test(0.5, 45, zoom=1.0) == 2  # box 0 does not reach y=45; box 2's left edge does
    assert layer.hit_test(60, 45, zoom=1.0) == -1  # inside box 4, far from every outline
    assert layer.hit_test(79.5, 45, zoom=1.0) == 4
    assert layer.hit_test(30, 45, zoom=10.0) == -1  # 0.4 px tolerance at 10× zoom
    layer.set_best_iou(iou)
    layer.set_hover(1)
    assert layer.hover == 1
    assert layer.describe(1).startswith("proposal #2 of 5 · 40×30 px")
    assert "best IoU with GT 0.60" in layer.describe(1)
    layer.set_top_n(1)
    assert layer.hover == -1  # hovered box no longer shown
    with pytest.raises(ValueError):
        layer.set_proposals(boxes, iou[:3])


def test_hierarchy_layer_replays_merges(canvas):
    img = quadrants(60, 80)
    props = selective_search(img, "single", ks=(50,), sigma=0.0, max_side=None, near_duplicate_iou=1.0)
    h = props.hierarchy[0]
    assert h.n_initial == 4 and h.n_steps == 3
    canvas.set_image(decoded(np.repeat(np.repeat(img, 2, 0), 2, 1), 160, 120))
    layer = HierarchyLayer()
    canvas.add_layer(layer)
    layer.setVisible(True)
    layer.set_hierarchy(h, box_scale=2.0)
    assert layer.step == 0 and layer.region_count == 4
    m0 = h.merge(0)
    assert layer.highlighted_pair == (m0.a, m0.b)
    np.testing.assert_allclose(layer.new_box, np.array(m0.box) * 2.0)
    rgba = layer.raster
    a_pixels = np.all(rgba[:, :, :3] == COLOR_A, axis=2)
    b_pixels = np.all(rgba[:, :, :3] == COLOR_B, axis=2)
    members_a = np.isin(h.segmentation.labels, h.members(m0.a))
    # the pair's pixels are painted in the pair colours (region outlines excepted)
    assert a_pixels.sum() > 0.8 * members_a.sum() and not (a_pixels & ~members_a).any()
    assert b_pixels.sum() > 0 and not (a_pixels & b_pixels).any()

    layer.set_step(2)
    m2 = h.merge(2)
    assert layer.step == 2 and layer.region_count == 2
    assert layer.highlighted_pair == (m2.a, m2.b)
    np.testing.assert_allclose(layer.new_box, [0, 0, 160, 120])  # the last merge forms the whole image
    labels_now = h.labels_at(2)
    assert len(np.unique(labels_now)) == 2
    layer.set_step(99)  # clamped
    assert layer.step == 2
    img_out = render(layer, 160, 120)
    assert img_out.pixelColor(80, 60).alpha() > 0
    layer.set_hierarchy(None)
    assert layer.merge is None and layer.region_count == 0 and layer.raster is None
