"""Tests of the resumable batch runner: in-process, process pool and Ray."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from mmface4d.atomic import atomic_path
from mmface4d.batch import (
    MANIFEST_NAME,
    WORKER_DIED,
    BatchFailed,
    BatchReport,
    Job,
    _start_ray,
    check_executor,
    read_manifest,
    run_batch,
)
from mmface4d.errors import InputError


# ---------------------------------------------------------------------- job functions
# Module level, so that pool workers (forked: they share this process's sys.modules) can unpickle
# them by reference. Ray workers cannot import this module (pytest's --import-mode=importlib
# names it tests.test_batch without putting the project root on sys.path), so the Ray fixture
# registers the module with cloudpickle to ship its functions by value.
def work(payload: dict) -> dict:
    """A recording job: logs its call, acts as told, writes ``OUT/<key>.json`` atomically.

    ``payload``: key, out (folder), n, and optionally action: ``fail`` (raise InputError),
    ``kill`` (SIGKILL its own process), ``kill_once`` (the same, the first time only: a marker
    file tells), ``interrupt`` (raise KeyboardInterrupt), ``disk_full`` (raise OSError),
    ``read_manifest`` (count the done jobs of the manifest), ``bad_summary`` (return something
    that is not JSON-able).
    """
    out = Path(payload["out"])
    with open(out / "calls.log", "a") as log:
        log.write(payload["key"] + "\n")
    action = payload.get("action")
    summary = {"square": payload["n"] ** 2}
    if action == "fail":
        raise InputError(f"{payload['key']}: bad recording, expected a face")
    if action == "kill" or (action == "kill_once" and not (out / "killed.marker").exists()):
        (out / "killed.marker").touch()
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "interrupt":
        raise KeyboardInterrupt
    if action == "disk_full":
        raise OSError(f"{payload['key']}: disk full")
    if action == "read_manifest":
        manifest = json.loads((out / MANIFEST_NAME).read_text())
        summary["done_before"] = manifest["totals"]["done"]
    if action == "bad_summary":
        summary["array"] = {1, 2}
    with atomic_path(out / f"{payload['key']}.json") as tmp:
        tmp.write_text(json.dumps(summary))
    return summary


def make_jobs(out: Path, count: int, actions: dict[int, str] | None = None) -> list[Job]:
    """``count`` jobs ``r0``, ``r1``, ... of :func:`work`; ``actions``: index -> action."""
    out.mkdir(parents=True, exist_ok=True)
    actions = actions or {}
    return [
        Job(f"r{i}", {"key": f"r{i}", "out": str(out), "n": i, "action": actions.get(i)})
        for i in range(count)
    ]


def calls(out: Path) -> list[str]:
    """Keys of the jobs whose function was called, in call order."""
    log = out / "calls.log"
    return log.read_text().split() if log.exists() else []


def finished(out: Path):
    """An ``is_done`` for :func:`work`: its output file exists."""
    return lambda key: (out / f"{key}.json").exists()


def manifest_of(out: Path) -> dict:
    return json.loads((out / MANIFEST_NAME).read_text())


def statuses(report: BatchReport) -> dict[str, str]:
    return {result.key: result.status for result in report.results}


# ---------------------------------------------------------------------- local, in process
def test_all_done_and_manifest(tmp_path):
    jobs = make_jobs(tmp_path, 3)
    report = run_batch(jobs, work, tmp_path, progress=False, desc="square")
    assert statuses(report) == {"r0": "done", "r1": "done", "r2": "done"}
    assert [r.summary for r in report.results] == [{"square": 0}, {"square": 1}, {"square": 4}]
    assert (report.done, report.skipped, report.failed) == (3, 0, 0)
    assert report.summary_line() == f"3 done, 0 skipped, 0 failed (see {tmp_path / MANIFEST_NAME})"
    assert calls(tmp_path) == ["r0", "r1", "r2"]  # in order
    manifest = manifest_of(tmp_path)
    assert manifest["desc"] == "square"
    assert manifest["remaining"] == 0
    assert manifest["totals"] == {"done": 3, "skipped": 0, "failed": 0}
    entry = manifest["jobs"]["r2"]
    assert entry["status"] == "done" and entry["reason"] is None
    assert entry["summary"] == {"square": 4}
    assert entry["seconds"] >= 0 and entry["finished"].endswith("Z")


def test_rerun_skips_done_jobs(tmp_path):
    jobs = make_jobs(tmp_path, 3)
    run_batch(jobs, work, tmp_path, progress=False)
    report = run_batch(jobs, work, tmp_path, is_done=finished(tmp_path), progress=False)
    assert statuses(report) == {"r0": "skipped", "r1": "skipped", "r2": "skipped"}
    assert calls(tmp_path) == ["r0", "r1", "r2"]  # not called again
    assert report.results[2].summary == {"square": 4}  # the earlier run's, from the manifest
    manifest = manifest_of(tmp_path)
    assert manifest["totals"] == {"done": 0, "skipped": 3, "failed": 0}
    assert manifest["jobs"]["r1"]["summary"] == {"square": 1}


def test_failing_job_is_recorded_and_others_complete(tmp_path):
    jobs = make_jobs(tmp_path, 4, {1: "fail", 2: "bad_summary"})
    report = run_batch(jobs, work, tmp_path, progress=False)
    assert statuses(report) == {"r0": "done", "r1": "failed", "r2": "failed", "r3": "done"}
    reason = report.results[1].reason
    assert reason == "InputError: r1: bad recording, expected a face"
    assert report.results[2].reason.startswith("TypeError: ")
    assert report.summary_line().startswith("2 done, 0 skipped, 2 failed")
    entry = manifest_of(tmp_path)["jobs"]["r1"]
    assert entry["status"] == "failed" and entry["reason"] == reason and entry["summary"] is None


def test_failed_job_is_retried_on_rerun(tmp_path):
    run_batch(make_jobs(tmp_path, 3, {1: "fail"}), work, tmp_path, progress=False)
    report = run_batch(  # the input was fixed
        make_jobs(tmp_path, 3), work, tmp_path, is_done=finished(tmp_path), progress=False
    )
    assert statuses(report) == {"r0": "skipped", "r1": "done", "r2": "skipped"}
    assert calls(tmp_path) == ["r0", "r1", "r2", "r1"]
    entry = manifest_of(tmp_path)["jobs"]["r1"]
    assert (entry["status"], entry["reason"], entry["summary"]) == ("done", None, {"square": 1})


def test_rerun_keeps_entries_of_other_jobs(tmp_path):
    run_batch(make_jobs(tmp_path, 3), work, tmp_path, progress=False)
    run_batch(make_jobs(tmp_path, 3)[2:], work, tmp_path, progress=False)
    manifest = manifest_of(tmp_path)
    assert list(manifest["jobs"]) == ["r0", "r1", "r2"]
    assert manifest["totals"]["done"] == 3


def test_manifest_is_rewritten_after_every_job(tmp_path):
    jobs = make_jobs(tmp_path, 3, dict.fromkeys(range(3), "read_manifest"))
    report = run_batch(jobs, work, tmp_path, progress=False)
    assert [r.summary["done_before"] for r in report.results] == [0, 1, 2]


def test_interrupt_stops_the_batch_with_a_valid_manifest(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run_batch(make_jobs(tmp_path, 5, {2: "interrupt"}), work, tmp_path, progress=False)
    assert calls(tmp_path) == ["r0", "r1", "r2"]  # r3, r4 never started
    manifest = manifest_of(tmp_path)
    assert {key: entry["status"] for key, entry in manifest["jobs"].items()} == {
        "r0": "done",
        "r1": "done",
    }
    assert manifest["remaining"] == 3
    report = run_batch(
        make_jobs(tmp_path, 5), work, tmp_path, is_done=finished(tmp_path), progress=False
    )
    assert statuses(report) == dict(r0="skipped", r1="skipped", r2="done", r3="done", r4="done")


def test_progress_bar_shows_counts(tmp_path, capsys):
    run_batch(make_jobs(tmp_path, 2, {1: "fail"}), work, tmp_path, desc="square")
    err = capsys.readouterr().err
    assert "square" in err and "done=1" in err and "failed=1" in err
    run_batch(make_jobs(tmp_path, 2), work, tmp_path, progress=False)
    assert capsys.readouterr().err == ""


def test_an_error_outside_job_errors_stops_the_batch_after_recording_it(tmp_path):
    jobs = make_jobs(tmp_path, 4, {1: "fail", 2: "disk_full"})
    with pytest.raises(OSError, match="r2: disk full"):
        run_batch(jobs, work, tmp_path, job_errors=InputError, progress=False)
    assert calls(tmp_path) == ["r0", "r1", "r2"]  # r3 never started
    entries = read_manifest(tmp_path)
    assert {key: entry["status"] for key, entry in entries.items()} == {
        "r0": "done",
        "r1": "failed",  # an InputError: its own job only
        "r2": "failed",
    }
    assert entries["r2"]["reason"] == "OSError: r2: disk full"
    report = run_batch(
        make_jobs(tmp_path, 4),
        work,
        tmp_path,
        is_done=finished(tmp_path),
        job_errors=InputError,
        progress=False,
    )
    assert statuses(report) == dict(r0="skipped", r1="done", r2="done", r3="done")


def test_failure_report_names_the_failed_jobs(tmp_path):
    report = run_batch(
        make_jobs(tmp_path, 8, dict.fromkeys(range(1, 8), "fail")), work, tmp_path, progress=False
    )
    assert report.failure_lines()[0] == "r1: InputError: r1: bad recording, expected a face"
    with pytest.raises(BatchFailed) as info:
        report.check("recordings")
    message = str(info.value)
    assert message.startswith("7 of 8 recordings failed, the others are done (fix and re-run")
    assert str(tmp_path / MANIFEST_NAME) in message and "\n" not in message
    assert "r1: r1: bad recording, expected a face; r2: " in message  # no type for user errors
    assert message.endswith("(and 2 more)") and isinstance(info.value, InputError)
    assert info.value.report is report
    run_batch(make_jobs(tmp_path, 2), work, tmp_path, progress=False).check()  # no failure


def test_without_an_output_folder_the_manifest_stays_in_memory(tmp_path):
    jobs = make_jobs(tmp_path / "work", 2, {1: "fail"})
    report = run_batch(jobs, work, None, progress=False)
    assert statuses(report) == {"r0": "done", "r1": "failed"} and report.manifest is None
    assert report.summary_line() == "1 done, 0 skipped, 1 failed"
    assert not (tmp_path / "work" / MANIFEST_NAME).exists()
    assert read_manifest(tmp_path / "work") == {}


def test_check_executor_refuses_before_anything_runs():
    check_executor("ray", 3)
    with pytest.raises(InputError, match="executor: expected one of local, ray, found 'dask'"):
        check_executor("dask", 1)
    with pytest.raises(InputError, match="workers: expected a positive integer, found 0"):
        check_executor("local", 0)


# ---------------------------------------------------------------------- local, process pool
def test_pool_gives_the_in_process_results(tmp_path):
    serial = run_batch(
        make_jobs(tmp_path / "a", 5, {3: "fail"}), work, tmp_path / "a", progress=False
    )
    pooled = run_batch(
        make_jobs(tmp_path / "b", 5, {3: "fail"}), work, tmp_path / "b", workers=2, progress=False
    )
    assert [(r.key, r.status, r.reason, r.summary) for r in pooled.results] == [
        (r.key, r.status, r.reason, r.summary) for r in serial.results
    ]
    assert sorted(calls(tmp_path / "b")) == ["r0", "r1", "r2", "r3", "r4"]


@pytest.mark.parametrize("retries", [0, 1])
def test_pool_worker_death_fails_only_its_job(tmp_path, retries):
    jobs = make_jobs(tmp_path, 6, {1: "kill"})
    report = run_batch(jobs, work, tmp_path, workers=2, retries=retries, progress=False)
    assert statuses(report) == {f"r{i}": "failed" if i == 1 else "done" for i in range(6)}
    assert report.results[1].reason.startswith(WORKER_DIED)
    assert manifest_of(tmp_path)["jobs"]["r1"]["reason"].startswith(WORKER_DIED)
    if retries == 1:
        assert calls(tmp_path).count("r1") == 2  # run once more after its worker died


def test_pool_job_killed_once_is_retried(tmp_path):
    report = run_batch(
        make_jobs(tmp_path, 4, {2: "kill_once"}), work, tmp_path, workers=2, progress=False
    )
    assert report.done == 4
    assert calls(tmp_path).count("r2") == 2


def test_pool_error_outside_job_errors_stops_the_batch(tmp_path):
    jobs = make_jobs(tmp_path, 6, {0: "disk_full"})
    with pytest.raises(OSError, match="r0: disk full"):
        run_batch(jobs, work, tmp_path, workers=2, job_errors=InputError, progress=False)
    entries = read_manifest(tmp_path)
    assert entries["r0"]["status"] == "failed" and entries["r0"]["reason"].startswith("OSError")
    assert len(entries) < 6  # the jobs not started yet never ran


def test_pool_interrupt_stops_the_batch(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run_batch(
            make_jobs(tmp_path, 6, {1: "interrupt"}), work, tmp_path, workers=2, progress=False
        )
    # how many others finished first depends on the scheduling; the manifest is valid all the same
    manifest = manifest_of(tmp_path)
    assert "r1" not in manifest["jobs"] and manifest["remaining"] >= 1
    assert all(entry["status"] == "done" for entry in manifest["jobs"].values())


# ---------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"executor": "dask"}, "executor: expected one of local, ray, found 'dask'"),
        ({"workers": 0}, "workers: expected a positive integer, found 0"),
        ({"workers": True}, "workers: expected a positive integer, found True"),
        ({"retries": -1}, "retries: expected an integer >= 0, found -1"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(InputError) as info:
        run_batch(make_jobs(tmp_path, 1), work, tmp_path, progress=False, **kwargs)
    assert str(info.value) == message


def test_bad_jobs_and_output(tmp_path):
    jobs = make_jobs(tmp_path, 2)
    with pytest.raises(InputError, match="key 'r0' appears twice"):
        run_batch([jobs[0], jobs[1], jobs[0]], work, tmp_path, progress=False)
    with pytest.raises(InputError, match="expected Job items, found tuple"):
        run_batch([("r0", {})], work, tmp_path, progress=False)
    with pytest.raises(InputError, match="expected a callable"):
        run_batch(jobs, "work", tmp_path, progress=False)
    file = tmp_path / "out.txt"
    file.write_text("")
    with pytest.raises(InputError, match="out.txt: is a file, expected an output folder"):
        run_batch(jobs, work, file, progress=False)
    for text in ["{not json", '{"jobs": []}', '{"jobs": {"r0": {"status": "lost"}}}']:
        (tmp_path / MANIFEST_NAME).write_text(text)
        with pytest.raises(InputError, match="manifest.json: not a batch manifest"):
            run_batch(jobs, work, tmp_path, progress=False)
    assert calls(tmp_path) == []


# ---------------------------------------------------------------------- Ray
class FakeRay(SimpleNamespace):
    """Records ``ray.init`` calls."""

    def __init__(self, initialized: bool) -> None:
        super().__init__(initialized=initialized, calls=[])

    def is_initialized(self) -> bool:
        return self.initialized

    def init(self, **kwargs) -> None:
        self.calls.append(kwargs)


def test_start_ray_local_cluster_or_reuse(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray = FakeRay(initialized=False)
    assert _start_ray(ray, workers=3) is True
    assert ray.calls == [
        {
            "address": "local",
            "num_cpus": 3,
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": logging.ERROR,
        }
    ]
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    ray = FakeRay(initialized=False)
    assert _start_ray(ray, workers=3) is True
    assert ray.calls[0]["address"] == "ray://head:10001" and "num_cpus" not in ray.calls[0]
    ray = FakeRay(initialized=True)
    assert _start_ray(ray, workers=3) is False and ray.calls == []


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray with 2 CPUs for all Ray tests (starting Ray takes seconds)."""
    ray = pytest.importorskip("ray")
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # see the job functions
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
    )
    yield ray
    ray.shutdown()
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def test_ray_runs_jobs_and_records_failures(ray_session, tmp_path):
    jobs = make_jobs(tmp_path, 4, {1: "fail"})
    report = run_batch(jobs, work, tmp_path, executor="ray", workers=2, progress=False)
    assert statuses(report) == {"r0": "done", "r1": "failed", "r2": "done", "r3": "done"}
    assert report.results[1].reason == "InputError: r1: bad recording, expected a face"
    assert report.results[3].summary == {"square": 9}
    assert calls(tmp_path).count("r1") == 1  # exceptions are not retried
    assert manifest_of(tmp_path)["totals"] == {"done": 3, "skipped": 0, "failed": 1}
    assert ray_session.is_initialized()  # reused, not shut down


def test_ray_error_outside_job_errors_stops_the_batch(ray_session, tmp_path):
    jobs = make_jobs(tmp_path, 3, {0: "disk_full"})
    with pytest.raises(OSError, match="r0: disk full"):
        run_batch(
            jobs, work, tmp_path, executor="ray", workers=1, job_errors=InputError, progress=False
        )
    assert read_manifest(tmp_path)["r0"]["status"] == "failed"


def test_ray_retries_a_killed_worker(ray_session, tmp_path):
    jobs = make_jobs(tmp_path, 3, {1: "kill_once"})
    report = run_batch(jobs, work, tmp_path, executor="ray", workers=2, progress=False)
    assert statuses(report) == {"r0": "done", "r1": "done", "r2": "done"}
    assert calls(tmp_path).count("r1") == 2


def test_ray_worker_death_without_retries_fails_its_job(ray_session, tmp_path):
    jobs = make_jobs(tmp_path, 3, {1: "kill"})
    report = run_batch(jobs, work, tmp_path, executor="ray", workers=2, retries=0, progress=False)
    assert statuses(report) == {"r0": "done", "r1": "failed", "r2": "done"}
    assert report.results[1].reason.startswith(WORKER_DIED)
    assert calls(tmp_path).count("r1") == 1
