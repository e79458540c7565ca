"""Tasks that work on the box: set it up, upload the job, start the worker and follow it, stitch, bundle, fetch.
(Getting the box and giving it back: tasks/providers.py.)"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import yaml
from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import remote
from jobspecs import LoadedSpec, validate
from jobspecs.contracts import (
    TERMINAL_STATES,
    BundleSummary,
    ClipLog,
    Commit,
    PrefetchResult,
    ReferenceImage,
    RunInfo,
    StitchSummary,
    WorkerStatus,
)
from jobspecs.load import open_reference, reference_png
from jobspecs.plan import RunPrediction, predict_run
from provisioning.base import Box, BoxError, Interrupted
from provisioning.polling import poll_until
from remote.bundle import sha256_file
from remote.layout import clip_files, stage_job
from remote.status import PARENT_TASK_RUN, now_iso, update_status
from tasks.eta import Eta, duration_text, eta
from tasks.job import REPO

SETUP_SCRIPT = Path(remote.__file__).parent / "setup.sh"
POLL_S = 1.0
START_TIMEOUT_S = 180  # the supervisor must have written its first status by then
STOP_GRACE_S = 60  # the laptop's deadline is the run limit plus this
UNREACHABLE_S = 120  # a box that doesn't answer this long is lost
EXIT_WAIT_S = 60  # after the worker's last state, how long the supervisor's exit_code is waited for


@task(name="upload-job", cache_policy=NO_CACHE)
def upload_job(
    box: Box, job: LoadedSpec, run_id: str, commit: dict, finished: Path | None = None, keep: Path | None = None
) -> str:
    """input/run.json, input/reference.png (the reference normalised) and run/job.yaml (the resolved spec) onto the
    box, and, when resuming, the finished clips kept from the failed run (the worker skips them and continues from
    the last one)."""
    job_dir = box.job_dir(run_id)
    reference = open_reference(job.reference, job.spec.reference_image, job.spec.size)
    png = reference_png(job.reference, reference)  # what the box gets: upright, 8-bit RGB, opaque
    run_info = RunInfo(
        run_id=run_id,
        created_at=now_iso(),
        spec_file=job.source.name,
        overrides=list(job.overrides),
        # sha256: of input/reference.png, the image clip 0 starts from (the file's own unless it was normalised)
        reference=ReferenceImage(
            file=job.reference.name,
            sha256=hashlib.sha256(png).hexdigest(),
            original_sha256=sha256_file(job.reference),
            normalised=not reference.plain,
            notes=list(reference.notes),
        ),
        commit=Commit.model_validate(commit),
    )
    for note in reference.notes:
        get_run_logger().warning(note)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / run_id
        for path in stage_job(staged, resolved_spec(job), png, run_info):
            box.transport.put(path, f"{job_dir}/{path.relative_to(staged).as_posix()}")
    if keep is not None:  # the spec beside the kept clips, so a later run can resume from them
        keep.mkdir(parents=True, exist_ok=True)
        (keep / "job.yaml").write_text(yaml.safe_dump(resolved_spec(job), sort_keys=False, allow_unicode=True))
    resumed = finished_clip_files(finished) if finished else []
    for path in resumed:
        box.transport.put(path, f"{job_dir}/run/{path.relative_to(finished).as_posix()}")
    get_run_logger().info(
        f"uploaded the job to {job_dir}" + (f", resuming after {len(resumed) // 3} clips" if resumed else "")
    )
    return job_dir


def resolved_spec(job: LoadedSpec) -> dict:
    """What job.yaml holds: the validated spec, the reference image by its file name."""
    return job.spec.model_dump(mode="json") | {"reference_image": job.reference.name}


def kept_clip_count(folder: Path | None) -> int:
    """Finished clips in a folder with a run's layout (a run dir, a failed run's .partial): its clip logs."""
    return len(list((folder / "logs").glob("log_*.json"))) if folder is not None else 0


def finished_clip_files(folder: Path) -> list[Path]:
    """Clip, last frame and log of each finished clip kept in `folder` (a failed run's .partial), in order."""
    files, index = [], 0
    while (folder / clip_files(index)[2]).exists():
        clip, frame, log_file = (folder / name for name in clip_files(index))
        log = ClipLog.model_validate_json(log_file.read_text())
        if sha256_file(clip) != log.clip_file.sha256 or sha256_file(frame) != log.last_frame.sha256:
            raise BoxError(f"{clip.name}: kept copy does not match its log's sha256; not resuming from it")
        files += [clip, frame, log_file]
        index += 1
    return files


def wheel_sources() -> list[str]:
    """What the wheel is built from: pyproject.toml, the README it names, and the packages it includes."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    return ["pyproject.toml", project["project"]["readme"], *(pattern.rstrip("*") for pattern in packages)]


@task(name="build-wheel", cache_policy=NO_CACHE)
def build_wheel(dest: Path) -> Path:
    """The project as a wheel, from this checkout (whose commit the run records). Built from a private copy of the
    sources: setuptools writes build/ and *.egg-info/ into the folder it builds, and runs started together from one
    checkout (the overnight's three, a user's two terminals) would otherwise build in the same folder at once."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="shootout-wheel-") as tmp:
        source = Path(tmp) / "i2v-shootout"
        for name in wheel_sources():
            if (REPO / name).is_dir():
                shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                source.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / name, source / name)
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dest), str(source)]
        # fixed timestamps make the wheel reproducible: the same code gives the same bytes, and setup.sh skips it
        environment = os.environ | {"SOURCE_DATE_EPOCH": "315532800"}
        done = subprocess.run(command, capture_output=True, text=True, env=environment)
    if done.returncode:
        raise BoxError(f"building the wheel failed:\n{done.stderr[-2000:]}")
    return next(dest.glob("i2v_shootout-*.whl"))


@task(name="setup-box", cache_policy=NO_CACHE)
def setup_box(box: Box, wheel: Path) -> None:
    """remote/setup.sh on the box: a venv with the wheel and its pinned `remote` extra; its log's tail on failure."""
    logger = get_run_logger()
    setup_dir = f"{box.root}/setup"
    box.transport.put(wheel, f"{setup_dir}/{wheel.name}")
    box.transport.put(SETUP_SCRIPT, f"{setup_dir}/setup.sh")
    log = f"{setup_dir}/setup.log"
    argv = ["bash", f"{setup_dir}/setup.sh", f"{setup_dir}/{wheel.name}", box.venv, log]
    done = box.transport.run(argv, timeout_s=3600, env=box.env)
    tail = (box.transport.read_text(log) or "").strip().splitlines()[-20:]
    if done.returncode:
        raise BoxError(f"setup.sh failed on the box (exit {done.returncode}); the end of {log}:\n" + "\n".join(tail))
    logger.info(f"box set up: {' | '.join(tail[-2:])}")


@task(name="prefetch-model", cache_policy=NO_CACHE)
def prefetch_model(box: Box, model_id: str, hf_token: str | None) -> PrefetchResult:
    """Download the model's pinned files into the box's HF cache. The token goes on the command's standard input:
    an environment variable or argument would show in the box's process list (`ps e`, /proc/PID/environ)."""
    argv = [box.python, "-m", "remote.prefetch", model_id] + (["--token-on-stdin"] if hf_token else [])
    done = box.transport.run(argv, timeout_s=7200, env=box.env, stdin=hf_token + "\n" if hf_token else None)
    if done.returncode:
        raise BoxError(f"prefetch of {model_id} failed:\n{done.stderr[-2000:]}")
    result = PrefetchResult.model_validate_json(done.stdout)
    box.downloaded_bytes += result.bytes
    get_run_logger().info(f"model {model_id}: {result.files} files, {result.bytes / 1e9:.2f} GB in the cache")
    return result


@task(name="start-worker", cache_policy=NO_CACHE)
def start_worker(box: Box, job_dir: str) -> int:
    """The supervisor (and under it the worker), detached: it outlives this process and any SSH drop."""
    argv = [box.python, "-m", "remote.supervise", job_dir]
    env = box.env
    if "PREFECT_API_URL" in box.env:  # the box reports to this Prefect API: its worker flow is this run's subflow
        env = env | {PARENT_TASK_RUN: str(task_run.id)}
    pid = box.transport.start_detached(argv, log=f"{job_dir}/supervisor.log", env=env)
    get_run_logger().info(f"worker supervisor started (pid {pid})")
    return pid


def clip_in_progress(status: WorkerStatus) -> int | None:
    """The clip generating now; None between clips (`clip` stays on a finished clip until the next starts)."""
    clip = status.clip if status.state == "generating" else None
    return clip if clip is not None and clip >= status.clips_done else None


def progress_fraction(status: WorkerStatus, total: int) -> float:
    """The run's share done: (clips done + the clip now's steps done / its steps) / clips planned."""
    done = float(status.clips_done)
    if clip_in_progress(status) is not None and status.step and status.steps:
        done += min(status.step / status.steps, 1.0)
    return min(done / total, 1.0) if total else 1.0


def progress_text(status: WorkerStatus, total: int, estimate: Eta | None) -> str:
    """'clip 3 of 6, step 12/50, ~4 min 10 s left' (clips counted from 1); between clips and at the end
    '2 of 6 clips, ~5 min 00 s left', '6 of 6 clips'. No ETA without a plan to make one from."""
    left = f", {duration_text(estimate.run_s)} left" if estimate is not None and estimate.run_s > 0 else ""
    clip = clip_in_progress(status)
    if clip is None:
        return f"{status.clips_done} of {total} clips{left}"
    step = f", step {status.step}/{status.steps}" if status.step and status.steps else ""
    return f"clip {clip + 1} of {total}{step}{left}"


class ClipBar:
    """The run in the terminal: a bar of clips and, under it, the bar of the clip generating now (its denoising
    steps; kenburns has none), each with its time left (tasks/eta.py). Where stderr is no terminal there are no
    bars: `log` gets one line per finished clip instead, with its seconds and the time left for the others (clips
    finished before the first status seen are not logged again)."""

    def __init__(self, total: int, log: logging.LoggerAdapter | None = None, console: Console | None = None) -> None:
        self.on = console.is_terminal if console is not None else sys.stderr.isatty()
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[left]}"),
            console=console or Console(stderr=True),
            disable=not self.on,
        )
        self.total, self.log = total, log
        self.run = self.progress.add_task("clips", total=total, left="")
        self.clip_task: int | None = None
        self.clip: int | None = None
        self.logged: int | None = None  # finished clips accounted for in the log (no terminal)

    def __enter__(self) -> ClipBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, status: WorkerStatus, estimate: Eta | None = None) -> None:
        run_left = f"{duration_text(estimate.run_s)} left" if estimate is not None and estimate.run_s > 0 else ""
        self.progress.update(self.run, completed=status.clips_done, left=run_left)
        clip = clip_in_progress(status)
        if clip != self.clip and self.clip_task is not None:
            self.progress.remove_task(self.clip_task)
            self.clip_task = None
        if clip is not None:
            if self.clip_task is None:
                self.clip_task = self.progress.add_task(f"  clip {clip + 1} steps", total=1, left="")
            if status.step and status.steps:
                self.progress.update(self.clip_task, total=status.steps, completed=status.step)
            if estimate is not None and estimate.clip_s is not None:
                self.progress.update(self.clip_task, left=f"{duration_text(estimate.clip_s)} left")
        self.clip = clip
        if not self.on and self.log is not None:
            self.log_finished(status, estimate)

    def log_finished(self, status: WorkerStatus, estimate: Eta | None) -> None:
        """'clip 3 of 6 done in 41.2 s; ~2 min 50 s left for the other 3 clips', once per clip."""
        if self.logged is None:
            self.logged = status.clips_done
        for index in range(self.logged, status.clips_done):
            line = f"clip {index + 1} of {self.total} done"
            last, rest = index == status.clips_done - 1, self.total - status.clips_done
            if last and status.last_clip_s is not None:
                line += f" in {status.last_clip_s:.1f} s"
            if last and rest > 0 and estimate is not None:
                line += f"; {duration_text(estimate.run_s)} left for the other {rest} clip{'s' if rest > 1 else ''}"
            self.log.info(line)
        self.logged = max(self.logged, status.clips_done)


def fetch_finished_clips(box: Box, job_dir: str, keep: Path, first: int, count: int) -> None:
    """Copy clips first..count-1 (mp4, last frame, then the log) from the box into `keep`."""
    for index in range(first, count):
        for name in clip_files(index):
            box.transport.get(f"{job_dir}/run/{name}", keep / name)


class ClipProgress:
    """The run's progress artifact in Prefect: (clips done + the clip now's steps done / its steps) / clips planned,
    its description the clip, the step and the time left (progress_text), updated as the status changes."""

    def __init__(self, key: str, total: int) -> None:
        self.total = total
        self.shown: tuple[float, str] = (0.0, f"0 of {total} clips")
        self.id = create_progress_artifact(progress=0.0, key=key, description=self.shown[1])

    def update(self, status: WorkerStatus, estimate: Eta | None = None) -> None:
        shown = (round(100.0 * progress_fraction(status, self.total), 2), progress_text(status, self.total, estimate))
        if shown != self.shown:
            self.shown = shown
            update_progress_artifact(self.id, shown[0], description=shown[1])


class RunProgress:
    """The worker's status as follow_worker shows it, a status at a time: the time left (tasks/eta.py: the plan
    corrected by the steps measured so far, their ratio carried from clip to clip), the terminal's bars (ClipBar, or
    a line per clip in `log`) and the progress artifact (ClipProgress). Without a plan (None), no time left."""

    def __init__(
        self,
        key: str,
        total: int,
        prediction: RunPrediction | None,
        log: logging.LoggerAdapter | None = None,
        console: Console | None = None,
    ) -> None:
        self.prediction, self.carried = prediction, None
        self.bar, self.artifact = ClipBar(total, log, console), ClipProgress(key, total)

    def __enter__(self) -> RunProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def show(self, status: WorkerStatus) -> Eta | None:
        estimate = eta(self.prediction, status, self.carried) if self.prediction is not None else None
        self.carried = estimate.step_ratio if estimate is not None else None
        self.bar.update(status, estimate)
        self.artifact.update(status, estimate)
        return estimate


def planned_run(box: Box, job_dir: str, log: logging.LoggerAdapter) -> RunPrediction | None:
    """The plan of the spec the worker runs (the box's run/job.yaml), which the ETA corrects as steps are measured;
    None, with a warning, where it can't be read or planned: the progress is then shown without an ETA."""
    try:
        text = box.transport.read_text(f"{job_dir}/run/job.yaml")
        if text is None:
            raise FileNotFoundError(f"{job_dir}/run/job.yaml is not on the box")
        return predict_run(validate(yaml.safe_load(text), source=f"{job_dir}/run/job.yaml"))
    except Exception as exc:
        log.warning(f"no time left is shown for this run: its plan could not be made ({type(exc).__name__}: {exc})")
        return None


class WorkerFollower:
    """One worker, followed from this machine a poll at a time: read the box's status and progress log, mirror the
    log's new lines into the run's log, copy finished clips here, and decide when the run is over. The box never
    talks to Prefect itself: this process mirrors it.

    The run deadline is enforced here too (the box's supervisor is the first line; this one holds if the box's clock
    or supervisor fails): past the run limit plus STOP_GRACE_S the worker is asked to stop, and STOP_GRACE_S after
    that request the run ends here as stopped, whether or not the request reached the box.

    `interrupted` (the provider's: why the box was taken away, or None) is asked every `check_every_s`, and at once
    when the box does not answer or the worker ends without its film: a taken box raises Interrupted."""

    def __init__(
        self,
        box: Box,
        job_dir: str,
        run_limit_s: float,
        keep: Path | None,
        log: logging.LoggerAdapter,
        interrupted: Callable[[], str | None] | None = None,
        check_every_s: float = 30,
    ) -> None:
        self.box, self.job_dir, self.run_limit_s, self.keep, self.log = box, job_dir, run_limit_s, keep, log
        self.interrupted, self.check_every_s = interrupted, check_every_s
        self.next_check = time.monotonic() + check_every_s
        self.started_at = time.monotonic()
        self.deadline = self.started_at + run_limit_s + STOP_GRACE_S
        self.stop_requested_at: float | None = None
        self.unreachable_since: float | None = None
        self.mirrored = 0  # characters of progress.log already in the run's log
        self.kept: int | None = None  # clips copied into `keep` so far (counted there at the first status)
        self.worker_seen = False  # the supervisor has written the run's status
        self.ended_at: float | None = None  # when the worker's last state was first seen

    def read(self) -> tuple[str, WorkerStatus | None] | None:
        """The box's progress.log and status.json (None until the supervisor writes it), read once. None when the box
        did not answer (an SSH drop: the next poll reconnects, the detached worker goes on); BoxError once it has
        not answered for UNREACHABLE_S."""
        try:
            progress_log = self.box.transport.read_text(f"{self.job_dir}/run/status/progress.log") or ""
            status_json = self.box.transport.read_text(f"{self.job_dir}/run/status/status.json")
        except Exception as exc:
            # a box Vast stopped answers no more: say so at the first failed read, not "unreachable" at the last
            self.check_interrupted(now=self.unreachable_since is None)
            self.unreachable_since = self.unreachable_since or time.monotonic()
            if time.monotonic() - self.unreachable_since > UNREACHABLE_S:
                raise BoxError(f"the box has not answered for {UNREACHABLE_S} s ({exc!r}); lost") from None
            self.log.warning(f"the box did not answer ({type(exc).__name__}); retrying")
            self.box.transport.close()
            return None
        self.unreachable_since = None
        return progress_log, WorkerStatus.model_validate_json(status_json) if status_json else None

    def check_interrupted(self, now: bool = False) -> None:
        """Ask the provider whether the box was taken away (every check_every_s, or `now`); Interrupted if it was."""
        if self.interrupted is None or (not now and time.monotonic() < self.next_check):
            return
        self.next_check = time.monotonic() + self.check_every_s
        reason = self.interrupted()
        if reason is not None:
            raise Interrupted(f"{reason}; {self.kept or 0} finished clips are kept here")

    def mirror(self, progress_log: str) -> None:
        """Each complete line of progress.log not logged yet, into the run's log."""
        complete = progress_log[: progress_log.rfind("\n") + 1]
        for line in complete[self.mirrored :].splitlines():
            self.log.info(line)
        self.mirrored = len(complete)

    def check_run_exists(self, status: WorkerStatus | None) -> None:
        """A status that is gone after it was there: the box lost the run (its disk, its folder)."""
        if self.worker_seen and status is None:
            raise BoxError(f"the run's status on the box is gone: the box lost the run ({self.kept or 0} clips kept)")
        self.worker_seen = self.worker_seen or status is not None

    def keep_finished_clips(self, status: WorkerStatus | None) -> None:
        """With `keep`, each clip is copied here as soon as it is finished: a lost box loses at most the clip in
        progress."""
        if self.keep is None or status is None:
            return
        if self.kept is None:
            self.kept = kept_clip_count(self.keep)
        if status.clips_done > self.kept:
            fetch_finished_clips(self.box, self.job_dir, self.keep, self.kept, status.clips_done)
            self.kept = status.clips_done

    def outcome(self, status: WorkerStatus | None) -> WorkerStatus | None:
        """The final status once the worker and its supervisor have exited (or the local deadline has ended the
        run); None while it runs. The worker writes its last state a moment before it exits and the supervisor may
        still write after that: the run is over at the supervisor's exit_code, or EXIT_WAIT_S after the last state
        where the supervisor never writes it (killed). BoxError when the worker never started."""
        if status is not None and status.state in TERMINAL_STATES:
            if status.exit_code is not None:
                return status
            self.ended_at = self.ended_at or time.monotonic()
            if time.monotonic() - self.ended_at > EXIT_WAIT_S:
                self.log.warning(
                    f"the worker ended {status.state} but its supervisor has not exited in {EXIT_WAIT_S} s"
                )
                return status
            return None
        if status is None and time.monotonic() - self.started_at > START_TIMEOUT_S:
            log = self.box.transport.read_text(f"{self.job_dir}/supervisor.log") or "(empty)"
            raise BoxError(f"the worker did not start within {START_TIMEOUT_S} s:\n{log[-2000:]}")
        if time.monotonic() > self.deadline and self.stop_requested_at is None:
            self.request_stop()
        if self.stop_requested_at is not None and time.monotonic() - self.stop_requested_at > STOP_GRACE_S:
            stopped = {"state": "stopped", "reason": "stopped by the local deadline; the box did not answer"}
            return (status or WorkerStatus()).model_copy(update=stopped)
        return None

    def request_stop(self) -> None:
        """Ask the box's supervisor to stop the worker; a request that fails (an SSH drop) is logged, and the grace
        period still ends the run."""
        self.log.error(f"the run passed its limit of {self.run_limit_s:g} s here; stopping the worker")
        self.stop_requested_at = time.monotonic()
        try:
            self.box.python_module("remote.supervise", "--stop", self.job_dir, timeout_s=60)
        except Exception as exc:
            self.log.warning(f"the stop request did not reach the box ({type(exc).__name__}: {exc})")


@task(name="follow-worker", cache_policy=NO_CACHE)
def follow_worker(
    box: Box,
    job_dir: str,
    clips_total: int,
    run_limit_s: float,
    keep: Path | None,
    progress_key: str,
    interrupted: Callable[[], str | None] | None = None,
    check_every_s: float = 30,
) -> WorkerStatus:
    """Follow the worker until its run ends (WorkerFollower), its clips and steps shown with the time left (the
    plan corrected by the steps measured: tasks/eta.py) in the terminal and in the run's progress artifact
    (`progress_key`); with `keep`, every finished clip is copied there. Returns the final status; raises
    Interrupted when `interrupted` says the box was taken away."""
    follower = WorkerFollower(box, job_dir, run_limit_s, keep, get_run_logger(), interrupted, check_every_s)
    prediction = planned_run(box, job_dir, follower.log)
    with RunProgress(progress_key, clips_total, prediction, follower.log) as progress:
        for _ in poll_until(None, POLL_S):
            reading = follower.read()
            if reading is None:
                continue
            progress_log, status = reading
            follower.mirror(progress_log)
            follower.check_run_exists(status)
            if status is not None:
                progress.show(status)
            follower.keep_finished_clips(status)
            follower.check_interrupted()
            final = follower.outcome(status)
            if final is not None:
                if final.state != "generated":  # a worker that died with its box: the box's fault, not the run's
                    follower.check_interrupted(now=True)
                return final


@task(name="mark-stopped", cache_policy=NO_CACHE)
def mark_stopped(box: Box, job_dir: str, clips_total: int, reason: str) -> WorkerStatus:
    """On a box of this machine (a run with no rented box left to finish on): the run's status as the worker would
    have left it had it stopped now, with the clips finished so far, so the stitch and the bundle take it as a
    stopped run."""
    if box.provider != "local":
        raise BoxError(f"mark_stopped writes the status on this machine, not on a {box.provider} box")
    run_dir = Path(job_dir) / "run"
    done = kept_clip_count(run_dir)
    fields = dict(state="stopped", reason=reason, clips_total=clips_total, clips_done=done, stopped_at_clip=done)
    return update_status(run_dir, **fields, exit_code=0)


@task(name="stitch", cache_policy=NO_CACHE)
def stitch_on_box(box: Box, job_dir: str) -> StitchSummary:
    summary = StitchSummary.model_validate_json(box.python_module("remote.stitch", job_dir, timeout_s=3600))
    get_run_logger().info(f"stitched {summary.clips} clips at {summary.size}, {summary.fps} fps")
    return summary


@task(name="bundle", cache_policy=NO_CACHE)
def bundle_on_box(box: Box, job_dir: str) -> BundleSummary:
    bundle = BundleSummary.model_validate_json(box.python_module("remote.bundle", job_dir, timeout_s=3600))
    get_run_logger().info(f"bundled {bundle.files} files into {bundle.archive} (sha256 {bundle.sha256})")
    return bundle


@task(name="fetch-bundle", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)  # a cut copy resumes
def fetch_bundle(box: Box, job_dir: str, archive_name: str, out_dir: Path) -> Path:
    local = out_dir / archive_name
    box.transport.get(f"{job_dir}/{archive_name}", local)
    box.transport.get(f"{job_dir}/{archive_name}.sha256", Path(f"{local}.sha256"))
    get_run_logger().info(f"fetched {local}")
    return local
