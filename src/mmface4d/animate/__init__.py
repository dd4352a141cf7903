"""Speech-driven 3D face animation: the paper's model, baselines, training, evaluation, inference.

The subpackage is also the main entry point: ``mmface4d.animate(...)`` is
:func:`mmface4d.animate.api.animate` (speech in, :class:`~mmface4d.animate.animator.AnimationResult`
out); ``from mmface4d.animate import animate`` gives the same function. The heavy modules load on
first use.
"""

from __future__ import annotations

import sys
import types
from typing import Any

__all__ = ["animate"]


def animate(*args: Any, **kwargs: Any) -> Any:
    """Speech to an animated face: see :func:`mmface4d.animate.api.animate`."""
    from mmface4d.animate.api import animate as _animate

    return _animate(*args, **kwargs)


class _CallableModule(types.ModuleType):
    """Lets ``mmface4d.animate(...)`` call :func:`animate` while staying the subpackage."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return animate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
