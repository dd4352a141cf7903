"""Synthetic corpus generation speed and quality (issue: the synthetic world).

Speed: seconds of corpus (audio + meshes, no rendering) produced per second of wall time, with
all available cores. Quality: the paper's observations on the generated corpus: v(lip) clusters
by subject (silhouette score) and mouth/chin motion correlates more than upper/lower face.

    .venv/bin/python benchmarks/bench_synth.py --subjects 8 --sentences 6

writes benchmarks/results/synth.json and benchmarks/results/synth_*.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine  # noqa: E402
from mmface4d.data.nut import decode_nut  # noqa: E402
from mmface4d.data.plots import plot_lip_velocity, plot_region_graph  # noqa: E402
from mmface4d.data.stats import compute_stats  # noqa: E402
from mmface4d.facemodel import load_face_model  # noqa: E402
from mmface4d.synth.corpus import corpus  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--sentences", type=int, default=6)
    parser.add_argument("--lang", default="both")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_synth_"))
    try:
        start = time.perf_counter()
        manifest = corpus(
            work / "corpus",
            subjects=args.subjects,
            sentences=args.sentences,
            lang=args.lang,
            seed=0,
            workers=args.workers,
            progress=False,
        )
        wall = time.perf_counter() - start
        with open(manifest, newline="") as fh:
            rows = list(csv.DictReader(fh))
        seconds = sum(float(r["duration_s"]) for r in rows)
        model = load_face_model("synth")
        seqs = [decode_nut(work / "corpus" / r["recording"], model.num_vertices) for r in rows]
        regions = {
            n: model.regions[n] for n in ("lip", "chin", "cheeks", "nose", "eyes", "forehead")
        }
        meta = [{"age": int(r["age"]), "gender": r["gender"]} for r in rows]
        subjects = [r["subject"] for r in rows]
        ids = [r["recording"] for r in rows]
        anchors = np.concatenate([model.regions["forehead"], model.regions["nose"]])
        stats = compute_stats(seqs, subjects, ids, regions, 30.0, meta, stabilise_on=anchors)
        names = stats.correlation_regions
        corr = {
            f"{a}~{b}": float(stats.correlation[i, j])
            for i, a in enumerate(names)
            for j, b in enumerate(names)
            if i < j
        }
        RESULTS.mkdir(exist_ok=True)
        plot_lip_velocity(stats, RESULTS / "synth_lip_velocity.png")
        centroids = {n: model.mean[idx, :2].mean(0) for n, idx in regions.items()}
        plot_region_graph(
            stats,
            centroids,
            model.mean[model.regions["face"], :2],
            RESULTS / "synth_region_graph.png",
        )
        result = {
            "command": "python " + " ".join(sys.argv),
            "machine": machine(),
            "recordings": len(rows),
            "corpus_seconds": round(seconds, 2),
            "wall_seconds": round(wall, 2),
            "corpus_seconds_per_wall_second": round(seconds / wall, 2),
            "target": ">= 10 (corpus seconds per second of compute on 2 cores)",
            "lip_velocity_subject_silhouette": round(stats.lip_silhouette, 3),
            "lip_velocity_variance_explained_by_subject": round(stats.lip_subject_r2, 3),
            "chance_variance_explained": round((args.subjects - 1) / (len(rows) - 1), 3),
            "region_correlation": {k: round(v, 3) for k, v in corr.items()},
            "mouth_chin_vs_forehead_chin": [
                round(corr["lip~chin"], 3),
                round(corr.get("chin~forehead", np.nan), 3),
            ],
        }
        (RESULTS / "synth.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
