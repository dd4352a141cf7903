"""The batch verbs share ``--workers N`` and ``--executor local|ray`` (cli/_batch.py)."""

from __future__ import annotations

import argparse

import pytest

from mmface4d.cli import build_parser
from mmface4d.cli._batch import EXECUTOR_HELP, WORKERS_HELP

BATCH_VERBS = (("synth", "corpus"), ("synth", "capture"), ("data", "pack"), ("reconstruct",))


def _subparser(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> argparse.ArgumentParser:
    for name in path:
        (verbs,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = verbs.choices[name]
    return parser


def _option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action:
    (action,) = (a for a in parser._actions if flag in a.option_strings)
    return action


@pytest.mark.parametrize("path", BATCH_VERBS, ids=" ".join)
def test_every_batch_verb_takes_the_same_workers_and_executor(path):
    parser = _subparser(build_parser(), path)
    workers, executor = _option(parser, "--workers"), _option(parser, "--executor")
    assert (workers.type, workers.default, workers.help) == (int, 1, WORKERS_HELP)
    assert executor.choices == ("local", "ray") and executor.default == "local"
    assert executor.help == EXECUTOR_HELP
    args = parser.parse_args(
        [
            *(["SRC"] if path != ("synth", "corpus") else []),
            "-o",
            "OUT",
            "--workers",
            "3",
            "--executor",
            "ray",
        ]
    )
    assert (args.workers, args.executor) == (3, "ray")


@pytest.mark.parametrize("path", BATCH_VERBS, ids=" ".join)
def test_a_bad_worker_count_is_one_line_and_status_2(path, tmp_path, capsys):
    from mmface4d import cli

    source = [] if path == ("synth", "corpus") else [str(tmp_path)]
    argv = [*path, *source, "-o", str(tmp_path / "out"), "--workers", "0"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "workers: expected a positive integer, found 0" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()  # refused before anything is written
