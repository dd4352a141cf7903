"""``mmface4d demo``: the main job on the embedded default (speech in, animated face out)."""

from __future__ import annotations

import argparse

from mmface4d.demo import DEMO_TEXT, demo


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "demo", help="say a sentence, animate it with the shipped model: out/demo.mp4, .glb, .csv"
    )
    p.add_argument("-o", "--output", default="out", help="output folder (default: out)")
    p.add_argument("--text", default=DEMO_TEXT, help="what to say")
    p.add_argument("--lang", choices=("en", "zh"), default="en")
    p.add_argument("--model", default="default", help="animation model (default: the shipped one)")
    p.set_defaults(run=lambda a: demo(a.output, text=a.text, lang=a.lang, model=a.model))
