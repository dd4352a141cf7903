"""Capture: extrinsic calibration accuracy on studio captures, and reading speed.

Accuracy, two cases, each with the current pipeline and the previous one (five frames spread
evenly over the recording; one-way ICP trimmed to the closest 90% of the pairs, points seen
beyond 60 degrees dropped), against the rig's truth (rotation angle in degrees, camera-centre
distance in mm, landmark initialisation alone and after ICP):

- **Moving head.** Per rig seed, a :class:`~mmface4d.synth.studio.StudioRig` (side cameras at 45
  degrees, randomly perturbed by ~1 degree and ~1 cm per axis) films the synth face with a random
  identity, a random expression and a random head pose per frame (std 4, 8, 2 degrees about x, y,
  z and 1 cm), as many frames as are calibrated from.
- **Still head.** The recordings of a synthetic speech corpus written with ``head_motion=False``
  (``mmface4d synth corpus --no-head-motion``: the head never moves, the face speaks; 2-4 s,
  60-125 frames each), each filmed by its own rig. Frames that all show one pose add no
  constraint, which is what the frame selection
  (:func:`~mmface4d.capture.calibration_frames.select_frames`, on the reference camera's
  landmarks of every frame) and the symmetric, untrimmed ICP are for. Only the frames chosen by
  either pipeline are rendered.

Both use the studio's realistic depth degradation (Nguyen et al. axial noise, mm quantisation,
grazing holes, dropouts, flying pixels) and iBUG-68 landmarks with the studio's detector noise
(2 px at 1080p, scaled with the resolution); :func:`~mmface4d.capture.calibration.calibrate_frames`
recovers the side cameras.

A sweep over the number of frames (1 to 10, moving head, at the first scale) shows how much
stacking frames buys.

Speed. A studio capture (three cameras, 1920x1080 colour H.264 + FFV1 depth, as MMFace4D ships)
is written to a temporary folder and streamed with ``Capture.from_raw``; three Azure-Kinect MKV
files (MJPEG 1080p colour, NFOV-unbinned 640x576 depth, written with the helper of
``tests/capture/test_mkv.py``) are streamed with ``Capture.from_mkv`` (depth registered to
colour). Frames per second are three-camera time steps per second of wall time. The whole
``calibrate`` of the raw capture (choosing and reading its frames, lifting, ICP) is timed too.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_capture.py          # ~10 min
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_capture.py --quick  # ~1 min, not saved

writes benchmarks/results/capture.json (not with --quick unless --output is given).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT / "tests" / "capture"))
from test_mkv import k4a_calibration_json, write_k4a_mkv  # noqa: E402

from _machine import machine  # noqa: E402
from mmface4d.capture import (  # noqa: E402
    CENTRE_CAMERA,
    CameraCalibration,
    Capture,
    write_raw_recording,
)
from mmface4d.capture.calibration import (  # noqa: E402
    CalibrationConfig,
    CalibrationResult,
    calibrate,
    calibrate_frames,
    pose_error,
)
from mmface4d.capture.calibration_frames import select_frames, spread_frames  # noqa: E402
from mmface4d.data.nut import decode_nut  # noqa: E402
from mmface4d.facemodel import load_face_model  # noqa: E402
from mmface4d.facemodel.landmark_maps import HRNET98_OF_IBUG68  # noqa: E402
from mmface4d.geometry.frames import to_camera_frame  # noqa: E402
from mmface4d.synth.corpus import corpus  # noqa: E402
from mmface4d.synth.performance import NECK_PIVOT  # noqa: E402
from mmface4d.synth.studio import (  # noqa: E402
    LANDMARK_NOISE_PX,
    StudioRig,
    project_landmarks,
    render_capture,
)

RESULTS = Path(__file__).parent / "results"
TARGET_DEGREES, TARGET_MM = 0.5, 2.0
#: The pipeline before frame selection and symmetric ICP: five frames spread evenly, one-way ICP
#: on the closest 90% of the pairs, points seen beyond 60 degrees dropped.
PREVIOUS_FRAMES = 5
PIPELINES = {
    "previous": CalibrationConfig(icp_trim=0.9, max_incidence_degrees=60.0, symmetric_icp=False),
    "current": CalibrationConfig(),
}
EXPRESSIONS = ("jawOpen", "mouthSmileLeft", "mouthSmileRight", "browInnerUp", "mouthFunnel")


def performance(model, frames: int, rng: np.random.Generator) -> np.ndarray:
    """(T, V, 3) float32 centre-camera-frame meshes: one identity, per-frame expression and
    head pose."""
    identity = torch.as_tensor(rng.normal(0.0, 1.0, (1, model.identity_dims)), dtype=torch.float32)
    expression = np.zeros((frames, model.expression_dims), np.float32)
    for name in EXPRESSIONS:
        expression[:, model.expression_index(name)] = rng.uniform(0.0, 0.4, frames)
    with torch.no_grad():
        verts = model.vertices(identity.expand(frames, -1), torch.as_tensor(expression)).numpy()
    rotation = Rotation.from_euler("xyz", rng.normal(0.0, [4.0, 8.0, 2.0], (frames, 3)), True)
    posed = (verts - NECK_PIVOT) @ rotation.as_matrix().transpose(0, 2, 1) + NECK_PIVOT
    posed += rng.normal(0.0, 0.01, (frames, 1, 3))
    return to_camera_frame(posed.astype(np.float32))


def studio_shots(model, rig: StudioRig, frames: int, seed: int):
    """Rendered frames and noisy iBUG-68 landmarks (per frame, per camera)."""
    rng = np.random.default_rng([seed, 1])
    verts = performance(model, frames, rng)
    shots = list(render_capture(verts, model.faces, model.albedo_mean, rig, seed))
    noise = LANDMARK_NOISE_PX * rig.scale
    landmarks = [
        [project_landmarks(v, model.landmarks, cam, noise, rng) for cam in rig.cameras()]
        for v in verts
    ]
    return shots, landmarks


def summarise(values: list[float]) -> dict[str, float]:
    return {
        "mean": round(statistics.fmean(values), 4),
        "median": round(statistics.median(values), 4),
        "max": round(max(values), 4),
    }


def side_camera_errors(result: CalibrationResult, truth: list[np.ndarray], **keys) -> list[dict]:
    """Per side camera: the errors of the landmark initialisation and of the final pose."""
    rows = []
    for found in result.cameras:
        if found.camera == result.reference:
            continue
        initial = pose_error(found.initial, truth[found.camera])
        refined = pose_error(found.extrinsics, truth[found.camera])
        rows.append(
            keys
            | {
                "camera": found.camera,
                "init_rotation_deg": round(initial.rotation_degrees, 4),
                "init_translation_mm": round(initial.translation_m * 1000, 3),
                "icp_rotation_deg": round(refined.rotation_degrees, 4),
                "icp_translation_mm": round(refined.translation_m * 1000, 3),
                "refined": found.refined,
                "landmark_inliers": [found.landmark_inliers, found.landmark_pairs],
                "landmark_rmse_mm": round(found.landmark_rmse_m * 1000, 3),
                "icp_rmse_mm": round(found.icp_rmse_m * 1000, 3),
                "icp_correspondences": found.icp_inliers,
                "icp_iterations": found.icp_iterations,
                "frames": list(result.frames),
            }
        )
    return rows


def pipeline_summary(cases: list[dict], seconds: list[float], frames: int) -> dict:
    def stat(key):
        return summarise([c[key] for c in cases])

    icp_rot, icp_mm = stat("icp_rotation_deg"), stat("icp_translation_mm")
    return {
        "frames_per_calibration": frames,
        "side_cameras": len(cases),
        "init_rotation_deg": stat("init_rotation_deg"),
        "init_translation_mm": stat("init_translation_mm"),
        "icp_rotation_deg": icp_rot,
        "icp_translation_mm": icp_mm,
        "icp_iterations": stat("icp_iterations"),
        "calibrate_frames_seconds": summarise(seconds),
        "side_cameras_off_target": sum(
            c["icp_rotation_deg"] >= TARGET_DEGREES or c["icp_translation_mm"] >= TARGET_MM
            for c in cases
        ),
        "target_met": icp_rot["max"] < TARGET_DEGREES and icp_mm["max"] < TARGET_MM,
        "cases": cases,
    }


def run_pipelines(calibrations, depths, landmarks, choices, truth, keys, log) -> None:
    """Calibrate with each pipeline from its frames; append its rows and time to ``log``."""
    for name, chosen in choices.items():
        start = time.perf_counter()
        result = calibrate_frames(
            calibrations,
            [depths[t] for t in chosen],
            [landmarks[t] for t in chosen],
            frame_indices=chosen,
            config=PIPELINES[name],
        )
        log[name]["seconds"].append(time.perf_counter() - start)
        log[name]["cases"].extend(side_camera_errors(result, truth, **keys))

    def latest(name: str) -> str:  # the side cameras of this case, as one line
        cameras = (
            f"cam {c['camera']} {c['icp_rotation_deg']:.3f} deg {c['icp_translation_mm']:.2f} mm"
            for c in log[name]["cases"][-2:]
        )
        return f"{name} " + ", ".join(cameras)

    print(f"{keys}: " + " | ".join(latest(name) for name in choices), flush=True)


def moving_head(model, scale: float, rigs: int, frames: int) -> dict:
    """Random head pose per frame: the current pipeline on ``frames`` frames, the previous one
    on the first five."""
    log = {name: {"cases": [], "seconds": []} for name in PIPELINES}
    for seed in range(rigs):
        rig = StudioRig(scale=scale, seed=seed)
        shots, landmarks = studio_shots(model, rig, frames, seed)
        calibrations = [CameraCalibration.from_pinhole(c) for c in rig.cameras()]
        truth = [np.linalg.inv(pose) for pose in rig.camera_from_world()]
        choices = {
            "previous": list(range(min(PREVIOUS_FRAMES, frames))),
            "current": list(range(frames)),
        }
        depths = [[c.depth for c in shot] for shot in shots]
        run_pipelines(calibrations, depths, landmarks, choices, truth, {"rig_seed": seed}, log)
    counts = {"previous": min(PREVIOUS_FRAMES, frames), "current": frames}
    return {
        "scale": scale,
        "image_size": list(StudioRig(scale=scale).image_size),
        "rigs": rigs,
        **{
            name: pipeline_summary(log[name]["cases"], log[name]["seconds"], counts[name])
            for name in PIPELINES
        },
    }


def still_corpus(folder: Path, recordings: int) -> list[Path]:
    """Mesh prefixes of a speech corpus whose heads never move (written once per run)."""
    corpus(
        folder,
        subjects=math.ceil(recordings / 2),
        sentences=2,
        lang="en",
        head_motion=False,
        workers=1,
        progress=False,
    )
    with open(folder / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [folder / row["recording"] for row in rows[:recordings]]


def still_head(model, scale: float, prefixes: list[Path], frames: int) -> dict:
    """Each still-head recording filmed by its own rig; the current pipeline chooses ``frames``
    frames with :func:`select_frames` from the whole recording, the previous one spreads five."""
    log = {name: {"cases": [], "seconds": []} for name in PIPELINES}
    lengths = []
    for seed, prefix in enumerate(prefixes):
        verts = decode_nut(prefix, num_vertices=model.num_vertices)
        lengths.append(len(verts))
        rig = StudioRig(scale=scale, seed=seed)
        rng = np.random.default_rng([seed, 2])
        noise = LANDMARK_NOISE_PX * rig.scale
        landmarks = np.stack(
            [project_landmarks(verts, model.landmarks, cam, noise, rng) for cam in rig.cameras()],
            axis=1,
        )  # (T, C, 68, 2)
        choices = {
            "previous": spread_frames(len(verts), PREVIOUS_FRAMES),
            "current": select_frames(landmarks[:, CENTRE_CAMERA], frames),
        }
        needed = sorted(set().union(*choices.values()))
        rendered = render_capture(verts[needed], model.faces, model.albedo_mean, rig, seed)
        depths = {t: [c.depth for c in shot] for t, shot in zip(needed, rendered, strict=True)}
        calibrations = [CameraCalibration.from_pinhole(c) for c in rig.cameras()]
        truth = [np.linalg.inv(pose) for pose in rig.camera_from_world()]
        keys = {"rig_seed": seed, "recording": f"{prefix.parent.name}/{prefix.name}"}
        run_pipelines(calibrations, depths, list(landmarks), choices, truth, keys, log)
    counts = {"previous": PREVIOUS_FRAMES, "current": frames}
    return {
        "scale": scale,
        "image_size": list(StudioRig(scale=scale).image_size),
        "recordings": len(prefixes),
        "recording_frames": summarise(lengths),
        **{
            name: pipeline_summary(log[name]["cases"], log[name]["seconds"], counts[name])
            for name in PIPELINES
        },
    }


def frame_sweep(model, scale: float, rigs: int, counts: list[int]) -> dict:
    """Errors when calibrating from the first n frames, for each n in ``counts``."""
    errors: dict[int, list[tuple[float, float, float, float]]] = {n: [] for n in counts}
    for seed in range(rigs):
        rig = StudioRig(scale=scale, seed=seed)
        shots, landmarks = studio_shots(model, rig, max(counts), seed + 1000)
        calibrations = [CameraCalibration.from_pinhole(c) for c in rig.cameras()]
        truth = [np.linalg.inv(pose) for pose in rig.camera_from_world()]
        depths = [[c.depth for c in s] for s in shots]
        for n in counts:
            result = calibrate_frames(calibrations, depths[:n], landmarks[:n])
            for cam in (0, 2):
                initial = pose_error(result.cameras[cam].initial, truth[cam])
                refined = pose_error(result.cameras[cam].extrinsics, truth[cam])
                errors[n].append(
                    (
                        initial.rotation_degrees,
                        initial.translation_m * 1000,
                        refined.rotation_degrees,
                        refined.translation_m * 1000,
                    )
                )
        print(f"sweep scale {scale} rig {seed} done", flush=True)
    names = ("init_rotation_deg", "init_translation_mm", "icp_rotation_deg", "icp_translation_mm")
    return {
        "scale": scale,
        "rigs": rigs,
        "by_frames": {
            str(n): {name: summarise([e[k] for e in errors[n]]) for k, name in enumerate(names)}
            for n in counts
        },
    }


def read_speed(capture: Capture) -> dict:
    start = time.perf_counter()
    count = sum(1 for _ in capture.frames())
    wall = time.perf_counter() - start
    return {"frames": count, "seconds": round(wall, 2), "fps": round(count / wall, 2)}


def speed(model, scale: float, frames: int, work: Path) -> dict:
    rig = StudioRig(scale=scale, seed=0)
    rendered = min(10, frames)  # 10 distinct frames, as many as calibrate chooses
    shots, landmarks = studio_shots(model, rig, rendered, seed=0)
    calibrations = [CameraCalibration.from_pinhole(c) for c in rig.cameras()]
    width, height = rig.image_size

    def stream(kind: str, camera: int):
        for t in range(frames):
            shot = shots[t % rendered][camera]
            yield shot.colour if kind == "colour" else shot.depth

    hrnet = []
    for camera in range(3):
        points = np.stack([landmarks[t % rendered][camera] for t in range(frames)])
        full = np.repeat(points.mean(axis=1, keepdims=True), 98, axis=1)
        full[:, HRNET98_OF_IBUG68] = points
        hrnet.append(full)
    start = time.perf_counter()
    write_raw_recording(
        work / "raw",
        "000001",
        calibrations,
        landmarks=hrnet,
        colour=[stream("colour", c) for c in range(3)],
        depth=[stream("depth", c) for c in range(3)],
    )
    written = time.perf_counter() - start
    capture = Capture.from_raw(work / "raw", "000001")
    raw = read_speed(capture) | {"write_seconds": round(written, 2)}
    start = time.perf_counter()
    result = calibrate(capture)
    calibrate_seconds = time.perf_counter() - start
    truth = [np.linalg.inv(pose) for pose in rig.camera_from_world()]
    errors = [pose_error(result.extrinsics[c], truth[c]) for c in (0, 2)]
    # MKV: MJPEG colour at the capture's size, NFOV-unbinned depth (the studio depth, resampled)
    rows = np.linspace(0, height - 1, 576).round().astype(int)
    cols = np.linspace(0, width - 1, 640).round().astype(int)
    paths = []
    colour_mode = {(1920, 1080): "MJPG_1080P", (1280, 720): "MJPG_720P"}.get((width, height))
    for camera in range(3 if colour_mode else 0):
        colour = np.stack([shots[t % rendered][camera].colour for t in range(frames)])
        depth = np.stack([shots[t % rendered][camera].depth[rows][:, cols] for t in range(frames)])
        tags = {
            "K4A_CALIBRATION_FILE": "calibration.json",
            "K4A_COLOR_MODE": colour_mode,
            "K4A_DEPTH_MODE": "NFOV_UNBINNED",
            "K4A_DEVICE_SERIAL_NUMBER": f"00012345678{camera}",
        }
        paths.append(
            write_k4a_mkv(
                work / f"cam{camera}.mkv",
                colour,
                depth,
                calibration=k4a_calibration_json(),
                tags=tags,
            )
        )
    mkv = read_speed(Capture.from_mkv(paths)) if paths else {"skipped": "not a Kinect colour size"}
    return {
        "colour_size": [width, height],
        "cameras": 3,
        "raw_layout": raw,
        "mkv": mkv,
        "calibrate_raw_capture_seconds": round(calibrate_seconds, 2),
        "calibrate_raw_capture_errors": [
            {
                "rotation_deg": round(e.rotation_degrees, 4),
                "translation_mm": round(1000 * e.translation_m, 3),
            }
            for e in errors
        ],
    }


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[0.5, 1.0])
    parser.add_argument("--rigs", type=int, default=8, help="moving-head rigs per scale")
    parser.add_argument(
        "--still-recordings", type=int, default=8, help="still-head recordings per scale"
    )
    parser.add_argument("--frames", type=int, default=10, help="frames per calibration")
    parser.add_argument("--speed-frames", type=int, default=60, help="frames read for speed")
    parser.add_argument("--speed-scale", type=float, default=1.0)
    parser.add_argument(
        "--sweep",
        type=int,
        nargs="*",
        default=[1, 2, 3, 5, 10],
        help="frame counts of the accuracy-versus-frames sweep (at the first scale)",
    )
    parser.add_argument("--quick", action="store_true", help="small and fast, for development")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.scales, args.rigs, args.still_recordings, args.sweep = [0.25], 2, 2, [1, 3]
        args.speed_frames, args.speed_scale = 4, 0.25
    return args


def _report(args: argparse.Namespace, results: dict, sweep, reading: dict, started: float) -> dict:
    """The results JSON: the measurements and what they mean."""
    strict = [r for case in results.values() for r in case.values() if r["scale"] >= 0.5]
    return {
        "command": "python " + " ".join(sys.argv),
        "machine": machine(("scipy", "av")),
        "torch_threads": torch.get_num_threads(),
        "target": f"side cameras within {TARGET_DEGREES} degrees and {TARGET_MM} mm of the truth "
        "after ICP, every side camera of every rig or recording, moving and still head, at "
        "960x540 and above (the current pipeline)",
        "target_met": bool(strict) and all(r["current"]["target_met"] for r in strict),
        "pipelines": {
            "current": f"calibrate's defaults: {args.frames} frames (moving head: all rendered; "
            "still head: select_frames over the recording), symmetric ICP on all gated pairs, "
            "points up to 75 degrees incidence",
            "previous": f"{PREVIOUS_FRAMES} frames (moving head: the first; still head: spread "
            "evenly), one-way ICP on the closest 90% of the gated pairs, points up to 60 "
            "degrees incidence",
        },
        "depth_noise": "studio DepthNoise defaults (Nguyen et al. 2012 axial noise ~1.4 mm at "
        "0.72 m, mm quantisation, grazing holes, dropouts, flying pixels)",
        "landmark_noise_px_at_1080p": LANDMARK_NOISE_PX,
        "accuracy": results,
        "accuracy_by_frames": sweep,
        "reading": reading,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    args = _arguments()
    output = args.output or (None if args.quick else RESULTS / "capture.json")
    model = load_face_model("synth")
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench_capture_"))
    try:
        prefixes = still_corpus(work / "still_corpus", args.still_recordings)
        results = {
            "moving_head": {
                str(scale): moving_head(model, scale, args.rigs, args.frames)
                for scale in args.scales
            },
            "still_head": {
                str(scale): still_head(model, scale, prefixes, args.frames) for scale in args.scales
            },
        }
        sweep = frame_sweep(model, args.scales[0], args.rigs, args.sweep) if args.sweep else None
        reading = speed(model, args.speed_scale, args.speed_frames, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = _report(args, results, sweep, reading, started)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {output}")
    keys = ("icp_rotation_deg", "icp_translation_mm", "side_cameras_off_target", "target_met")
    summary = {
        case: {
            scale: {name: {k: r[name][k] for k in keys} for name in PIPELINES}
            for scale, r in by_scale.items()
        }
        for case, by_scale in results.items()
    }
    brief = {"accuracy": summary, "by_frames": sweep, "reading": reading}
    print(json.dumps(brief | {"target_met": report["target_met"]}, indent=1))


if __name__ == "__main__":
    main()
