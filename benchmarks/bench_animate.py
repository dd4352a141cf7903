"""End-to-end speed of ``animate`` with the shipped model: seconds per second of speech.

    .venv/bin/python benchmarks/bench_animate.py [--model default] [--threads 2]

Two paths, each timed as a user runs them (a fresh :class:`Animator` load is excluded; it is
reported separately): decode the audio file, encode, synthesise, write the NPZ; and the same
plus the MP4 (512x512, speech muxed in, verified). Inputs: the real English clip of
../shared/data (44.1 kHz, 11.5 s) and a 60 s clip made by repeating it (the windowed path).
Writes benchmarks/results/animate.json. Targets (issue 8): npz path >= 10x real time, video
path faster than real time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine  # noqa: E402
from mmface4d.animate.api import animate, load_animator  # noqa: E402
from mmface4d.animate.outputs import write_animation  # noqa: E402
from mmface4d.audio.io import load_audio, write_wav  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).parent / "results"


def _time(audio: Path, model: str, out: Path, formats: tuple[str, ...]) -> float:
    started = time.perf_counter()
    result = animate(audio, model=model)
    write_animation(result, out, formats, progress=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=RESULTS / "animate.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    source = SHARED / "speech" / "english_male_test.wav"
    if not source.is_file():
        sys.exit(f"{source}: the real English clip is needed")
    started = time.perf_counter()
    load_animator(args.model)
    load_s = time.perf_counter() - started
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        long_clip = Path(tmp) / "long_60s.wav"
        speech = load_audio(source, 44_100)
        repeats = int(np.ceil(60 * 44_100 / speech.size))
        write_wav(long_clip, np.tile(speech, repeats)[: 60 * 44_100], 44_100)
        for clip in (source, long_clip):
            seconds = load_audio(clip, 16_000).size / 16_000
            _time(clip, args.model, Path(tmp) / "warm", ("npz",))  # warm-up
            for label, formats in (("npz", ("npz",)), ("npz+mp4", ("npz", "mp4"))):
                elapsed = _time(clip, args.model, Path(tmp) / label, formats)
                rows.append(
                    {
                        "clip": clip.name,
                        "speech_s": round(seconds, 3),
                        "outputs": label,
                        "seconds": round(elapsed, 3),
                        "seconds_per_speech_second": round(elapsed / seconds, 4),
                        "times_real_time": round(seconds / elapsed, 2),
                    }
                )
                print(rows[-1])
    npz = [r["times_real_time"] for r in rows if r["outputs"] == "npz"]
    video = [r["times_real_time"] for r in rows if r["outputs"] == "npz+mp4"]
    report = {
        "command": "python benchmarks/bench_animate.py " + " ".join(sys.argv[1:]),
        "model": args.model,
        "threads": args.threads,
        "model_load_s": round(load_s, 3),
        "rows": rows,
        "targets": {
            "npz_path_times_real_time": {"value": min(npz), "target": 10, "met": min(npz) >= 10},
            "video_path_times_real_time": {
                "value": min(video),
                "target": 1,
                "met": min(video) >= 1,
            },
        },
        "machine": machine(("av",)),
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
