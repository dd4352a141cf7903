"""Learning curves of the Table II runs: training loss (reconstruction, mm^2) against steps.

.venv/bin/python benchmarks/table2/plot_curves.py RUN [RUN ...] -o curves.png
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def label(run: Path) -> str:
    config = json.loads((run / "config.json").read_text())
    name = config["model_name"]
    return f"{name} w/o {config['ablation']}" if config.get("ablation") else name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    fig, axis = plt.subplots(figsize=(8, 4.5))
    for run in args.runs:
        with open(run / "log.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        steps = [int(r["step"]) for r in rows]
        key = "reconstruction" if "reconstruction" in rows[0] else "loss"
        axis.plot(steps, [float(r[key]) for r in rows], label=label(run), lw=1.2)
    axis.set_yscale("log")
    axis.set_xlabel("step (batch of 8 windows)")
    axis.set_ylabel("training reconstruction loss (mm$^2$)")
    axis.grid(alpha=0.3, which="both")
    axis.legend()
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
