"""Streaming speech-to-face: latency, how close a live stream is to the file, memory of animate.

    .venv/bin/python benchmarks/bench_streaming.py [--parts latency,quality,memory]
        [--minutes 1,5] [--memory-formats npz,csv,glb] [--note TEXT]

Three parts, each written into benchmarks/results/streaming.json (command, machine, commit):

- ``latency``: the shipped model streams the four speech clips of ``benchmarks/data/speech``
  (34 s, one after the other) at the default settings (``LIVE``: 0.2 s look-ahead, 0.16 s
  steps) on one thread (``torch.set_num_threads(1)``; run it with ``OMP_NUM_THREADS=1``),
  pushed in 10 ms chunks paced at real time: chunk k is pushed when the audio clock reaches its
  end (or at once when the stream lags). Per frame: ``latency`` is the time from the end of the
  chunk that completes the frame (its arrival) to the frame given (the push's return); ``delay``
  is the time from the frame's own end in the audio to the frame given (look-ahead, step
  granularity and latency together). Also the compute per second of audio (``real_time_factor``)
  and the frames that came later than one step behind their chunk.
- ``quality``: the same clips animated whole (``OFFLINE`` settings, every layer) and streamed
  with several settings; per setting the difference of the frames (RMS over vertices and
  frames, mm), of the inner-lip gap (RMS, mm) and the gap's correlation, and the compute per
  second of audio (unpaced). The first row is the live default.
- ``memory``: ``mmface4d animate`` of N minutes of synthetic speech (the synthetic voice reading
  sentences with pauses between them, made in a temporary folder) in a fresh process per run:
  its peak RSS (``ru_maxrss`` of the child), the seconds it took and the sizes written, for each
  of ``--minutes``: every format of ``--memory-formats`` together, all but the video together,
  each alone (the first length only) and, with ``--baseline-src`` (a ``src`` folder of another
  version, ``git archive REV src | tar -x -C DIR``), that version with all but the video.

Timings move with the machine's load: the load averages before and after each part are stored
with it (``busy`` is true when the 1-minute load was above 1.5 on the 2-core machine, i.e.
other work shared the cores).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from _machine import load_state, report_and_stamp  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SPEECH = Path(__file__).parent / "data" / "speech"
RATE = 16000
CHUNK = 160  # 10 ms
SENTENCES = [
    "Bob and Pam made maple bread, baby, by the mill pond.",
    "The quick brown fox jumps over the lazy dog while the band plays on.",
    "Please remember to bring the map, the blue umbrella and my pen.",
    "Every morning the baker opens the shop before the sun comes up.",
    "We measured the response of the model on a minute of speech.",
]


def _clips() -> list[np.ndarray]:
    from mmface4d.audio.io import load_audio

    return [load_audio(path, RATE) for path in sorted(SPEECH.glob("*.wav"))]


def _load() -> tuple[Any, Any]:
    import torch

    from mmface4d.animate.api import load_animator

    torch.set_num_threads(1)
    animator = load_animator()
    return animator, animator.builtin_speaker(None, animator.default_style)


def latency_part() -> dict[str, Any]:
    """Real-time paced streaming of the clips, 10 ms chunks, default settings."""
    from mmface4d.animate.streaming import LIVE

    animator, speaker = _load()
    audio = np.concatenate(_clips())
    before = load_state()
    warm = animator.stream(speaker)  # first calls load the recogniser and solver
    warm.push(audio[:RATE])
    warm.flush()
    stream = animator.stream(speaker)
    fps = animator.fps
    latency, delay, compute = [], [], 0.0
    started = time.perf_counter()
    for start in range(0, audio.size, CHUNK):
        arrival = started + min(start + CHUNK, audio.size) / RATE
        wait = arrival - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        pushed = time.perf_counter()
        frames = stream.push(audio[start : start + CHUNK])
        given = time.perf_counter()
        compute += given - pushed
        for index in frames.indices:
            latency.append(given - arrival)
            delay.append(given - (started + (index + 1) / fps))
    pushed = time.perf_counter()
    rest = stream.flush()
    compute += time.perf_counter() - pushed
    latency_ms, delay_ms = np.array(latency) * 1000, np.array(delay) * 1000
    step_ms = LIVE.step_s * 1000
    return {
        "settings": {
            "lookahead_s": LIVE.lookahead_s,
            "step_s": LIVE.step_s,
            "context_s": LIVE.context_s,
            "recognition_context_s": LIVE.recognition_context_s,
        },
        "audio_s": round(audio.size / RATE, 2),
        "chunk_ms": CHUNK * 1000 / RATE,
        "threads": 1,
        "frames": len(latency) + len(rest),
        "latency_ms": {
            "p50": round(float(np.percentile(latency_ms, 50)), 1),
            "p95": round(float(np.percentile(latency_ms, 95)), 1),
            "max": round(float(latency_ms.max()), 1),
        },
        "delay_ms": {
            "p50": round(float(np.percentile(delay_ms, 50)), 1),
            "p95": round(float(np.percentile(delay_ms, 95)), 1),
            "max": round(float(delay_ms.max()), 1),
        },
        "real_time_factor": round(compute / (audio.size / RATE), 3),
        "frames_later_than_a_step": int((latency_ms > step_ms).sum()),
        "target": "latency p50 and p95 < 250 ms",
        "met": bool(np.percentile(latency_ms, 95) < 250),
        "load_before": before,
        "load_after": load_state(),
    }


#: (label, lookahead_s, step_s, context_s, recognition_context_s); the first is LIVE.
QUALITY_SETTINGS = [
    ("live default", 0.2, 0.16, 10.0, 0.6),
    ("0.2 s, 0.1 s steps, 0.8 s heard", 0.2, 0.1, 10.0, 0.8),
    ("0.3 s, 0.2 s steps", 0.3, 0.2, 10.0, 0.8),
    ("0.4 s, 0.2 s steps", 0.4, 0.2, 10.0, 0.8),
    ("1 s, 0.5 s steps", 1.0, 0.5, 10.0, 1.0),
]


def quality_part() -> dict[str, Any]:
    """Live settings against the whole file, on the clips."""
    from mmface4d.animate.animator import DEFAULT_CLOSURE, DEFAULT_LIVELINESS
    from mmface4d.animate.metrics import inner_lip_gap
    from mmface4d.animate.streaming import FaceStream, StreamSettings, stream_frames

    animator, speaker = _load()
    clips = _clips()
    landmarks = animator.face_model.landmarks
    before = load_state()
    whole = [animator.animate_speech(a, speaker)[0] for a in clips]
    motion = [np.sqrt((np.linalg.norm(w - w.mean(0), axis=2) ** 2).mean()) * 1000 for w in whole]
    gaps = [inner_lip_gap(w, landmarks) * 1000 for w in whole]
    rows = []
    for label, lookahead, step, context, heard in QUALITY_SETTINGS:
        settings = StreamSettings(lookahead, step, context, heard)
        rms, gap_rms, corr, seconds = [], [], [], 0.0
        for audio, reference, ref_gap in zip(clips, whole, gaps, strict=True):
            stream = FaceStream(
                animator,
                speaker,
                settings,
                closure=DEFAULT_CLOSURE,
                liveliness=DEFAULT_LIVELINESS,
            )
            started = time.perf_counter()
            frames = list(stream_frames(stream, audio, CHUNK))
            seconds += time.perf_counter() - started
            vertices = np.concatenate([f.vertices for f in frames])
            gap = inner_lip_gap(vertices, landmarks) * 1000
            rms.append(np.sqrt((np.linalg.norm(vertices - reference, axis=2) ** 2).mean()) * 1000)
            gap_rms.append(np.sqrt(((gap - ref_gap) ** 2).mean()))
            corr.append(np.corrcoef(gap, ref_gap)[0, 1])
        total = sum(a.size for a in clips) / RATE
        rows.append(
            {
                "label": label,
                "lookahead_s": lookahead,
                "step_s": step,
                "context_s": context,
                "recognition_context_s": heard,
                "vertex_rms_mm": round(float(np.mean(rms)), 3),
                "gap_rms_mm": round(float(np.mean(gap_rms)), 3),
                "gap_correlation": round(float(np.mean(corr)), 3),
                "gap_correlation_min": round(float(np.min(corr)), 3),
                "real_time_factor": round(seconds / total, 3),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return {
        "clips": [p.name for p in sorted(SPEECH.glob("*.wav"))],
        "reference": "the same clip animated whole (OFFLINE settings), every layer",
        "whole_file_motion_rms_mm": round(float(np.mean(motion)), 3),
        "whole_file_gap_std_mm": round(float(np.mean([g.std() for g in gaps])), 3),
        "rows": rows,
        "load_before": before,
        "load_after": load_state(),
    }


def _synthetic_speech(minutes: float, folder: Path) -> Path:
    """A WAV of the synthetic voice reading :data:`SENTENCES` over and over, 0.3-1.2 s pauses."""
    from mmface4d.audio.io import write_wav
    from mmface4d.synth.speech import EspeakEngine

    path = folder / f"speech_{minutes:g}min.wav"
    if path.is_file():
        return path
    engine = EspeakEngine(sample_rate=RATE)
    said = [np.asarray(engine.synthesize(s, "en").audio, np.float32) for s in SENTENCES]
    rng = np.random.default_rng(0)
    parts, total, k = [], 0, 0
    while total < minutes * 60 * RATE:
        parts += [said[k % len(said)], np.zeros(int(rng.uniform(0.3, 1.2) * RATE), np.float32)]
        total += parts[-2].size + parts[-1].size
        k += 1
    audio = np.concatenate(parts)[: int(minutes * 60 * RATE)]
    write_wav(path, audio, RATE, encoding="pcm16")
    return path


def _animate_rss(wav: Path, formats: str, out: Path, source: Path | None) -> dict[str, Any]:
    python = sys.executable
    argv = ["-m", "mmface4d", "animate", str(wav), "-o", str(out), "--formats", formats, "--quiet"]
    code = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(done.returncode, peak, time.perf_counter() - t)\n"
        "sys.stderr.write(done.stderr[-2000:])\n"
    )
    env = dict(os.environ)
    if source is not None:  # another version of the package, e.g. `git archive REV src`
        env["PYTHONPATH"] = str(source)
    done = subprocess.run(
        [python, "-c", code, python, *argv], capture_output=True, text=True, env=env
    )
    returncode, peak_kb, seconds = done.stdout.split()
    sizes = {p.name: p.stat().st_size for p in sorted(out.glob("*")) if p.is_file()}
    row = {
        "formats": formats,
        "exit_status": int(returncode),
        "peak_rss_mb": round(int(peak_kb) / 1024, 1),
        "seconds": round(float(seconds), 1),
        "written_mb": {k: round(v / 2**20, 1) for k, v in sizes.items()},
    }
    if int(returncode):
        row["stderr"] = done.stderr[-1000:]
    return row


def memory_part(
    minutes: list[float],
    formats: list[str],
    baseline: Path | None,
    label: str,
    video_max: float,
    baseline_max: float,
    each_format: bool = True,
) -> dict[str, Any]:
    """Peak RSS of ``mmface4d animate`` for each length: every format together (lengths up to
    ``video_max``), the formats but the video together, each format alone (the first length
    only), and the baseline version of the package (formats but the video; lengths up to
    ``baseline_max``)."""
    before = load_state()
    rows = []
    still = ",".join(f for f in formats if f != "mp4")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for k, length in enumerate(minutes):
            wav = _synthetic_speech(length, folder)
            runs = []
            if length <= video_max or still == ",".join(formats):
                runs.append(("this version", None, ",".join(formats)))
            if still != ",".join(formats):
                runs.append(("this version", None, still))
            if k == 0 and len(formats) > 1 and each_format:
                runs += [("this version", None, f) for f in formats]
            if baseline is not None and length <= baseline_max:
                runs.append((label, baseline, still))
            for version, source, fmt in runs:
                out = folder / f"out_{length:g}_{fmt.replace(',', '_')}_{len(rows)}"
                row = {"minutes": length, "version": version}
                row |= _animate_rss(wav, fmt, out, source)
                rows.append(row)
                print(json.dumps(row), flush=True)
                subprocess.run(["rm", "-rf", str(out)], check=False)
    return {
        "speech": "the synthetic voice (espeak-ng) reading five sentences in turn, "
        "0.3-1.2 s pauses between them",
        "video_max_minutes": video_max,
        "baseline_max_minutes": baseline_max,
        "rows": rows,
        "target": "peak RSS < 1 GB for an hour of speech, every format (independent of length)",
        "load_before": before,
        "load_after": load_state(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="latency,quality,memory")
    parser.add_argument("--minutes", default="1,5", help="speech lengths for memory, minutes")
    parser.add_argument("--memory-formats", default="npz,csv,glb,mp4")
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="a src folder of another version (git archive REV src) to measure beside",
    )
    parser.add_argument("--baseline-label", default="baseline", help="its name in the rows")
    parser.add_argument(
        "--video-max-minutes",
        type=float,
        default=float("inf"),
        help="longer speech is written without the video (rendering is ~1x real time)",
    )
    parser.add_argument(
        "--baseline-max-minutes",
        type=float,
        default=float("inf"),
        help="longer speech is not given to the baseline (it holds every frame)",
    )
    parser.add_argument("--note", default="", help="stored with the result")
    parser.add_argument("--output", type=Path, default=RESULTS / "streaming.json")
    parser.add_argument(
        "--no-each-format", action="store_true", help="skip the runs of each format alone"
    )
    parser.add_argument(
        "--append",
        action="store_true",
        help="add the memory rows to those already in the output (each row names its commit)",
    )
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    report, stamp = report_and_stamp(
        "benchmarks/bench_streaming.py", args.output, sys.argv[1:], args.note, ("hama",)
    )
    for part in parts:
        if part == "latency":
            result = latency_part()
        elif part == "quality":
            result = quality_part()
        elif part == "memory":
            minutes = [float(m) for m in args.minutes.split(",")]
            result = memory_part(
                minutes,
                args.memory_formats.split(","),
                args.baseline_src,
                args.baseline_label,
                args.video_max_minutes,
                args.baseline_max_minutes,
                not args.no_each_format,
            )
        else:
            raise SystemExit(f"--parts: unknown part {part!r}")
        if part == "memory":
            for row in result["rows"]:
                row["commit"] = stamp["commit"]
            if args.append and "memory" in report:
                result["rows"] = report["memory"]["rows"] + result["rows"]
                stamp = {**stamp, "command": report["memory"]["command"] + " ; " + stamp["command"]}
        report[part] = {**stamp, **result}
        print(json.dumps({part: result}, indent=2)[:3000], flush=True)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"wrote {args.output}; this process peaked at {peak} MB")


if __name__ == "__main__":
    main()
