"""Start-up of the command line: building the parser and every ``--help`` import no heavy stack.

``mmface4d --help`` and each verb's ``--help`` must not pay for torch (seconds on a cold
machine) or the other heavy libraries: the CLI modules import only light modules at the top and
the library in their verbs' run functions. A fresh interpreter builds the parser, walks every
verb and sub-verb, asks each for ``--help`` and reports which heavy top-level packages each step
added to ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: Top-level packages that building the parser or printing a help must not import.
HEAVY = (
    "torch",
    "scipy",
    "matplotlib",
    "cv2",
    "mediapipe",
    "transformers",
    "trimesh",
    "zarr",
    "numpy",
    "av",
    "PIL",
)

#: Verbs whose ``--help`` still imports a heavy package, and why. Each must still do so
#: (:func:`test_each_known_heavy_help_is_still_heavy`), so that a fixed one leaves this list.
KNOWN_HEAVY = {
    "train": (
        "its help lists every registered model's hyper-parameters, whose dataclasses live in "
        "the model modules (animate.model, faceformer, meshtalk) beside their torch networks"
    ),
}

_WALK = """
import argparse, contextlib, io, json, sys

HEAVY = set(sys.argv[1].split(","))
LAST = set(sys.argv[2].split(","))


def heavy_since(before):
    return sorted(HEAVY & {name.split(".")[0] for name in set(sys.modules) - before})


before = set(sys.modules)
from mmface4d.cli import build_parser

parser = build_parser()  # imports every CLI module
report = {"(build)": heavy_since(before)}


def walk(parser, path=()):
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, path + (name,))


paths = list(walk(parser))
paths.sort(key=lambda path: path[:1] in [(verb,) for verb in LAST])  # known heavy ones last
for path in paths:
    before = set(sys.modules)
    with contextlib.redirect_stdout(io.StringIO()) as shown:
        try:
            build_parser().parse_args([*path, "--help"])
        except SystemExit:
            pass
    assert shown.getvalue().startswith("usage: mmface4d"), path
    report[" ".join(path) or "(top)"] = heavy_since(before)
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def help_imports() -> dict[str, list[str]]:
    """``verb [sub-verb]`` (``(top)`` for ``mmface4d --help``, ``(build)`` for building the
    parser) -> the heavy packages that step imported, in one fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", _WALK, ",".join(HEAVY), ",".join(KNOWN_HEAVY)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(done.stdout)


def test_help_of_every_verb_imports_no_torch(help_imports):
    report = help_imports
    assert {"(build)", "(top)", "animate", "data split", "nut decode", "synth corpus"} <= set(
        report
    )
    heavy = {
        step: modules
        for step, modules in report.items()
        if modules and step.split()[0] not in KNOWN_HEAVY
    }
    assert not heavy, f"these helps import heavy packages: {heavy}"


def test_each_known_heavy_help_is_still_heavy(help_imports):
    light = [verb for verb in KNOWN_HEAVY if not help_imports[verb]]
    assert not light, f"remove from KNOWN_HEAVY, their help is light now: {light}"
