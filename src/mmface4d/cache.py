"""The on-disk cache's root folder: ``$MMFACE4D_CACHE_DIR``, else ``$XDG_CACHE_HOME/mmface4d``,
else ``~/.cache/mmface4d``; ``MMFACE4D_CACHE_DIR=off`` (or empty) turns caching off.

Each user keeps its own subfolder (``facemodel/``: the procedural face model; ``characters/``:
registered heads). Entries are keyed by a digest of what they depend on, written atomically,
and a damaged or outdated one is rebuilt.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable naming the cache's root; ``off`` (or empty) disables caching.
CACHE_ENV = "MMFACE4D_CACHE_DIR"


def cache_root() -> Path | None:
    """The cache's root folder, or None when caching is off."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen is not None:
        return None if chosen.strip().lower() in ("", "off") else Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mmface4d"
