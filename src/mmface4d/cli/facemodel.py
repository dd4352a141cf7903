"""``mmface4d facemodel info|export|show|fetch``."""

from __future__ import annotations

import argparse
import json

from mmface4d import facemodel
from mmface4d.facemodel.sources import SPEC_HELP


def _show(a: argparse.Namespace) -> None:
    from mmface4d.facemodel.api import parse_expression_weights
    from mmface4d.render.picture import show_face_model

    print(
        show_face_model(
            a.spec,
            a.output,
            expression=parse_expression_weights(a.expression),
            identity=a.identity,
            size=a.size,
            view=a.view,
        )
    )


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("facemodel", help="inspect, export, picture or fetch face models")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    q = sub.add_parser("info", help="print a JSON summary of a face model")
    q.add_argument("spec", help=SPEC_HELP)
    q.set_defaults(run=lambda a: print(json.dumps(facemodel.info(a.spec), indent=2)))

    q = sub.add_parser("export", help="save a face model as one .npz file")
    q.add_argument("spec", help=SPEC_HELP)
    q.add_argument("-o", "--output", required=True, help="output .npz path")
    q.add_argument("--regions-dir", help="also write each region as <name>.txt vertex indices")
    q.set_defaults(
        run=lambda a: print(facemodel.export(a.spec, a.output, regions_dir=a.regions_dir))
    )

    q = sub.add_parser("show", help="render a shaded picture of a face model")
    q.add_argument("spec", help=SPEC_HELP)
    q.add_argument("-o", "--output", required=True, help="output PNG path")
    q.add_argument(
        "--expression",
        action="append",
        metavar="NAME=WEIGHT",
        help="expression weight, repeatable (e.g. --expression jawOpen=0.8)",
    )
    q.add_argument("--identity", type=float, nargs="+", help="first identity coefficients (std)")
    q.add_argument("--size", type=int, default=512, help="image side in pixels (default 512)")
    q.add_argument("--view", choices=("front", "three-quarter"), default="front")
    q.set_defaults(run=_show)

    q = sub.add_parser("fetch", help="download a public face model (needs internet)")
    q.add_argument("name", choices=("ict",), help="which model")
    q.add_argument("-o", "--output", default="ICT-FaceKit", help="target folder")
    q.set_defaults(run=lambda a: print(facemodel.fetch(a.name, a.output)))
