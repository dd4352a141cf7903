"""``mmface4d demo``: the main job on the embedded default."""

from __future__ import annotations

import argparse

from mmface4d.demo import demo


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("demo", help="run the main job on the embedded default")
    p.add_argument("-o", "--output", default="out", help="output folder (default: out)")
    p.add_argument("--face-model", default="synth", help="face model spec (default: synth)")
    p.set_defaults(run=lambda a: demo(a.output, face_model=a.face_model))
