"""``mmface4d data pack|info|split|verify``: build, describe, split and check a packed store."""

from __future__ import annotations

import argparse
import dataclasses
import json

from mmface4d import data
from mmface4d.cli._batch import add_batch_options, run_batch_verb
from mmface4d.data.split_protocols import PAPER_TEST_FRACTION, PRESETS
from mmface4d.errors import InputError


def _pack(args: argparse.Namespace) -> int:
    return run_batch_verb(
        lambda: data.pack(
            args.src,
            args.output,
            layout=args.layout,
            fps=args.fps,
            subsample=args.subsample,
            num_vertices=args.vertices,
            workers=args.workers,
            max_trim_frames=args.max_trim_frames,
            executor=args.executor,
        ),
        lambda result: print(json.dumps(dataclasses.asdict(result), indent=2)),
    )


def _verify(args: argparse.Namespace) -> None:
    report = data.Store(args.store).verify()
    print(json.dumps(dataclasses.asdict(report) | {"ok": report.ok}, indent=2))
    if not report.ok:
        raise InputError(f"{args.store}: {len(report.corrupt)} corrupt entries")


def _split(args: argparse.Namespace) -> None:
    result = data.split(
        args.store,
        seed=args.seed,
        test_fraction=args.test_fraction,
        val_fraction=args.val_fraction,
        preset=args.preset,
    )
    counts: dict[str, int] = {}
    for name in result.sequences.values():
        counts[name] = counts.get(name, 0) + 1
    subjects = {
        name: sorted(s for s, splits in result.subjects.items() if name in splits)
        for name in sorted(counts)
    }
    print(json.dumps({"name": result.name, "sequences": counts, "subjects": subjects}, indent=2))


def _stats(args: argparse.Namespace) -> None:
    from mmface4d.data.analysis import stats

    print(stats(args.stores, args.output, regions=args.regions))


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("data", help="pack 4D speech datasets into a training store")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    q = sub.add_parser("pack", help="pack an MMFace4D or FaceFormer folder (resumable)")
    q.add_argument("src", help="source folder (MMFace4D layout, or wav/ + vertices_npy/)")
    q.add_argument("-o", "--output", required=True, help="store folder or fsspec URL")
    q.add_argument("--layout", choices=("auto", "mmface4d", "faceformer"), default="auto")
    q.add_argument(
        "--fps",
        type=float,
        help="mesh frame rate of the files (MMFace4D 30 by default; "
        "required for FaceFormer: VOCASET 60, BIWI 25)",
    )
    q.add_argument("--subsample", type=int, default=1, help="keep every n-th frame (VOCASET 2)")
    q.add_argument(
        "--vertices", type=int, help="vertex count of .nut files (default 35709 for 189x189)"
    )
    add_batch_options(q)
    q.add_argument(
        "--max-trim-frames",
        type=int,
        default=1,
        help="most mesh frames dropped when the audio is shorter (default 1; more is an error)",
    )
    q.set_defaults(run=_pack)

    q = sub.add_parser("info", help="print a JSON summary of a store")
    q.add_argument("store", help="store folder or fsspec URL")
    q.set_defaults(
        run=lambda a: print(json.dumps(dataclasses.asdict(data.info(a.store)), indent=2))
    )

    q = sub.add_parser("split", help="split a store by identity (saved as splits.json)")
    q.add_argument("store", help="store folder or fsspec URL")
    q.add_argument("--seed", type=int, default=0, help="shuffling seed (default 0)")
    q.add_argument(
        "--test-fraction",
        type=float,
        default=PAPER_TEST_FRACTION,
        help="fraction of subjects for test (default 31/431, the paper's 400/31)",
    )
    q.add_argument("--val-fraction", type=float, default=0.0, help="fraction for validation")
    q.add_argument("--preset", choices=tuple(PRESETS), help="FaceFormer's fixed split instead")
    q.set_defaults(run=_split)

    q = sub.add_parser("verify", help="re-read a store and check every checksum")
    q.add_argument("store", help="store folder or fsspec URL")
    q.set_defaults(run=_verify)

    q = sub.add_parser("stats", help="the paper's dataset analysis: stats.json and Fig. 4 PNGs")
    q.add_argument("stores", nargs="+", help="store(s); the first is analysed, all are compared")
    q.add_argument("-o", "--output", required=True, help="output folder")
    q.add_argument(
        "--regions",
        help="region source: a face model spec, facemodel_info.mat (BFM), or a folder of "
        "<region>.txt (default: the synth model when the vertex count matches)",
    )
    q.set_defaults(run=_stats)
