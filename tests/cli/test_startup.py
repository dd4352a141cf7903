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

_WALK = """
import argparse, contextlib, io, json, sys

HEAVY = set(sys.argv[1].split(","))


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


for path in walk(parser):
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
        [sys.executable, "-c", _WALK, ",".join(HEAVY)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(done.stdout)


def test_help_of_every_verb_imports_no_torch(help_imports):
    report = help_imports
    assert {"(build)", "(top)", "animate", "train", "data split", "nut decode"} <= set(report)
    heavy = {step: modules for step, modules in report.items() if modules}
    assert not heavy, f"these helps import heavy packages: {heavy}"


_PRINT_CONFIG = """
import contextlib, io, json, sys

HEAVY = set(sys.argv[1].split(","))
from mmface4d.cli import main

report = {}
for argv in (
    ["train", "--print-config"],
    ["train", "--model", "faceformer", "--print-config", "json"],
    ["train", "--model", "meshtalk", "--ablation", "cross_modality", "--set", "model.heads=4",
     "--print-config"],
):
    with contextlib.redirect_stdout(io.StringIO()) as shown:
        status = main(argv)
    assert status == 0 and "model" in shown.getvalue(), argv
    report[" ".join(argv)] = sorted(HEAVY & {name.split(".")[0] for name in sys.modules})
print(json.dumps(report))
"""


def test_train_print_config_resolves_every_model_without_torch():
    """The training settings (every registered model's defaults, ablations, ``--set``) resolve
    from the light config modules: only building a model imports its network."""
    done = subprocess.run(
        [sys.executable, "-c", _PRINT_CONFIG, ",".join(HEAVY)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    heavy = {argv: modules for argv, modules in json.loads(done.stdout).items() if modules}
    assert not heavy, f"--print-config imported heavy packages: {heavy}"


def test_imports_are_frozen_only_for_a_command_line_process(monkeypatch) -> None:
    import gc

    from mmface4d import cli

    assert gc.get_freeze_count() == 0
    cli.freeze_imports()  # a call from Python (as here): nothing is frozen
    assert gc.get_freeze_count() == 0
    monkeypatch.setattr(cli, "_OWN_PROCESS", True)
    try:
        cli.freeze_imports()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
