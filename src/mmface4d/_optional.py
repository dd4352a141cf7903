"""Lazy imports of optional heavy backends, with an install hint naming the extra."""

from __future__ import annotations

import importlib
from types import ModuleType


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
