"""Reconstruction: accuracy against the studio's truth and speed, per stage and per setting.

Data (not used for tuning: its own corpus seed, subjects and studio seed). A fresh synthetic
corpus (``--subjects`` subjects, one sentence each, WITH head motion) is filmed by the studio
at ``--capture-scale`` of 1920x1080 with the realistic depth and colour degradation, HRNet-98
landmark files with detector noise, and per-subject surface detail of ``--detail-mm`` std that
the face model cannot express (:func:`mmface4d.synth.capture.add_subject_detail`; without it
the corpus lies exactly in the model's space and the vertex-level stage has nothing to do).

Each setting runs ``mmface4d reconstruct`` (the library call) over the capture, the cameras
calibrated from the face (landmarks + ICP) as a user would, and reads every recording's
``REC_fit.json``: per-region vertex errors (mm, same-topology vertex distances) of the first
frame after each stage and of the tracked sequence, seconds per stage and per tracked frame.

Settings (the presets of ``configs/reconstruct/``, ``mmface4d reconstruct --config NAME``):
- ``paper``: the paper's iterations, every iteration re-rasterized, whole images (no crop).
- ``default``: the shipped defaults (the paper's iterations; visibility every 5 iterations,
  images cut to the face); no preset.
- ``fast``: ``default`` with early stopping on a loss plateau and 60 tracking iterations.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_reconstruct.py     # ~1 h on 2 cores
    .venv/bin/python benchmarks/bench_reconstruct.py --quick               # minutes, not saved

writes benchmarks/results/reconstruct.json (not with --quick unless --output is given).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine  # noqa: E402
from mmface4d.capture.calibration import load_calibration, pose_error  # noqa: E402
from mmface4d.cli import main as cli  # noqa: E402
from mmface4d.reconstruct import reconstruct, resolve_config  # noqa: E402
from mmface4d.synth.studio import load_ground_truth  # noqa: E402

#: setting -> its preset (configs/reconstruct/NAME.toml), None for the defaults
SETTINGS = {"paper": "paper", "default": None, "fast": "fast"}


def _data(work: Path, subjects: int, frames: int, scale: float, detail: float) -> Path:
    corpus, capture = work / "corpus", work / "capture"
    corpus_argv = ["synth", "corpus", "-o", str(corpus), "--subjects", str(subjects)]
    if cli([*corpus_argv, "--sentences", "1", "--seed", "4242", "--workers", "2"]):
        raise SystemExit("corpus failed")
    capture_argv = ["synth", "capture", str(corpus), "-o", str(capture), "--scale", str(scale)]
    options = ["--frames", str(frames), "--seed", "77", "--detail-mm", str(detail)]
    if cli([*capture_argv, *options, "--workers", "2"]):
        raise SystemExit("capture failed")
    return capture


def _calibration_error(output: Path, capture: Path, key: str) -> dict[str, float]:
    subject, name = key.split("/")
    truth = load_ground_truth(capture / subject / f"{name}_gt_capture.npz")
    estimated = load_calibration(output / subject / f"{name}_calibration.json").extrinsics
    worst = {"rotation_degrees": 0.0, "translation_mm": 0.0}
    for camera, pose in enumerate(truth.camera_from_world):
        error = pose_error(estimated[camera], np.linalg.inv(pose))
        worst["rotation_degrees"] = max(worst["rotation_degrees"], error.rotation_degrees)
        worst["translation_mm"] = max(worst["translation_mm"], error.translation_m * 1000)
    return {k: round(v, 3) for k, v in worst.items()}


def _mean(values: list[float]) -> float:
    return round(float(np.mean(values)), 4)


def run_setting(name: str, capture: Path, work: Path, frames: int, scale: float) -> dict:
    overrides = [f"scale={scale}"]
    config = resolve_config(SETTINGS[name], overrides)
    output = work / f"out_{name}"
    start = time.perf_counter()
    report = reconstruct(capture, output, config, frames=frames, figures=True, progress=True)
    records = {}
    for result in report.results:
        subject, rec = result.key.split("/")
        fit = json.loads((output / subject / f"{rec}_fit.json").read_text())
        records[result.key] = {
            "summary": fit["summary"],
            "calibration_error": _calibration_error(output, capture, result.key),
        }
    summaries = [r["summary"] for r in records.values()]
    stages = [s["stage"] for s in summaries[0]["stages"]]

    def region_mean(path: list[str], region: str) -> float:
        values = []
        for summary in summaries:
            node = summary["ground_truth"]
            for part in path:
                node = node[part]
            values.append(node[region]["mean_mm"])
        return _mean(values)

    return {
        "config": SETTINGS[name],
        "overrides": overrides,
        "wall_seconds": round(time.perf_counter() - start, 1),
        "failed_recordings": report.failed,
        "first_frame_error_after_stage_mm": {
            stage: {
                region: region_mean(["first_frame_after_stage", stage], region)
                for region in ("face", "lip", "upper_face")
            }
            for stage in stages
        },
        "sequence_error_mm": {
            region: region_mean(["sequence"], region) for region in ("face", "lip", "upper_face")
        },
        "sequence_error_unsmoothed_mm": {
            region: region_mean(["sequence_unsmoothed"], region)
            for region in ("face", "lip", "upper_face")
        },
        "seconds_per_stage_first_frame": {
            stage: _mean([s["stages"][i]["seconds"] for s in summaries])
            for i, stage in enumerate(stages)
        },
        "iterations_per_stage_first_frame": {
            stage: _mean([s["stages"][i]["iterations"] for s in summaries])
            for i, stage in enumerate(stages)
        },
        "seconds_per_tracked_frame": _mean([s["seconds_per_tracked_frame"] for s in summaries]),
        "median_depth_rmse_mm": _mean([s["median_depth_rmse_mm"] for s in summaries]),
        "recordings": records,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default=str(ROOT / "work" / "bench_reconstruct"))
    parser.add_argument("--subjects", type=int, default=2)
    parser.add_argument("--frames", type=int, default=15)
    parser.add_argument("--capture-scale", type=float, default=0.5)
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="working resolution, a fraction of the capture's (default: 960x540 "
        "images, the library default for 1080p recordings)",
    )
    parser.add_argument("--detail-mm", type=float, default=1.0)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument(
        "--reconstruct-frames",
        type=int,
        default=None,
        help="reconstruct only the first N frames of each recording (default: all --frames)",
    )
    parser.add_argument(
        "--merge-into",
        default=None,
        help="add these settings' results to an existing results JSON (each "
        "setting keeps the command that produced it)",
    )
    parser.add_argument("--quick", action="store_true", help="1 subject, 4 frames, 'fast' only")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    if args.quick:
        args.subjects, args.frames, args.settings = 1, 4, ["fast"]
    work = Path(args.work)
    capture = _data(work, args.subjects, args.frames, args.capture_scale, args.detail_mm)
    results = {}
    command = "python " + " ".join(sys.argv)
    for name in args.settings:
        frames = args.reconstruct_frames or args.frames
        results[name] = run_setting(name, capture, work, frames, args.scale)
        results[name]["command"] = command
        results[name]["frames_per_recording"] = frames
        print(name, json.dumps({k: v for k, v in results[name].items() if k != "recordings"}))
    width, height = round(1920 * args.capture_scale), round(1080 * args.capture_scale)
    record = {
        "command": "python " + " ".join(sys.argv),
        "machine": machine(),
        "data": {
            "subjects": args.subjects,
            "frames_per_recording": args.frames,
            "capture_resolution": [width - width % 2, height - height % 2],
            "working_resolution_scale": args.scale,
            "detail_mm": args.detail_mm,
            "corpus_seed": 4242,
            "studio_seed": 77,
            "head_motion": True,
        },
        "targets": {"face_mean_mm": 1.0, "lip_mean_mm": 1.5, "seconds_per_tracked_frame": 10.0},
        "settings": results,
    }
    if args.merge_into:  # the other settings' results and machine stay as they were
        merged = json.loads(Path(args.merge_into).read_text())
        merged["settings"].update(results)
        record = {**merged, "machine_" + "_".join(args.settings): record["machine"]}
    default = None if args.quick else str(ROOT / "benchmarks" / "results" / "reconstruct.json")
    output = args.output or args.merge_into or default
    if output:
        Path(output).write_text(json.dumps(record, indent=1) + "\n")
        print("wrote", output)


if __name__ == "__main__":
    main()
