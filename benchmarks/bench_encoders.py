"""Speech encoders on the CPU: float32 against the fast paths, speed, agreement and memory.

    .venv/bin/python benchmarks/bench_encoders.py [--seconds 10] [--rounds 3] [--threads 2]

Cases (random weights, seed 0: the cost and the numeric agreement of an architecture do not
depend on training; real weights are gated):

- HuBERT and wav2vec 2.0, base (12 x 768) and large (24 x 1024, stable layer norm), each in
  ``float32`` and ``int8`` (the encoders' ``precision`` option: dynamically quantised linear
  layers);
- the default encoder ``phonetic`` (a native CTC recogniser; no quantised variant exists):
  recognised whole (``threads=1``, one chunk) and in two parts on two threads (the default).

Every case runs in a fresh process (its peak RSS is its own: ``peak_rss_mb`` = ``ru_maxrss``
after the timed calls minus after building the encoder), ``--rounds`` times, the cases
interleaved round by round so that a noisy machine slows all of them alike; each run makes a
warm-up call, then times ``encode_to_frames`` on the same ``--seconds`` of noise-like speech
(median of 3 calls); the figure is the median over rounds. The fast variant's features are
compared with the float32 ones (cosine similarity per frame: min and mean; and
``variation_cosine``, the cosine of the two feature sequences with each one's mean over time
removed: what moves the face is the features' change over time), and both are
decoded by the paper's model at its width (``ours``, latent 256, 35,709 vertices, random
weights, the same random template and style for both; W_d scaled so that the float32
animation's RMS offset is 2 mm, a talking face's size of motion) to give the largest vertex
difference in millimetres. The phonetic features are decoded instead by the shipped model,
which was trained on them (its default subject and style, offsets unscaled): a trained
model's response to a feature change of the same size as the int8 encoders' (see
``feature_relative_error``). Ratios (``speedup``) are float32 seconds / fast seconds of the same
round.

Writes benchmarks/results/encoders.json (command, machine, rows, targets).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

RESULTS = Path(__file__).parent / "results"
FPS = 30
RATE = 16000
BFM_FRONT_VERTICES = 35709
RESULT_PREFIX = "ENCODER-RESULT "
#: RMS vertex offset the random decoder's animation is scaled to, mm (speech-sized motion)
MOTION_RMS_MM = 2.0

#: case label -> (encoder spec or "wav2vec2-random:<size>", reference label for comparisons)
CASES: dict[str, tuple[str, str | None]] = {
    "hubert-large/float32": ("random-hubert:size=large", None),
    "hubert-large/int8": ("random-hubert:size=large,precision=int8", "hubert-large/float32"),
    "hubert-base/float32": ("random-hubert:size=base", None),
    "hubert-base/int8": ("random-hubert:size=base,precision=int8", "hubert-base/float32"),
    "wav2vec2-large/float32": ("wav2vec2-random:large:float32", None),
    "wav2vec2-large/int8": ("wav2vec2-random:large:int8", "wav2vec2-large/float32"),
    "wav2vec2-base/float32": ("wav2vec2-random:base:float32", None),
    "wav2vec2-base/int8": ("wav2vec2-random:base:int8", "wav2vec2-base/float32"),
    "phonetic/whole": ("phonetic:threads=1,chunk_s=600", None),
    "phonetic/two-parts": ("phonetic", "phonetic/whole"),
}


def speech(seconds: float) -> np.ndarray:
    """Deterministic speech-like noise: a pulse train through a resonance, amplitude-modulated."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * RATE)) / RATE
    voiced = np.sign(np.sin(2 * np.pi * 120 * t)) * 0.2 + rng.standard_normal(t.size) * 0.05
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return (voiced * envelope).astype(np.float32)


def build(spec: str) -> Any:
    """The case's encoder, in eval mode."""
    if spec.startswith("wav2vec2-random:"):
        import torch
        import transformers

        from mmface4d.audio.pretrained import HUBERT_PRESETS, TransformerSpeechEncoder

        _, size, precision = spec.split(":")
        config = transformers.Wav2Vec2Config(**HUBERT_PRESETS[size])
        torch.manual_seed(0)
        backbone = transformers.Wav2Vec2Model(config).eval()
        normalize = config.feat_extract_norm == "layer"
        return TransformerSpeechEncoder(backbone, normalize=normalize, precision=precision).eval()
    from mmface4d.audio.encoders import build_encoder

    return build_encoder(spec)


def run_case(spec: str, seconds: float, features_out: Path) -> dict[str, Any]:
    """Build, warm up, time three calls; save the features; return the figures."""
    import torch

    from mmface4d.audio import phonetic

    encoder = build(spec)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    audio = torch.from_numpy(speech(seconds))[None]
    frames = round(seconds * FPS)
    timings = []
    with torch.inference_mode():
        for call in range(4):
            phonetic.clear_cache()  # the recogniser's one-clip cache would make calls free
            start = time.perf_counter()
            features = encoder.encode_to_frames(audio, FPS, frames)
            if call:
                timings.append(time.perf_counter() - start)
    np.save(features_out, features[0].float().numpy())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": statistics.median(timings), "peak_rss_mb": (peak - baseline) / 1024}


def decode_mm(features: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
    """Decode each (T, C) feature array with one random paper-width model; offsets in mm."""
    import dataclasses

    import torch

    from mmface4d.animate.registry import build_model, default_model_config

    config = dataclasses.replace(default_model_config("ours"), latent_dim=256)
    torch.manual_seed(0)
    model = build_model("ours", BFM_FRONT_VERTICES, features[0].shape[1], config).eval()
    generator = torch.Generator().manual_seed(1)
    template = 0.1 * torch.randn(1, BFM_FRONT_VERTICES, 3, generator=generator)
    reference = template[:, None] + 1e-3 * torch.randn(
        1, 30, BFM_FRONT_VERTICES, 3, generator=generator
    )
    out = []
    with torch.inference_mode():
        speaker = model.prepare_speaker(template, reference)
        for f in features:
            vertices = model.synthesise_prepared(torch.from_numpy(f)[None], speaker)
            out.append(((vertices - template[:, None]) * 1000.0)[0].numpy())
    # the offsets are linear in W_d: scale them to MOTION_RMS_MM, a talking face's motion
    scale = MOTION_RMS_MM / max(float(np.sqrt(np.mean(out[0] ** 2))), 1e-12)
    return [o * scale for o in out], MOTION_RMS_MM


def decode_shipped_mm(features: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
    """Decode each (T, 193) phonetic feature array with the shipped model (trained on them),
    its default subject and style; offsets from the template in mm, unscaled."""
    import torch

    from mmface4d.animate.animator import Animator

    animator = Animator.load("default")
    speaker = animator.speaker(animator.subject_template(None), animator.style_reference(None))
    model = animator.pipeline.model
    out = []
    with torch.inference_mode():
        for f in features:
            vertices = model.synthesise_prepared(torch.from_numpy(f)[None], speaker.conditioning)
            template = speaker.conditioning.template  # (1, V, 3) in the model's own frame
            out.append(((vertices - template[:, None]) * 1000.0)[0].numpy())
    return out, float(np.sqrt(np.mean(out[0] ** 2)))


def compare(label: str, reference: str, work: Path) -> dict[str, Any]:
    """Cosine similarity of the features and the decoded vertex difference, fast vs reference."""
    fast, exact = np.load(features_path(work, label)), np.load(features_path(work, reference))
    cosine = (fast * exact).sum(1) / (
        np.linalg.norm(fast, axis=1) * np.linalg.norm(exact, axis=1) + 1e-12
    )
    decode = decode_shipped_mm if label.startswith("phonetic") else decode_mm
    (exact_mm, fast_mm), rms = decode([exact, fast])
    varied, varied_exact = fast - fast.mean(0), exact - exact.mean(0)
    variation = float((varied * varied_exact).sum()) / float(
        np.linalg.norm(varied) * np.linalg.norm(varied_exact) + 1e-12
    )
    return {
        "cosine_min": round(float(cosine.min()), 5),
        "cosine_mean": round(float(cosine.mean()), 5),
        "variation_cosine": round(variation, 5),
        "vertex_max_diff_mm": round(float(np.abs(fast_mm - exact_mm).max()), 5),
        "vertex_rms_diff_mm": round(float(np.sqrt(np.mean((fast_mm - exact_mm) ** 2))), 5),
        "feature_relative_error": round(
            float(np.linalg.norm(fast - exact) / (np.linalg.norm(exact) + 1e-12)), 5
        ),
        "offset_rms_mm": round(rms, 4),
    }


def features_path(work: Path, label: str) -> Path:
    """Where a case's subprocess leaves its features."""
    return work / (label.replace("/", "_") + ".npy")


def measure(label: str, seconds: float, threads: int, work: Path) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--case",
        label,
        "--seconds",
        str(seconds),
        "--threads",
        str(threads),
        "--work",
        str(work),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [x for x in done.stdout.splitlines() if x.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or len(lines) != 1:
        raise RuntimeError(f"case {label} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[0][len(RESULT_PREFIX) :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="speech per call (10)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (2)")
    parser.add_argument("--only", nargs="*", help="case labels to run (default all)")
    parser.add_argument("--output", type=Path, default=RESULTS / "encoders.json")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.case is not None:
        result = run_case(CASES[args.case][0], args.seconds, features_path(args.work, args.case))
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return

    from _machine import machine

    labels = args.only or list(CASES)
    unknown = sorted(set(labels) - set(CASES))
    if unknown:
        parser.error(f"--only: unknown cases {unknown}; expected some of {list(CASES)}")
    times: dict[str, list[float]] = {label: [] for label in labels}
    memory: dict[str, list[float]] = {label: [] for label in labels}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for round_ in range(args.rounds):
            for label in labels:
                print(f"[round {round_ + 1}/{args.rounds}] {label}", flush=True)
                figures = measure(label, args.seconds, args.threads, work)
                times[label].append(figures["seconds"])
                memory[label].append(figures["peak_rss_mb"])
        rows = []
        for label in labels:
            spec, reference = CASES[label]
            row: dict[str, Any] = {
                "case": label,
                "spec": spec,
                "seconds": round(statistics.median(times[label]), 4),
                "seconds_per_round": [round(t, 4) for t in times[label]],
                "real_time_factor": round(args.seconds / statistics.median(times[label]), 2),
                "peak_rss_mb": round(max(memory[label]), 1),
            }
            if reference is not None and reference in times:
                ratios = [r / f for r, f in zip(times[reference], times[label], strict=True)]
                row["reference"] = reference
                row["speedup"] = round(statistics.median(ratios), 2)
                row.update(compare(label, reference, work))
            rows.append(row)
    by_case = {row["case"]: row for row in rows}
    large = by_case.get("hubert-large/int8", {})
    targets = {
        "hubert_large_speedup": {
            "description": "float32 HuBERT-large seconds / int8 seconds, same round, at least",
            "value": large.get("speedup"),
            "target": 2.5,
        },
        "features_cosine": {
            "description": "least per-frame cosine similarity of any int8 encoder to float32",
            "value": min((r["cosine_min"] for r in rows if "int8" in r["case"]), default=None),
            "target": 0.99,
        },
        "vertices_mm": {
            "description": "largest vertex difference of any int8 encoder's animation, mm, at most",
            "value": max(
                (r["vertex_max_diff_mm"] for r in rows if "int8" in r["case"]), default=None
            ),
            "target": 0.1,
        },
    }
    for key, target in targets.items():
        value = target["value"]
        at_most = key == "vertices_mm"
        target["met"] = (
            None
            if value is None
            else (value <= target["target"] if at_most else value >= target["target"])
        )
    result = {
        "command": "python " + " ".join(sys.argv),
        "machine": machine(("transformers",)),
        "threads": args.threads,
        "seconds_of_speech": args.seconds,
        "rounds": args.rounds,
        "notes": [
            "random weights (seed 0); speech-like synthetic input; median over interleaved "
            "rounds, each a fresh process: warm-up, then the median of 3 calls",
            "speedup: reference seconds / case seconds within each round, median over rounds",
            "vertex_max_diff_mm: the paper-width model (random weights) decodes both feature "
            "sets, its W_d scaled so that the float32 animation's RMS offset is "
            "offset_rms_mm (2 mm, speech-sized motion)",
            "phonetic: the native recogniser has no quantised variant; its fast path is the "
            "default two-part recognition on two threads",
        ],
        "rows": rows,
        "targets": targets,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    for row in rows:
        extra = ""
        if "speedup" in row:
            extra = (
                f"  x{row['speedup']:.2f}  cos>={row['cosine_min']:.4f}  "
                f"dv {row['vertex_max_diff_mm']:.4f} mm (rms {row['offset_rms_mm']:.3f})"
            )
        print(f"{row['case']:24s} {row['seconds']:7.3f} s  {row['peak_rss_mb']:7.0f} MiB{extra}")
    print(json.dumps(targets, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
