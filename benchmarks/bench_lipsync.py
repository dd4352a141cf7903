"""Lip sync where viewers look: lips that close on p/b/m, a mouth that follows the phones.

    .venv/bin/python benchmarks/bench_lipsync.py --model before=OLD.pt --model after=default \
        [--store STORE --corpus CORPUS --run NAME=RUN ...] [-o benchmarks/results/lipsync.json]

For each packaged model (``default``, or an animator ``.pt``) and each real recording (the English
clip and the Mandarin MMFace4D sample with its captured meshes of ../shared/data, and the four
licensed English clips of benchmarks/data/speech: two readings, a female and a male voice):

- the speech is aligned into phones by the phoneme recogniser (``mmface4d.audio.phonetic``);
- ``closure``: share of the recognised bilabials (p, b, m) during which, +-1 frame, the
  animation's inner-lip gap drops below 1 mm (:mod:`mmface4d.animate.metrics`);
  ``line_closure``: the same for the whole inner lip (its widest opening beyond the neutral
  face's, :func:`mmface4d.animate.metrics.lip_line_gap`), which three landmark pairs shut on
  their own cannot win;
- ``openness_corr``: correlation of the gap with a phone-based openness curve
  (:func:`mmface4d.animate.lipsync.openness_curve`);
- on the Mandarin sample, ``captured_corr``: correlation with the gap of the captured meshes;
- speech/pause mouth motion (:func:`mmface4d.animate.lipsync.speech_pause_motion`);
- speed: the speech encoder's and the whole call's seconds per second of speech.

Then blinks (rate, duration, peak ARKit ``eyeBlinkLeft`` as the CSV export solves it) over two
minutes of animated speech, and with ``--store/--corpus/--run`` the lip-sync metrics of training
runs on the store's test split (unseen speakers, phone timing from the corpus's ground truth).
One PNG per clip: the inner-lip gap of every model over time, the phones written under it.
Caveat: the real clips' phones come from the same recogniser the ``phonetic`` encoder and the
lip-closure layer (:mod:`mmface4d.animate.closure`) use, so on real speech the layer's closure
is close to 1 by construction; ``--bare`` models show the model alone, and the synthetic test
split (whose timing is the corpus's own) is the independent check of the layer. On real clips
``closed_in_speech_away_from_bilabials`` (share of the speech frames more than 0.1 s from any
recognised p/b/m where the lips are shut) shows lips that shut where they should not.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine  # noqa: E402
from mmface4d.animate.api import animate, load_animator  # noqa: E402
from mmface4d.animate.closure import ClosureConfig  # noqa: E402
from mmface4d.animate.lipsync import (  # noqa: E402
    openness_curve,
    speech_pause_motion,
    voice_activity,
)
from mmface4d.animate.metrics import (  # noqa: E402
    CLOSED_GAP,
    closed_during,
    inner_lip_gap,
    lip_line_gap,
    lip_line_pairs,
    phone_frames,
)
from mmface4d.atomic import save_figure  # noqa: E402
from mmface4d.audio.io import load_audio  # noqa: E402
from mmface4d.audio.phonetic import BILABIAL_PHONES, align_phones, clear_cache  # noqa: E402
from mmface4d.errors import InputError  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).parent / "results"
RATE = 16_000
SPEECH = Path(__file__).parent / "data" / "speech"  # licensed real clips (see its README)
CLIPS = {
    "english_male_test": SHARED / "speech" / "english_male_test.wav",
    "mmface4d_000337_mandarin": SHARED / "mmface4d_sample" / "000337.wav",
    "librivox_austen_0920": SPEECH / "librivox_austen_0920.wav",
    "librivox_austen_0870": SPEECH / "librivox_austen_0870.wav",
    "asterisk_allison_female_8khz": SPEECH / "asterisk_allison_invalid_password.wav",
    "codec2_harvard_male": SPEECH / "codec2_harvard_list1.wav",
}
CAPTURED = {"mmface4d_000337_mandarin": SHARED / "mmface4d_sample" / "reconstruct_filt"}


def captured_gap(prefix: Path) -> np.ndarray | None:
    """Inner-lip gap (m) of a captured MMFace4D sequence (BFM topology, Deep3DFaceRecon keys)."""
    from mmface4d.data.analysis import resolve_landmarks
    from mmface4d.data.nut import decode_nut

    info = SHARED / "bfm_aux" / "facemodel_info.mat"
    if not info.is_file() or not Path(f"{prefix}_0.nut").is_file():
        return None
    captured = decode_nut(prefix)
    return inner_lip_gap(captured, resolve_landmarks(info, captured[0]))


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


def clip_metrics(
    name: str, path: Path, spec: str, closure: bool = True
) -> tuple[dict, np.ndarray, list]:
    """One model on one clip (with or without the lip-closure layer): metrics, the gap (m) and
    the recognised phones."""
    audio = load_audio(path, RATE)
    animator = load_animator(spec)
    encoder = animator.pipeline.encoder
    clear_cache()  # the recogniser keeps its last clip: time it from scratch
    started = time.perf_counter()
    encoder.encode_to_frames(audio, 30.0)
    encoder_s = time.perf_counter() - started
    clear_cache()
    started = time.perf_counter()
    result = animate(
        audio, sample_rate=RATE, model=spec, liveliness=None, closure=ClosureConfig(enabled=closure)
    )
    call_s = time.perf_counter() - started
    seconds = audio.size / RATE
    landmarks = result.face_model.landmarks
    gap = inner_lip_gap(result.vertices, landmarks)
    phones = [(p.label, p.start, p.end) for p in align_phones(audio)]
    bilabial_times = np.array([(s, e) for label, s, e in phones if label in BILABIAL_PHONES])
    events = phone_frames(bilabial_times.reshape(-1, 2), result.fps, len(gap))
    hit = closed_during(gap, events, CLOSED_GAP)
    # the whole inner lip, not three landmark pairs (which a spiky model can shut alone)
    pairs = lip_line_pairs(result.template, result.faces, landmarks)
    line = lip_line_gap(result.vertices, pairs, result.template)
    line_hit = closed_during(line, events, CLOSED_GAP)
    # speech frames more than 0.1 s from any recognised bilabial (lips shut there are wrong)
    elsewhere = voice_activity(audio, RATE, result.fps, len(gap))
    for first, last in events:
        elsewhere[max(0, first - 3) : last + 4] = False
    try:
        ratio = speech_pause_motion(result.vertices, landmarks, audio, RATE, result.fps)
        ratio = ratio.to_dict()["motion_ratio"]
    except InputError:  # a clip without pauses has no speech/pause ratio
        ratio = None
    openness = openness_curve(phones, result.fps, len(gap))
    metrics = {
        "seconds": round(seconds, 3),
        "bilabials": int(len(hit)),
        "closed_bilabials": int(hit.sum()),
        "closure": float(hit.mean()) if len(hit) else None,
        "line_closure": float(line_hit.mean()) if len(line_hit) else None,
        "line_gap_at_bilabials_median_mm": float(
            np.median([line[max(0, a - 1) : b + 2].min() for a, b in events]) * 1e3
        )
        if len(events)
        else None,
        "gap_at_bilabials_median_mm": float(
            np.median([gap[max(0, a - 1) : b + 2].min() for a, b in events]) * 1e3
        )
        if len(events)
        else None,
        "closed_in_speech_away_from_bilabials": float((gap[elsewhere] < CLOSED_GAP).mean()),
        "openness_corr": _correlation(gap, openness),
        "gap_p5_p95_mm": [float(np.percentile(gap, q) * 1e3) for q in (5, 95)],
        "speech_pause_motion_ratio": ratio,
        "encoder": animator.pipeline.encoder.__class__.__name__,
        "encoder_seconds_per_speech_second": encoder_s / seconds,
        "animate_seconds_per_speech_second": call_s / seconds,
        "real_time_factor": seconds / call_s,
    }
    truth = captured_gap(CAPTURED[name]) if name in CAPTURED else None
    if truth is not None:
        metrics["captured_corr"] = _correlation(gap, truth)
        # the capture's mouth may lead its audio: the best correlation within +-0.33 s, with
        # its lag (positive: the animation is later than the capture); exploratory
        n = min(len(gap), len(truth))
        lags = {
            lag: _correlation(
                gap[max(lag, 0) : n + min(lag, 0)], truth[max(-lag, 0) : n - max(lag, 0)]
            )
            for lag in range(-10, 11)
        }
        best = max(lags, key=lambda lag: lags[lag])
        metrics["captured_corr_best_lag"] = {"frames": best, "corr": lags[best]}
    return metrics, gap, phones


def blink_metrics(spec: str, path: Path) -> dict:
    """Blinks over ~2 minutes of animated speech, as the ARKit CSV export solves them."""
    from mmface4d.export.arkit import arkit_basis, solve_arkit_weights

    audio = load_audio(path, RATE)
    audio = np.tile(audio, int(np.ceil(120 * RATE / audio.size)))[: 120 * RATE]
    result = animate(audio, sample_rate=RATE, model=spec)
    basis = arkit_basis(result.face_model)
    offsets = result.vertices - result.template[None]
    weights = solve_arkit_weights(offsets, basis.targets).weights
    blink = weights[:, basis.names.index("eyeBlinkLeft")]
    closed = np.concatenate([[0], (blink > 0.1).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(closed))
    starts, stops = edges[::2], edges[1::2]
    peaks = [float(blink[a:b].max()) for a, b in zip(starts, stops, strict=True)]
    minutes = len(blink) / result.fps / 60
    return {
        "minutes": round(minutes, 2),
        "blinks": len(starts),
        "rate_per_minute": len(starts) / minutes,
        "mean_duration_s": float(np.mean((stops - starts) / result.fps)) if len(starts) else None,
        "peak_weight_min": min(peaks) if peaks else None,
        "published": "conversation: mean 26 blinks/min (Bentivoglio et al. 1997); spontaneous "
        "blinks last 100-400 ms",
    }


def plot_clip(path: Path, name: str, gaps: dict[str, np.ndarray], phones: list, fps: float):
    """Inner-lip gap of each model over time, the recognised phones written under it (and the
    captured gap, where the clip has captured meshes)."""
    truth = captured_gap(CAPTURED[name]) if name in CAPTURED else None
    if truth is not None:
        gaps = {**gaps, "captured (MMFace4D)": truth}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = max(len(g) for g in gaps.values()) / fps
    fig, axis = plt.subplots(figsize=(max(8, seconds * 1.6), 3.6))
    for label, gap in gaps.items():
        axis.plot((np.arange(len(gap)) + 0.5) / fps, gap * 1e3, label=label, lw=1.4)
    axis.axhline(CLOSED_GAP * 1e3, color="0.4", lw=0.8, ls="--")
    for label, start, end in phones:
        bilabial = label in BILABIAL_PHONES
        if bilabial:
            axis.axvspan(start, end, color="tab:red", alpha=0.12, lw=0)
        axis.text(
            (start + end) / 2,
            -1.6,
            label,
            ha="center",
            va="top",
            fontsize=7,
            color="tab:red" if bilabial else "0.2",
        )
    axis.set_ylim(-3.2, None)
    axis.set_xlim(0, seconds)
    axis.set_xlabel("time (s)")
    axis.set_ylabel("inner-lip gap (mm)")
    axis.set_title(f"{name}: lips closed below the dashed line; p/b/m shaded")
    axis.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="packaged model to measure, with the lip-closure layer animate adds "
        "(repeatable); default: default=default",
    )
    parser.add_argument(
        "--bare",
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="packaged model to measure alone, without the lip-closure layer (repeatable)",
    )
    parser.add_argument("--store", help="store whose test split the --run models are scored on")
    parser.add_argument("--corpus", help="the synthetic corpus the store was packed from")
    parser.add_argument("--run", action="append", default=[], metavar="NAME=RUN")
    parser.add_argument("-o", "--output", type=Path, default=RESULTS / "lipsync.json")
    args = parser.parse_args()
    models = {
        **{k: (v, False) for k, v in (item.split("=", 1) for item in args.bare)},
        **{k: (v, True) for k, v in (item.split("=", 1) for item in args.model)},
    } or {"default": ("default", True)}
    report: dict = {
        "command": "python benchmarks/bench_lipsync.py " + " ".join(sys.argv[1:]),
        "models": {k: {"spec": v, "lip_closure_layer": c} for k, (v, c) in models.items()},
        "clips": {},
    }
    for clip, path in CLIPS.items():
        if not path.is_file():
            print(f"skipping {clip}: {path} not found")
            continue
        gaps, phones = {}, []
        for label, (spec, closure) in models.items():
            metrics, gaps[label], phones = clip_metrics(clip, path, spec, closure)
            report["clips"].setdefault(clip, {})[label] = metrics
            print(clip, label, json.dumps(metrics))
        figure = RESULTS / f"lipsync_{clip}.png"
        plot_clip(figure, clip, gaps, phones, 30.0)
        report["clips"][clip]["figure"] = figure.name
        report["clips"][clip]["phones"] = " ".join(p[0] for p in phones)
    last = list(models.values())[-1][0]
    if CLIPS["english_male_test"].is_file():
        report["blinks"] = blink_metrics(last, CLIPS["english_male_test"])
        print("blinks", report["blinks"])
    if args.run:
        from mmface4d.animate.evaluate import evaluate

        runs = dict(item.split("=", 1) for item in args.run)
        report["synthetic_test_split"] = {}
        for suffix, closure in (("", None), ("_closure", ClosureConfig())):
            out = args.output.with_name(f"{args.output.stem}_test_split{suffix}.json")
            result = evaluate(
                list(runs.values()), args.store, out, phones=args.corpus, closure=closure
            )
            report["synthetic_test_split"] |= {
                name + ("+closure layer" if closure else ""): run.report.overall
                for name, run in zip(runs, result.runs, strict=True)
            }
    report["targets"] = {
        "synthetic": "closure >= 0.9; range_ratio and jitter_ratio within 0.8-1.2",
        "real": "closure >= 0.8 of the aligned p/b/m; openness_corr >= 0.8",
        "blinks": "rate and duration within the published ranges; peak weight >= 0.9",
        "speed": "animate_seconds_per_speech_second <= 0.1 (10x real time) on 2 cores",
    }
    report["machine"] = machine(("hama",))
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
