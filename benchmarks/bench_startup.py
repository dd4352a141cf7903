"""Start-up: ``mmface4d --help``, every verb's help, ``animate`` of 1 s and the shipped model's
load, each against a bare ``import torch`` measured in the same run.

    .venv/bin/python benchmarks/bench_startup.py [--repeats 5] [--note TEXT]

Every case runs in a fresh process; the rounds are interleaved (round r runs every case once,
in the same order) so that a change in the machine's load hits all cases alike, and each case
reports the median of ``--repeats`` rounds after ``--warmup`` untimed ones. Wall-clock seconds
of the whole process (``time.perf_counter`` around ``subprocess.run``), start-up and exit
included:

- ``import torch``: ``python -c "import torch"``, the reference;
- ``mmface4d --help`` and ``mmface4d VERB [ACTION] --help`` for every verb and sub-verb (the
  console script of this interpreter's environment);
- ``animate 1 s``: ``mmface4d animate CLIP -o DIR --formats npz --quiet`` of a 1.0 s clip: the
  first second of the real English clip of ../shared/data (44.1 kHz), else a sentence of the
  synthetic voice, cut or padded to 1 s;
- ``model load``: seconds of ``load_animator("default")`` (the shipped model, as ``mmface4d
  animate`` loads it), timed inside a fresh process after the modules ``animate`` imports
  (``mmface4d.animate.api``), printed by the process;
- ``model load, imports collected``: the same after a ``gc.collect()``. Importing torch and the
  package leaves some 170k objects that Python's garbage collector has not yet traversed in a
  full collection; the first code that allocates after the imports pays that collection, here
  the load. This row is the load's own work; the difference is the collection.

Each is reported in seconds and as a ratio to the ``import torch`` median. Targets: every help
under 0.25x (none imports torch: tests/cli/test_startup.py), ``animate 1 s`` under 1.5x, model
load under 0.2 s.
Writes benchmarks/results/startup.json. ``--note`` is stored with the result (say, for example,
whether other work was paused on the machine).
"""

from __future__ import annotations

import argparse
import json
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
from mmface4d.atomic import atomic_path  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).parent / "results"
SAMPLE_RATE = 16_000
TARGETS = {"help_ratio": 0.25, "animate_1s_ratio": 1.5, "model_load_s": 0.2}
MODEL_LOAD = (
    "import gc, sys, time\n"
    "import mmface4d.animate.api as api\n"
    "if sys.argv[1:] == ['collected']:\n"
    "    gc.collect()\n"
    "started = time.perf_counter()\n"
    "api.load_animator('default')\n"
    "print(time.perf_counter() - started)\n"
)


def verb_paths() -> list[tuple[str, ...]]:
    """Every verb and sub-verb of ``mmface4d``, e.g. ``("data", "split")``, parents first."""
    from mmface4d.cli import build_parser

    def walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> list[tuple[str, ...]]:
        found = [path] if path else []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found += walk(sub, (*path, name))
        return found

    return walk(build_parser(), ())


def one_second_clip(folder: Path) -> tuple[Path, str]:
    """A 1.0 s speech file and what it is."""
    from mmface4d.audio.io import load_audio, write_wav

    real = SHARED / "speech" / "english_male_test.wav"
    if real.is_file():
        rate = 44_100
        samples = load_audio(real, rate)[:rate]
        source = f"first second of {real.name} (44.1 kHz)"
    else:
        from mmface4d.synth.speech import EspeakEngine

        rate = SAMPLE_RATE
        samples = EspeakEngine(sample_rate=rate).synthesize("Hello there, friend.", "en").audio
        samples = np.asarray(samples, dtype=np.float32)[:rate]
        source = "the synthetic voice saying 'Hello there, friend.' (16 kHz)"
    samples = np.pad(samples, (0, rate - samples.size))
    path = folder / "clip_1s.wav"
    write_wav(path, samples, rate)
    return path, source


def run_case(argv: list[str], prints_seconds: bool) -> float:
    """Seconds of one fresh process (or the seconds it prints); a failure stops the run."""
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return float(done.stdout.strip().splitlines()[-1]) if prints_seconds else elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    parser.add_argument("--note", default="", help="stored with the result")
    parser.add_argument("--output", type=Path, default=RESULTS / "startup.json")
    args = parser.parse_args()
    python = sys.executable
    script = Path(python).with_name("mmface4d")
    cli = [str(script)] if script.is_file() else [python, "-m", "mmface4d"]
    with tempfile.TemporaryDirectory() as tmp:
        clip, clip_source = one_second_clip(Path(tmp))
        cases: dict[str, tuple[list[str], bool]] = {
            "import torch": ([python, "-c", "import torch"], False),
            "mmface4d --help": ([*cli, "--help"], False),
        }
        for path in verb_paths():
            cases[f"{' '.join(path)} --help"] = ([*cli, *path, "--help"], False)
        animate = [*cli, "animate", str(clip), "-o", f"{tmp}/out", "--formats", "npz", "--quiet"]
        cases["animate 1 s"] = (animate, False)
        cases["model load"] = ([python, "-c", MODEL_LOAD], True)
        cases["model load, imports collected"] = ([python, "-c", MODEL_LOAD, "collected"], True)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for round_ in range(args.warmup + args.repeats):
            for name, (argv, prints_seconds) in cases.items():
                seconds = run_case(argv, prints_seconds)
                if round_ >= args.warmup:
                    times[name].append(seconds)
            print(f"round {round_ + 1}/{args.warmup + args.repeats} done", flush=True)
    torch_s = statistics.median(times["import torch"])
    rows = {}
    for name, values in times.items():
        median = statistics.median(values)
        rows[name] = {
            "median_s": round(median, 3),
            "ratio_to_import_torch": round(median / torch_s, 3),
            "runs_s": [round(v, 3) for v in values],
        }
        print(f"{name:32s} {median:7.3f} s  {median / torch_s:6.3f}x")
    helps = {n: r for n, r in rows.items() if n.endswith("--help")}
    slowest = max(helps, key=lambda n: helps[n]["median_s"])
    help_ratio = helps[slowest]["ratio_to_import_torch"]
    animate_ratio = rows["animate 1 s"]["ratio_to_import_torch"]
    load_s = rows["model load"]["median_s"]
    report = {
        "command": shlex.join(["python", "benchmarks/bench_startup.py", *sys.argv[1:]]),
        "note": args.note,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "clip": clip_source,
        "import_torch_s": round(torch_s, 3),
        "rows": rows,
        "targets": {
            "help_max_ratio": {
                "value": help_ratio,
                "slowest": slowest,
                "target": f"< {TARGETS['help_ratio']}",
                "met": help_ratio < TARGETS["help_ratio"],
            },
            "animate_1s_ratio": {
                "value": animate_ratio,
                "target": f"< {TARGETS['animate_1s_ratio']}",
                "met": animate_ratio < TARGETS["animate_1s_ratio"],
            },
            "model_load_s": {
                "value": load_s,
                "target": f"< {TARGETS['model_load_s']}",
                "met": load_s < TARGETS["model_load_s"],
                "imports_collected_first": rows["model load, imports collected"]["median_s"],
            },
        },
        # False (PYTHONDONTWRITEBYTECODE set): every case compiles the package's modules it
        # imports from source, as no .pyc is kept; an installed wheel has them compiled
        "bytecode_cached": not sys.dont_write_bytecode,
        "machine": machine(),
    }
    with atomic_path(args.output) as out:
        out.write_text(json.dumps(report, indent=2) + "\n")
    for name, target in report["targets"].items():
        verdict = "met" if target["met"] else "NOT met"
        print(f"{name}: {target['value']} ({target['target']}): {verdict}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
