"""Persistent user settings (QSettings) and the user's data folder.

Why a wrapper: every key is typed and defaulted in one place, and the storage location can be redirected
(``RCNN_EXPLORER_SETTINGS`` = path of an INI file, ``RCNN_EXPLORER_DATA`` = data folder) so tests and
throw-away runs never touch the user's real settings or samples.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QStandardPaths

ORGANIZATION = "rcnn-explorer"
APPLICATION = "R-CNN Explorer"
SETTINGS_ENV = "RCNN_EXPLORER_SETTINGS"
DATA_ENV = "RCNN_EXPLORER_DATA"
MAX_RECENT = 10


def data_dir() -> Path:
    """Where the app keeps copies of the samples and its error log (created on demand)."""
    override = os.environ.get(DATA_ENV)
    if override:
        return Path(override).expanduser()
    loc = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.GenericDataLocation)
    base = Path(loc) if loc else Path.home() / ".local" / "share"
    return base / "rcnn-explorer"


def _key_for(path: Path | str) -> str:
    """A QSettings-safe key for a path (slashes would create nested groups)."""
    return hashlib.sha1(str(Path(path).resolve()).encode("utf-8")).hexdigest()[:16]


def _as_list(value: object) -> list[str]:
    """QSettings returns a str for a one-element list and None for an empty one (INI backend)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]  # type: ignore[union-attr]


def _as_bool(value: object, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)


class Settings:
    """Typed access to the persistent settings."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        target = path or os.environ.get(SETTINGS_ENV)
        if target:
            self.qsettings = QSettings(str(target), QSettings.Format.IniFormat)
        else:
            self.qsettings = QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope,
                                       ORGANIZATION, APPLICATION)

    def sync(self) -> None:
        self.qsettings.sync()

    @property
    def file_name(self) -> str:
        return self.qsettings.fileName()

    # --- recent files and last folder ------------------------------------------------------------------
    def recent_files(self) -> list[str]:
        return _as_list(self.qsettings.value("recent_files"))

    def add_recent(self, path: str | os.PathLike) -> list[str]:
        p = str(Path(path).resolve())
        items = [p] + [r for r in self.recent_files() if r != p]
        items = items[:MAX_RECENT]
        self.qsettings.setValue("recent_files", items)
        return items

    def clear_recent(self) -> None:
        self.qsettings.setValue("recent_files", [])

    def last_folder(self) -> str:
        return str(self.qsettings.value("last_folder", "") or "")

    def set_last_folder(self, folder: str | os.PathLike) -> None:
        self.qsettings.setValue("last_folder", str(folder))

    # --- classes ---------------------------------------------------------------------------------------
    def dataset_classes(self, dataset_root: Path | str) -> list[str]:
        """Classes of a dataset that its folder could not store (read-only folder, COCO, single image)."""
        return _as_list(self.qsettings.value(f"dataset_classes/{_key_for(dataset_root)}"))

    def set_dataset_classes(self, dataset_root: Path | str, names: list[str]) -> None:
        self.qsettings.setValue(f"dataset_classes/{_key_for(dataset_root)}", list(names))

    def default_class(self) -> str:
        return str(self.qsettings.value("default_class", "") or "")

    def set_default_class(self, name: str) -> None:
        self.qsettings.setValue("default_class", name)

    def label_prompt(self) -> bool:
        """Ask for the class after drawing a box (LabelImg's habit); off for fast single-class work."""
        return _as_bool(self.qsettings.value("label_prompt"), True)

    def set_label_prompt(self, on: bool) -> None:
        self.qsettings.setValue("label_prompt", bool(on))

    # --- saving ----------------------------------------------------------------------------------------
    def autosave(self) -> bool:
        return _as_bool(self.qsettings.value("autosave"), True)

    def set_autosave(self, on: bool) -> None:
        self.qsettings.setValue("autosave", bool(on))

    def annotation_dir(self, dataset_root: Path | str) -> str:
        """The annotation folder the user chose for this dataset ('' = beside the images)."""
        return str(self.qsettings.value(f"annotation_dirs/{_key_for(dataset_root)}", "") or "")

    def set_annotation_dir(self, dataset_root: Path | str, folder: str | os.PathLike | None) -> None:
        self.qsettings.setValue(f"annotation_dirs/{_key_for(dataset_root)}", str(folder) if folder else "")

    # --- verified marks for formats that cannot store them (COCO, YOLO) -----------------------------------
    def verified_names(self, dataset_root: Path | str) -> set[str]:
        return set(_as_list(self.qsettings.value(f"verified/{_key_for(dataset_root)}")))

    def set_verified_names(self, dataset_root: Path | str, names: set[str]) -> None:
        self.qsettings.setValue(f"verified/{_key_for(dataset_root)}", sorted(names))

    # --- detector models ---------------------------------------------------------------------------------
    def recent_models(self) -> list[str]:
        """Checkpoints loaded before, newest first (the Model panel's list; the first is loaded at start)."""
        return _as_list(self.qsettings.value("recent_models"))

    def add_recent_model(self, path: str | os.PathLike) -> list[str]:
        p = str(Path(path).resolve())
        items = ([p] + [r for r in self.recent_models() if r != p])[:MAX_RECENT]
        self.qsettings.setValue("recent_models", items)
        return items

    def remove_recent_model(self, path: str | os.PathLike) -> list[str]:
        """Forget a checkpoint that failed to load, so start-up does not try it again."""
        p = str(Path(path).resolve())
        items = [r for r in self.recent_models() if r != p]
        self.qsettings.setValue("recent_models", items)
        return items

    def model_device(self) -> str:
        """The device the user chose for models ("auto": CUDA, else Apple MPS, else CPU)."""
        return str(self.qsettings.value("model_device", "auto") or "auto")

    def set_model_device(self, device: str) -> None:
        self.qsettings.setValue("model_device", str(device))

    # --- runs --------------------------------------------------------------------------------------------
    def run_checkpoints(self) -> list[str]:
        """Checkpoints from outside the runs folder the user added to the Runs list (kept across sessions)."""
        return _as_list(self.qsettings.value("runs/added"))

    def set_run_checkpoints(self, paths: list[str]) -> None:
        self.qsettings.setValue("runs/added", [str(p) for p in paths])

    # --- window ------------------------------------------------------------------------------------------
    def geometry(self) -> QByteArray | None:
        v = self.qsettings.value("window/geometry")
        return v if isinstance(v, QByteArray) else None

    def window_state(self) -> QByteArray | None:
        v = self.qsettings.value("window/state")
        return v if isinstance(v, QByteArray) else None

    def set_window(self, geometry: QByteArray, state: QByteArray) -> None:
        self.qsettings.setValue("window/geometry", geometry)
        self.qsettings.setValue("window/state", state)
