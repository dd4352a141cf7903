"""Benchmark of the packed store against decoding .nut and per-sequence .npy, in one run.

Uses the real MMFace4D sample (67 frames x 35,709 vertices) replicated into synthetic
sequences of ``--frames`` frames (the sample played forward then backward) with a per-copy
scale, translation and 1 um noise, so that copies are different but as smooth as real data.

Measures, for random 64-frame windows (the same (sequence, start) draws for every reader):
windows per second from the store (``Store.read_window``), from ``.nut`` (``decode_nut`` of the
sequence, then slicing: FFV1 frames depend on their predecessors' coder state, so a window
cannot be decoded alone), and from ``.npy`` (memory-mapped slice, warm page cache); bytes on
disk per frame for each; pack throughput. ``--layouts`` adds the storage-format comparison on
the real sample (float32, float16 offsets, int16 offsets at several steps and time chunks)
that chose the store's encoding. Results go to ``benchmarks/results/store.json``.

    python benchmarks/bench_store.py                  # 8 sequences x 109 frames (~1 min)
    python benchmarks/bench_store.py --sequences 2 --frames 67 --reads 20   # quick
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "mmface4d_sample"


def synthetic(sample: np.ndarray, frames: int, copy: int) -> np.ndarray:
    """(frames, V, 3): the sample ping-ponged to length, scaled, moved and noised per copy."""
    order = np.concatenate([np.arange(len(sample)), np.arange(len(sample) - 2, 0, -1)])
    index = np.resize(order, frames)
    rng = np.random.default_rng(copy)
    centre = sample.mean(axis=(0, 1))
    scale = 1.0 + 0.01 * (copy - 2)
    shift = rng.uniform(-0.005, 0.005, 3)
    out = (sample[index] - centre) * scale + centre + shift
    out += rng.normal(0.0, 1e-6, out.shape)
    return out.astype(np.float32)


def folder_bytes(path: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in path.rglob(pattern) if p.is_file())


def timed(function, items) -> tuple[float, list]:  # type: ignore[no-untyped-def]
    """Median seconds per call (robust to other processes on a shared machine) and outputs."""
    seconds, out = [], []
    for item in items:
        start = time.perf_counter()
        out.append(function(*item))
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds)), out


def compare_layouts(sample: np.ndarray) -> list[dict]:
    """Bytes per frame, maximum error and 64-frame read time of candidate encodings."""
    import zarr
    from zarr.codecs import BloscCodec
    from zarr.storage import MemoryStore

    frames, vertices = sample.shape[:2]
    reference = sample.mean(axis=0, dtype=np.float64).astype(np.float32)
    offsets = sample.astype(np.float64) - reference
    candidates = [("float32 absolute", sample, lambda a: a, 16, None)]
    half = offsets.astype(np.float16)
    candidates.append(("float16 offsets from mean", half, lambda a: a + reference, 16, None))
    first = sample.astype(np.float64) - sample[0]
    candidates.append(
        (
            "float16 offsets from frame 0",
            first.astype(np.float16),
            lambda a: a + sample[0],
            16,
            None,
        )
    )
    for step, chunk in ((5e-7, 16), (1e-6, 8), (1e-6, 16), (1e-6, 32), (2e-6, 16)):
        q = np.rint(offsets / step).astype(np.int16)
        decode = lambda a, s=step: a.astype(np.float32) * np.float32(s) + reference  # noqa: E731
        candidates.append((f"int16 offsets step {step * 1e6:g} um", q, decode, chunk, step))
    results = []
    for name, data, decode, chunk, step in candidates:
        if step is not None and np.abs(offsets / step).max() > 32767:
            continue
        store = MemoryStore()
        codec = BloscCodec(cname="zstd", clevel=5, shuffle="shuffle", typesize=data.itemsize)
        array = zarr.create_array(
            store,
            shape=data.shape,
            dtype=data.dtype,
            chunks=(chunk, vertices, 3),
            shards=(-(-frames // chunk) * chunk, vertices, 3),
            compressors=[codec],
        )
        array[...] = data
        size = sum(len(v.to_bytes()) for k, v in store._store_dict.items() if "zarr.json" not in k)
        error = float(np.abs(decode(array[...]) - sample).max())
        starts = [0, 3, 1, 2] * 5
        seconds, _ = timed(lambda s, a=array, d=decode: d(a[s : s + 64]), [(s,) for s in starts])
        results.append(
            {
                "layout": name,
                "time_chunk": chunk,
                "kb_per_frame": size / frames / 1024,
                "max_error_m": error,
                "read64_ms": 1000 * seconds,
            }
        )
        print(
            f"  {name:32s} chunk {chunk:2d}: {size / frames / 1024:6.1f} KB/frame, "
            f"max error {error * 1e6:5.2f} um, read64 {results[-1]['read64_ms']:.1f} ms"
        )
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sequences", type=int, default=8)
    parser.add_argument(
        "--frames",
        type=int,
        default=109,
        help="frames per sequence (mean MMFace4D length: 3.9 M frames / 35,904 sequences)",
    )
    parser.add_argument("--reads", type=int, default=40, help="random windows per reader")
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="pack processes; one pack per value"
    )
    parser.add_argument("--layouts", action="store_true", help="also compare storage formats")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "store.json"))
    parser.add_argument("--workdir", help="scratch folder (default: a temporary one)")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT / "src"))
    from mmface4d.audio.io import load_audio, write_wav
    from mmface4d.data.nut import decode_nut, encode_nut
    from mmface4d.data.packing import pack
    from mmface4d.data.store import Store

    if not SAMPLE.is_dir():
        raise SystemExit(f"real sample not found at {SAMPLE}")
    sample = decode_nut(SAMPLE / "reconstruct_filt")
    speech = load_audio(SAMPLE / "000337.wav")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_store_"))
    src, npy_dir, store_dir = work / "src" / "B001", work / "npy", work / "store"
    for folder in (src, npy_dir):
        folder.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(store_dir, ignore_errors=True)
    print(f"writing {args.sequences} sequences of {args.frames} frames to {work}")
    names = [f"{k:06d}" for k in range(args.sequences)]
    for k, name in enumerate(names):
        vertices = synthetic(sample, args.frames, k)
        encode_nut(vertices, src / name)
        np.save(npy_dir / f"{name}.npy", vertices)
        write_wav(src / f"{name}.wav", np.resize(speech, args.frames * 16_000 // 30 + 1))
    frames = args.sequences * args.frames

    pack_runs = []
    for workers in args.workers:
        shutil.rmtree(store_dir, ignore_errors=True)
        started = time.perf_counter()
        pack(src.parent, store_dir, workers=workers, progress=False)
        seconds = time.perf_counter() - started
        pack_runs.append(
            {
                "workers": workers,
                "seconds": seconds,
                "frames_per_second": frames / seconds,
                "sequences_per_second": args.sequences / seconds,
            }
        )
    decode_seconds, _ = timed(lambda n: decode_nut(src / n), [(n,) for n in names[:3]])
    vertex_bytes = sum(
        folder_bytes(store_dir / "sequences" / f"B001_{n}" / part)
        for n in names
        for part in ("vertices", "reference")
    )
    sizes = {
        "nut": folder_bytes(src, "*.nut") / frames,
        "npy": folder_bytes(npy_dir, "*.npy") / frames,
        "store_vertices": vertex_bytes / frames,
        "store_total": folder_bytes(store_dir) / frames,
    }

    rng = np.random.default_rng(0)
    draws = [
        (int(rng.integers(args.sequences)), int(rng.integers(args.frames - args.window + 1)))
        for _ in range(args.reads)
    ]
    reader = Store(store_dir)
    for k, _ in draws[:3]:  # open the arrays once, as a DataLoader worker does
        reader.read_window(f"B001_{names[k]}", 0, 1)
    t_store, windows = timed(
        lambda k, s: reader.read_window(f"B001_{names[k]}", s, args.window), draws
    )
    nut_draws = draws[: max(3, args.reads // 4)]
    t_nut, nut_windows = timed(
        lambda k, s: decode_nut(src / names[k])[s : s + args.window], nut_draws
    )
    t_npy, npy_windows = timed(
        lambda k, s: np.array(
            np.load(npy_dir / f"{names[k]}.npy", mmap_mode="r")[s : s + args.window]
        ),
        draws,
    )
    t_npy_full, _ = timed(
        lambda k, s: np.load(npy_dir / f"{names[k]}.npy")[s : s + args.window], draws
    )
    error_vs_npy = max(
        float(np.abs(w - n).max()) for w, n in zip(windows, npy_windows, strict=True)
    )
    error_vs_nut = max(
        float(np.abs(reader.read_window(f"B001_{names[k]}", s, args.window) - w).max())
        for (k, s), w in zip(nut_draws, nut_windows, strict=True)
    )
    reads = {
        "store": 1 / t_store,
        "nut_decode": 1 / t_nut,
        "npy_mmap": 1 / t_npy,
        "npy_full_load": 1 / t_npy_full,
    }
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(("zarr", "numcodecs", "av", "pyarrow", "fsspec")),
        "config": {
            "sequences": args.sequences,
            "frames_per_sequence": args.frames,
            "vertices": int(sample.shape[1]),
            "window": args.window,
            "reads": args.reads,
            "nut_reads": len(nut_draws),
            "timing": "1 / median seconds per window",
        },
        "windows_per_second": reads,
        "store_speedup_over_nut": reads["store"] / reads["nut_decode"],
        "bytes_per_frame": sizes,
        "store_vertices_size_over_nut": sizes["store_vertices"] / sizes["nut"],
        "store_total_size_over_nut": sizes["store_total"] / sizes["nut"],
        "pack": pack_runs,
        "nut_decode_seconds_per_sequence": decode_seconds,
        "max_error_m": {
            "store_vs_float32_source": error_vs_npy,
            "store_vs_nut_decode": error_vs_nut,
        },
        "targets": {
            "reads_at_least_5x_nut": reads["store"] >= 5 * reads["nut_decode"],
            "size_at_most_1.5x_nut": sizes["store_total"] <= 1.5 * sizes["nut"],
        },
    }
    if args.layouts:
        print("storage formats on the real sample:")
        result["layouts_on_real_sample"] = compare_layouts(sample)
    if not args.workdir:
        shutil.rmtree(work)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {
                k: result[k]
                for k in (
                    "windows_per_second",
                    "store_speedup_over_nut",
                    "bytes_per_frame",
                    "pack",
                    "max_error_m",
                    "targets",
                )
            },
            indent=2,
        )
    )
    return result


if __name__ == "__main__":
    main()
