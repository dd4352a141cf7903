"""Nested-dataclass settings: typed ``section.key=value`` overrides and config files.

Shared by every configurable stage (training, reconstruction): values from the command line
(text) or a JSON/TOML file are converted to each field's type (``true/false`` for booleans,
``none`` for optional fields, ``8,8,16,16`` or ``[8,8,16,16]`` for tuples); an unknown key or a
wrong type is an :class:`~mmface4d.errors.InputError` that names the key.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from mmface4d.errors import InputError

Config = TypeVar("Config")


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def coerce(value: Any, hint: Any, key: str) -> Any:
    """``value`` (text from the command line or a JSON/TOML value) as type ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null")):
            if type(None) in args:
                return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return coerce(value, options[0], key)
        raise InputError(f"{key}: cannot convert {value!r} to {_type_name(hint)}")
    if origin is tuple:
        if isinstance(value, str):
            text = value.strip()
            items: Any = (
                json.loads(text) if text.startswith("[") else [v for v in text.split(",") if v]
            )
        else:
            items = value
        if not isinstance(items, list | tuple):
            raise InputError(f"{key}: expected a list such as 1,2,3, found {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0], key) for v in items)
        if len(items) != len(args):
            raise InputError(f"{key}: expected {len(args)} values, found {value!r}")
        return tuple(coerce(v, a, key) for v, a in zip(items, args, strict=True))
    if hint is Any:
        return value
    if value is None:
        raise InputError(f"{key}: expected {_type_name(hint)}, found None")
    if hint is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise InputError(f"{key}: expected true or false, found {value!r}")
    if hint is int:
        number = value
        if isinstance(value, str):
            try:
                number = int(value)
            except ValueError:
                try:
                    number = float(value)  # 1e6
                except ValueError:
                    number = None
        if not isinstance(number, int | float) or isinstance(number, bool):
            raise InputError(f"{key}: expected an integer, found {value!r}")
        if isinstance(number, float) and not number.is_integer():
            raise InputError(f"{key}: expected an integer, found {value!r}")
        return int(number)
    if hint is float:
        if isinstance(value, bool):
            raise InputError(f"{key}: expected a number, found {value!r}")
        try:
            return float(value)
        except ValueError:
            raise InputError(f"{key}: expected a number, found {value!r}") from None
    if hint is str:
        if not isinstance(value, str):
            raise InputError(f"{key}: expected text, found {value!r}")
        return value
    raise InputError(f"{key}: fields of type {_type_name(hint)} cannot be set")


def set_field(config: Any, path: Sequence[str], value: Any, source: str) -> None:
    """Set ``config.<path>`` (a dotted field path) to ``value`` converted to the field's type."""
    target, key = config, ".".join(path)
    for depth, name in enumerate(path):
        if not dataclasses.is_dataclass(target):
            raise InputError(f"{source}: {'.'.join(path[:depth])} has no fields (setting {key})")
        hints = typing.get_type_hints(type(target))
        if name not in {f.name for f in dataclasses.fields(target)}:
            prefix = ".".join(path[:depth])
            names = sorted(f.name for f in dataclasses.fields(target))
            raise InputError(
                f"{source}: unknown key {key!r}; {prefix or 'the config'} has {', '.join(names)}"
            )
        if depth == len(path) - 1:
            current = getattr(target, name)
            if dataclasses.is_dataclass(current):
                raise InputError(f"{source}: {key} is a section; set its fields ({key}.FIELD=...)")
            setattr(target, name, coerce(value, hints[name], key))
        else:
            target = getattr(target, name)


def flatten(mapping: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple]:
    items: list[tuple] = []
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            items += flatten(value, (*prefix, key))
        else:
            items.append(((*prefix, key), value))
    return items


def update_dataclass(
    config: Config, values: Mapping[str, Any], source: str, skip: Sequence[str] = ()
) -> Config:
    """A copy of ``config`` with nested ``values`` (as in a saved config.json) applied.

    Args:
        config: a (nested) dataclass instance.
        values: nested mappings of field values.
        source: where the values come from, for messages.
        skip: top-level keys to ignore (metadata such as ``version``).
    """
    result = copy.deepcopy(config)
    for path, value in flatten(values):
        if path[0] in skip:
            continue
        set_field(result, path, value, source)
    return result


def apply_dataclass_overrides(config: Config, overrides: Sequence[str]) -> Config:
    """A copy of ``config`` with ``section.key=value`` overrides applied, in order."""
    result = copy.deepcopy(config)
    for item in overrides:
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            raise InputError(f"override {item!r}: expected section.key=value")
        set_field(result, key.strip().split("."), value.strip(), "override")
    return result


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A config file's nested values: JSON (``.json``, e.g. a run's config.json) or TOML."""
    path = Path(path)
    text = path.read_bytes()
    try:
        values = tomllib.loads(text.decode()) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        kind = "TOML" if path.suffix == ".toml" else "JSON"
        raise InputError(f"{path}: not a {kind} config file ({exc})") from None
    if not isinstance(values, dict):
        raise InputError(f"{path}: expected a mapping of sections, found {type(values).__name__}")
    return values
