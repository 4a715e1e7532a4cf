"""The Selective Search stage in the app: panels drive workers, workers feed layers, read-outs tell the truth.

Real widgets (offscreen) and real worker threads on small synthetic images. Every ``waitSignal`` is armed
before the action that triggers the work; every thread is cancelled and waited for in teardown.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint
from PySide6.QtWidgets import QApplication

from app.annotation_model import AnnotationModel
from app.canvas import Canvas
from app.dataset_quality import measure_dataset
from app.proposal_tools import ProposalTools
from models.data.annotations import Annotation, BoxObject, write_voc
from models.data.datasets import open_dataset
from models.data.io import DecodedImage
from models.proposals.metrics import AR_THRESHOLDS, CURVE_BUDGETS, iou_matrix, score_image
from models.proposals.selective_search import TERMS

WAIT_MS = 30_000

#: Ground truth of ``scene()``: two objects counted, one difficult (left out of recall).
GT = [("red", (10, 8, 50, 40), False), ("blue", (62, 34, 112, 84), False), ("green", (16, 52, 44, 86), True)]


def scene(w: int = 120, h: int = 90, seed: int = 0) -> np.ndarray:
    """Flat-coloured rectangles on a noisy grey gradient: objects Selective Search can find."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    img[:] = np.linspace(90, 150, w)[None, :, None]
    img += rng.normal(0, 6, img.shape)
    for (_, (x1, y1, x2, y2), _), color in zip(GT, [(210, 40, 40), (40, 60, 210), (50, 190, 60)], strict=True):
        img[y1:y2, x1:x2] = color
    return np.clip(img, 0, 255).astype(np.uint8)


def annotation(w: int = 120, h: int = 90) -> Annotation:
    return Annotation("scene.png", w, h, 3, [BoxObject(n, tuple(map(float, b)), difficult=d) for n, b, d in GT])


@pytest.fixture
def setup(qtbot):
    model = AnnotationModel()
    canvas = Canvas(model)
    qtbot.addWidget(canvas)
    canvas.resize(360, 280)
    canvas.show()
    tools = ProposalTools(canvas, None)
    pixels = scene()
    dec = DecodedImage(pixels, 120, 90, 1, 120, 90, 1.0)
    model.set_annotation(annotation(), 120, 90)
    canvas.set_image(dec)
    yield canvas, tools, dec
    tools.shutdown()
    for runner in (tools.superpixel_runner, tools.proposal_runner):
        runner.cancel()
    assert tools._pool.active == 0  # every thread quit and waited for


def test_tools_follow_the_canvas_and_offer_docks_and_actions(setup):
    canvas, tools, dec = setup
    assert tools.decoded is dec  # picked up from Canvas.set_image, no extra call needed
    assert all(layer in canvas.layers() for layer in tools.layers())
    assert not any(layer.isVisible() for layer in tools.layers())  # nothing computed until shown
    assert not tools.superpixel_runner.busy and not tools.proposal_runner.busy
    docks = tools.docks()
    assert [d.windowTitle() for d in docks] == ["Superpixels", "Selective Search"]
    assert tools.docks() == docks  # created once
    assert [a.text() for a in tools.actions()] == ["Proposal &quality over dataset…"]
    assert not tools.quality_action.isEnabled()  # no dataset yet


def test_superpixel_controls_drive_the_worker_and_layer(setup, qtbot):
    canvas, tools, dec = setup
    panel, layer = tools.superpixels_panel, tools.superpixel_layer
    panel.k_spin.setValue(50)  # debounced: nothing runs while hidden
    with qtbot.waitSignal(tools.superpixelsReady, timeout=WAIT_MS) as blocker:
        panel.show_box.setChecked(True)
    assert layer.isVisible()
    seg = blocker.args[0]
    assert layer.segmentation is seg and seg.params.k == 50 and seg.params.color_space == "hsv"
    assert seg.shape == (90, 120)
    assert layer.n_regions == seg.n_regions == len(np.unique(seg.labels))
    assert f"{seg.n_regions} regions" in panel.status.text()
    fine = seg.n_regions

    with qtbot.waitSignal(tools.superpixelsReady, timeout=WAIT_MS) as blocker:
        panel.k_spin.setValue(2000)  # a spinbox edit recomputes after the debounce
    coarse = blocker.args[0]
    assert coarse.params.k == 2000 and coarse.n_regions < fine
    assert layer.n_regions == coarse.n_regions

    # max side bounds the working resolution; the layer still covers the full image
    with qtbot.waitSignal(tools.superpixelsReady, timeout=WAIT_MS) as blocker:
        panel.max_side_spin.setValue(60)
    assert blocker.args[0].shape == (45, 60)
    assert layer.raster.shape == (45, 60, 4)
    assert layer.image_rect().width() == 120

    panel.opacity_slider.setValue(30)
    assert layer.opacity() == pytest.approx(0.30)
    layer.setOpacity(0.8)  # e.g. from the layers panel: the slider follows
    assert panel.opacity_slider.value() == 80
    panel.style_combo.setCurrentIndex(panel.style_combo.findData("boundaries"))
    assert layer.style == "boundaries"
    assert (layer.raster[:, :, 3] == 0).any()

    panel.show_box.setChecked(False)
    assert not layer.isVisible()
    layer.setVisible(True)  # from the layers panel: the checkbox follows
    assert panel.show_box.isChecked()


def test_newer_superpixel_request_supersedes_older(setup, qtbot):
    canvas, tools, dec = setup
    panel = tools.superpixels_panel
    arrived = []
    tools.superpixelsReady.connect(arrived.append)
    tools.superpixel_layer.setVisible(True)  # starts a first request (k=100)
    panel.k_spin.setValue(300)
    with qtbot.waitSignal(tools.superpixelsReady, timeout=WAIT_MS) as blocker:
        tools.refresh_superpixels()  # a second request while the first runs (or is queued)
    qtbot.waitUntil(lambda: not tools.superpixel_runner.busy, timeout=WAIT_MS)
    assert blocker.args[0].params.k == 300
    assert [s.params.k for s in arrived] == [300]  # the older result never reached the layer
    assert tools.superpixel_layer.segmentation.params.k == 300


def test_stale_result_is_dropped_by_generation(setup, qtbot):
    canvas, tools, dec = setup
    runner = tools.superpixel_runner
    got = []
    runner._on_result = got.append
    first = runner.request(dec.pixels, 1.0, tools.superpixels_panel.params())
    # Simulate a result of the first generation arriving after a newer request was made.
    runner._generation += 1
    runner._result(first, "stale")
    assert got == [] and runner.dropped == 1
    runner.cancel()
    qtbot.waitUntil(lambda: not runner.busy, timeout=WAIT_MS)


def test_proposals_top_n_recall_and_hover(setup, qtbot):
    canvas, tools, dec = setup
    panel, layer = tools.proposals_panel, tools.proposals_layer
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("single"))
    with qtbot.waitSignal(tools.proposalsReady, timeout=WAIT_MS) as blocker:
        panel.show_box.setChecked(True)
    props = blocker.args[0]
    assert props.mode == "single" and len(props) > 5
    np.testing.assert_array_equal(layer.boxes, props.boxes)  # scale 1: scene = image pixels
    assert panel.top_slider.maximum() == len(props)

    # top-N slider bounds what is drawn
    panel.top_slider.setValue(5)
    assert layer.top_n == 5 and layer.shown_count == 5
    canvas.grab()
    assert layer.last_painted == 5
    panel.all_box.setChecked(True)
    assert layer.top_n == 0 and layer.shown_count == len(props)
    canvas.grab()
    assert layer.last_painted == len(props)

    # recall read-out = models.proposals.metrics on the shown boxes, the difficult box left out
    gt = np.array([b for _, b, _ in GT], np.float32)
    ignore = np.array([d for _, _, d in GT])
    expected = score_image(props.boxes, gt, ignore)
    assert tools.last_score.n_gt == 2
    np.testing.assert_allclose(tools.last_score.best_iou, expected.best_iou)
    text = panel.recall_label.text()
    assert f"recall@0.5 <b>{expected.recall(0.5):.3f}</b>" in text
    assert f"recall@0.7 <b>{expected.recall(0.7):.3f}</b>" in text
    assert f"MABO <b>{expected.mabo:.3f}</b>" in text
    assert "1 difficult/crowd left out" in text
    assert expected.recall(0.7) == 1.0  # flat rectangles are proposed (nearly) exactly
    panel.all_box.setChecked(False)
    panel.top_slider.setValue(3)
    top3 = score_image(props.boxes[:3], gt, ignore)
    assert tools.last_score.mabo == pytest.approx(top3.mabo)
    assert f"MABO <b>{top3.mabo:.3f}</b>" in panel.recall_label.text()

    # colour by best IoU uses IoU against the counted ground truth
    panel.color_combo.setCurrentIndex(panel.color_combo.findData("iou"))
    assert layer.color_by == "iou"
    np.testing.assert_allclose(layer.best_iou, iou_matrix(props.boxes, gt[~ignore]).max(axis=1))

    # editing the ground truth updates the read-out (the model is followed)
    canvas.model.remove_object(0)
    assert tools.last_score.n_gt == 1

    # hover: a real mouse move onto the left edge of proposal 0
    panel.all_box.setChecked(True)
    x1, y1, x2, y2 = (float(v) for v in layer.boxes[0])
    target = canvas.mapFromScene(x1, (y1 + y2) / 2)
    qtbot.mouseMove(canvas.viewport(), QPoint(target.x(), target.y()))
    qtbot.waitUntil(lambda: layer.hover >= 0, timeout=5000)
    idx = layer.hover
    assert idx == layer.hit_test(x1, (y1 + y2) / 2, canvas.zoom)
    assert panel.hover_label.text() == layer.describe(idx)
    assert f"proposal #{idx + 1} of {len(props)}" in panel.hover_label.text()
    assert "best IoU with GT" in panel.hover_label.text()
    with qtbot.waitSignal(tools.message, timeout=2000):
        canvas.cursorMoved.emit(float(layer.boxes[1, 2]), float((layer.boxes[1, 1] + layer.boxes[1, 3]) / 2), None)
    panel.show_box.setChecked(False)
    assert layer.hover == -1 and panel.hover_label.text() == ""


def test_hover_clears_when_the_mouse_leaves_the_canvas(setup, qtbot):
    canvas, tools, dec = setup
    panel, layer = tools.proposals_panel, tools.proposals_layer
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("single"))
    with qtbot.waitSignal(tools.proposalsReady, timeout=WAIT_MS):
        panel.show_box.setChecked(True)
    panel.all_box.setChecked(True)
    x1, y1, x2, y2 = (float(v) for v in layer.boxes[0])
    target = canvas.mapFromScene(x1, (y1 + y2) / 2)
    qtbot.mouseMove(canvas.viewport(), QPoint(target.x() + 7, target.y() + 5))  # a real move, wherever it was
    qtbot.mouseMove(canvas.viewport(), QPoint(target.x(), target.y()))
    qtbot.waitUntil(lambda: layer.hover >= 0, timeout=5000)
    assert panel.hover_label.text() != "" and canvas.viewport().toolTip() != ""
    with qtbot.waitSignal(tools.message, timeout=2000) as blocker:
        QApplication.sendEvent(canvas, QEvent(QEvent.Type.Leave))
    assert blocker.args == [""]  # the status bar line goes too
    assert layer.hover == -1 and panel.hover_label.text() == "" and canvas.viewport().toolTip() == ""


def test_hierarchy_playback_follows_the_step_slider(setup, qtbot):
    canvas, tools, dec = setup
    panel, layer = tools.proposals_panel, tools.hierarchy_layer
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("fast"))
    with qtbot.waitSignal(tools.proposalsReady, timeout=WAIT_MS) as blocker:
        panel.playback_box.setChecked(True)  # playback needs proposals: computed though the box layer is hidden
    props = blocker.args[0]
    assert panel.tabs.currentWidget() is panel.playback_page
    assert panel.step_spin.value() == 1 and "Step 1 of" in panel.merge_label.text()
    assert layer.isVisible() and not tools.proposals_layer.isVisible()
    assert panel.strategy_combo.count() == len(props.hierarchy) == 13  # fast mode's plan, the Lab k 200 fill rung last
    h = props.hierarchy[0]
    assert layer.hierarchy is h and panel.step_slider.maximum() == h.n_steps - 1
    assert layer.step == 0 and layer.region_count == h.n_initial

    panel.strategy_combo.setCurrentIndex(3)
    h = props.hierarchy[3]
    assert layer.hierarchy is h
    panel.step_slider.setValue(2)
    m = h.merge(2)
    assert layer.step == 2 and layer.highlighted_pair == (m.a, m.b)
    assert layer.region_count == h.n_initial - 2
    np.testing.assert_allclose(layer.new_box, m.box)
    for name in TERMS:
        assert panel.term_labels[name].text().startswith(f"{m.terms[name]:.3f}")
    assert panel.term_labels["total"].text() == f"{m.similarity:.3f}"
    assert h.strategy.similarities == "TSF" and "(unused)" in panel.term_labels["colour"].text()
    assert f"merging <b style='color:#ff8c00'>{m.a}</b>" in panel.merge_label.text()
    assert len(np.unique(layer.raster.reshape(-1, 4), axis=0)) >= 2

    # the spin box counts from one, as the label does
    assert panel.step_spin.value() == 3 and f"Step 3 of {h.n_steps}" in panel.merge_label.text()
    last = h.n_steps - 1
    panel.step_spin.setValue(h.n_steps)
    assert panel.step_spin.minimum() == 1 and panel.step_spin.maximum() == h.n_steps
    assert panel.step_slider.value() == last and layer.step == last and layer.region_count == 2
    assert f"Step {h.n_steps} of {h.n_steps}" in panel.merge_label.text()
    np.testing.assert_allclose(layer.new_box, [0, 0, 120, 90])

    # Play advances the step by itself and stops at the end
    panel.step_slider.setValue(last - 2)
    panel.play_button.setChecked(True)
    qtbot.waitUntil(lambda: not panel.play_button.isChecked(), timeout=5000)
    assert layer.step == last


def test_new_image_clears_results_and_recomputes_visible_layers(setup, qtbot):
    canvas, tools, dec = setup
    with qtbot.waitSignal(tools.superpixelsReady, timeout=WAIT_MS):
        tools.superpixel_layer.setVisible(True)
    other = DecodedImage(scene(200, 100, seed=1)[::2, ::2].copy(), 200, 100, 1, 200, 100, 0.5)
    with qtbot.waitSignal(tools.superpixelsReady, timeout=WAIT_MS) as blocker:
        canvas.set_image(other)  # a reduced preview: labels at ≤ preview size, stretched to 200×100
    assert tools.decoded is other
    assert blocker.args[0].shape == (50, 100)
    assert tools.superpixel_layer.image_rect().width() == 200
    # proposals on a reduced preview come back in full-resolution scene pixels
    with qtbot.waitSignal(tools.proposalsReady, timeout=WAIT_MS) as blocker:
        tools.proposals_layer.setVisible(True)
    np.testing.assert_allclose(tools.proposals_layer.boxes, blocker.args[0].boxes * 2.0)
    assert tools.proposals_layer.boxes[:, 2].max() == pytest.approx(200)
    canvas.set_image(None)
    assert tools.proposals_layer.boxes.shape[0] == 0 and tools.superpixel_layer.segmentation is None


def _tiny_voc_folder(root: Path) -> Path:
    """Three good images with VOC XML beside them, and one corrupt image (with its XML)."""
    root.mkdir()
    for i in range(3):
        cv2.imwrite(str(root / f"img{i}.png"), cv2.cvtColor(scene(seed=i), cv2.COLOR_RGB2BGR))
        write_voc(annotation(), root / f"img{i}.xml", root / f"img{i}.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 3)
    write_voc(annotation(), root / "broken.xml", root / "broken.jpg")
    return root


def test_dataset_quality_dialog_measures_a_tiny_folder(setup, qtbot, tmp_path):
    canvas, tools, dec = setup
    source = open_dataset(_tiny_voc_folder(tmp_path / "ds"))
    assert len(source.entries) == 4
    tools.set_dataset(source)
    assert tools.quality_action.isEnabled()
    tools.quality_action.trigger()
    dialog = tools.quality_dialog
    assert dialog is not None and dialog.isVisible()
    dialog.mode_combo.setCurrentIndex(dialog.mode_combo.findData("single"))
    with qtbot.waitSignal(dialog.finished_report, timeout=60_000) as blocker:
        dialog.start_button.click()
    report = blocker.args[0]
    assert report.images == 3 and report.total == 4 and report.gt_boxes == 6  # difficult boxes left out
    assert len(report.skipped) == 1 and "broken.jpg" in report.skipped[0]
    assert "broken.jpg" in dialog.skipped_text.toPlainText()
    direct = measure_dataset(source, "single")
    assert report.as_dict()["recall@0.5"] == direct.recall_05
    assert report.mabo == pytest.approx(direct.mabo) and report.boxes_per_image == direct.boxes_per_image
    assert 0.9 <= report.recall_05 <= 1.0 and report.seconds_per_image > 0
    assert "recall@0.7" in dialog.result_label.text() and "AR" in dialog.result_label.text()
    qtbot.waitUntil(lambda: not dialog.running, timeout=WAIT_MS)
    assert dialog.start_button.isEnabled() and not dialog.cancel_button.isEnabled()

    # the curves: one point per IoU threshold and one per box budget, the figures of the report
    curves = dialog.curves
    assert len(curves.runs) == 1 and dialog.table.rowCount() == 1
    iou_x, iou_y = curves.runs[0].items[0].getData()
    assert list(iou_x) == list(AR_THRESHOLDS)
    assert list(iou_y) == [report.summary.recall[t] for t in AR_THRESHOLDS]
    assert iou_y[0] == report.recall_05
    box_item = curves.runs[0].items[1]
    box_x, box_y = box_item.xData, box_item.yData  # the data, not the log-scaled display values
    assert len(box_x) == len(CURVE_BUDGETS) == len(report.summary.budgets)
    assert list(box_y) == [report.summary.budgets[n].average_recall for n in CURVE_BUDGETS]
    assert list(box_x) == [report.summary.budgets[n].boxes_per_image for n in CURVE_BUDGETS]
    assert box_x[0] == 10 and box_x[-1] == report.boxes_per_image  # 10 boxes, then all of them
    curves.metric_combo.setCurrentIndex(curves.metric_combo.findData("recall@0.7"))
    assert list(curves.runs[0].items[1].yData) == [report.summary.budgets[n].recall[0.7] for n in CURVE_BUDGETS]

    # a second run with another mode is overlaid: two curves in each plot, two legend entries, two rows
    dialog.mode_combo.setCurrentIndex(dialog.mode_combo.findData("fast"))
    dialog.dedup_combo.setCurrentIndex(dialog.dedup_combo.findData("compact"))
    with qtbot.waitSignal(dialog.finished_report, timeout=60_000) as blocker:
        dialog.start_button.click()
    qtbot.waitUntil(lambda: not dialog.running, timeout=WAIT_MS)
    assert len(curves.runs) == 2 and dialog.table.rowCount() == 2
    for plot in (curves.iou_plot, curves.budget_plot):
        assert len(plot.getPlotItem().listDataItems()) == 2
        assert [label.text for _, label in plot.getPlotItem().legend.items] == ["1. single · 500 px",
                                                                                "2. fast · 500 px · compact"]
    assert dialog.table.item(1, 0).text() == "2. fast · 500 px · compact"
    compact = blocker.args[0]
    assert compact.summary.gt_boxes == report.summary.gt_boxes
    dialog.clear_button.click()
    assert not curves.runs and dialog.table.rowCount() == 0
    assert not curves.iou_plot.getPlotItem().listDataItems()
    dialog.close()


def test_dataset_quality_dialog_shows_each_modes_own_near_duplicate_default(setup, qtbot, tmp_path):
    """Quality mode deduplicates exactly by default, fast mode at 0.93, single at 0.95: picking a mode shows its
    default."""
    canvas, tools, dec = setup
    tools.set_dataset(open_dataset(_tiny_voc_folder(tmp_path / "ds")))
    dialog = tools.open_quality_dialog()
    assert dialog.mode_combo.currentData() == "fast" and dialog.dedup_combo.currentData() == "budget"
    dialog.mode_combo.setCurrentIndex(dialog.mode_combo.findData("quality"))
    assert dialog.dedup_combo.currentData() == "exact"
    dialog.mode_combo.setCurrentIndex(dialog.mode_combo.findData("single"))
    assert dialog.dedup_combo.currentData() == "localise"
    dialog.close()


def test_dataset_quality_dialog_fits_a_1400x1000_screen_without_clipping(setup, qtbot, tmp_path):
    canvas, tools, dec = setup
    deep = tmp_path / ("a_very_long_folder_name_without_any_spaces_" * 3) / "and_another_level_of_it"
    deep.mkdir(parents=True)
    source = open_dataset(_tiny_voc_folder(deep / "ds"))
    tools.set_dataset(source)
    dialog = tools.open_quality_dialog()
    with qtbot.waitSignal(dialog.finished_report, timeout=60_000):
        dialog.start_button.click()
    qtbot.waitUntil(lambda: not dialog.running, timeout=WAIT_MS)
    # its default size fits the screen with room for the window frame, and holds what the layout needs
    assert dialog.width() <= 1400 - 40 and dialog.height() <= 1000 - 80
    minimum = dialog.layout().minimumSize()
    assert minimum.width() <= dialog.width() and minimum.height() <= dialog.height()
    # the whole path is in the field (scrollable, selectable), not cut off by a label
    assert str(source.root) in dialog.source_edit.text()
    for w in (dialog.mode_combo, dialog.max_side_spin, dialog.top_spin, dialog.seed_spin, dialog.start_button):
        assert w.width() >= w.minimumSizeHint().width(), w  # fields get at least the room they need
    # the last result row is on screen in the table
    table = dialog.table
    last = table.visualItemRect(table.item(table.rowCount() - 1, 0))
    assert table.viewport().rect().contains(last)
    dialog.close()


def test_dataset_quality_cancel(setup, qtbot, tmp_path):
    canvas, tools, dec = setup
    tools.set_dataset(open_dataset(_tiny_voc_folder(tmp_path / "ds")))
    dialog = tools.open_quality_dialog()
    reports = []
    dialog.finished_report.connect(reports.append)
    dialog.start()
    assert dialog.running and dialog.cancel_button.isEnabled()
    dialog.cancel()
    qtbot.waitUntil(lambda: not dialog.running, timeout=WAIT_MS)
    assert reports == [] and dialog.progress_label.text() == "cancelled"
    assert dialog.start_button.isEnabled()
    dialog.close()


def test_shutdown_stops_work_and_refuses_new_requests(setup, qtbot):
    canvas, tools, dec = setup
    tools.proposals_panel.mode_combo.setCurrentIndex(tools.proposals_panel.mode_combo.findData("quality"))
    tools.proposals_layer.setVisible(True)  # a long job (120 groupings) starts
    assert tools.proposal_runner.busy
    tools.shutdown()  # cancels it at its next check and waits for the thread
    assert tools._pool.active == 0
    assert tools.request_proposals() == -1 and tools.request_superpixels() == -1


def test_explicit_ground_truth_pins_the_recall_read_out(setup, qtbot):
    canvas, tools, dec = setup
    tools.proposals_panel.mode_combo.setCurrentIndex(tools.proposals_panel.mode_combo.findData("single"))
    with qtbot.waitSignal(tools.proposalsReady, timeout=WAIT_MS) as blocker:
        tools.proposals_layer.setVisible(True)
    props = blocker.args[0]
    tools.proposals_panel.all_box.setChecked(True)
    gt = np.array([[62, 34, 112, 84], [0, 0, 5, 5]], np.float32)
    tools.set_image(dec, gt, np.array([False, True]))  # same image: proposals kept, ground truth pinned
    assert tools.proposals is props
    expected = score_image(props.boxes, gt[:1])
    assert tools.last_score.n_gt == 1
    assert tools.last_score.mabo == pytest.approx(expected.mabo)
    canvas.model.remove_object(0)  # edits of the model do not override pinned ground truth
    assert tools.last_score.n_gt == 1
    tools.set_image(dec)  # back to following the model: 2 boxes left, one of them difficult
    assert tools.last_score.n_gt == 1
    assert tools.last_score.mabo == pytest.approx(score_image(props.boxes, np.array([GT[1][1]])).mabo)
