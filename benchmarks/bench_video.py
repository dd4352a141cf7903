"""Video speed: frames per second of 512x512 output, end to end (render + H.264/AAC encode).

    .venv/bin/python benchmarks/bench_video.py [--baseline REF] [--frames 150] [--rounds 3]
        [--animate SPEECH]

Times ``render.video.render_video`` -- what ``mmface4d video`` runs, and the way ``mmface4d
animate`` renders and encodes its MP4 (``animate.outputs``) -- on the default face model (the
procedural ``synth`` face of the shipped model: 10,794 vertices, 20,648 triangles, its albedo),
moving through ARKit expressions (jaw, smile, funnel, blinks) so that every frame differs, with
5 s of audio muxed in. Target: at least 30 frames per second (real time) on two cores.

The baseline is the same call on the code of another commit (``--baseline``, default: the
commit before the compiled rasterizer), checked out in a temporary git worktree, in the same run:
rounds alternate baseline and current code, each a fresh process given the same vertices, and
each warms up on a short clip first (imports, Numba's cache). Both also render the same sample
frames; the result records how far the pictures differ (the target: not at all).

``--animate SPEECH`` also times the whole ``mmface4d animate SPEECH --formats mp4`` command
(start-up, the model, rendering and encoding) with both versions, as seconds per second of speech.

Timings move with the machine's load: pause background work while timing (on the project's
machines: ``pkill -STOP -f "bin/mmface4d train"``, and ``-CONT`` after, in a trap) and read the
load averages stored before and after. Writes benchmarks/results/video.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
FPS = 30
SIZE = 512
SAMPLE_FRAMES = (0, 17, 41, 73)  # compared between the two versions
# (expression, amplitude, frequency in Hz, phase)
MOTION = [
    ("jawOpen", 0.45, 2.3, 0.0),
    ("mouthSmileLeft", 0.5, 0.7, 0.3),
    ("mouthSmileRight", 0.5, 0.7, 0.5),
    ("mouthFunnel", 0.4, 1.3, 1.1),
    ("eyeBlinkLeft", 1.0, 0.4, 2.0),
    ("eyeBlinkRight", 1.0, 0.4, 2.0),
]


def motion(frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T, V, 3) vertices of the synth face moving through expressions, its faces and albedo."""
    from mmface4d.facemodel import load_face_model

    model = load_face_model("synth")
    t = np.arange(frames) / FPS
    verts = np.repeat(model.mean[None].astype(np.float32), frames, axis=0)
    for name, amplitude, hz, phase in MOTION:
        weight = amplitude * 0.5 * (1 - np.cos(2 * np.pi * hz * t + phase))
        basis = model.expression_basis[model.expression_index(name)]
        verts += weight[:, None, None].astype(np.float32) * basis[None]
    return verts, np.asarray(model.faces), np.clip(model.albedo_mean, 0, 1)


def worker(src: Path, inputs: Path, output: Path) -> None:
    """Time ``render_video`` with the package found in ``src``; write the timing and frames."""
    sys.path.insert(0, str(src))
    import torch

    import mmface4d
    from mmface4d.render.camera import frame_mesh
    from mmface4d.render.shade import render_preview
    from mmface4d.render.video import render_video

    if Path(mmface4d.__file__).resolve().parents[1] != src.resolve():
        raise SystemExit(f"imported {mmface4d.__file__}, expected the package in {src}")
    data = np.load(inputs)
    verts, faces, colors = data["vertices"], data["faces"], data["colors"]
    rng = np.random.default_rng(0)
    seconds = len(verts) / FPS
    audio = (0.1 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * 16000)) / 16000)).astype(
        np.float32
    ) + rng.normal(0, 0.01, int(seconds * 16000)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        # warm-up: imports, the renderer's threads, compiled loops (Numba's cache)
        render_video(verts[:16], faces, FPS, Path(tmp) / "warm.mp4", audio[:8533], colors=colors,
                     size=(SIZE, SIZE), progress=False)  # fmt: skip
        start, cpu = time.perf_counter(), time.process_time()
        info = render_video(verts, faces, FPS, Path(tmp) / "v.mp4", audio, colors=colors,
                            size=(SIZE, SIZE), progress=False)  # fmt: skip
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        size = (Path(tmp) / "v.mp4").stat().st_size
    camera = frame_mesh(torch.as_tensor(verts).mean(0), width=SIZE, height=SIZE)
    picked = verts[[i % len(verts) for i in SAMPLE_FRAMES]]
    sample = render_preview(picked, faces, colors=colors, camera=camera, supersample=1)
    np.save(output.with_suffix(".npy"), sample)
    output.write_text(
        json.dumps(
            {
                "frames": info.frames,
                "seconds": round(wall, 3),
                "fps": round(info.frames / wall, 2),
                "cpu_ms_per_frame": round(1000 * cpu / info.frames, 2),
                "mp4_kbit_per_s": round(8 * size / 1000 / seconds, 1),
                "torch_threads": torch.get_num_threads(),
            }
        )
    )


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def default_baseline() -> str:
    """The commit before the one that added the compiled rasterizer."""
    added = _git(
        "log", "--diff-filter=A", "--format=%H", "--", "src/mmface4d/render/numba_backend.py"
    ).splitlines()
    return f"{added[-1]}~1" if added else "HEAD"


def run_worker(src: Path, inputs: Path, folder: Path, tag: str) -> tuple[dict, np.ndarray]:
    out = folder / f"{tag}.json"
    env = {**os.environ, "PYTHONPATH": str(src)}
    subprocess.run(
        [sys.executable, __file__, "--worker", str(src), str(inputs), str(out)], env=env, check=True
    )
    return json.loads(out.read_text()), np.load(out.with_suffix(".npy"))


def time_animate(src: Path, speech: Path, folder: Path) -> float:
    """Wall seconds of ``mmface4d animate SPEECH --formats mp4`` run from the package in ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = folder / "animate"
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mmface4d", "animate", str(speech), "-o", str(out), "--formats",
         "mp4", "--quiet"], env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if not any(out.glob("*.mp4")):
        raise RuntimeError(f"mmface4d animate from {src} wrote no mp4")
    return seconds


def compare(old: np.ndarray, new: np.ndarray) -> dict:
    diff = np.abs(old.astype(np.int16) - new.astype(np.int16))
    return {
        "frames_compared": len(old),
        "max_abs_difference": int(diff.max()),
        "fraction_of_pixels_differing": float((diff.max(-1) > 0).mean()),
        "identical": bool(np.array_equal(old, new)),
    }


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        worker(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default=None, help="git commit of the old code")
    parser.add_argument("--frames", type=int, default=150, help="frames per timed video")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per version")
    parser.add_argument("--output", type=Path, default=RESULTS / "video.json")
    parser.add_argument("--note", default="", help="stored with the result")
    parser.add_argument("--animate", type=Path, default=None, help="speech file: time animate")
    args = parser.parse_args()
    baseline = _git("rev-parse", "--short", args.baseline or default_baseline())
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = _git("status", "--porcelain", "--", "src")
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        worktree = folder / "baseline"
        _git("worktree", "add", "--detach", str(worktree), baseline)
        try:
            verts, faces, colors = motion(args.frames)
            inputs = folder / "inputs.npz"
            np.savez(inputs, vertices=verts, faces=faces, colors=colors)
            runs: dict[str, list[dict]] = {"baseline": [], "current": []}
            frames: dict[str, np.ndarray] = {}
            for r in range(args.rounds):
                for name, src in (("baseline", worktree / "src"), ("current", ROOT / "src")):
                    result, sample = run_worker(src, inputs, folder, f"{name}{r}")
                    runs[name].append(result)
                    frames[name] = sample
                    print(name, result, flush=True)
            animate: dict[str, list[float]] = {"baseline": [], "current": []}
            for _ in range(args.rounds if args.animate else 0):
                for name, src in (("baseline", worktree / "src"), ("current", ROOT / "src")):
                    animate[name].append(round(time_animate(src, args.animate, folder), 2))
                    print(name, "animate", animate[name][-1], "s", flush=True)
        finally:
            _git("worktree", "remove", "--force", str(worktree))
    fps = {name: [run["fps"] for run in rows] for name, rows in runs.items()}
    ratios = [new / old for old, new in zip(fps["baseline"], fps["current"], strict=True)]
    report = {
        "command": shlex.join(["python", "benchmarks/bench_video.py", *sys.argv[1:]]),
        "commit": commit + ("+uncommitted changes in src" if dirty else ""),
        "baseline_commit": baseline,
        "note": args.note,
        "machine": machine(("numba", "av")),
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "case": {
            "what": "render.video.render_video: render + H.264 (x264) + AAC, verified MP4",
            "mesh": f"synth face, {verts.shape[1]:,} vertices, {len(faces):,} triangles",
            "size": f"{SIZE}x{SIZE}",
            "frames": args.frames,
            "fps_of_video": FPS,
        },
        "target": "current fps >= 30 (real time) on 2 cores",
        "baseline": {"fps_median": statistics.median(fps["baseline"]), "runs": runs["baseline"]},
        "current": {"fps_median": statistics.median(fps["current"]), "runs": runs["current"]},
        "speedup_median_of_rounds": round(statistics.median(ratios), 2),
        "picture": compare(frames["baseline"], frames["current"]),
    }
    if args.animate:
        import av

        with av.open(str(args.animate)) as container:
            stream = container.streams.audio[0]
            speech_s = float(stream.duration * stream.time_base)
        report["animate"] = {
            "command": f"mmface4d animate {args.animate.name} --formats mp4 --quiet",
            "speech_seconds": round(speech_s, 2),
            "wall_seconds": animate,
            "seconds_per_second_of_speech_median": {
                name: round(statistics.median(times) / speech_s, 2)
                for name, times in animate.items()
            },
        }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
