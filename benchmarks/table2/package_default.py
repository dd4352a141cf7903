"""Package the Table II ``ours`` run as the shipped default model.

    .venv/bin/python benchmarks/table2/package_default.py RUN CORPUS STORE \
        -o src/mmface4d/assets/default_animator.pt
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from mmface4d.animate.packaging import package_animator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("store", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--subjects", type=int, default=4, help="training subjects as styles")
    args = parser.parse_args()
    info = {
        "made_by": "benchmarks/table2/run.sh (see benchmarks/table2/README.md)",
        "corpus": "mmface4d synth corpus --subjects 32 --sentences 20 --no-head-motion: 2,000 "
        "steps, then 1,000 steps on the same corpus with --pad-silence, then 1,000 with "
        "neutral templates (benchmarks/table2/neutral_templates.py)",
        "config": "configs/train/table2_ours.toml",
    }
    path = package_animator(
        args.run, args.output, args.corpus, args.store, args.subjects, info=info
    )
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
