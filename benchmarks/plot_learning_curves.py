"""Learning curves of training runs, side by side: their logs copied beside a PNG.

    .venv/bin/python benchmarks/plot_learning_curves.py NAME=RUN [NAME=RUN ...] \
        -o benchmarks/results/lipsync_learning_curves.png

For each run folder (``mmface4d train -o RUN``) its ``log.csv`` is copied to
``<output stem>/<NAME>.csv`` (so the committed figure keeps its data) and plotted: the total
training loss, and each loss term the runs log (``lip_gap``, ``velocity``, ...), against the
step. Terms differ between runs with other settings; a run without a term has no line there.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from mmface4d.atomic import save_figure  # noqa: E402

SKIP = {"step", "lr", "seconds"}


def read_log(path: Path) -> dict[str, list[float]]:
    """Columns of a run's log.csv as floats (empty cells skipped per column)."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns: dict[str, list[float]] = {}
    for name in rows[0] if rows else []:
        columns[name] = [float(row[name]) if row[name] else float("nan") for row in rows]
    return columns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="NAME=RUN")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the PNG to write")
    args = parser.parse_args()
    logs = {}
    data_dir = args.output.with_suffix("")
    data_dir.mkdir(parents=True, exist_ok=True)
    for item in args.runs:
        name, run = item.split("=", 1)
        source = Path(run) / "log.csv"
        if not source.is_file():
            raise SystemExit(f"{source}: not found (a run folder of mmface4d train)")
        shutil.copyfile(source, data_dir / f"{name}.csv")
        logs[name] = read_log(source)
    terms = ["loss"] + sorted({k for log in logs.values() for k in log} - SKIP - {"loss"})
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(terms), figsize=(4.2 * len(terms), 3.4), squeeze=False)
    for axis, term in zip(axes[0], terms, strict=True):
        for name, log in logs.items():
            if term in log:
                axis.plot(log["step"], log[term], label=name, lw=1.2)
        axis.set_title(term)
        axis.set_xlabel("step")
        axis.set_yscale("log")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, args.output)
    print(f"wrote {args.output} and {data_dir}/")


if __name__ == "__main__":
    main()
