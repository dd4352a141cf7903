"""The training logs: ``log.csv`` (one row per logging interval) and optional TensorBoard."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from mmface4d.atomic import atomic_path


class CsvLog:
    """log.csv: rows appended as they come; on resume, rows past the checkpoint are dropped."""

    def __init__(self, path: Path, resume_step: int) -> None:
        self.path, self.columns = path, None
        if resume_step == 0 or not path.exists():
            path.unlink(missing_ok=True)
            return
        with open(path, newline="") as file:
            rows = list(csv.reader(file))
        if rows:
            self.columns = rows[0]
            kept = [r for r in rows[1:] if r and int(r[0]) <= resume_step]
            buffer = io.StringIO()
            csv.writer(buffer).writerows([rows[0], *kept])
            with atomic_path(path) as tmp:
                tmp.write_text(buffer.getvalue())

    def write(self, row: dict[str, float]) -> None:
        new = self.columns is None
        if new:
            self.columns = list(row)
        with open(self.path, "a", newline="") as file:
            writer = csv.writer(file)
            if new:
                writer.writerow(self.columns)
            writer.writerow([f"{row.get(c, float('nan')):.9g}" for c in self.columns])


def tensorboard_writer(mode: str, folder: Path, start_step: int) -> Any:
    """A ``SummaryWriter`` in ``folder``, or None.

    Args:
        mode: ``auto`` (None when the tensorboard package is missing), ``on`` (ImportError with
            an install hint when missing) or ``off``.
        folder: the event folder.
        start_step: a resumed run's step; later events from an interrupted session are purged.
    """
    if mode == "off":
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        if mode == "on":
            raise ImportError(
                "train.tensorboard=on needs the tensorboard package: pip install tensorboard"
            ) from None
        return None
    return SummaryWriter(str(folder), purge_step=start_step or None)
