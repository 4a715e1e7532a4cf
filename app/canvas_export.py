"""Export what the canvas shows (the image and every visible layer) as a PNG or an SVG figure.

Why render the scene and not grab the window: the export covers the whole image at its own resolution
whatever the zoom and pan, leaves out the view's decorations (crosshair, scroll bars, the notice banner), and
an SVG keeps boxes, anchors and grids as vector shapes a student can put in a report and scale. Layers
draw through the same ``paint_layer`` as on screen, so the figure is exactly what the user sees.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QAction, QImage, QPainter
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import QFileDialog, QWidget

from app.canvas import Canvas
from app.stages.base import Stage

#: PNG exports of huge images are reduced to at most this many pixels on the longer side.
MAX_PNG_SIDE = 8192


def _source_rect(canvas: Canvas) -> QRectF:
    rect = canvas.image_rect()
    if rect.isEmpty():
        raise ValueError("no image is shown: nothing to export")
    return rect


def _render(canvas: Canvas, painter: QPainter, target: QRectF, source: QRectF) -> None:
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
    canvas.scene().render(painter, target, source, Qt.AspectRatioMode.IgnoreAspectRatio)


def export_png(canvas: Canvas, path: str | Path, scale: float = 1.0) -> Path:
    """The image with its visible layers at ``scale`` × its full resolution (capped at MAX_PNG_SIDE)."""
    source = _source_rect(canvas)
    s = min(float(scale), MAX_PNG_SIDE / max(source.width(), source.height()))
    size = QSize(max(1, round(source.width() * s)), max(1, round(source.height() * s)))
    image = QImage(size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    try:
        _render(canvas, painter, QRectF(0, 0, size.width(), size.height()), source)
    finally:
        painter.end()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(target), "PNG"):
        raise OSError(f"{target}: could not be written")
    return target


def export_svg(canvas: Canvas, path: str | Path, title: str = "R-CNN Explorer canvas") -> Path:
    """The image (embedded) with its visible layers as vector shapes, one SVG unit per image pixel."""
    source = _source_rect(canvas)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    gen = QSvgGenerator()
    gen.setFileName(str(target))
    gen.setSize(QSize(round(source.width()), round(source.height())))
    gen.setViewBox(QRectF(0, 0, source.width(), source.height()))
    gen.setTitle(title)
    gen.setDescription("The image and the visible layers of the R-CNN Explorer canvas")
    painter = QPainter()
    if not painter.begin(gen):
        raise OSError(f"{target}: could not be written")
    try:
        _render(canvas, painter, QRectF(0, 0, source.width(), source.height()), source)
    finally:
        painter.end()
    if not target.is_file() or target.stat().st_size == 0:
        raise OSError(f"{target}: could not be written")
    return target


class CanvasExport(Stage):
    """The View menu's "Export Canvas as PNG/SVG…" actions."""

    menu_title = "View"

    def __init__(self, canvas: Canvas, window: QWidget | None = None) -> None:
        super().__init__(window)
        self.canvas = canvas
        self._window = window
        #: (title, suggested name, filter) -> chosen path or "" (tests replace it).
        self.choose_file = self._ask_file
        self.act_png = QAction("Export Canvas as &PNG…", window or self)
        self.act_png.setToolTip("The image and its visible layers at full resolution")
        self.act_png.triggered.connect(lambda: self.ask_export("png"))
        self.act_svg = QAction("Export Canvas as S&VG…", window or self)
        self.act_svg.setToolTip("The image and its visible layers; boxes and grids as vector shapes")
        self.act_svg.triggered.connect(lambda: self.ask_export("svg"))

    def actions(self) -> list[QAction]:
        return [self.act_png, self.act_svg]

    def _ask_file(self, title: str, suggested: str, filt: str) -> str:
        path, _ = QFileDialog.getSaveFileName(self._window, title, suggested, filt)
        return path

    def ask_export(self, fmt: str) -> Path | None:
        decoded = self.canvas.image_layer.decoded
        stem = decoded.path.stem if decoded is not None and decoded.path is not None else "canvas"
        path = self.choose_file(f"Export canvas as {fmt.upper()}", f"{stem}.{fmt}", f"{fmt.upper()} (*.{fmt})")
        if not path:
            return None
        return self.export(path, fmt)

    def export(self, path: str | Path, fmt: str | None = None) -> Path | None:
        """Write ``path`` (format from ``fmt`` or the suffix); a message in the status bar either way."""
        fmt = (fmt or Path(path).suffix.lstrip(".") or "png").lower()
        try:
            out = export_svg(self.canvas, path) if fmt == "svg" else export_png(self.canvas, path)
        except (OSError, ValueError) as exc:
            self.message.emit(f"Export failed: {exc}")
            return None
        self.message.emit(f"Canvas exported to {out}")
        return out


__all__ = ["CanvasExport", "MAX_PNG_SIDE", "export_png", "export_svg"]
