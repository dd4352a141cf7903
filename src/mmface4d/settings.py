"""Nested-dataclass settings: typed ``section.key=value`` overrides, config files, presets.

Shared by every configurable stage (training, reconstruction) and by every other ``key=value``
text of the project (encoder and face-model specs, ``--expression NAME=WEIGHT``): values from
the command line (text) or a JSON/TOML file are converted to each field's type by
:func:`coerce` (``true/false`` for booleans, ``none`` for optional fields, ``8,8,16,16`` or
``[8,8,16,16]`` for tuples); an unknown key or a wrong type is an
:class:`~mmface4d.errors.InputError` that names the key.

Each field of a config dataclass is documented by the string literal right after it;
:func:`describe_keys` reads those strings, so help texts list every key with its type, default
and meaning without a hand-written copy.

Presets are TOML files named ``configs/<verb>/<name>.toml`` (:func:`find_config`): the
top-level ``configs/`` folder of a source checkout, which the wheel ships as the package data
``mmface4d/configs/`` (``setup.py`` maps the folder into the package).
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import functools
import inspect
import json
import math
import numbers
import os
import re
import textwrap
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from mmface4d.errors import InputError

Config = TypeVar("Config")


def _type_name(hint: Any) -> str:
    """``int``, ``float | None``, ``tuple[float, float]``: a type as written in the source."""
    if typing.get_args(hint) or not hasattr(hint, "__name__"):
        return str(hint).replace("typing.", "").replace("NoneType", "None")
    return hint.__name__


def coerce(value: Any, hint: Any, key: str) -> Any:
    """``value`` (text from the command line or a JSON/TOML value) as type ``hint``.

    The project's one conversion of settings: ``hint`` is ``bool``, ``int``, ``float``,
    ``str``, ``Any``, an optional (``X | None``) or a tuple of those. ``key`` names the setting
    in the :class:`InputError` raised when the value does not convert.
    """
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
        if not isinstance(number, numbers.Integral | float) or isinstance(number, bool):
            raise InputError(f"{key}: expected an integer, found {value!r}")
        if isinstance(number, float) and not number.is_integer():
            raise InputError(f"{key}: expected an integer, found {value!r}")
        return int(number)
    if hint is float:
        if isinstance(value, bool):
            raise InputError(f"{key}: expected a number, found {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise InputError(f"{key}: expected a number, found {value!r}") from None
    if hint is str:
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if not isinstance(value, str):
            raise InputError(f"{key}: expected text, found {value!r}")
        return value
    raise InputError(f"{key}: fields of type {_type_name(hint)} cannot be set")


def split_assignment(item: str, what: str, form: str = "key=value") -> tuple[str, str]:
    """``"key=value"`` as ``("key", "value")``, both stripped (the value may contain ``=``).

    Args:
        item: the text.
        what: what the text is, for the message (``override``, ``--expression``).
        form: the expected form, for the message.

    Raises:
        InputError: ``"{what}: expected {form}, found {item!r}"`` without ``=`` or a key.
    """
    key, equals, value = item.partition("=")
    if not equals or not key.strip():
        raise InputError(f"{what}: expected {form}, found {item!r}")
    return key.strip(), value.strip()


def parse_options(text: str, what: str) -> dict[str, str]:
    """``"a=1,b=x"`` (a spec's options) as ``{"a": "1", "b": "x"}``; values stay text.

    Values may contain ``=`` and ``:`` but not ``,``. An item without ``=`` or a key given twice
    is an :class:`InputError` starting with ``what`` (e.g. ``encoder spec 'mel:n_mels'``).
    """
    options: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, value = split_assignment(item, what)
        if key in options:
            raise InputError(f"{what}: option {key!r} given twice")
        options[key] = value
    return options


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints(cls)``, evaluated once per class (the string annotations of a
    nested config, evaluated for each of its keys, were most of the time of reading a saved
    configuration). The result is shared: read it, do not change it."""
    return typing.get_type_hints(cls)


def set_field(config: Any, path: Sequence[str], value: Any, source: str) -> None:
    """Set ``config.<path>`` (a dotted field path) to ``value`` converted to the field's type."""
    target, key = config, ".".join(path)
    for depth, name in enumerate(path):
        if not dataclasses.is_dataclass(target):
            raise InputError(f"{source}: {'.'.join(path[:depth])} has no fields (setting {key})")
        hints = field_types(type(target))
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
        key, value = split_assignment(item, "override", "section.key=value")
        set_field(result, key.split("."), value, "override")
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


# ----------------------------------------------------------------------------- presets


def presets_dir() -> Path:
    """The folder of named presets: the wheel's ``mmface4d/configs``, else the source
    checkout's top-level ``configs/`` (an editable install or ``src`` on the path)."""
    package = Path(__file__).resolve().parent
    shipped, checkout = package / "configs", package.parents[1] / "configs"
    return shipped if shipped.is_dir() or not checkout.is_dir() else checkout


def preset_names(kind: str) -> list[str]:
    """The presets of a verb (``train``, ``reconstruct``): ``configs/<kind>/<name>.toml``."""
    folder = presets_dir() / kind
    return sorted(path.stem for path in folder.glob("*.toml")) if folder.is_dir() else []


def find_config(source: str | os.PathLike[str], kind: str) -> Path:
    """The file ``--config SOURCE`` names: an existing file, else the preset of that name.

    Args:
        source: a JSON/TOML file path or a preset name (``paper``, ``table2_ours``).
        kind: the verb whose presets are searched (``configs/<kind>/``).

    Raises:
        InputError: neither a file nor a preset; the message lists the presets.
    """
    path = Path(source)
    if path.is_file():
        return path
    names = preset_names(kind)
    if str(source) in names:
        return presets_dir() / kind / f"{source}.toml"
    raise InputError(
        f"config {str(source)!r}: no such file, nor a {kind} preset "
        f"({', '.join(names) or 'none installed'})"
    )


# ----------------------------------------------------------------------------- documentation


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Field name -> the string literal written right after the field in a dataclass's source
    (its bases' fields too), whitespace collapsed; empty where the source cannot be read."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


@dataclasses.dataclass(frozen=True)
class KeyDoc:
    """One settings key as help lists it.

    Attributes:
        key: dotted key (``optim.lr``); a section's name for a section.
        type: the field's type as written (``float``, ``int | None``); ``section`` for one.
        default: the current value as typed on the command line (``0.0001``, ``none``).
        doc: the field's documentation string, reST markup removed ('' when it has none).
    """

    key: str
    type: str
    default: str
    doc: str


def format_value(value: Any) -> str:
    """A value as it is typed after ``--set key=``: ``true``, ``none``, ``0.9,0.999``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return ",".join(format_value(item) for item in value)
    return repr(value) if isinstance(value, float) else str(value)


def _plain(doc: str) -> str:
    """A docstring without reST markup: ``:func:`~a.b` `` -> ``b``, ``:mod:`a.b` `` -> ``a.b``,
    double back-quoted literals -> their text."""

    def role(match: re.Match) -> str:
        target = match.group(2)
        return target.rsplit(".", 1)[-1] if match.group(1) else target

    return re.sub(r":\w+:`(~?)([^`]+)`", role, doc).replace("``", "")


def describe_keys(config: Any, prefix: str = "", skip: Iterable[str] = ()) -> list[KeyDoc]:
    """Every key of a (nested) dataclass instance, sections before their fields, in field order.

    Args:
        config: the instance whose values are shown as defaults (e.g. ``ReconstructConfig()``).
        prefix: prepended to every key (``model.``).
        skip: top-level field names left out.
    """
    skip = set(skip)
    hints = field_types(type(config))
    docs = field_docs(type(config))
    keys: list[KeyDoc] = []
    for item in dataclasses.fields(config):
        if item.name in skip:
            continue
        value, key = getattr(config, item.name), prefix + item.name
        doc = _plain(docs.get(item.name, ""))
        if dataclasses.is_dataclass(value):
            keys.append(KeyDoc(key, "section", "", doc))
            keys += describe_keys(value, key + ".")
        else:
            keys.append(KeyDoc(key, _type_name(hints[item.name]), format_value(value), doc))
    return keys


def keys_help(keys: Iterable[KeyDoc], indent: int = 2, width: int = 79) -> str:
    """Help text of keys: ``KEY (TYPE, default VALUE)`` lines, each doc wrapped below it (a
    doc already shown for a field of the same name is referred to); a section is a ``[name]``
    line (as in a TOML file) with its doc beside it."""
    lines: list[str] = []
    pad, inner = " " * indent, " " * (indent + 4)
    wrap = functools.partial(textwrap.wrap, width=width, break_on_hyphens=False)
    shown: dict[tuple[str, str], str] = {}
    for item in keys:
        if item.type == "section":
            head = f"{pad}[{item.key}]" + (f" {item.doc}" if item.doc else "")
            lines += wrap(head, subsequent_indent=inner)
            continue
        line = f"{pad}{item.key} ({item.type}, default {item.default or repr('')})"
        leaf = item.key.rsplit(".", 1)[-1]
        same = shown.setdefault((leaf, item.doc), item.key) if item.doc else item.key
        if same != item.key:
            lines.append(f"{line}: as {same}")
        else:
            lines += [line, *wrap(item.doc, initial_indent=inner, subsequent_indent=inner)]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- TOML output


def _toml_value(value: Any) -> str:
    if value is None:
        return '"none"'  # TOML has no null; "none" clears an optional setting when read back
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string


def to_toml(values: Mapping[str, Any]) -> str:
    """Nested mappings (a config's plain values) as TOML that :func:`load_config_file` reads
    back to the same config (``None`` is written ``"none"``)."""
    lines: list[str] = []

    def table(mapping: Mapping[str, Any], path: tuple[str, ...]) -> None:
        scalars = [(k, v) for k, v in mapping.items() if not isinstance(v, Mapping)]
        if path and (scalars or not mapping):
            lines.extend(["", f"[{'.'.join(path)}]"] if lines else [f"[{'.'.join(path)}]"])
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in scalars)
        for key, value in mapping.items():
            if isinstance(value, Mapping):
                table(value, (*path, key))

    table(values, ())
    return "\n".join(lines) + "\n"
