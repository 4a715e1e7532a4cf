"""The Selective Search tools inside the real main window: docks, menu, layers following the open image."""

from __future__ import annotations

from app.main_window import MainWindow
from models.data.annotations import Annotation, BoxObject, write_voc
from tests.test_main_window import make_window, settings, write_image  # noqa: F401  (fixture)


def test_proposals_follow_the_window_image_and_ground_truth(qtbot, settings, tmp_path):  # noqa: F811
    folder = tmp_path / "photos"
    write_image(folder / "a.png", seed=1, size=(160, 120))
    write_image(folder / "b.png", seed=2, size=(160, 120))
    write_voc(Annotation("a.png", 160, 120, 3, [BoxObject("cat", (10, 10, 90, 80))]), folder / "a.xml")
    w: MainWindow = make_window(qtbot, settings, thumbnails=False)
    try:
        menus = [a.text() for a in w.menuBar().actions()]
        assert "&Proposals" in menus
        tools = w.proposal_tools
        assert not tools.quality_action.isEnabled()  # nothing open yet
        assert w.open_path(folder)
        qtbot.waitUntil(lambda: tools.decoded is not None, timeout=5000)
        assert tools.quality_action.isEnabled()
        assert {d.objectName() for d in tools.docks()} == {"superpixels_dock", "selective_search_dock"}
        panel = tools.proposals_panel
        panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("single"))
        with qtbot.waitSignal(tools.proposalsReady, timeout=60_000):
            panel.show_box.setChecked(True)
        assert len(tools.proposals) > 0
        assert tools.last_score is not None and tools.last_score.n_gt == 1  # the window's GT reached it
        with qtbot.waitSignal(tools.proposalsReady, timeout=60_000):
            w.document.go_to(1)  # next image: proposals recomputed for it
        assert tools.decoded.path.name == "b.png"
    finally:
        w.close()
    assert tools._closed


def _inside_viewport(widget, scroll) -> bool:
    """``widget`` lies wholly inside ``scroll``'s visible viewport (no scrolling needed to reach it)."""
    from PySide6.QtCore import QPoint, QRect

    top_left = widget.mapTo(scroll.viewport(), QPoint(0, 0))
    return scroll.viewport().rect().contains(QRect(top_left, widget.size()))


def test_playback_controls_are_visible_without_scrolling(qtbot, settings):  # noqa: F811
    w: MainWindow = make_window(qtbot, settings, thumbnails=False)
    try:
        w.resize(1280, 800)  # the default size of a first start
        tools = w.proposal_tools
        dock = next(d for d in tools.docks() if d.objectName() == "selective_search_dock")
        dock.raise_()
        scroll = dock.widget()
        panel = tools.proposals_panel
        tools.hierarchy_layer.setVisible(True)  # e.g. from the layers panel: the playback tab comes forward
        qtbot.waitUntil(lambda: panel.tabs.currentWidget() is panel.playback_page, timeout=2000)
        qtbot.waitUntil(lambda: panel.play_button.isVisible(), timeout=2000)
        assert scroll.verticalScrollBar().value() == 0
        # the dock shares the left side with every detector stage (~100 px tall here): the step controls
        # come first on their tab; the show box below them is also in the Layers panel
        for widget in (panel.step_slider, panel.step_spin, panel.play_button, panel.strategy_combo):
            assert _inside_viewport(widget, scroll), widget
        tools.hierarchy_layer.setVisible(False)
        panel.tabs.setCurrentWidget(panel.proposals_page)
        qtbot.waitUntil(lambda: panel.show_box.isVisible(), timeout=2000)
        for widget in (panel.show_box,):  # the rest may scroll: the dock shares the side
            assert _inside_viewport(widget, scroll), widget
    finally:
        w.close()
