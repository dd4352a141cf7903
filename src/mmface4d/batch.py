"""Resumable batch jobs over many recordings, in local processes or on a Ray cluster.

``run_batch(jobs, function, OUT)`` calls ``function(job.payload)`` once for every :class:`Job`
and keeps a manifest of what happened in ``OUT/manifest.json``. The stages that process a whole
dataset (reconstruction, and later others) build their jobs and hand them to it; the runner owns
the scheduling, the failure handling, the progress bar and the manifest, the job function owns
the work.

The contract of a job function:

- it is defined at module level in an importable module (worker processes and Ray workers
  receive it pickled by reference), takes the job's payload (a picklable value) and returns a
  small JSON-able dict, its summary (anything else fails the job);
- it is pure and idempotent: it depends on its payload only, and running it again rewrites the
  same outputs, so a job that was interrupted, retried or run twice does no harm;
- it writes every output atomically (:func:`mmface4d.atomic.atomic_path`), the one that marks a
  finished recording last, so that ``is_done`` never mistakes a half-written recording for a
  finished one;
- it raises on failure (:class:`~mmface4d.errors.InputError` for bad input). Any exception fails
  its own job only: the reason (one line, the exception type and message) goes to the manifest
  and the batch goes on. ``KeyboardInterrupt`` (and ``SystemExit``) stops the batch, after the
  manifest is saved.

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

Resumption: re-running the same batch into the same folder keeps the manifest's entries and
updates those of this run's jobs. Jobs for which ``is_done(key)`` is true are skipped without
calling the function (status ``skipped``; a summary from an earlier run is kept); all others
run, previously failed ones included. Without ``is_done`` every job runs again.

Executors (``workers``: jobs running at once):

- ``local``, 1 worker: in this process, in order.
- ``local``, N workers: a :class:`~concurrent.futures.ProcessPoolExecutor` of N processes with
  one torch thread each. A process that dies (killed, out of memory, a crash in native code)
  breaks the pool and loses every job in flight with it; the pool is recreated and those jobs
  run again one at a time, which tells the job that kills its worker from the ones that only
  shared the pool with it. A job is failed with "worker died" once its worker died more than
  ``retries`` times, the last time while running alone, so no job fails for another's crash.
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
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from tqdm import tqdm

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
    """

    key: str
    status: JobStatus
    seconds: float = 0.0
    reason: str | None = None
    summary: dict[str, Any] | None = None


@dataclass
class BatchReport:
    """The outcome of :func:`run_batch`.

    Attributes:
        results: one result per job that finished in this run, in the order of the jobs.
        manifest: path of the manifest.
        seconds: wall time of the run.
    """

    results: list[JobResult]
    manifest: Path
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
        return (
            f"{self.done} done, {self.skipped} skipped, {self.failed} failed (see {self.manifest})"
        )


# ---------------------------------------------------------------------- the job, in its worker
def _reason(exc: BaseException, first_line: bool = False) -> str:
    """One line: the exception's type and message (its first line only, if ``first_line``)."""
    message = str(exc).strip()
    message = " ".join((message.splitlines()[0] if first_line and message else message).split())
    if len(message) > 500:
        message = message[:497] + "..."
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _run_job(key: str, function: JobFunction, payload: Any) -> JobResult:
    """Call ``function(payload)``; an exception becomes a failed result (an exit does not)."""
    started = time.perf_counter()
    try:
        summary = function(payload)
        if not isinstance(summary, dict):
            raise TypeError(f"the job function returned {type(summary).__name__}, expected a dict")
        json.dumps(summary)  # the manifest must be able to hold it
    except Exception as exc:
        return JobResult(key, "failed", time.perf_counter() - started, _reason(exc))
    return JobResult(key, "done", time.perf_counter() - started, None, summary)


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


class _Manifest:
    """The manifest file: earlier entries, updated job by job, saved atomically."""

    def __init__(self, path: Path, desc: str, jobs: int) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        if path.is_file():
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
            self.entries = entries
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


def _run_pool(
    todo: list[Job], function: JobFunction, workers: int, retries: int, finish: Finish
) -> None:
    """Run the jobs in a process pool; recreate it when a worker dies (see the module doc)."""
    queue = deque(todo)
    alone: deque[Job] = deque()  # jobs in flight when a worker died: re-run one at a time
    deaths = dict.fromkeys((job.key for job in todo), 0)
    running: dict[Future[JobResult], tuple[Job, float]] = {}
    size = min(workers, len(todo))
    pool = ProcessPoolExecutor(size, initializer=_init_worker)

    def submit(source: deque[Job]) -> bool:
        """Submit the next job of ``source``; False (job kept) when the pool is broken."""
        job = source.popleft()
        try:
            future = pool.submit(_run_job, job.key, function, job.payload)
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
                        finish(future.result())
                    except BrokenProcessPool:
                        lost.append((job, started))
                    except Exception as exc:  # the payload or result did not pickle
                        finish(JobResult(job.key, "failed", 0.0, _reason(exc)))
                # a broken pool fails every job in flight: collect them all before going on
                broken = broken or bool(lost)
                finished = wait(running)[0] if broken else set()
            if not broken:
                continue
            pool.shutdown(wait=True)
            pool = ProcessPoolExecutor(size, initializer=_init_worker)
            for job, started in lost:
                deaths[job.key] += 1
                if len(lost) == 1 and deaths[job.key] > retries:
                    count = deaths[job.key]
                    times = "once" if count == 1 else f"{count} times"
                    detail = (
                        f"its process ended abruptly {times} (killed, out of memory or a crash)"
                    )
                    finish(_worker_died(job.key, time.perf_counter() - started, detail))
                else:
                    alone.append(job)
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


def _run_ray(
    todo: list[Job], function: JobFunction, workers: int, retries: int, finish: Finish
) -> None:
    """Run the jobs as Ray tasks, at most ``workers`` at once, collected as they finish."""
    ray = require("ray", "ray")
    exceptions = ray.exceptions
    died = (exceptions.WorkerCrashedError, exceptions.NodeDiedError, exceptions.OutOfMemoryError)
    started_ray = _start_ray(ray, workers)
    try:
        task = ray.remote(num_cpus=1, max_retries=retries, retry_exceptions=False)(_run_job)
        function_ref = ray.put(function)
        queue = deque(todo)
        running: dict[Any, tuple[Job, float]] = {}
        try:
            while queue or running:
                while queue and len(running) < workers:
                    job = queue.popleft()
                    ref = task.remote(job.key, function_ref, job.payload)
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


def run_batch(
    jobs: Iterable[Job],
    function: JobFunction,
    output: str | os.PathLike[str],
    *,
    is_done: Callable[[str], bool] | None = None,
    executor: str = "local",
    workers: int = 1,
    retries: int = 1,
    progress: bool = True,
    desc: str = "batch",
) -> BatchReport:
    """Run ``function(job.payload)`` for every job, resumably, keeping ``OUT/manifest.json``.

    A failing job is recorded and the batch goes on; see the module doc for the contract of
    ``function``, the manifest and the executors.

    Args:
        jobs: the jobs; their keys must be unique.
        function: module-level ``function(payload) -> dict`` (a JSON-able summary).
        output: the batch's output folder; created if missing; holds the manifest.
        is_done: ``is_done(key) -> bool``: true for a job whose outputs are complete; such jobs
            are skipped. None: every job runs.
        executor: ``local`` (this process or a process pool) or ``ray``.
        workers: jobs running at once (``local``: processes; 1 runs in this process).
        retries: times a job whose worker process died is run again (not for exceptions).
        progress: show a progress bar.
        desc: the batch's name, for the progress bar and the manifest.

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
    if executor not in EXECUTORS:
        raise InputError(f"executor: expected one of {', '.join(EXECUTORS)}, found {executor!r}")
    _check_count("workers", workers, 1)
    _check_count("retries", retries, 0)
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file, expected an output folder")
    out.mkdir(parents=True, exist_ok=True)
    manifest = _Manifest(out / MANIFEST_NAME, desc, len(jobs))
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
        bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc=desc, unit="job",
                   disable=not progress)  # fmt: skip
        counts = {"done": 0, "failed": 0}

        def finish(result: JobResult) -> None:
            results[result.key] = result
            manifest.record(result)
            manifest.save()
            counts[result.status] += 1
            bar.set_postfix(counts, refresh=False)
            bar.update()

        if not todo:
            pass
        elif executor == "ray":
            _run_ray(todo, function, workers, retries, finish)
        elif workers == 1:
            for job in todo:
                finish(_run_job(job.key, function, job.payload))
        else:
            _run_pool(todo, function, workers, retries, finish)
    finally:
        if bar is not None:
            bar.close()
        manifest.save()
    ordered = [results[job.key] for job in jobs if job.key in results]
    return BatchReport(ordered, manifest.path, time.perf_counter() - started)
