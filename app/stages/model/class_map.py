"""Matching a model's class names to an open dataset's: the check, the renaming, and the dialog.

A model trained elsewhere may call the dataset's "person" "pedestrian", or know classes the dataset lacks.
Mapping is nominal: detections keep their label ids and only the names they are shown and matched under
change, so the ground-truth comparison (true/false positives) uses the dataset's names.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QVBoxLayout, QWidget

OWN_NAME = "(the model's own name)"


def shown_names(model_names: list[str], mapping: dict[str, str]) -> list[str]:
    """The names detections are shown under: ``mapping`` applied, the model's own name where unmapped."""
    return [mapping.get(n) or n for n in model_names]


def renamed(dets: Any, names: list[str]) -> Any:
    """``dets`` (a :class:`models.detection.detectors.base.Detections`) shown under ``names`` (same order as the model's).

    Changes the object in place (it is the stage's own, fresh from a worker) and returns it."""
    if dets is not None and hasattr(dets, "class_names") and len(names) == len(dets.class_names):
        dets.class_names = list(names)
    return dets


def suggest(model_names: list[str], dataset_names: list[str]) -> dict[str, str]:
    """Same name, else same name ignoring case and separators: the obvious pairs, pre-filled in the dialog."""
    def key(s: str) -> str:
        return "".join(ch for ch in s.lower() if ch.isalnum())

    by_key = {key(d): d for d in dataset_names}
    return {m: by_key[key(m)] for m in model_names if key(m) in by_key}


def match_text(model_names: list[str], dataset_names: list[str], mapping: dict[str, str]) -> tuple[str, bool]:
    """(what the panel says about the class match, whether to offer mapping). Empty text: all fine."""
    if not model_names or not dataset_names:
        return "", False
    shown = shown_names(model_names, mapping)
    known = set(dataset_names)
    missing = [m for m, s in zip(model_names, shown, strict=True) if s not in known]
    pairs = [f"{m} → {s}" for m, s in zip(model_names, shown, strict=True) if m != s]
    mapped = ("Classes mapped onto the dataset's: " + ", ".join(pairs) + ". ") if pairs else ""
    if not missing:
        return mapped.strip(), bool(pairs)
    if len(missing) == len(model_names):
        return (f"None of the model's classes ({', '.join(model_names)}) is a class of this dataset "
                f"({', '.join(dataset_names[:8])}{'…' if len(dataset_names) > 8 else ''}). Its detections are "
                "shown under the model's own names; map them if they mean dataset classes.", True)
    return (mapped + f"The model's classes {', '.join(missing)} are not classes of this dataset; they are "
            "shown under the model's own names.", True)


class ClassMapDialog(QDialog):
    """One row per model class: a combo of the dataset's classes, or the model's own name."""

    def __init__(self, model_names: list[str], dataset_names: list[str], mapping: dict[str, str],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Map the model's classes")
        self._model_names = list(model_names)
        self.combos: dict[str, QComboBox] = {}
        form = QFormLayout()
        for name in model_names:
            combo = QComboBox()
            combo.addItem(OWN_NAME, "")
            for d in dataset_names:
                combo.addItem(d, d)
            current = mapping.get(name, "")
            combo.setCurrentIndex(max(0, combo.findData(current)) if current else 0)
            self.combos[name] = combo
            form.addRow(f"{name} →", combo)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("Which dataset class does each of the model's classes mean? Detections are then "
                             "shown and compared with the ground truth under that name."))
        lay.addLayout(form)
        lay.addWidget(buttons)

    def mapping(self) -> dict[str, str]:
        return {m: str(c.currentData()) for m, c in self.combos.items() if c.currentData()}
