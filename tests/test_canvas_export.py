"""View ▸ Export Canvas as PNG/SVG: the image with its visible layers, at the image's own size."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from PySide6.QtGui import QColor, QImage

from app.canvas_export import CanvasExport, export_png
from models.data.annotations import Annotation, BoxObject, write_voc
from tests.test_main_window import H, W, make_window, settings, write_image  # noqa: F401 - settings is a fixture


@pytest.fixture
def window(qtbot, settings, tmp_path):  # noqa: F811 - the fixture above
    folder = tmp_path / "imgs"
    write_image(folder / "a.png")
    write_voc(Annotation("a.png", W, H, objects=[BoxObject("cat", (40, 30, 200, 180))]), folder / "a.xml")
    w = make_window(qtbot, settings, thumbnails=False)
    w.open_path(folder)
    qtbot.waitUntil(lambda: w.canvas.image_layer.decoded is not None)
    yield w
    w.close()


def exporter(window) -> CanvasExport:
    return next(s for s in window.stages if isinstance(s, CanvasExport))


def view_menu_action(window, text: str):
    view = next(a.menu() for a in window.menuBar().actions() if a.text().replace("&", "") == "View")
    return next(a for a in view.actions() if a.text().replace("&", "") == text)


def test_png_export_has_the_image_size_and_the_visible_boxes(window, tmp_path):
    out = tmp_path / "fig" / "canvas.png"
    exporter(window).choose_file = lambda *_: str(out)
    view_menu_action(window, "Export Canvas as PNG…").trigger()
    img = QImage(str(out))
    assert not img.isNull() and (img.width(), img.height()) == (W, H)
    # the ground-truth box's left edge is drawn in its class colour, unlike the photo beside it
    edge, inside = QColor(img.pixel(40, 100)), QColor(img.pixel(120, 100))
    assert edge != inside
    window.canvas.ground_truth_layer.setVisible(False)  # hidden layers are left out
    hidden = export_png(window.canvas, tmp_path / "hidden.png")
    assert QImage(str(hidden)).pixel(40, 100) != img.pixel(40, 100)


def test_svg_export_is_valid_svg_with_the_image_and_vector_boxes(window, tmp_path):
    out = tmp_path / "canvas.svg"
    exporter(window).choose_file = lambda *_: str(out)
    view_menu_action(window, "Export Canvas as SVG…").trigger()
    assert out.stat().st_size > 0
    root = ET.parse(out).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg" and root.get("viewBox") == f"0 0 {W} {H}"
    tags = {el.tag for el in root.iter()}
    assert f"{ns}image" in tags  # the photo, embedded
    assert tags & {f"{ns}rect", f"{ns}path", f"{ns}polygon", f"{ns}polyline"}  # the box as a shape


def test_export_without_an_image_says_so(qtbot, settings, tmp_path):  # noqa: F811
    w = make_window(qtbot, settings, thumbnails=False)
    messages: list[str] = []
    exporter(w).message.connect(messages.append)
    assert exporter(w).export(tmp_path / "x.png") is None
    assert messages and "nothing to export" in messages[-1]
    w.close()
