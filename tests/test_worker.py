"""The worker under its supervisor: hard stops that really stop code blocked in C, and one worker per box."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, demo_data

from jobspecs.contracts import Commit, ReferenceImage, RunInfo
from remote.bundle import sha256_file
from remote.layout import JobPaths, stage_job
from remote.status import read_status
from remote.supervise import EXIT_FAILED, EXIT_STOPPED, supervise, supervise_and_record
from remote.worker import EXIT_BUSY, worker_lock

HUNG_WORKER = str(REPO / "tests" / "hung_worker.py")


def make_job(root: Path, **guardrails: float) -> JobPaths:
    data = demo_data()
    data["shots"] = [dict(shot, duration_s=5) for shot in data["shots"]]
    data["stitch"]["preset"] = "ultrafast"
    data["guardrails"] = guardrails
    reference = REPO / "jobspecs" / data["reference_image"]
    run_info = RunInfo(
        run_id="test-run",
        created_at="2026-01-01T00:00:00Z",
        spec_file="demo.yaml",
        overrides=[],
        reference=ReferenceImage(file=reference.name, sha256=sha256_file(reference)),
        commit=Commit(sha=None),
    )
    paths = JobPaths(root / "box" / "test-run")
    stage_job(paths.job_dir, data, reference, run_info)
    return paths


def assert_killed_with_clip_0_kept(paths: JobPaths, reason: str) -> None:
    status = read_status(paths.run_dir)
    assert status.state == "stopped" and reason in status.reason, status
    log = json.loads(paths.log(0).read_text())  # clip 0 finished before the hang: all of it stays
    assert sha256_file(paths.clip(0)) == log["clip_file"]["sha256"]
    assert sha256_file(paths.last_frame(0)) == log["last_frame"]["sha256"]
    assert not paths.clip(1).exists() and not paths.log(1).exists()
    assert list(paths.run_dir.rglob("*.part")) == []
    with pytest.raises(ProcessLookupError):
        os.kill(status.worker_pid, 0)  # the worker is gone, not left sleeping in C
    progress = (paths.run_dir / "status" / "progress.log").read_text()
    assert "| stopped | clip=1 | msg=" in progress


def test_a_clip_blocked_in_c_is_killed_at_the_clip_limit(tmp_path, worker_env) -> None:
    paths = make_job(tmp_path, clip_limit_s=8)
    rc = supervise(paths.job_dir, worker_argv=[sys.executable, HUNG_WORKER, str(paths.job_dir)])
    assert rc == EXIT_STOPPED
    assert_killed_with_clip_0_kept(paths, "clip 1 ran past the clip limit of 8 s")


def test_the_run_limit_kills_a_run_that_overruns(tmp_path, worker_env) -> None:
    paths = make_job(tmp_path, clip_limit_s=600, run_limit_s=25)
    rc = supervise(paths.job_dir, worker_argv=[sys.executable, HUNG_WORKER, str(paths.job_dir)])
    assert rc == EXIT_STOPPED
    assert_killed_with_clip_0_kept(paths, "the run went past its limit of 25 s")


# a worker that ends "generated" and then takes a while to exit (its Prefect's teardown); with an argument, the job
# dir is removed under it first (a laptop that released the box before the supervisor had exited)
ENDING_WORKER = """
import shutil, sys, time
from pathlib import Path
from remote.status import update_status
job_dir = Path(sys.argv[1])
update_status(job_dir / "run", state="generated", clip=None)
if len(sys.argv) > 2:
    shutil.rmtree(job_dir)
time.sleep(1.5)
"""


@pytest.fixture
def sigterm_restored():
    handler = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, handler)


def test_the_supervisor_exit_code_is_the_last_write_and_a_removed_job_dir_stays_removed(
    tmp_path, monkeypatch, sigterm_restored
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    paths = make_job(tmp_path)
    assert supervise_and_record(paths.job_dir, [sys.executable, "-c", ENDING_WORKER, str(paths.job_dir)]) == 0
    status = read_status(paths.run_dir)
    assert (status.state, status.exit_code) == ("generated", 0)  # written after the worker had exited

    removed = make_job(tmp_path / "removed")
    argv = [sys.executable, "-c", ENDING_WORKER, str(removed.job_dir), "remove"]
    assert supervise_and_record(removed.job_dir, argv) == EXIT_FAILED
    assert not removed.job_dir.exists()  # not made again by the supervisor's last writes


def test_a_second_worker_on_the_same_box_refuses_to_start(tmp_path) -> None:
    first = make_job(tmp_path)
    second = JobPaths(first.job_dir.parent / "second-run")
    stage_job(second.job_dir, demo_data(), REPO / "jobspecs" / "espresso.png", {"run_id": "second-run"})
    with worker_lock(first):
        done = subprocess.run(
            [sys.executable, "-m", "remote.worker", str(second.job_dir)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
        )
    assert done.returncode == EXIT_BUSY
    assert "another worker holds" in done.stderr and "run=test-run" in done.stderr
    assert not second.clip(0).exists()
