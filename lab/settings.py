"""Settings as nested dataclasses: rebuilt from the JSON a run recorded, listed as dotted paths, and
overridden from the command line with `section.field=value` (converted to the field's type).

Generic over any dataclass tree (the presets, one stage's settings), torch-free and importing nothing
of the lab's but its errors, so every layer may use it.
"""

from __future__ import annotations

import dataclasses
import typing

from lab.errors import LabError


def from_settings(cls, settings: dict):
    """Rebuild a settings dataclass from the JSON a run recorded (lists become tuples, sections recurse).

    Fields added since the run was written keep their defaults, as Run.create_or_open allows."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in settings:
            continue
        value, hint = settings[f.name], hints[f.name]
        if dataclasses.is_dataclass(hint):
            value = from_settings(hint, value)
        elif typing.get_origin(hint) is tuple:
            value = tuple(value)
        values[f.name] = value
    return cls(**values)


def field_paths(obj, prefix: str = "") -> list[str]:
    paths = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            paths += field_paths(value, f"{prefix}{f.name}.")
        else:
            paths.append(f"{prefix}{f.name}")
    return paths


def apply_override(settings, item: str) -> None:
    """Apply one `section.field=value` override, converting the value to the field's type."""
    if "=" not in item:
        raise LabError(f"override {item!r} is not of the form key=value (e.g. pretrain.lr=1e-3)")
    key, raw = item.split("=", 1)
    target, parts = settings, key.strip().split(".")
    for i, part in enumerate(parts):
        names = {f.name: f for f in dataclasses.fields(target)}
        if part not in names:
            where = ".".join(parts[:i]) or "the preset"
            raise LabError(f"unknown setting {key!r}: {where} has {', '.join(names)}")
        if i < len(parts) - 1:
            target = getattr(target, part)
            if not dataclasses.is_dataclass(target):
                raise LabError(f"unknown setting {key!r}: {part!r} is a value, not a section")
    current = getattr(target, parts[-1])
    if dataclasses.is_dataclass(current):
        raise LabError(f"{key!r} is a section; set one of its fields, e.g. {field_paths(current, key + '.')[0]}=...")
    hints = typing.get_type_hints(type(target))
    setattr(target, parts[-1], _convert(raw.strip(), hints[parts[-1]], key))
    if hasattr(target, "__post_init__"):  # a section's own checks see the overridden value too
        target.__post_init__()


def _convert(raw: str, hint, key: str):
    origin = typing.get_origin(hint)
    try:
        if hint is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if hint in (int, float, str):
            return hint(raw)
        if origin is tuple:
            (item_type, *_) = typing.get_args(hint)
            items = [s.strip() for s in raw.strip("()[] ").split(",") if s.strip()]
            return tuple(_convert(s, item_type, key) for s in items)
        if origin is dict:
            return dict((k.strip(), int(v)) for k, v in (pair.split(":") for pair in raw.split(",") if pair))
    except ValueError:
        pass
    raise LabError(f"cannot read {raw!r} as {getattr(hint, '__name__', hint)} for setting {key!r}")
