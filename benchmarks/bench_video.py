"""Video rendering speed: seconds to render and encode one second of 30 fps animation.

    .venv/bin/python benchmarks/bench_video.py

Uses the real MMFace4D sample (35,709 vertices, BFM triangles) when ../shared/data is present,
else the synth face; 512x512, front view. Writes benchmarks/results/video.json.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine  # noqa: E402
from mmface4d.data.sequence import load_sequence  # noqa: E402
from mmface4d.render.camera import frame_mesh  # noqa: E402
from mmface4d.render.shade import render_preview  # noqa: E402
from mmface4d.render.video import SKIN, encode_video  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).parent / "results"


def measure(
    verts: torch.Tensor, faces: np.ndarray, size: int, supersample: int, seconds: float = 2.0
) -> dict:
    fps = 30
    n = int(seconds * fps)
    frames_src = verts[torch.arange(n) % len(verts)]
    camera = frame_mesh(frames_src.mean(0), width=size, height=size)
    colors = np.tile(SKIN, (verts.shape[1], 1))
    audio = np.zeros(int(seconds * 16000), np.float32)

    def frames():
        for start in range(0, n, 8):
            yield from render_preview(
                frames_src[start : start + 8],
                faces,
                colors=colors,
                camera=camera,
                supersample=supersample,
            )

    # Warm up with one batch of the measured kind (supersampling, batch size): the render
    # threads, their allocations and caches start the way they run for the rest of a video.
    render_preview(frames_src[:8], faces, colors=colors, camera=camera, supersample=supersample)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        cpu = time.process_time()
        encode_video(frames(), Path(tmp) / "v.mp4", fps, n, audio, 16000)
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu
    return {
        "vertices": int(verts.shape[1]),
        "faces": int(len(faces)),
        "size": f"{size}x{size}",
        "supersample": supersample,
        "frames": n,
        "seconds_per_second_of_video": round(wall / seconds, 3),
        "cpu_seconds_per_second_of_video": round(cpu / seconds, 3),
    }


def main() -> None:
    if (SHARED / "mmface4d_sample").is_dir():
        seq = load_sequence(
            SHARED / "mmface4d_sample" / "reconstruct_filt",
            faces=SHARED / "bfm_aux" / "facemodel_info.mat",
        )
        source = "real MMFace4D sample 000337 (BFM front, 35,709 vertices)"
    else:
        seq = load_sequence_synth()
        source = "synth face"
    verts = torch.as_tensor(seq.in_model_frame())
    cases = [measure(verts, seq.faces, 512, ss) for ss in (1, 2)]
    result = {
        "command": "python " + " ".join(sys.argv),
        "machine": machine(),
        "torch_threads": torch.get_num_threads(),
        "mesh": source,
        "target": "seconds_per_second_of_video < 1.0 (faster than real time) at 512x512",
        "cases": cases,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "video.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def load_sequence_synth():
    from mmface4d.data.sequence import MeshSequence
    from mmface4d.facemodel import load_face_model

    model = load_face_model("synth")
    return MeshSequence(model.mean[None].repeat(30, 0), model.faces, 30.0)


if __name__ == "__main__":
    main()
