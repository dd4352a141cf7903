"""Lazy imports: optional heavy backends (with an install hint naming the extra), and a
subpackage's re-exports, loaded on first use so that importing one light module of a
subpackage (a constant for a help text) does not import the whole subpackage."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or fail with a message that says which extra installs it.

    Args:
        module: importable module name, e.g. ``"nvdiffrast.torch"``.
        extra: the ``mmface4d`` extra that provides it, e.g. ``"nvdiffrast"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{module} is not installed; install it with: pip install 'mmface4d[{extra}]'"
        ) from exc


def lazy_exports(
    package: str, exports: Mapping[str, Sequence[str]]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """A package's re-exports, each imported from its module when first asked for (PEP 562).

    In the package's ``__init__``::

        __all__, __getattr__, __dir__ = lazy_exports(__name__, {"pkg.model": ("Model",)})

    ``pkg.Model`` and ``from pkg import Model`` then import ``pkg.model`` on first use; the
    value is kept on the package, so later lookups are plain attribute reads.

    Args:
        package: the package's ``__name__``.
        exports: module -> the names it gives the package.

    Returns:
        ``__all__`` (the names, in the order given), ``__getattr__`` and ``__dir__``.
    """
    owner = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = owner.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(owner))

    return list(owner), __getattr__, __dir__
