"""Speech-driven 3D face animation: the paper's model, baselines, training, evaluation, inference.

The subpackage is also the main entry point: ``mmface4d.animate(...)`` is
:func:`mmface4d.animate.api.animate` (speech in, :class:`~mmface4d.animate.animator.AnimationResult`
out); ``from mmface4d.animate import animate`` gives the same function. Live speech streams
through ``load_animator().stream(speaker)`` (:class:`~mmface4d.animate.streaming.FaceStream`,
``docs/STREAMING.md``); ``animate_to_files`` writes files of any length. The heavy modules load
on first use.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from mmface4d._optional import lazy_exports

_all, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "mmface4d.animate.api": ("animate_to_files", "load_animator"),
        "mmface4d.animate.animator": ("Animator", "Speaker"),
        "mmface4d.animate.streaming": (
            "FaceFrames",
            "FaceStream",
            "LIVE",
            "OFFLINE",
            "StreamSettings",
            "offline_settings",
        ),
    },
)
__all__ = ["animate", *_all]


def animate(*args: Any, **kwargs: Any) -> Any:
    """Speech to an animated face: see :func:`mmface4d.animate.api.animate`."""
    from mmface4d.animate.api import animate as _animate

    return _animate(*args, **kwargs)


class _CallableModule(types.ModuleType):
    """Lets ``mmface4d.animate(...)`` call :func:`animate` while staying the subpackage."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return animate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
