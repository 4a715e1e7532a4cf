"""Which detector stages apply to the loaded model, and how a stage that does not says so.

A classification + localisation model (``cls-loc``, the step before R-CNN) answers with one class and one box
per image, regressed from the whole image: it has no anchors, no region proposals, no RoIs to sample or pool
and nothing for NMS to suppress. Those stages would otherwise show the previous model's layers or anchors
made from the panel's own settings, as if they were part of this model. Each of them asks
:func:`not_applicable` and, when it gets a reason, clears its layer and calls :func:`show_not_applicable`:
the reason at the top of the panel, the panel's controls disabled under it.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QWidget

#: Why each region-based stage has nothing to show for a classification + localisation model.
CLS_LOC_REASONS: dict[str, str] = {
    "anchors": "it has no anchors; its one box is regressed from the whole image, not refined from reference "
               "boxes",
    "rpn": "it has no Region Proposal Network; it looks at the whole image once instead of at candidate regions",
    "regression": "it has no anchors or RoIs whose boxes are refined; its one box is read directly from the "
                  "network's 4 box outputs (x, y, w, h over the image's size)",
    "roi_sampling": "it trains on whole images with their one object, not on sampled foreground and "
                    "background RoIs",
    "roi_grid": "it pools the whole feature map to a small grid, not each RoI",
    "nms": "it gives exactly one box, so there is nothing to suppress",
}

PREFIX = "Not applicable to classification + localisation"
_BANNER = "not_applicable_banner"


def is_cls_loc(model: Any) -> bool:
    return getattr(model, "generation", None) == "cls-loc"


def not_applicable(model: Any, stage: str) -> str:
    """The sentence to show when ``stage`` does not apply to ``model`` ("" when it applies or no model)."""
    if is_cls_loc(model) and stage in CLS_LOC_REASONS:
        return f"{PREFIX}: {CLS_LOC_REASONS[stage]}."
    return ""


def banner(panel: QWidget) -> QLabel | None:
    """The panel's not-applicable label, if it was ever shown."""
    return panel.findChild(QLabel, _BANNER)


def show_not_applicable(panel: QWidget, reason: str) -> None:
    """Show ``reason`` at the top of ``panel`` and disable its other widgets ("" restores the panel).

    The panel's direct children are disabled (a disabled widget disables its children), the banner is not."""
    label = banner(panel)
    if label is None:
        if not reason:
            return
        label = QLabel(panel)
        label.setObjectName(_BANNER)
        label.setWordWrap(True)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        label.setStyleSheet("font-weight: bold; padding: 4px;")
        layout = panel.layout()
        if layout is not None and hasattr(layout, "insertWidget"):
            layout.insertWidget(0, label)
    label.setText(reason)
    label.setVisible(bool(reason))
    for child in panel.findChildren(QWidget, options=Qt.FindChildOption.FindDirectChildrenOnly):
        if child is not label:
            child.setEnabled(not reason)


__all__ = ["CLS_LOC_REASONS", "PREFIX", "banner", "is_cls_loc", "not_applicable", "show_not_applicable"]
