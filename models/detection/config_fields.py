"""The machinery every detector configuration part shares: typed fields with a one-line help and flat v1 names.

:mod:`models.detection.config` declares the parts (backbone, input, RPN, ...) with :func:`setting`; this module
is what makes a part a part: values coerced to the declared type on construction (JSON and the command line
give ints for floats, lists for tuples, text for everything), the plain-dict round trip that checkpoints store,
and each field's help for the training panel. Kept apart so the parts' file reads as the list of settings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import field
from typing import Any, get_type_hints


def setting(default: Any, help: str, *aliases: str) -> Any:  # noqa: A002 - "help" reads best at the call sites
    """A part's field: its default, a one-line help (for the training panel) and its flat v1 names."""
    meta = {"help": help, "v1": aliases}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


class ConfigError(ValueError):
    """A setting that does not exist, or a value of the wrong kind; the message names the setting."""


def coerce_value(part: str, name: str, hint: str, value: Any) -> Any:
    """``value`` as the field's declared type (JSON and the command line give ints for floats, lists for
    tuples): so equal settings compare equal and the saved dicts hold plain numbers and lists."""
    if value is None:
        if "None" in hint:
            return None
        raise ConfigError(f"{part}.{name} cannot be empty")
    base = hint.replace(" | None", "").strip()
    try:
        if base == "bool":
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if base == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if base == "float":
            return float(value)
        if base == "str":
            return str(value)
        if base.startswith("list["):
            item = {"list[float]": float, "list[int]": int}.get(base)
            if isinstance(value, str):
                value = [v for v in value.replace(" ", "").split(",") if v]
            if isinstance(value, (int, float)):
                value = [value]
            return [item(v) for v in value] if item else list(value)
        if base.startswith("dict"):
            return dict(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{part}.{name} expects {base}, got {value!r}") from None
    return value


class Part:
    """Behaviour every part shares: type coercion on construction, plain-dict round trip, field help."""

    #: The part's name in a :class:`DetectorConfig` and in saved configs ("rpn", "roi_head", ...).
    PART = ""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            object.__setattr__(self, f.name, coerce_value(self.PART, f.name, hints[f.name], getattr(self, f.name)))
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` for values the part cannot work with."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Part:
        unknown = sorted(set(values) - set(field_names(cls)))
        if unknown:
            raise ConfigError(f"{cls.PART} has no setting {', '.join(map(repr, unknown))}; "
                              f"its settings are: {', '.join(field_names(cls))}")
        return cls(**dict(values))

    def replace(self, **changes: Any) -> Part:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    @classmethod
    def help(cls, name: str) -> str:
        return str(field_of(cls, name).metadata.get("help", ""))


_HINTS: dict[type, dict[str, str]] = {}


def _hints(cls: type) -> dict[str, str]:
    if cls not in _HINTS:
        _HINTS[cls] = {k: type_text(v) for k, v in get_type_hints(cls).items()}
    return _HINTS[cls]


def type_text(hint: Any) -> str:
    """``int | None`` / ``list[float]`` as text, whichever way typing spells it."""
    text = str(hint).replace("typing.", "")
    if text.startswith("<class '"):
        text = text[len("<class '"):-2]
    if text.startswith("Optional[") or text.startswith("Union["):
        inner = text[text.index("[") + 1:-1].replace(", NoneType", "")
        return f"{inner} | None"
    return text.replace("NoneType", "None")


def field_of(cls: type, name: str) -> dataclasses.Field:
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f
    raise ConfigError(f"{getattr(cls, 'PART', cls.__name__)} has no setting {name!r}")


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
