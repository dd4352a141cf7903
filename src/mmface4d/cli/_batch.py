"""The options and the failure report that every batch verb shares (``synth corpus``,
``synth capture``, ``data pack``, ``reconstruct``; the runner is :mod:`mmface4d.batch`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from mmface4d.batch import EXECUTORS, BatchFailed, BatchReport

Result = TypeVar("Result")

WORKERS_HELP = (
    "jobs (recordings, sequences) run at once: local processes, or Ray tasks (default 1: "
    "one after another in this process)"
)
EXECUTOR_HELP = (
    "local (default): this process or a pool of --workers processes; ray: a Ray cluster "
    "(RAY_ADDRESS), else a local Ray instance of --workers CPUs"
)


def add_batch_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--workers N`` and ``--executor local|ray`` to a batch verb's parser."""
    parser.add_argument("--workers", type=int, default=1, metavar="N", help=WORKERS_HELP)
    parser.add_argument("--executor", choices=EXECUTORS, default="local", help=EXECUTOR_HELP)


def report_batch(report: BatchReport) -> int:
    """Print the batch's summary line and every failed job; the exit status (1: a job failed)."""
    print(report.summary_line())
    for line in report.failure_lines():
        print(f"  {line}")
    return 1 if report.failed else 0


def run_batch_verb(call: Callable[[], Result], show: Callable[[Result], None]) -> int:
    """Run a batch verb's library call and ``show`` its result; when jobs failed
    (:class:`~mmface4d.batch.BatchFailed`), print the failure report instead and return 1."""
    try:
        result = call()
    except BatchFailed as failed:
        return report_batch(failed.report)
    show(result)
    return 0
