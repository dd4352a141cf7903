"""Machine description stored with every benchmark result."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version


def machine(packages: tuple[str, ...] = ()) -> dict[str, object]:
    """CPU, cores, load, Python and library versions (torch and numpy, plus ``packages``)."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import torch

    versions = {}
    for name in ("torch", "numpy", *packages):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": cpu,
        "cores_available": len(os.sched_getaffinity(0)),
        "load_average_1_5_15_min": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def load_state(busy_above: float = 1.5) -> dict[str, object]:
    """The load averages now, and ``busy`` when the 1-minute one is above ``busy_above`` (on the
    2-core machine: other work shares the cores, so timings move)."""
    load = [round(x, 2) for x in os.getloadavg()]
    return {"load_average_1_5_15_min": load, "busy": load[0] > busy_above}


def commit() -> str:
    """The checkout's short commit, ``+uncommitted changes in src`` when src/ differs from it."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "src"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return head + ("+uncommitted changes in src" if dirty else "")


def report_and_stamp(
    script: str, output, argv: list[str], note: str, packages: tuple[str, ...] = ()
) -> tuple[dict, dict]:
    """The report so far (parts not run now keep their last result: ``output``'s JSON, or {})
    and the stamp of this run: command, commit, note and machine."""
    import json
    import shlex
    from pathlib import Path

    path = Path(output)
    report = json.loads(path.read_text()) if path.is_file() else {}
    stamp = {
        "command": shlex.join(["python", script, *argv]),
        "commit": commit(),
        "note": note,
        "machine": machine(packages),
    }
    return report, stamp
