"""Inference speed and memory: seconds to synthesise 1, 5 and 10 s of 30 fps animation.

    .venv/bin/python benchmarks/bench_inference.py [--repeats 3] [--threads 2] [--skip-slow]

Models, built through the registry with random weights, in eval mode under inference_mode:
``ours`` at the paper's width (latent 256, style channels 64-128-256-512) and at the shipped
CPU size (latent 64, style channels 64-64-128-128, configs/train/table2_ours.toml), and
``faceformer`` at its defaults (width 64, one layer; autoregressive loop at inference). Vertex
counts: 35,709 (BFM front, random template) and the synth face model's.

Two measurements per model, vertex count and duration:

- **decoder only**: random (1, T, C) features at 30 fps, C = 1024 (HuBERT-large-sized) and 80;
  for ``ours`` also split into the per-speaker part (``speaker_s``: template encoding and the
  style path over the T_s-frame reference, computed once per speaker and style:
  ``Animator.speaker``) and the call given it (``decoder_conditioned_s``), each as a ratio to
  the floor, the bare final projection (T x D)(D x 3V) timed in the same process between the
  calls (``floor_s``; ``conditioned_over_floor``, ``whole_over_floor``);
- **end to end** from a 16 kHz noise waveform through ``mel``, ``random-hubert:size=base`` and
  ``random-hubert:size=large`` (``encoder.encode_to_frames``), then the model; each timed call
  times the encoder and the model separately (``end_to_end_s`` is their sum within a call).

The style reference is T frames long (T_s = T, as the training windows). Each case runs in a
fresh subprocess (this script with ``--case``): a warm-up call, then the median of ``--repeats``
timed calls (``time.perf_counter``); ``peak_rss_mb`` is the case's peak RSS
(``ru_maxrss``) minus its value after the imports (torch, mmface4d and, for the HuBERT
encoders, transformers), in MiB. With CUDA the case is timed again on the GPU
(``torch.cuda.synchronize``, ``torch.cuda.max_memory_allocated`` from before the weights moved);
otherwise the ``gpu_*`` fields are null. ``real_time_factor`` is speech seconds over
``end_to_end_s`` (decoder-only rows: over ``decoder_s``). Writes benchmarks/results/inference.json
after every case (``complete`` becomes true at the end).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_inference.py --quick --output /tmp/q.json

is a smoke run: one repeat, 1 s, 2,000 vertices, one thread. ``--configs``, ``--vertices``,
``--durations`` and ``--decoder-only`` select cases.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine  # noqa: E402
from mmface4d.animate.registry import build_model, default_model_config  # noqa: E402
from mmface4d.audio.encoders import build_encoder  # noqa: E402

RESULTS = Path(__file__).parent / "results"
FPS = 30
SAMPLE_RATE = 16000
BFM_FRONT_VERTICES = 35709
DURATIONS_S = (1.0, 5.0, 10.0)
DECODER_AUDIO_DIMS = (1024, 80)
#: encoder spec -> C, checked against the built encoder's ``dim`` in every case
ENCODERS = {"mel": 80, "random-hubert:size=base": 768, "random-hubert:size=large": 1024}
#: configuration label -> (registry name, config field changes, description)
MODEL_CONFIGS: dict[str, tuple[str, dict[str, Any], str]] = {
    "ours/paper": ("ours", {"latent_dim": 256}, "latent 256, style channels (64, 128, 256, 512)"),
    "ours/cpu": (
        "ours",
        {"latent_dim": 64, "style_channels": (64, 64, 128, 128)},
        "latent 64, style channels (64, 64, 128, 128): the shipped CPU size",
    ),
    "faceformer/default": ("faceformer", {}, "width 64, 4 heads, 1 layer (defaults)"),
}
#: FaceFormer's loop is O(T^2): --skip-slow leaves it out beyond this duration
SLOW_MODEL, SLOW_BEYOND_S = "faceformer", 5.0

REFERENCE_POINTS = {
    "source": "measured by the issue's author on these machines with the original authors' "
    "code, random weights, 35,709 vertices, 10 s of speech",
    "faceformer": {"decoder_s": 9.4, "end_to_end_s": 9.9, "peak_memory_gb": 1.4},
    "mmface4d_authors": {
        "decoder_s": 0.30,
        "end_to_end_s": 2.2,
        "end_to_end_encoder": "HuBERT-large",
        "peak_memory_gb": 2.9,
    },
    "bare_final_projection": {"matmul": "(30x256)(256x107127)", "seconds": 0.22},
}


@dataclass(frozen=True)
class Case:
    """One measurement: a model configuration, mesh size, duration and audio input.

    Attributes:
        config: a key of :data:`MODEL_CONFIGS`.
        vertices: V.
        seconds: duration of speech synthesised.
        encoder: encoder spec (end to end), or None (decoder only, random features).
        audio_dim: C of the features the model reads.
    """

    config: str
    vertices: int
    seconds: float
    encoder: str | None
    audio_dim: int

    @property
    def frames(self) -> int:
        """T at :data:`FPS`."""
        return round(self.seconds * FPS)


def peak_rss_kib() -> int:
    """The process's peak resident set size so far, KiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def build_case_model(case: Case) -> torch.nn.Module:
    """The case's model with random weights (seed 0), in eval mode."""
    name, changes, _ = MODEL_CONFIGS[case.config]
    config = dataclasses.replace(default_model_config(name), **changes)
    torch.manual_seed(0)
    return build_model(name, case.vertices, case.audio_dim, config).eval()


def time_calls(
    case: Case,
    model: torch.nn.Module,
    encoder: torch.nn.Module | None,
    inputs: dict[str, torch.Tensor],
    repeats: int,
    device: torch.device,
) -> dict[str, float | None]:
    """A warm-up call, then medians over ``repeats`` timed calls, seconds.

    Returns:
        ``encoder_s`` (None without an encoder), ``decoder_s`` and ``end_to_end_s`` (the sum
        of the two within each call; None without an encoder).
    """

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def call() -> tuple[float, float]:
        sync()
        start = time.perf_counter()
        if encoder is None:
            features = inputs["features"]
        else:
            features = encoder.encode_to_frames(inputs["audio"], FPS, case.frames)
        sync()
        encoded = time.perf_counter()
        vertices = model(features, inputs["template"], inputs["reference"])
        sync()
        decoded = time.perf_counter()
        expected = (1, case.frames, case.vertices, 3)
        if tuple(features.shape) != (1, case.frames, case.audio_dim):
            raise RuntimeError(
                f"features: expected {(1, case.frames, case.audio_dim)}, got "
                f"{tuple(features.shape)}"
            )
        if tuple(vertices.shape) != expected:
            raise RuntimeError(f"vertices: expected {expected}, got {tuple(vertices.shape)}")
        return encoded - start, decoded - encoded

    with torch.inference_mode():
        call()
        timings = [call() for _ in range(repeats)]
    decoder_s = statistics.median(t[1] for t in timings)
    if encoder is None:
        return {"encoder_s": None, "decoder_s": decoder_s, "end_to_end_s": None}
    return {
        "encoder_s": statistics.median(t[0] for t in timings),
        "decoder_s": decoder_s,
        "end_to_end_s": statistics.median(t[0] + t[1] for t in timings),
    }


def time_conditioned(
    model: torch.nn.Module, inputs: dict[str, torch.Tensor], repeats: int
) -> dict[str, float]:
    """For ours: the per-speaker part alone (``prepare_speaker``: template encoding and the
    style path over the reference), the call given it (``synthesise_prepared``: the whole
    speech-dependent call, as ``Animator.synthesise`` makes it for a prepared speaker) and the
    floor, the bare final projection ``(T x D)(D x 3V)`` alone, interleaved call by call in
    this process; medians over ``repeats`` after a warm-up. Empty for other models."""
    net = getattr(model, "net", None)
    if net is None:
        return {}
    T, D, V = inputs["features"].shape[1], net.config.latent_dim, net.num_vertices
    generator = torch.Generator().manual_seed(3)
    latent = torch.randn(T, D, generator=generator)
    weight = torch.randn(D, 3 * V, generator=generator)
    with torch.inference_mode():
        speaker = model.prepare_speaker(inputs["template"], inputs["reference"])
        model.synthesise_prepared(inputs["features"], speaker)
        latent @ weight
        conditions, decodes, floors = [], [], []
        for _ in range(repeats):  # interleaved: the floor sees the same machine state
            start = time.perf_counter()
            speaker = model.prepare_speaker(inputs["template"], inputs["reference"])
            conditioned = time.perf_counter()
            model.synthesise_prepared(inputs["features"], speaker)
            decoded = time.perf_counter()
            latent @ weight
            conditions.append(conditioned - start)
            decodes.append(decoded - conditioned)
            floors.append(time.perf_counter() - decoded)
    return {
        "speaker_s": statistics.median(conditions),
        "decoder_conditioned_s": statistics.median(decodes),
        "floor_s": statistics.median(floors),
    }


def run_case(case: Case, repeats: int) -> dict[str, Any]:
    """Measure one case in this process (a fresh one: the peak RSS is the case's own)."""
    if case.encoder is not None and "hubert" in case.encoder:
        import transformers  # noqa: F401  (library code is part of the baseline, not the case)
    baseline_kib = peak_rss_kib()
    model = build_case_model(case)
    encoder = None
    generator = torch.Generator().manual_seed(1)
    T, V = case.frames, case.vertices
    template = 0.1 * torch.randn(1, V, 3, generator=generator)
    # in place: one (1, T, V, 3) buffer, no temporaries inflating the peak RSS
    reference = torch.randn(1, T, V, 3, generator=generator).mul_(1e-3).add_(template[:, None])
    inputs = {"template": template, "reference": reference}
    if case.encoder is None:
        inputs["features"] = torch.randn(1, T, case.audio_dim, generator=generator)
    else:
        encoder = build_encoder(case.encoder).eval()
        if encoder.dim != case.audio_dim:
            raise RuntimeError(
                f"encoder {case.encoder}: C = {encoder.dim}, expected {case.audio_dim}"
            )
        samples = round(case.seconds * SAMPLE_RATE)
        noise = 0.1 * torch.randn(1, samples, generator=generator)
        inputs["audio"] = noise.clamp(-1.0, 1.0)
    cpu = time_calls(case, model, encoder, inputs, repeats, torch.device("cpu"))
    cpu.update(time_conditioned(model, inputs, repeats) if encoder is None else {})
    peak_kib = peak_rss_kib()
    result: dict[str, Any] = {
        **cpu,
        "peak_rss_mb": round((peak_kib - baseline_kib) / 1024, 1),
        "baseline_rss_mb": round(baseline_kib / 1024, 1),
        "peak_rss_total_mb": round(peak_kib / 1024, 1),
        "gpu_encoder_s": None,
        "gpu_decoder_s": None,
        "gpu_end_to_end_s": None,
        "gpu_peak_memory_mb": None,
    }
    if torch.cuda.is_available():
        device = torch.device("cuda")
        torch.cuda.reset_peak_memory_stats(device)
        model = model.to(device)
        encoder = None if encoder is None else encoder.to(device)
        inputs = {key: value.to(device) for key, value in inputs.items()}
        gpu = time_calls(case, model, encoder, inputs, repeats, device)
        result.update({f"gpu_{key}": value for key, value in gpu.items()})
        result["gpu_peak_memory_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return result


def cases(vertex_counts: list[int], durations: list[float], skip_slow: bool) -> list[Case]:
    """Decoder-only cases first, then end to end; FaceFormer beyond 5 s dropped by skip_slow."""
    decoder_only = [(None, c) for c in DECODER_AUDIO_DIMS]
    listing = []
    for inputs in (decoder_only, list(ENCODERS.items())):
        for config, (name, _, _) in MODEL_CONFIGS.items():
            for vertices in vertex_counts:
                for encoder, audio_dim in inputs:
                    for seconds in durations:
                        if skip_slow and name == SLOW_MODEL and seconds > SLOW_BEYOND_S:
                            continue
                        listing.append(Case(config, vertices, seconds, encoder, audio_dim))
    return listing


RESULT_PREFIX = "CASE-RESULT "


def measure_in_subprocess(case: Case, repeats: int, threads: int) -> dict[str, Any]:
    """Run one case in a fresh interpreter (this script with ``--case``) and return its figures."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--case",
        json.dumps(dataclasses.asdict(case)),
        "--repeats",
        str(repeats),
        "--threads",
        str(threads),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"case {case} failed with exit status {done.returncode}:\n{done.stderr[-4000:]}"
        )
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if len(lines) != 1:
        raise RuntimeError(f"case {case}: expected one result line, got stdout:\n{done.stdout}")
    return json.loads(lines[0][len(RESULT_PREFIX) :])


def round_s(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def ratio(value: float | None, measured: dict[str, Any]) -> float | None:
    """``value`` over the case's own final-projection floor (None without one)."""
    floor = measured.get("floor_s")
    return None if value is None or not floor else round(value / floor, 3)


def make_row(case: Case, measured: dict[str, Any]) -> dict[str, Any]:
    """A result row: the case, its CPU timings, memory and GPU figures."""
    name, _, description = MODEL_CONFIGS[case.config]
    total = measured["end_to_end_s"] if case.encoder else measured["decoder_s"]
    return {
        "model": name,
        "config": case.config.split("/", 1)[1],
        "config_description": description,
        "measurement": "decoder_only" if case.encoder is None else "end_to_end",
        "vertices": case.vertices,
        "encoder": case.encoder,
        "audio_dim": case.audio_dim,
        "seconds_of_speech": case.seconds,
        "frames": case.frames,
        "decoder_s": round_s(measured["decoder_s"]),
        "speaker_s": round_s(measured.get("speaker_s")),
        "decoder_conditioned_s": round_s(measured.get("decoder_conditioned_s")),
        "floor_s": round_s(measured.get("floor_s")),
        "conditioned_over_floor": ratio(measured.get("decoder_conditioned_s"), measured),
        "whole_over_floor": ratio(measured.get("decoder_s"), measured),
        "encoder_s": round_s(measured["encoder_s"]),
        "end_to_end_s": round_s(measured["end_to_end_s"]),
        "real_time_factor": round(case.seconds / total, 2),
        "peak_rss_mb": measured["peak_rss_mb"],
        "baseline_rss_mb": measured["baseline_rss_mb"],
        "peak_rss_total_mb": measured["peak_rss_total_mb"],
        "gpu_decoder_s": round_s(measured["gpu_decoder_s"]),
        "gpu_encoder_s": round_s(measured["gpu_encoder_s"]),
        "gpu_end_to_end_s": round_s(measured["gpu_end_to_end_s"]),
        "gpu_peak_memory_mb": measured["gpu_peak_memory_mb"],
    }


def bare_projection(vertices: int, repeats: int) -> list[dict[str, Any]]:
    """Seconds of the final projection alone, (T x 256)(256 x 3V), for T = 30 and 300."""
    generator = torch.Generator().manual_seed(2)
    weight = torch.randn(256, 3 * vertices, generator=generator)
    rows = []
    for frames in (30, 300):
        latent = torch.randn(frames, 256, generator=generator)
        with torch.inference_mode():
            latent @ weight
            timings = []
            for _ in range(repeats):
                start = time.perf_counter()
                latent @ weight
                timings.append(time.perf_counter() - start)
        rows.append(
            {
                "matmul": f"({frames}x256)(256x{3 * vertices})",
                "seconds": round_s(statistics.median(timings)),
            }
        )
    return rows


def find_row(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    return next((r for r in rows if all(r[k] == v for k, v in match.items())), None)


def check(description: str, value: float | None, target: float, at_most: bool) -> dict:
    """{description, value, target, met}; value and met are null when the row was not run."""
    met = None if value is None else bool(value <= target if at_most else value >= target)
    return {"description": description, "value": value, "target": target, "met": met}


def targets(rows: list[dict[str, Any]]) -> dict[str, dict]:
    """The issue's targets, at 35,709 vertices and 10 s of speech, ours at the paper's width."""
    at = {"vertices": BFM_FRONT_VERTICES, "seconds_of_speech": 10.0}
    ours = find_row(rows, model="ours", config="paper", encoder=None, audio_dim=1024, **at)
    faceformer = find_row(rows, model="faceformer", encoder=None, audio_dim=1024, **at)
    mel = find_row(rows, model="ours", config="paper", encoder="mel", **at)
    speedup = conditioned_speedup = None
    if ours is not None and faceformer is not None:
        speedup = round(faceformer["decoder_s"] / ours["decoder_s"], 1)
        if ours.get("decoder_conditioned_s"):
            conditioned_speedup = round(faceformer["decoder_s"] / ours["decoder_conditioned_s"], 1)
    return {
        "ours_call_over_floor": check(
            "ours (latent 256), C=1024, 35,709 vertices, 10 s: the call for a prepared speaker "
            "(synthesise_prepared; style and template computed once per speaker) / the bare final "
            "projection measured in the same process, at most",
            None if ours is None else ours.get("conditioned_over_floor"),
            1.3,
            at_most=True,
        ),
        "ours_whole_uncached_over_floor": check(
            "the same with the per-speaker part recomputed in the call (style path over a "
            "300-frame reference: a second (300 x 3V)(3V x 256) product), at most",
            None if ours is None else ours.get("whole_over_floor"),
            1.3,
            at_most=True,
        ),
        "ours_decoder_conditioned_s": check(
            "ours (latent 256) decoder only with the speaker's style computed once "
            "(Ours.decode), C=1024, 35,709 vertices, 10 s: seconds, at most",
            None if ours is None else ours.get("decoder_conditioned_s"),
            0.30,
            at_most=True,
        ),
        "speedup_over_faceformer_conditioned": check(
            "FaceFormer decoder_s / ours decoder_conditioned_s: at least",
            conditioned_speedup,
            30.0,
            at_most=False,
        ),
        "ours_decoder_s": check(
            "ours (latent 256) decoder only, C=1024, 35,709 vertices, 10 s: seconds, at most",
            None if ours is None else ours["decoder_s"],
            0.30,
            at_most=True,
        ),
        "speedup_over_faceformer": check(
            "FaceFormer decoder_s / ours decoder_s (latent 256), C=1024, 35,709 vertices, 10 s: "
            "at least",
            speedup,
            30.0,
            at_most=False,
        ),
        "ours_mel_peak_rss_mb": check(
            "ours (latent 256) end to end with mel, 35,709 vertices, 10 s: peak RSS increase, "
            "MiB, at most (1 GiB)",
            None if mel is None else mel["peak_rss_mb"],
            1024.0,
            at_most=True,
        ),
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    """The rows as an aligned text table (times in seconds, memory in MiB)."""
    columns = [  # (header, row key or function, format)
        ("model", lambda r: f"{r['model']}/{r['config']}", "{}"),
        ("V", "vertices", "{}"),
        ("input", lambda r: r["encoder"] or "features", "{}"),
        ("C", "audio_dim", "{}"),
        ("speech_s", "seconds_of_speech", "{:g}"),
        ("encoder_s", "encoder_s", "{:.3f}"),
        ("decoder_s", "decoder_s", "{:.3f}"),
        ("end_to_end_s", "end_to_end_s", "{:.3f}"),
        ("x_real_time", "real_time_factor", "{:.1f}"),
        ("peak_rss_mb", "peak_rss_mb", "{:.0f}"),
        ("gpu_s", lambda r: r["gpu_end_to_end_s"] or r["gpu_decoder_s"], "{:.4f}"),
    ]
    text = [[header for header, _, _ in columns]]
    for row in rows:
        values = [key(row) if callable(key) else row[key] for _, key, _ in columns]
        formats = [f for _, _, f in columns]
        text.append(
            ["-" if v is None else f.format(v) for v, f in zip(values, formats, strict=True)]
        )
    widths = [max(len(line[k]) for line in text) for k in range(len(columns))]
    for line in text:
        cells = [line[0].ljust(widths[0])]
        cells += [v.rjust(w) for v, w in zip(line[1:], widths[1:], strict=True)]
        print("  ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None, help="timed calls (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default 2)")
    parser.add_argument(
        "--skip-slow", action="store_true", help=f"skip {SLOW_MODEL} beyond {SLOW_BEYOND_S:g} s"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 repeat, 1 s, 2,000 vertices, 1 thread"
    )
    parser.add_argument(
        "--configs", nargs="*", choices=list(MODEL_CONFIGS), help="model configs (default all)"
    )
    parser.add_argument("--vertices", nargs="*", type=int, help="vertex counts (default both)")
    parser.add_argument("--durations", nargs="*", type=float, help="seconds (default 1 5 10)")
    parser.add_argument("--decoder-only", action="store_true", help="no end-to-end cases")
    parser.add_argument("--output", type=Path, default=RESULTS / "inference.json")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: one case, in a subprocess
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    threads = args.threads or (1 if args.quick else 2)
    if repeats < 1 or threads < 1:
        parser.error(f"--repeats and --threads must be positive, got {repeats} and {threads}")
    torch.set_num_threads(threads)
    if args.case is not None:
        result = run_case(Case(**json.loads(args.case)), repeats)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return

    if args.quick:
        vertex_counts, durations = [2000], [1.0]
    else:
        from mmface4d.facemodel.sources import load_face_model

        vertex_counts = [BFM_FRONT_VERTICES, load_face_model("synth").num_vertices]
        durations = list(DURATIONS_S)
    vertex_counts = args.vertices or vertex_counts
    durations = args.durations or durations
    listing = [
        case
        for case in cases(vertex_counts, durations, args.skip_slow)
        if (not args.configs or case.config in args.configs)
        and not (args.decoder_only and case.encoder is not None)
    ]
    result: dict[str, Any] = {
        "command": "python " + " ".join(sys.argv),
        "machine": machine(("transformers",)),
        "threads": threads,
        "repeats": repeats,
        "fps": FPS,
        "notes": [
            "style reference T_s = T frames; random template (0.1 m scale), random weights",
            "peak_rss_mb: ru_maxrss at the end of the case minus after the imports, MiB, one "
            "fresh process per case; peak_rss_total_mb: the whole process",
            "end_to_end_s: encoder_s + decoder_s within each timed call (median over calls)",
            "real_time_factor: seconds_of_speech / end_to_end_s (decoder only: / decoder_s)",
            "gpu_*: CUDA timings and max_memory_allocated (MiB, weights included), null "
            "without CUDA",
        ],
        "reference_points": REFERENCE_POINTS,
        "bare_final_projection": bare_projection(max(vertex_counts), repeats),
        "complete": False,
        "rows": [],
        "targets": {},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for k, case in enumerate(listing, 1):
        print(
            f"[{k}/{len(listing)}] {case.config} V={case.vertices} {case.seconds:g} s "
            f"{case.encoder or f'features C={case.audio_dim}'}",
            flush=True,
        )
        case_start = time.perf_counter()
        row = make_row(case, measure_in_subprocess(case, repeats, threads))
        row["case_wall_s"] = round(time.perf_counter() - case_start, 1)
        result["rows"].append(row)
        result["targets"] = targets(result["rows"])
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    result["complete"] = True
    result["wall_s"] = round(time.perf_counter() - started, 1)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print_table(result["rows"])
    print(json.dumps({"targets": result["targets"]}, indent=2))
    print(f"wrote {args.output} ({result['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
