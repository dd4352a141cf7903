"""Resumable batch jobs over many recordings, in local processes or on a Ray cluster.

``run_batch(jobs, function, OUT)`` calls ``function(job.payload)`` once for every :class:`Job`
and keeps a manifest of what happened in ``OUT/manifest.json``. Every stage that processes a
whole dataset -- ``synth corpus``, ``synth capture``, ``data pack`` and ``reconstruct`` --
builds its jobs and hands them to it; the runner owns the scheduling, the failure handling, the
progress bar and the manifest, the job function owns the work. On the command line these verbs
share ``--workers N`` and ``--executor local|ray`` (:mod:`mmface4d.cli._batch`), and a batch
with failed jobs lists them and exits with status 1.

The contract of a job function:

- it is defined at module level in an importable module (worker processes and Ray workers
  receive it pickled by reference), takes the job's payload (a picklable value) and returns a
  small JSON-able dict, its summary (anything else fails the job);
- it is pure and idempotent: it depends on its payload only, and running it again rewrites the
  same outputs, so a job that was interrupted, retried or run twice does no harm; what it needs
  in every job (a face model) it loads once per process into a module-level cache;
- it writes every output atomically (:func:`mmface4d.atomic.atomic_path`), the one that marks a
  finished recording last, so that ``is_done`` never mistakes a half-written recording for a
  finished one;
- it raises on failure (:class:`~mmface4d.errors.InputError` for bad input). An exception of
  ``job_errors`` (default: any ``Exception``) fails its own job only: the reason (one line, the
  exception type and message) goes to the manifest and the batch goes on. Any other exception
  (e.g. a full disk, for a stage that says only bad input is a job's own failure) is recorded
  the same way, then stops the batch and is raised again; so does ``KeyboardInterrupt`` (and
  ``SystemExit``), after the manifest is saved.

Manifest ``OUT/manifest.json``, rewritten atomically after every finished job, so a killed
batch always leaves a valid one::

    {"desc": "reconstruct",                  the batch's name (its progress bar label)
     "started": "2026-05-10T21:03:55Z",      this run's start and last update (UTC)
     "updated": "2026-05-10T22:41:07Z",
     "remaining": 0,                          jobs of this run not finished yet
     "totals": {"done": 12, "skipped": 3, "failed": 1},
     "jobs": {"S001/210003": {"status": "done",       done | skipped | failed
                              "seconds": 81.2,        the job's run time
                              "reason": null,         why it failed (one line)
                              "summary": {...},       what the job function returned
                              "finished": "2026-05-10T21:05:16Z"}, ...}}

With no ``OUT`` (a ``data pack`` into a remote store) the manifest is kept in memory only.

Resumption: re-running the same batch into the same folder keeps the manifest's entries and
updates those of this run's jobs. Jobs for which ``is_done(key)`` is true (the stage looks at
its output files) are skipped without calling the function (status ``skipped``; a summary from
an earlier run is kept); all others run, previously failed ones included. Without ``is_done``
every job runs again.

Failure report: :meth:`BatchReport.summary_line` and :meth:`BatchReport.failure_lines` (what
the CLI prints), :meth:`BatchReport.check` (raises :class:`BatchFailed`, one line naming the
failed jobs, for the library functions that return their outputs rather than the report).

Executors (``workers``: jobs running at once):

- ``local``, 1 worker: in this process, in order.
- ``local``, N workers: a :class:`~concurrent.futures.ProcessPoolExecutor` of N processes with
  one torch thread each (forked, or started as ``start_method`` says). A process that dies
  (killed, out of memory, a crash in native code) breaks the pool and loses every job in flight
  with it; the pool is recreated and those jobs run again one at a time, which tells the job
  that kills its worker from the ones that only shared the pool with it. A job is failed with
  "worker died" once its worker died more than ``retries`` times, the last time while running
  alone, so no job fails for another's crash.
- ``ray``: one Ray task per job (1 CPU each), results collected as they finish. With the
  environment variable ``RAY_ADDRESS`` set (``auto``, ``ray://head:10001``, ...) the batch
  attaches to that cluster, otherwise it starts a local Ray instance with ``workers`` CPUs; a
  Ray already initialised in this process is reused. Only a Ray started (or connected) here is
  shut down at the end. Ray re-runs a task whose worker died up to ``retries`` times; after
  that it is failed with "worker died". Exceptions raised by the job are never retried.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from mmface4d._optional import require
from mmface4d.atomic import atomic_path
from mmface4d.errors import InputError

#: File name of the manifest inside the output folder.
MANIFEST_NAME = "manifest.json"
#: The executors :func:`run_batch` knows.
EXECUTORS = ("local", "ray")
#: Start of the reason of a job whose worker process died under it.
WORKER_DIED = "worker died"

JobStatus = Literal["done", "skipped", "failed"]
_STATUSES = ("done", "skipped", "failed")
JobFunction = Callable[[Any], dict[str, Any]]
ErrorTypes = type[Exception] | tuple[type[Exception], ...]
#: Failed jobs named in the one-line message of :class:`BatchFailed`.
SHOWN_FAILURES = 5


@dataclass(frozen=True)
class Job:
    """One unit of work of a batch.

    Attributes:
        key: unique name of the job, e.g. ``"S001/210003"``; the manifest's key and the name in
            messages.
        payload: the argument given to the job function; must be picklable.
    """

    key: str
    payload: Any = None


@dataclass
class JobResult:
    """What became of one job.

    Attributes:
        key: the job's key.
        status: ``done`` (the function returned), ``skipped`` (``is_done`` said it was finished)
            or ``failed``.
        seconds: run time of the job function (0 when skipped).
        reason: why it failed, one line (``"ValueError: ..."`` or ``"worker died..."``); None
            unless failed.
        summary: the dict the job function returned; for a skipped job the summary of the run
            that did it, when the manifest has one.
        error: the exception that stops the batch (one not in ``job_errors``), raised again
            once the failure is recorded; None otherwise.
    """

    key: str
    status: JobStatus
    seconds: float = 0.0
    reason: str | None = None
    summary: dict[str, Any] | None = None
    error: BaseException | None = field(default=None, repr=False, compare=False)


@dataclass
class BatchReport:
    """The outcome of :func:`run_batch`.

    Attributes:
        results: one result per job that finished in this run, in the order of the jobs.
        manifest: path of the manifest (None: kept in memory only).
        seconds: wall time of the run.
    """

    results: list[JobResult]
    manifest: Path | None
    seconds: float

    def count(self, status: JobStatus) -> int:
        """Number of jobs that ended with ``status``."""
        return sum(result.status == status for result in self.results)

    @property
    def done(self) -> int:
        return self.count("done")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    @property
    def failed(self) -> int:
        return self.count("failed")

    def summary_line(self) -> str:
        """One line for the CLI, e.g. ``12 done, 3 skipped, 1 failed (see OUT/manifest.json)``."""
        see = "" if self.manifest is None else f" (see {self.manifest})"
        return f"{self.done} done, {self.skipped} skipped, {self.failed} failed{see}"

    def failure_lines(self) -> list[str]:
        """``key: reason`` of every failed job, in the order of the jobs."""
        return [f"{r.key}: {r.reason}" for r in self.results if r.status == "failed"]

    def check(self, what: str = "jobs") -> None:
        """Raise :class:`BatchFailed` when a job failed (``what``: the jobs' noun, plural)."""
        if self.failed:
            raise BatchFailed(self, what)


class BatchFailed(InputError):
    """Some jobs of a batch failed; the others are finished and a re-run resumes.

    One line: ``2 of 40 recordings failed, the others are done (fix and re-run to resume):
    S001/210003: reason; ...`` (a user error's reason without its type name).

    Attributes:
        report: the batch's report.
    """

    def __init__(self, report: BatchReport, what: str = "jobs") -> None:
        failed = [
            f"{r.key}: {r.reason.removeprefix(f'{InputError.__name__}: ')}"
            for r in report.results
            if r.status == "failed" and r.reason is not None
        ]
        shown = "; ".join(failed[:SHOWN_FAILURES])
        more = f" (and {len(failed) - SHOWN_FAILURES} more)" if len(failed) > SHOWN_FAILURES else ""
        see = "" if report.manifest is None else f", see {report.manifest}"
        super().__init__(
            f"{report.failed} of {len(report.results)} {what} failed, the others are done "
            f"(fix and re-run to resume{see}): {shown}{more}"
        )
        self.report = report


# ---------------------------------------------------------------------- the job, in its worker
def _reason(exc: BaseException, first_line: bool = False) -> str:
    """One line: the exception's type and message (its first line only, if ``first_line``)."""
    message = str(exc).strip()
    message = " ".join((message.splitlines()[0] if first_line and message else message).split())
    if len(message) > 500:
        message = message[:497] + "..."
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _run_job(
    key: str, function: JobFunction, payload: Any, job_errors: ErrorTypes = Exception
) -> JobResult:
    """Call ``function(payload)``; an exception becomes a failed result (an exit does not),
    which carries the exception when it is not one of ``job_errors`` (it stops the batch)."""
    started = time.perf_counter()
    try:
        summary = function(payload)
    except Exception as exc:
        error = None if isinstance(exc, job_errors) else exc
        return JobResult(key, "failed", time.perf_counter() - started, _reason(exc), error=error)
    seconds = time.perf_counter() - started
    try:
        if not isinstance(summary, dict):
            raise TypeError(f"the job function returned {type(summary).__name__}, expected a dict")
        json.dumps(summary)  # the manifest must be able to hold it
    except (TypeError, ValueError) as exc:
        return JobResult(key, "failed", seconds, _reason(exc))
    return JobResult(key, "done", seconds, None, summary)


def _init_worker() -> None:
    # a forked worker inherits the parent's handlers (Ray's turns SIGTERM into SystemExit):
    # the pool terminates its workers with SIGTERM when one of them died
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)  # one process per core: threads inside would oversubscribe


# ---------------------------------------------------------------------- manifest
def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_manifest(output: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The job entries (key -> status, seconds, reason, summary, finished) of the manifest in
    the folder ``output``; empty when there is none.

    Raises:
        InputError: the file is not a batch manifest.
    """
    path = Path(output) / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text())["jobs"]
        if not isinstance(entries, dict):
            raise TypeError(f"'jobs' is a {type(entries).__name__}, expected an object")
        for key, entry in entries.items():
            if not isinstance(entry, dict) or entry.get("status") not in _STATUSES:
                raise ValueError(f"job {key!r} has no status done, skipped or failed")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"{path}: not a batch manifest ({_reason(exc)}); move it away or choose "
            "another output folder"
        ) from None
    return entries


class _Manifest:
    """The manifest file (None: in memory): earlier entries, updated job by job, saved
    atomically."""

    def __init__(self, output: Path | None, desc: str, jobs: int) -> None:
        self.path = None if output is None else output / MANIFEST_NAME
        self.entries = {} if output is None else read_manifest(output)
        self.head = {"desc": desc, "started": _now(), "updated": None, "remaining": jobs}

    def previous_summary(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key, {}).get("summary")

    def record(self, result: JobResult) -> None:
        self.entries[result.key] = {
            "status": result.status,
            "seconds": round(result.seconds, 3),
            "reason": result.reason,
            "summary": result.summary,
            "finished": _now(),
        }
        self.head["remaining"] -= 1

    def save(self) -> None:
        if self.path is None:
            return
        totals = dict.fromkeys(_STATUSES, 0)
        for entry in self.entries.values():
            totals[entry["status"]] += 1
        record = {**self.head, "updated": _now(), "totals": totals, "jobs": self.entries}
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(record, indent=1) + "\n")


# ---------------------------------------------------------------------- executors
Finish = Callable[[JobResult], None]


def _worker_died(key: str, seconds: float, detail: str) -> JobResult:
    return JobResult(key, "failed", seconds, f"{WORKER_DIED}: {detail}")


@dataclass(frozen=True)
class _Plan:
    """How a batch runs its jobs (run_batch's arguments, checked)."""

    function: JobFunction
    workers: int
    retries: int
    job_errors: ErrorTypes
    start_method: str | None


def _after_deaths(
    lost: list[tuple[Job, float]], deaths: dict[str, int], retries: int, finish: Finish
) -> list[Job]:
    """Count a death for each job in flight when the pool broke; fail a job that was alone
    and has died more than ``retries`` times; return the others, to run again one at a time."""
    again = []
    for job, started in lost:
        deaths[job.key] += 1
        if len(lost) == 1 and deaths[job.key] > retries:
            count = deaths[job.key]
            times = "once" if count == 1 else f"{count} times"
            detail = f"its process ended abruptly {times} (killed, out of memory or a crash)"
            finish(_worker_died(job.key, time.perf_counter() - started, detail))
        else:
            again.append(job)
    return again


def _run_pool(todo: list[Job], plan: _Plan, finish: Finish) -> None:
    """Run the jobs in a process pool; recreate it when a worker dies (see the module doc)."""
    function, workers = plan.function, plan.workers
    queue = deque(todo)
    alone: deque[Job] = deque()  # jobs in flight when a worker died: re-run one at a time
    deaths = dict.fromkeys((job.key for job in todo), 0)
    running: dict[Future[JobResult], tuple[Job, float]] = {}
    size = min(workers, len(todo))
    context = multiprocessing.get_context(plan.start_method)

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(size, mp_context=context, initializer=_init_worker)

    pool = new_pool()

    def submit(source: deque[Job]) -> bool:
        """Submit the next job of ``source``; False (job kept) when the pool is broken."""
        job = source.popleft()
        try:
            future = pool.submit(_run_job, job.key, function, job.payload, plan.job_errors)
        except BrokenProcessPool:  # a worker died before we saw it in a future
            source.appendleft(job)
            return False
        running[future] = (job, time.perf_counter())
        return True

    try:
        while queue or alone or running:
            broken = False
            if alone:
                if not running:
                    broken = not submit(alone)
            else:
                while queue and len(running) < workers and not broken:
                    broken = not submit(queue)
            finished = wait(running, return_when=FIRST_COMPLETED)[0] if running else set()
            lost: list[tuple[Job, float]] = []
            while finished:
                for future in finished:
                    job, started = running.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        lost.append((job, started))
                        continue
                    except Exception as exc:  # the payload or result did not pickle
                        result = JobResult(job.key, "failed", 0.0, _reason(exc))
                    finish(result)
                # a broken pool fails every job in flight: collect them all before going on
                broken = broken or bool(lost)
                finished = wait(running)[0] if broken else set()
            if not broken:
                continue
            pool.shutdown(wait=True)
            pool = new_pool()
            alone.extend(_after_deaths(lost, deaths, plan.retries, finish))
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _start_ray(ray: ModuleType, workers: int) -> bool:
    """Initialise Ray unless it is; return whether this call did (and so must shut it down)."""
    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, **quiet)
    else:  # "local": a new instance, even when a `ray start` cluster runs on this machine
        ray.init(address="local", num_cpus=workers, include_dashboard=False, **quiet)
    return True


def _run_ray(todo: list[Job], plan: _Plan, finish: Finish) -> None:
    """Run the jobs as Ray tasks, at most ``workers`` at once, collected as they finish."""
    ray = require("ray", "ray")
    exceptions = ray.exceptions
    died = (exceptions.WorkerCrashedError, exceptions.NodeDiedError, exceptions.OutOfMemoryError)
    workers = plan.workers
    started_ray = _start_ray(ray, workers)
    try:
        task = ray.remote(num_cpus=1, max_retries=plan.retries, retry_exceptions=False)(_run_job)
        function_ref = ray.put(plan.function)
        queue = deque(todo)
        running: dict[Any, tuple[Job, float]] = {}
        try:
            while queue or running:
                while queue and len(running) < workers:
                    job = queue.popleft()
                    ref = task.remote(job.key, function_ref, job.payload, plan.job_errors)
                    running[ref] = (job, time.perf_counter())
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    job, started = running.pop(ref)
                    try:
                        result = ray.get(ref)
                    except died as exc:
                        result = _worker_died(job.key, time.perf_counter() - started, _reason(exc))
                    except exceptions.RayError as exc:  # e.g. the payload did not unpickle
                        cause = getattr(exc, "cause", None) or exc
                        result = JobResult(job.key, "failed", 0.0, _reason(cause, True))
                    finish(result)
        except BaseException:
            for ref in running:
                ray.cancel(ref, force=True)
            raise
    finally:
        if started_ray:
            ray.shutdown()


# ---------------------------------------------------------------------- the batch
def _check_jobs(jobs: Iterable[Job]) -> list[Job]:
    checked = list(jobs)
    keys: set[str] = set()
    for job in checked:
        if not isinstance(job, Job):
            raise InputError(f"jobs: expected Job items, found {type(job).__name__}")
        if not isinstance(job.key, str) or not job.key:
            raise InputError(f"jobs: a job key must be a non-empty string, found {job.key!r}")
        if job.key in keys:
            raise InputError(f"jobs: key {job.key!r} appears twice; job keys must be unique")
        keys.add(job.key)
    return checked


def _check_count(name: str, value: object, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        kind = "a positive integer" if least == 1 else f"an integer >= {least}"
        raise InputError(f"{name}: expected {kind}, found {value!r}")


def check_executor(executor: str, workers: int) -> None:
    """Check an executor and worker count before a stage writes anything.

    Raises:
        InputError: an unknown executor or a worker count below 1.
    """
    if executor not in EXECUTORS:
        raise InputError(f"executor: expected one of {', '.join(EXECUTORS)}, found {executor!r}")
    _check_count("workers", workers, 1)


def _output_folder(output: str | os.PathLike[str] | None) -> Path | None:
    if output is None:
        return None
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file, expected an output folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _execute(todo: list[Job], plan: _Plan, executor: str, finish: Finish) -> None:
    if not todo:
        return
    if executor == "ray":
        _run_ray(todo, plan, finish)
    elif plan.workers == 1:
        for job in todo:
            finish(_run_job(job.key, plan.function, job.payload, plan.job_errors))
    else:
        _run_pool(todo, plan, finish)


def run_batch(
    jobs: Iterable[Job],
    function: JobFunction,
    output: str | os.PathLike[str] | None,
    *,
    is_done: Callable[[str], bool] | None = None,
    executor: str = "local",
    workers: int = 1,
    retries: int = 1,
    progress: bool = True,
    desc: str = "batch",
    job_errors: ErrorTypes = Exception,
    start_method: str | None = None,
) -> BatchReport:
    """Run ``function(job.payload)`` for every job, resumably, keeping ``OUT/manifest.json``.

    A failing job is recorded and the batch goes on; see the module doc for the contract of
    ``function``, the manifest and the executors.

    Args:
        jobs: the jobs; their keys must be unique.
        function: module-level ``function(payload) -> dict`` (a JSON-able summary).
        output: the batch's output folder; created if missing; holds the manifest (None: the
            manifest is kept in memory only).
        is_done: ``is_done(key) -> bool``: true for a job whose outputs are complete; such jobs
            are skipped. None: every job runs.
        executor: ``local`` (this process or a process pool) or ``ray``.
        workers: jobs running at once (``local``: processes; 1 runs in this process).
        retries: times a job whose worker process died is run again (not for exceptions).
        progress: show a progress bar.
        desc: the batch's name, for the progress bar and the manifest.
        job_errors: the exceptions that fail their own job only; any other is recorded, then
            stops the batch and is raised.
        start_method: how a local pool starts its processes (``fork``, ``spawn``, ...; None:
            the platform's default).

    Returns:
        The results of this run's jobs and the manifest's path.

    Raises:
        InputError: bad arguments, an output path that is a file, or an unreadable manifest.
        KeyboardInterrupt: after saving the manifest of the jobs finished so far.
    """
    started = time.perf_counter()
    jobs = _check_jobs(jobs)
    if not callable(function):
        raise InputError(f"function: expected a callable, found {type(function).__name__}")
    check_executor(executor, workers)
    _check_count("retries", retries, 0)
    plan = _Plan(function, workers, retries, job_errors, start_method)
    manifest = _Manifest(_output_folder(output), desc, len(jobs))
    results: dict[str, JobResult] = {}
    bar = None
    try:
        todo = []
        for job in jobs:
            if is_done is not None and is_done(job.key):
                result = JobResult(job.key, "skipped", summary=manifest.previous_summary(job.key))
                results[job.key] = result
                manifest.record(result)
            else:
                todo.append(job)
        manifest.save()
        done_before = len(jobs) - len(todo)
        from tqdm import tqdm  # here, not at the top: the CLI's help imports this module

        bar = tqdm(
            total=len(jobs), initial=done_before, desc=desc, unit="job", disable=not progress
        )
        counts = {"done": 0, "failed": 0}

        def finish(result: JobResult) -> None:
            results[result.key] = result
            manifest.record(result)
            manifest.save()
            counts[result.status] += 1
            bar.set_postfix(counts, refresh=False)
            bar.update()
            if result.error is not None:
                raise result.error

        _execute(todo, plan, executor, finish)
    finally:
        if bar is not None:
            bar.close()
        manifest.save()
    ordered = [results[job.key] for job in jobs if job.key in results]
    return BatchReport(ordered, manifest.path, time.perf_counter() - started)
