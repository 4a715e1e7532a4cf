"""The Training panel: what to train (generation, backbone, preset and its settings, epochs, device), the run's
controls (train, pause, cancel, continue from a checkpoint, load the result) and its live plots.

A plain widget: it computes nothing and starts nothing; :class:`app.stages.training.stage.TrainingStage`
fills it and listens to its signals.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QFont, QStandardItemModel
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.stages.base import explanation_label
from app.stages.training.options import format_value, parse_value
from app.stages.training.plots import TrainingPlots

#: One line at the bottom dock's usual width: every line here is a line less of the plots beside it.
EXPLANATION = (
    "Train a detector on the open dataset's training split (made if it has none) and watch it learn, in "
    "processes of its own; cancel keeps a checkpoint; a finished run loads into the Model stage.")
NO_PRESET = "(none: the paper's settings)"
#: The entry whose settings ``train`` with no preset would choose from the open dataset's boxes (a Faster
#: R-CNN's default): the same rule (models.detection.auto_settings), shown in the table, each with its reason.
FROM_DATA = "Settings from the data"
ERROR_STYLE = "color: #c62828;"
#: Tree item data role holding the value a settings row started with (to see what the user changed).
ORIGINAL_ROLE = Qt.ItemDataRole.UserRole + 1


class _SettingsTree(QTreeWidget):
    """The settings table, preferring a short height: the dock's scroll area sizes the panel by preferred
    heights, and the default 192 px made the bottom dock of a 950-px window scroll (the table scrolls itself)."""

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(256, 100)


class _ShortScroll(QScrollArea):
    """A frameless vertical scroll area around the choices, preferring a short height (see _SettingsTree)."""

    def __init__(self) -> None:
        super().__init__()
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    def setWidget(self, widget: QWidget) -> None:  # noqa: N802 - Qt's name
        super().setWidget(widget)
        self.setFixedWidth(widget.minimumWidth() + self.verticalScrollBar().sizeHint().width())

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        inner = self.widget().sizeHint() if self.widget() is not None else QSize(360, 100)
        return QSize(self.width(), min(inner.height(), 130))

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(self.width(), 60)


def setting_help(part: str, name: str) -> str:
    """The setting's one-line help from the presets module ("" when it has none)."""
    try:
        from models.detection.presets import setting_help as help_of

        return help_of(part, name)
    except (ImportError, ValueError, KeyError):
        return ""


class TrainingPanel(QWidget):
    trainRequested = Signal()
    pauseToggled = Signal(bool)
    cancelRequested = Signal()
    continueRequested = Signal()
    loadRequested = Signal()
    previewRequested = Signal()
    presetChosen = Signal(str)
    deviceChosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.generation = QComboBox()
        #: The generation the user picked last (kept while the list is refilled for another dataset).
        self._preferred_generation = "faster-rcnn"
        self.generation.activated.connect(
            lambda _i: setattr(self, "_preferred_generation", self.generation.currentText()))
        self.generation_note = QLabel("")
        self.generation_note.setWordWrap(True)
        self.generation_note.setStyleSheet("color: palette(placeholder-text);")
        #: What to know about the chosen generation (classification + localisation: why alpha).
        self.generation_about = QLabel("")
        self.generation_about.setObjectName("generation_about")
        self.generation_about.setWordWrap(True)
        self.generation_about.setVisible(False)
        self.backbone = QComboBox()
        self.preset = QComboBox()
        #: Under the preset list with "Settings from the data": reading the boxes, what they were chosen from,
        #: or why they could not be (in red); its tooltip has every choice with its reason.
        self.auto_note = QLabel("")
        self.auto_note.setObjectName("auto_note")
        self.auto_note.setWordWrap(True)
        self.auto_note.setVisible(False)
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 1000)
        self.epochs.setValue(12)
        self.device = QComboBox()
        self.two_processes = QCheckBox("Two processes (data-parallel, CPU)")
        self.two_processes.setToolTip(
            "Two training processes with one thread each, gradients averaged after every step "
            "(DistributedDataParallel, as torchrun --nproc_per_node=2). About 20% faster than one process "
            "on a two-core CPU.")
        self.two_processes.clicked.connect(lambda _checked: setattr(self, "_two_by_user", True))
        self.val_images = QSpinBox()
        self.val_images.setRange(0, 1000)
        self.val_images.setValue(20)
        self.val_images.setSpecialValueText("off")
        self.val_images.setToolTip("Validation mAP@0.5 after each epoch on this many test-split images, one "
                                   "pass at the model's size without its test-time augmentation (a live "
                                   "curve, not the final figure: use Evaluate for that)")

        def pair(a: QWidget, label: str, b: QWidget) -> QHBoxLayout:
            row = QHBoxLayout()
            row.addWidget(a, 1)
            if label:
                row.addWidget(QLabel(label))
            row.addWidget(b)
            return row

        form = QFormLayout()
        form.setVerticalSpacing(4)
        form.addRow("Generation", self.generation)
        form.addRow("", self.generation_note)
        form.addRow("", self.generation_about)
        form.addRow("Backbone", self.backbone)
        form.addRow("Preset", self.preset)
        form.addRow("", self.auto_note)
        form.addRow("Epochs", pair(self.epochs, "Validation images", self.val_images))
        form.addRow("Device", pair(self.device, "", self.two_processes))
        self.two_processes.setText("Two processes")

        self.train_button = QPushButton("Train")
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.cancel_button = QPushButton("Cancel")
        self.continue_button = QPushButton("Continue from Checkpoint…")
        self.load_button = QPushButton("Load into Model Stage")
        self.load_button.setToolTip("Load the run's checkpoint into the Model stage: every detector layer shows it")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        controls = QHBoxLayout()
        for b in (self.train_button, self.pause_button, self.cancel_button, self.continue_button,
                  self.load_button):
            controls.addWidget(b)
        controls.addWidget(self.progress, 1)
        self.progress.setMinimumWidth(80)

        left_box = QWidget()
        left_box.setLayout(form)
        form.setContentsMargins(0, 0, 0, 0)
        left_box.setFixedWidth(360)

        self.settings = _SettingsTree()
        self.settings.setColumnCount(2)
        self.settings.setHeaderLabels(["Setting", "Value"])
        self.settings.setToolTip("The preset's settings in full; double-click a value to change it for this run")
        self.settings.setMinimumWidth(260)
        self.settings.itemChanged.connect(self._on_setting_edited)
        self.backbone.currentIndexChanged.connect(self._show_backbone_fields)
        self.reset_settings = QPushButton("Reset to Preset")
        self.reset_settings.clicked.connect(lambda: self.presetChosen.emit(self.preset.currentText()))
        self.preview_button = QPushButton("Preview Augmentation…")
        self.preview_button.setToolTip("The current image as the first epochs of this run would show it: flips, "
                                       "sizes, crops, zoom-out and colour as set here")
        self.preview_button.clicked.connect(self.previewRequested)
        middle = QVBoxLayout()
        middle.addWidget(self.settings, 1)
        resets = QHBoxLayout()
        resets.addWidget(self.reset_settings)
        resets.addWidget(self.preview_button)
        middle.addLayout(resets)

        self.plots = TrainingPlots()
        # The bottom area is wide and short (about 220 px in a 950-px window): the explanation runs across the
        # top; under it the run's controls, status, choices and settings table on the left, and the plots take
        # the whole height beside them (below the controls they were cut to a strip without x axes).
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 2, 4, 2)
        outer.setSpacing(2)
        outer.addWidget(explanation_label(EXPLANATION))
        left = QVBoxLayout()
        left.setSpacing(3)
        left.addLayout(controls)
        left.addWidget(self.status)
        choices = QHBoxLayout()
        # The choices scroll on their own when notes make them taller than the dock (no dataset open: every
        # generation's reason; a generation's explanation), so the plots beside them keep the dock's height.
        self.choices_scroll = _ShortScroll()
        self.choices_scroll.setWidget(left_box)
        choices.addWidget(self.choices_scroll, 0)
        choices.addLayout(middle, 1)
        left.addLayout(choices, 1)
        layout = QHBoxLayout()
        layout.addLayout(left, 0)
        layout.addWidget(self.plots, 1)
        outer.addLayout(layout, 1)

        self.train_button.clicked.connect(self.trainRequested)
        self.pause_button.toggled.connect(self.pauseToggled)
        self.cancel_button.clicked.connect(self.cancelRequested)
        self.continue_button.clicked.connect(self.continueRequested)
        self.load_button.clicked.connect(self.loadRequested)
        self.preset.currentTextChanged.connect(self.presetChosen)
        self.device.currentTextChanged.connect(self.deviceChosen)
        self.set_running(False)
        self.load_button.setEnabled(False)

    # --- filling ------------------------------------------------------------------------------------------
    def set_generations(self, choices: list[tuple[str, str | None]]) -> None:
        """Each generation, greyed (not selectable) with its reason when it cannot train on this dataset."""
        current = self._preferred_generation
        self.generation.blockSignals(True)
        self.generation.clear()
        model = self.generation.model()
        notes = []
        for i, (name, problem) in enumerate(choices):
            self.generation.addItem(name)
            if problem is not None:
                item = model.item(i) if isinstance(model, QStandardItemModel) else None
                if item is not None:
                    item.setEnabled(False)
                    item.setToolTip(f"cannot train here: {problem}")
                notes.append(f"{name}: {problem}")
        usable = [n for n, p in choices if p is None]
        pick = current if current in usable else ("faster-rcnn" if "faster-rcnn" in usable else
                                                  (usable[0] if usable else ""))
        if pick:
            self.generation.setCurrentText(pick)
        self.generation.blockSignals(False)
        self.generation_note.setText("Not available: " + "; ".join(notes) if notes else "")
        self.generation_note.setVisible(bool(notes))
        self.train_button.setEnabled(bool(usable) and not self._running)

    def set_generation_about(self, text: str, details: str = "") -> None:
        self.generation_about.setText(text)
        self.generation_about.setToolTip(details)
        self.generation_about.setVisible(bool(text))

    def generation_enabled(self, name: str) -> bool:
        model = self.generation.model()
        i = self.generation.findText(name)
        return i >= 0 and bool(model.item(i).isEnabled()) if isinstance(model, QStandardItemModel) else i >= 0

    def set_backbones(self, choices: list[tuple[str, str, bool]], tooltips: dict[str, str]) -> None:
        self.backbone.clear()
        for name, text, _usable in choices:
            self.backbone.addItem(text, name)
            self.backbone.setItemData(self.backbone.count() - 1, tooltips.get(name, ""),
                                      Qt.ItemDataRole.ToolTipRole)

    def backbone_name(self) -> str:
        return str(self.backbone.currentData() or "small")

    def set_presets(self, names: list[str], from_data: bool = False) -> None:
        """The presets, then the paper's settings; first (the default) "Settings from the data" when
        ``from_data`` (the generation whose settings the data can choose)."""
        self.preset.blockSignals(True)
        self.preset.clear()
        self.preset.addItems(([FROM_DATA] if from_data else []) + list(names) + [NO_PRESET])
        if from_data:
            self.preset.setItemData(0, "What `train --data D --out C` with no preset chooses from the open "
                                       "dataset's boxes, each setting with its reason", Qt.ItemDataRole.ToolTipRole)
        self.preset.blockSignals(False)

    def preset_name(self) -> str | None:
        text = self.preset.currentText()
        return None if text in ("", NO_PRESET, FROM_DATA) else text

    def data_chosen(self) -> bool:
        """Whether "Settings from the data" is the chosen entry."""
        return self.preset.currentText() == FROM_DATA

    def set_auto_note(self, text: str, details: str = "", error: bool = False) -> None:
        self.auto_note.setText(text)
        self.auto_note.setToolTip(details)
        self.auto_note.setStyleSheet(ERROR_STYLE if error else "color: palette(placeholder-text);")
        self.auto_note.setVisible(bool(text))

    def set_setting_reasons(self, reasons: dict[tuple[str, str], str]) -> None:
        """Mark the settings chosen from the data ("⟵ data" after the name) with why as their tooltip."""
        for (part, name), why in reasons.items():
            item = self.setting_item(part, name)
            if item is None:
                continue
            help_text = setting_help(part, name)
            tip = f"Chosen from the data — {why}" + (f"\n\n{help_text}" if help_text else "")
            self.settings.blockSignals(True)
            item.setText(0, name)
            item.setToolTip(0, tip)
            item.setToolTip(1, tip)
            item.setForeground(0, self.palette().link())
            self.settings.blockSignals(False)

    def set_devices(self, devices: list[str]) -> None:
        self.device.blockSignals(True)
        self.device.clear()
        self.device.addItems(devices)
        self.device.blockSignals(False)

    def set_settings(self, settings: dict[str, dict[str, Any]]) -> None:
        """Show ``{part: {field: value}}`` in full; values editable, an edited one in bold."""
        self.settings.blockSignals(True)
        self.settings.clear()
        for part, values in settings.items():
            top = QTreeWidgetItem([part, ""])
            top.setFlags(Qt.ItemFlag.ItemIsEnabled)
            self.settings.addTopLevelItem(top)
            for name, value in values.items():
                child = QTreeWidgetItem([name, format_value(value, (part, name))])
                child.setData(1, ORIGINAL_ROLE, value)
                tip = setting_help(part, name)
                if tip:
                    child.setToolTip(0, tip)
                    child.setToolTip(1, tip)
                child.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEditable)
                top.addChild(child)
            top.setExpanded(True)
        self.settings.resizeColumnToContents(0)
        self.settings.blockSignals(False)
        self._show_backbone_fields()

    def _show_backbone_fields(self) -> None:
        """Hide the small CNN's settings (``small_*``) while another backbone is chosen: they do not apply to
        it, and an EfficientNet preset listing "small_width 32" reads as if it did."""
        small = self.backbone_name() == "small"
        for child in self._part_items("backbone"):
            child.setHidden(child.text(0).startswith("small_") and not small)

    def _part_items(self, part: str) -> list[QTreeWidgetItem]:
        """The rows of one part of the settings table (none when the part is not shown)."""
        for i in range(self.settings.topLevelItemCount()):
            top = self.settings.topLevelItem(i)
            if top.text(0) == part:
                return [top.child(j) for j in range(top.childCount())]
        return []

    def setting_item(self, part: str, name: str) -> QTreeWidgetItem | None:
        return next((item for item in self._part_items(part) if item.text(0) == name), None)

    def set_setting_text(self, part: str, name: str, text: str) -> None:
        """What typing into the value cell does (for tests and for code that sets a value)."""
        item = self.setting_item(part, name)
        if item is None:
            raise KeyError(f"no setting {part}.{name}")
        item.setText(1, text)

    def overrides(self) -> dict[str, dict[str, Any]]:
        """The values the user changed, parsed; raises ValueError naming the setting whose text is not valid."""
        out: dict[str, dict[str, Any]] = {}
        for i in range(self.settings.topLevelItemCount()):
            top = self.settings.topLevelItem(i)
            for j in range(top.childCount()):
                item = top.child(j)
                if item.isHidden():  # a setting of another backbone than the chosen one: not part of this run
                    continue
                original = item.data(1, ORIGINAL_ROLE)
                place = (top.text(0), item.text(0))
                if item.text(1) == format_value(original, place):
                    continue
                try:
                    value = parse_value(item.text(1), original, place)
                except ValueError as exc:
                    raise ValueError(f"{top.text(0)}.{item.text(0)}: {exc}") from None
                if value != original:
                    out.setdefault(top.text(0), {})[item.text(0)] = value
        return out

    def _on_setting_edited(self, item: QTreeWidgetItem, column: int) -> None:
        if column != 1:
            return
        font = QFont(item.font(1))
        place = (item.parent().text(0), item.text(0)) if item.parent() is not None else None
        font.setBold(item.text(1) != format_value(item.data(1, ORIGINAL_ROLE), place))
        self.settings.blockSignals(True)
        item.setFont(1, font)
        item.setFont(0, font)
        self.settings.blockSignals(False)

    # --- run state ----------------------------------------------------------------------------------------
    _running = False

    def set_running(self, running: bool) -> None:
        self._running = running
        for w in (self.generation, self.backbone, self.preset, self.epochs, self.device, self.val_images,
                  self.settings, self.reset_settings, self.continue_button):
            w.setEnabled(not running)
        self.two_processes.setEnabled(not running and self._two_ok)
        self.train_button.setEnabled(not running and self.generation.count() > 0)
        self.pause_button.setEnabled(running)
        self.cancel_button.setEnabled(running)
        if not running:
            self.pause_button.blockSignals(True)
            self.pause_button.setChecked(False)
            self.pause_button.setText("Pause")
            self.pause_button.blockSignals(False)

    _two_ok = False

    def set_two_processes_allowed(self, allowed: bool, reason: str = "") -> None:
        self._two_ok = allowed
        if not allowed:
            self.two_processes.setChecked(False)
        self.two_processes.setEnabled(allowed and not self._running)
        base = self.two_processes.toolTip().split("\n\nNot now:")[0].split("\n\nDefault:")[0]
        self.two_processes.setToolTip(base + (f"\n\nNot now: {reason}" if reason and not allowed else ""))

    #: Whether the user ticked or unticked "Two processes" themselves (then the default no longer moves it).
    _two_by_user = False

    def set_two_processes_default(self, checked: bool, reason: str = "") -> None:
        """Tick "Two processes" or not as the rule says (``reason``: why, shown in the tooltip), unless the user
        chose; it stays unticked where two processes are not allowed."""
        if not self._two_by_user and self._two_ok:
            self.two_processes.setChecked(checked)
        base = self.two_processes.toolTip().split("\n\nDefault:")[0]
        self.two_processes.setToolTip(base + (f"\n\nDefault: {reason}" if reason and self._two_ok else ""))

    def set_paused(self, paused: bool) -> None:
        self.pause_button.blockSignals(True)
        self.pause_button.setChecked(paused)
        self.pause_button.setText("Resume" if paused else "Pause")
        self.pause_button.blockSignals(False)

    def set_status(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(ERROR_STYLE if error else "")

    def set_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(min(done, max(1, total)))

    def processes(self) -> int:
        return 2 if self.two_processes.isChecked() else 1

