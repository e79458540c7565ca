"""Tasks that work on the box: upload the job, start and follow the worker, stitch, bundle, fetch, release."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from jobspecs import LoadedSpec
from provisioning.base import Box, BoxError, Provider
from remote.bundle import sha256_file
from remote.layout import stage_job
from remote.status import TERMINAL_STATES, now_iso

POLL_S = 1.0
START_TIMEOUT_S = 180  # the supervisor must have written its first status by then
STOP_GRACE_S = 60  # the laptop's deadline is the run limit plus this


@task(name="acquire-box", cache_policy=NO_CACHE)
def acquire_box(provider: Provider, run_id: str) -> Box:
    box = provider.acquire(run_id)
    get_run_logger().info(f"box: {box.provider} at {box.root}")
    return box


@task(name="upload-job", cache_policy=NO_CACHE)
def upload_job(box: Box, job: LoadedSpec, run_id: str, commit: dict) -> str:
    """input/run.json, input/reference.<ext> and run/job.yaml (the resolved spec) onto the box."""
    job_dir = box.job_dir(run_id)
    run_info = {
        "run_id": run_id,
        "created_at": now_iso(),
        "spec_file": job.source.name,
        "overrides": list(job.overrides),
        "reference": {"file": job.reference.name, "sha256": sha256_file(job.reference)},
        "commit": commit,
    }
    resolved = job.spec.model_dump(mode="json") | {"reference_image": job.reference.name}
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / run_id
        for path in stage_job(staged, resolved, job.reference, run_info):
            box.transport.put(path, f"{job_dir}/{path.relative_to(staged).as_posix()}")
    get_run_logger().info(f"uploaded the job to {job_dir}")
    return job_dir


@task(name="start-worker", cache_policy=NO_CACHE)
def start_worker(box: Box, job_dir: str) -> int:
    """The supervisor (and under it the worker), detached: it outlives this process and any SSH drop."""
    argv = [box.python, "-m", "remote.supervise", job_dir]
    pid = box.transport.start_detached(argv, log=f"{job_dir}/supervisor.log", env=box.env)
    get_run_logger().info(f"worker supervisor started (pid {pid})")
    return pid


class ClipBar:
    """A progress bar per clip in the terminal (plain log lines where there is no terminal)."""

    def __init__(self, total: int) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=Console(stderr=True), disable=not sys.stderr.isatty(),
        )  # fmt: skip
        self.run = self.progress.add_task("clips", total=total)
        self.clip_task: int | None = None
        self.clip: int | None = None

    def __enter__(self) -> ClipBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, status: dict) -> None:
        self.progress.update(self.run, completed=status.get("clips_done", 0))
        clip = status.get("clip") if status.get("state") == "generating" else None
        if clip != self.clip and self.clip_task is not None:
            self.progress.update(self.clip_task, completed=1)
        if clip is not None and clip != self.clip:
            self.clip_task = self.progress.add_task(f"clip {clip}", total=1)
        self.clip = clip


@task(name="follow-worker", cache_policy=NO_CACHE)
def follow_worker(box: Box, job_dir: str, clips_total: int, run_limit_s: float) -> dict:
    """Mirror the box's progress.log into the run's logs until the worker ends; enforce the run deadline here too
    (the box's supervisor is the first line; this one holds if the box's clock or supervisor fails)."""
    logger = get_run_logger()
    status_path, progress_path = f"{job_dir}/run/status/status.json", f"{job_dir}/run/status/progress.log"
    start, seen, stop_sent = time.monotonic(), 0, None
    deadline = start + run_limit_s + STOP_GRACE_S
    with ClipBar(clips_total) as bar:
        while True:
            text = box.transport.read_text(progress_path) or ""
            complete = text[: text.rfind("\n") + 1]
            for line in complete[seen:].splitlines():
                logger.info(line)
            seen = len(complete)
            status = json.loads(box.transport.read_text(status_path) or "{}")
            bar.update(status)
            if status.get("state") in TERMINAL_STATES:
                return status
            elapsed = time.monotonic() - start
            if not status and elapsed > START_TIMEOUT_S:
                log = box.transport.read_text(f"{job_dir}/supervisor.log") or "(empty)"
                raise BoxError(f"the worker did not start within {START_TIMEOUT_S} s:\n{log[-2000:]}")
            if time.monotonic() > deadline and stop_sent is None:
                logger.error(f"the run passed its limit of {run_limit_s:g} s here; stopping the worker")
                box.python_module("remote.supervise", "--stop", job_dir, timeout_s=60)
                stop_sent = time.monotonic()
            if stop_sent is not None and time.monotonic() - stop_sent > STOP_GRACE_S:
                return status | {"state": "stopped", "reason": "stopped by the local deadline; the box did not answer"}
            time.sleep(POLL_S)


@task(name="stitch", cache_policy=NO_CACHE)
def stitch_on_box(box: Box, job_dir: str) -> dict:
    summary = json.loads(box.python_module("remote.stitch", job_dir, timeout_s=3600))
    get_run_logger().info(f"stitched {summary['clips']} clips at {summary['size']}, {summary['fps']} fps")
    return summary


@task(name="bundle", cache_policy=NO_CACHE)
def bundle_on_box(box: Box, job_dir: str) -> dict:
    bundle = json.loads(box.python_module("remote.bundle", job_dir, timeout_s=3600))
    get_run_logger().info(f"bundled {bundle['files']} files into {bundle['archive']} (sha256 {bundle['sha256']})")
    return bundle


@task(name="fetch-bundle", cache_policy=NO_CACHE)
def fetch_bundle(box: Box, job_dir: str, archive_name: str, out_dir: Path) -> Path:
    local = out_dir / archive_name
    box.transport.get(f"{job_dir}/{archive_name}", local)
    box.transport.get(f"{job_dir}/{archive_name}.sha256", Path(f"{local}.sha256"))
    get_run_logger().info(f"fetched {local}")
    return local


@task(name="release-box", cache_policy=NO_CACHE)
def release_box(provider: Provider, box: Box, run_id: str, fetched: bool) -> None:
    get_run_logger().info(provider.release(box, run_id, fetched))
