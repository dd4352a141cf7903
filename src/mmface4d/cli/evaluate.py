"""``mmface4d evaluate``: the canonical metrics of trained runs, as JSON and a Markdown table."""

from __future__ import annotations

import argparse


def _evaluate(args: argparse.Namespace) -> None:
    from mmface4d.animate.closure import ClosureConfig
    from mmface4d.animate.evaluate import evaluate

    result = evaluate(
        args.runs,
        args.data,
        args.output,
        split=args.split,
        table=args.table,
        regions=args.regions,
        device=args.device,
        seed=args.seed,
        phones=args.phones,
        closure=ClosureConfig() if args.lip_closure else None,
    )
    print(result.markdown, end="")
    print(f"report: {result.report}" + (f", table: {result.table}" if result.table else ""))


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "evaluate",
        help="lip/face metrics (paper, LVE, FDD, lip sync) of trained runs on a store's test split",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (mmface4d train -o)")
    p.add_argument("--data", required=True, help="packed store with splits.json")
    p.add_argument("--split", default="test", help="split to evaluate (default test)")
    p.add_argument("-o", "--output", required=True, help="report.json path")
    p.add_argument("--table", help="also write a Table-II-style Markdown table here")
    p.add_argument(
        "--regions",
        help="region source: a face model spec, facemodel_info.mat (BFM), or a folder of "
        "<region>.txt (default: the synth model when the vertex count matches)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--seed", type=int, default=0, help="seed of the style-reference draw")
    p.add_argument(
        "--phones",
        metavar="CORPUS",
        help="phone timing of the lip-sync metrics from this synthetic corpus (its generator's "
        "ground truth); default: align each sequence's speech with the phoneme recogniser",
    )
    p.add_argument(
        "--lip-closure",
        action="store_true",
        help="score each run with the lip-closure layer that mmface4d animate adds (timed by "
        "the phoneme recogniser); default: the model alone",
    )
    p.set_defaults(run=_evaluate)
