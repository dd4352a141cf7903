"""Atomic file output: write to a temporary name beside the target, rename when complete."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched, so an
    interrupted write never leaves a half-written file under the final name.

    Args:
        path: the final output path; its folder is created if missing.
        suffix: suffix of the temporary name (default: the target's, so that libraries which
            pick a format from the extension still do).
    """
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"{target}: is a directory, expected a file path")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.",
        suffix=suffix if suffix is not None else target.suffix,
        dir=target.parent,
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():  # mkstemp made it 0600: give it the permissions a plain open() would
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_figure(figure: Any, path: str | os.PathLike[str], dpi: int = 110, **savefig: Any) -> Path:
    """Write a matplotlib figure as PNG atomically, then close it (if it is pyplot's).

    Args:
        figure: a ``matplotlib.figure.Figure``.
        path: the ``.png`` output path.
        dpi: resolution.
        savefig: further ``Figure.savefig`` options (``bbox_inches="tight"``, ``facecolor``).
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=dpi, format="png", **savefig)
    import matplotlib.pyplot as plt

    plt.close(figure)
    return path
