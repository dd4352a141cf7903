"""``mmface4d nut decode|encode``: MMFace4D ``.nut`` mesh sequences to and from ``.npy``."""

from __future__ import annotations

import argparse

from mmface4d.data.nut_defaults import BFM_FRONT_VERTICES, DEFAULT_FPS

_PREFIX_HELP = "sequence prefix: the files are PREFIX_0.nut, PREFIX_1.nut, PREFIX_2.nut (x, y, z)"


def _decode(a: argparse.Namespace) -> None:
    from mmface4d.data import nut

    print(nut.decode(a.prefix, a.output, a.vertices))


def _encode(a: argparse.Namespace) -> None:
    from mmface4d.data import nut

    print("\n".join(str(p) for p in nut.encode(a.input, a.output, a.fps)))


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("nut", help="decode or encode MMFace4D .nut mesh sequences")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    q = sub.add_parser("decode", help="decode a .nut triple to a (T, V, 3) float32 .npy")
    q.add_argument("prefix", help=_PREFIX_HELP)
    q.add_argument("-o", "--output", required=True, help="output .npy path")
    q.add_argument(
        "--vertices",
        type=int,
        default=None,
        help=f"vertex count V (default {BFM_FRONT_VERTICES} for 189x189 frames; "
        "required otherwise)",
    )
    q.set_defaults(run=_decode)

    q = sub.add_parser("encode", help="encode a (T, V, 3) .npy as a .nut triple")
    q.add_argument("input", help="input .npy of shape (T, V, 3), metres")
    q.add_argument("-o", "--output", required=True, help=f"output prefix; {_PREFIX_HELP}")
    q.add_argument("--fps", type=float, default=DEFAULT_FPS, help="frame rate (default 30)")
    q.set_defaults(run=_encode)
