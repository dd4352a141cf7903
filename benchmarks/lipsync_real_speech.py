"""Does a model trained on synthetic voices animate real human speech? Speech/pause mouth motion.

    .venv/bin/python benchmarks/lipsync_real_speech.py [--model default] [--corpus DIR]

Animates the two real clips of ../shared/data (English male, 44.1 kHz; the Mandarin MMFace4D
sample) with the model and measures (:mod:`mmface4d.animate.lipsync`) the mouth motion during
speech and during pauses, their ratio, and the mean mouth opening in each. Controls to read the
numbers against: the model on white noise at the clip's level (it should not talk: the spread of
its mouth opening), and with ``--corpus`` the ratio of the synthetic ground truth (what a
perfectly synced face reaches). Writes benchmarks/results/lipsync.json and one PNG per clip.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine  # noqa: E402
from mmface4d.animate import animate  # noqa: E402
from mmface4d.animate.lipsync import plot_speech_pause, speech_pause_motion  # noqa: E402
from mmface4d.audio.io import load_audio  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).parent / "results"
CLIPS = {
    "english_male_test": SHARED / "speech" / "english_male_test.wav",
    "mmface4d_000337_mandarin": SHARED / "mmface4d_sample" / "000337.wav",
}


def _ground_truth_ratios(corpus: Path, count: int) -> list[float]:
    """Speech/pause motion ratio of synthetic ground-truth recordings (test subjects first)."""
    import csv

    from mmface4d.data.sequence import load_sequence
    from mmface4d.facemodel.sources import load_face_model

    landmarks = load_face_model("synth").landmarks
    with open(corpus / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    ratios = []
    for row in rows[:: max(1, len(rows) // count)][:count]:
        sequence = load_sequence(corpus / row["recording"], faces="synth")
        audio = load_audio(corpus / f"{row['recording']}.wav")
        try:
            motion = speech_pause_motion(
                sequence.in_model_frame(), landmarks, audio, 16000, sequence.fps
            )
        except Exception:  # noqa: BLE001 - a recording without pauses has no ratio
            continue
        ratios.append(motion.motion_ratio)
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--corpus", type=Path, help="synthetic corpus for the ground-truth control")
    parser.add_argument("--output", type=Path, default=RESULTS / "lipsync.json")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    clips = {}
    for name, path in CLIPS.items():
        if not path.is_file():
            print(f"skipping {name}: {path} not found")
            continue
        result = animate(path, model=args.model)
        landmarks = result.face_model.landmarks
        motion = speech_pause_motion(result.vertices, landmarks, result.audio, 16000, result.fps)
        picture = RESULTS / f"lipsync_{name}.png"
        title = f"{name}: mouth opening of the animation; pauses shaded"
        plot_speech_pause(
            picture, result.vertices, landmarks, result.audio, 16000, result.fps, title=title
        )
        rng = np.random.default_rng(0)
        rms = float(np.sqrt(np.mean(result.audio**2)))
        noise = (rng.standard_normal(result.audio.size) * rms).astype(np.float32)
        on_noise = animate(noise, sample_rate=16000, model=args.model)
        from mmface4d.animate.lipsync import mouth_opening

        noise_opening = mouth_opening(on_noise.vertices, landmarks)
        speech_opening = mouth_opening(result.vertices, landmarks)
        clips[name] = {
            "audio": str(path.relative_to(SHARED.parent)),
            "seconds": round(result.duration_s, 3),
            **motion.to_dict(),
            "speech_motion_mm_per_s": round(motion.speech_motion * 1000, 3),
            "pause_motion_mm_per_s": round(motion.pause_motion * 1000, 3),
            "speech_opening_mm": round(motion.speech_opening * 1000, 3),
            "pause_opening_mm": round(motion.pause_opening * 1000, 3),
            "opening_std_mm_on_speech": round(float(speech_opening.std()) * 1000, 3),
            "opening_std_mm_on_white_noise_same_rms": round(float(noise_opening.std()) * 1000, 3),
            "figure": picture.name,
        }
        print(name, json.dumps(clips[name], indent=1))
    report = {
        "command": "python benchmarks/lipsync_real_speech.py " + " ".join(sys.argv[1:]),
        "model": args.model,
        "definition": "motion = |d(inner-lip opening)/dt|; speech/pause frames from the audio "
        "level (35 dB below the loudest 20 ms, pauses >= 0.2 s, 0.1 s guards at boundaries); "
        "ratio = mean motion in speech / mean motion in pauses",
        "clips": clips,
        "machine": machine(),
    }
    if args.corpus is not None:
        ratios = _ground_truth_ratios(args.corpus, 24)
        report["synthetic_ground_truth_ratio"] = {
            "recordings": len(ratios),
            "median": float(np.median(ratios)) if ratios else None,
            "finite_median": float(np.median([r for r in ratios if np.isfinite(r)]))
            if any(np.isfinite(ratios)) else None,
        }  # fmt: skip
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
