"""Speed of the renderer: a BFM-front-size mesh (35,709 vertices, 70,789 faces), three views.

The mesh is frame 0 of the real MMFace4D sample (decoded from ``reconstruct_filt_*.nut``, metres,
centre-camera frame) with the BFM front triangles; without the sample, a synthetic face-sized
displaced grid of the same size. Three cameras look at it: the sample's centre camera and two
synthetic side cameras at +-30 degrees about the face, at 1920x1080 (the colour cameras'
intrinsics) and at 640x576 (the same cameras scaled to the depth resolution). Two framings:
``dataset`` (the face at its real distance, ~0.7 m: ~270 px tall at 1080p) and ``filled`` (the
face fills 80% of the image height: the worst case, many more pixels per triangle).

Per case, with the three views batched into one call (median and min of ``--repeats`` runs):
``visibility`` (the torch backend's z-buffer alone), ``forward`` (``render_rgbd`` with SH
lighting: rasterize, barycentrics, colour and depth), ``forward_backward`` (forward plus the
backward pass of ``rgb.sum() + depth.sum()`` to vertices, albedo and lighting). Wall-clock and
process CPU time are both recorded: on a shared machine the CPU time is the steadier figure.
With CUDA, the
same cases run on the GPU for the torch backend and, when installed, nvdiffrast.

    python benchmarks/bench_render.py                 # writes benchmarks/results/render.json
    python benchmarks/bench_render.py --repeats 2 --threads 1

CPU cases run once per entry of ``--threads`` (default: 1 and all cores). On a machine shared with
other work, the single-thread figures are the steadier ones: torch's OpenMP threads wait for
each other when a core is taken by another process.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mmface4d.render import PinholeCamera, TorchRasterizer, render_rgbd

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SAMPLE = SHARED / "mmface4d_sample"


def load_mesh() -> tuple[np.ndarray, np.ndarray, str]:
    """(V, 3) metres in the centre camera's OpenCV frame, (F, 3) faces, a description."""
    if (SAMPLE / "reconstruct_filt_0.nut").is_file() and (SAMPLE / "bfm_faces.pkl").is_file():
        import pickle

        from mmface4d.data.nut import decode_nut

        vertices = decode_nut(SAMPLE / "reconstruct_filt")[0]
        with open(SAMPLE / "bfm_faces.pkl", "rb") as handle:
            faces = np.asarray(pickle.load(handle), dtype=np.int64)
        return vertices.astype(np.float32), faces, "MMFace4D sample 000337, frame 0, BFM faces"
    side = 189  # 35,721 vertices, 70,688 triangles: the BFM front size
    u, v = np.meshgrid(np.linspace(-1, 1, side), np.linspace(-1, 1, side))
    z = 0.05 * np.sqrt(np.clip(1 - 0.6 * (u**2 + v**2), 0, None))
    z += 0.02 * np.exp(-(u**2 + (v - 0.1) ** 2) / 0.02)  # a nose
    # OpenCV camera frame: x right, y down, z away from the camera; the face looks at it.
    vertices = np.stack([0.075 * u.ravel(), -0.1 * v.ravel(), 0.7 - z.ravel()], 1)
    idx = np.arange(side * side).reshape(side, side)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:]
    faces = np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d.ravel()], 1)])
    return vertices.astype(np.float32), faces, "synthetic displaced grid (sample not found)"


def cameras(vertices: np.ndarray, width: int, height: int, framing: str) -> list[PinholeCamera]:
    """Centre camera plus two side cameras rotated +-30 degrees about the face's centre."""
    centre_path = SAMPLE / "000337_1.json"
    if centre_path.is_file():
        centre = PinholeCamera.from_mmface4d_json(centre_path)
    else:
        centre = PinholeCamera(fx=911.6, fy=911.2, cx=963.9, cy=544.9, width=1920, height=1080)
    if framing == "filled":
        # The same pose, a longer lens: the face fills 80% of the height.
        span = vertices[:, 1].max() - vertices[:, 1].min()
        depth = float(np.median(vertices[:, 2]))
        focal = 0.8 * 1080 / (span / depth)
        centre = PinholeCamera(focal, focal, centre.cx, centre.cy, 1920, 1080)
    centre = centre.resized(width, height)
    pivot = vertices.mean(0).astype(np.float64)
    views = []
    for degrees in (0.0, 30.0, -30.0):
        angle = math.radians(degrees)
        turn = np.array(
            [
                [math.cos(angle), 0, math.sin(angle)],
                [0, 1, 0],
                [-math.sin(angle), 0, math.cos(angle)],
            ]
        )
        # Orbit the camera about the vertical through the face: p_cam = turn (p - pivot) + pivot.
        views.append(
            PinholeCamera(
                centre.fx,
                centre.fy,
                centre.cx,
                centre.cy,
                width,
                height,
                R=turn,
                t=pivot - turn @ pivot,
            )
        )
    return views


def timed(fn, repeats: int, device: torch.device) -> dict:
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {
        "median_s": round(statistics.median(wall), 4),
        "min_s": round(min(wall), 4),
        "cpu_median_s": round(statistics.median(cpu), 4),
        "runs": len(wall),
    }


def run_case(vertices, faces, cams, backend: str, device: torch.device, repeats: int) -> dict:
    verts = torch.as_tensor(vertices, device=device)[None]
    faces_t = torch.as_tensor(faces, device=device)
    albedo = torch.full((1, len(vertices), 3), 0.6, device=device)
    gamma = torch.zeros(1, len(cams), 27, device=device)
    height, width = cams[0].height, cams[0].width

    def forward(grad: bool):
        v = verts.clone().requires_grad_(grad)
        a = albedo.clone().requires_grad_(grad)
        g = gamma.clone().requires_grad_(grad)
        out = render_rgbd(v, faces_t, a, cams, sh_lighting=g, backend=backend, near=0.1, far=5.0)
        if grad:
            (out.rgb.sum() + out.depth.sum()).backward()
        return out

    result = {"backend": backend, "device": str(device), "resolution": [width, height]}
    out = forward(False)
    result["covered_pixels_per_view"] = out.mask.reshape(len(cams), -1).sum(1).tolist()
    if backend == "torch":
        clip = torch.stack([cam.to_clip(verts[0], 0.1, 5.0) for cam in cams])
        rasterizer = TorchRasterizer()
        result["visibility"] = timed(
            lambda: rasterizer.visible_triangles(clip, faces_t, (height, width)), repeats, device
        )
    with torch.no_grad():
        result["forward"] = timed(lambda: forward(False), repeats, device)
    result["forward_backward"] = timed(lambda: forward(True), repeats, device)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=None,
        help="torch CPU thread counts to run the CPU cases with (default: 1 and all cores)",
    )
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "render.json"))
    args = parser.parse_args(argv)
    threads = args.threads or sorted({1, torch.get_num_threads()})
    vertices, faces, description = load_mesh()
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "mesh": {"description": description, "vertices": len(vertices), "faces": len(faces)},
        "views": "3 views batched in one render_rgbd call (centre camera, +-30 degrees)",
        "cases": [],
    }
    runs = [(torch.device("cpu"), "torch", count) for count in threads]
    if torch.cuda.is_available():
        runs.append((torch.device("cuda"), "torch", torch.get_num_threads()))
        try:
            import nvdiffrast.torch  # noqa: F401

            runs.append((torch.device("cuda"), "nvdiffrast", torch.get_num_threads()))
        except ImportError:
            pass
    for framing in ("dataset", "filled"):
        for width, height in ((640, 576), (1920, 1080)):
            cams = cameras(vertices, width, height, framing)
            for device, backend, count in runs:
                torch.set_num_threads(count)
                case = run_case(vertices, faces, cams, backend, device, args.repeats)
                case["framing"] = framing
                case["threads"] = count
                case["load_average"] = list(os.getloadavg())
                report["cases"].append(case)
                print(
                    f"{framing:8s} {width}x{height} {device.type:4s} {backend:10s} "
                    f"threads {count}  forward {case['forward']['median_s'] * 1e3:7.1f} ms  "
                    f"forward+backward {case['forward_backward']['median_s'] * 1e3:7.1f} ms",
                    flush=True,
                )
    report["machine"]["load_average_at_end"] = list(os.getloadavg())
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
