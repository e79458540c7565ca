"""The supervisor: starts the worker and kills it, for real, when a clip or the run overruns.

    python -m remote.supervise JOB_DIR          run the worker under the clip and run limits
    python -m remote.supervise --stop JOB_DIR   stop it now (the laptop's own deadline)

Prefect's timeouts and Python threads can't interrupt code stuck in CUDA or C; a SIGKILL to the worker's
process group can. The supervisor records why it stopped in status.json and removes the half-written files
of the clip in progress; every finished clip stays on disk. Its last write is `exit_code` in status.json: the
worker has exited by then and nothing writes into the run dir after it, so the laptop waits for it before it
stitches, bundles and removes the job dir.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import yaml

from jobspecs import validate
from jobspecs.contracts import TERMINAL_STATES
from remote.layout import JobPaths
from remote.status import log_progress, now_iso, read_status, update_status

EXIT_FAILED = 1
EXIT_STOPPED = 3  # a guardrail or a stop request ended the run
POLL_S = 0.5


def worker_env() -> dict[str, str]:
    """The worker's environment: unbuffered output, expandable CUDA memory segments and, unless an API is given, a
    Prefect of the box's own."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    # the allocator grows segments instead of caching fixed blocks: Hunyuan's fp8-resident 24gb plan peaks at
    # 22.4 GiB allocated with it and ran out of memory under a 24 GiB cap without it (1.95 GiB reserved but
    # unallocated: fragmentation; benchmarks/README.md)
    env.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    if "PREFECT_API_URL" not in env:  # the box's own Prefect, kept beside the interpreter: migrated once per box
        env.setdefault("PREFECT_HOME", str(Path(sys.prefix) / "prefect-home"))
        env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    return env


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def kill_tree(pid: int) -> None:
    """SIGKILL the worker's process group and every process below it: a several-GPU worker is torchrun, which
    starts each rank in a session of its own (the ranks also die with their agent: parallel.die_with_parent). The
    tree is read before anything is killed; a killed parent's children would be re-parented out of it."""
    try:
        below = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        below = []
    kill_group(pid)
    for process in below:
        kill_group(process.pid)  # a rank leads its own session and group
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


def worker_command(paths: JobPaths, num_gpus: int) -> list[str]:
    """One process on one GPU; torchrun with one rank per GPU on several (remote/models/parallel.py). torchrun's
    standalone rendezvous stays on this machine (a free port on localhost)."""
    worker = ["-m", "remote.worker", str(paths.job_dir)]
    if num_gpus == 1:
        return [sys.executable, *worker]
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={num_gpus}"]
    return [sys.executable, *launcher, *worker]


def remove_partial_files(paths: JobPaths) -> list[str]:
    removed = sorted(p.relative_to(paths.run_dir).as_posix() for p in paths.run_dir.rglob("*.part"))
    for name in removed:
        (paths.run_dir / name).unlink()
    return removed


def mark_stopped(paths: JobPaths, reason: str) -> None:
    removed = remove_partial_files(paths)
    clip = read_status(paths.run_dir).clip
    update_status(paths.run_dir, state="stopped", reason=reason, stopped_at_clip=clip)
    log_progress(paths.run_dir, "stopped", clip, reason)
    if removed:
        log_progress(paths.run_dir, "stopped", None, f"removed unfinished files: {', '.join(removed)}")


def supervise(job_dir: Path, worker_argv: list[str] | None = None) -> int:
    """Run the worker to the end or to a limit; returns 0 (all clips generated), 1 (failed) or 3 (stopped)."""
    paths = JobPaths(job_dir.resolve())
    spec = validate(yaml.safe_load(paths.job_yaml.read_text()), source=str(paths.job_yaml))
    clip_limit, run_limit = spec.guardrails.clip_limit_s, spec.run_limit_s
    stop_requested: list[str] = []
    signal.signal(signal.SIGTERM, lambda *_: stop_requested.append("stop requested (SIGTERM)"))

    update_status(
        paths.run_dir,
        state="starting",
        supervisor_pid=os.getpid(),
        started_at=now_iso(),
        clip_limit_s=clip_limit,
        run_limit_s=run_limit,
    )
    log_progress(paths.run_dir, "start", None, f"clip limit {clip_limit:g} s, run limit {run_limit:g} s")
    argv = worker_argv or worker_command(paths, spec.infrastructure.num_gpus)
    with open(paths.run_dir / "status" / "worker.log", "ab") as log:
        worker = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=worker_env(),
        )
    update_status(paths.run_dir, worker_pid=worker.pid)

    run_deadline = time.monotonic() + run_limit
    current_clip, clip_since = None, time.monotonic()
    while worker.poll() is None:
        status = read_status(paths.run_dir)
        clip = status.clip if status.state == "generating" else None
        if clip != current_clip:
            current_clip, clip_since = clip, time.monotonic()
        reason = None
        if stop_requested:
            reason = stop_requested[0]
        elif clip is not None and time.monotonic() - clip_since > clip_limit:
            reason = f"clip {clip} ran past the clip limit of {clip_limit:g} s; killed"
        elif time.monotonic() > run_deadline:
            reason = f"the run went past its limit of {run_limit:g} s; killed"
        if reason:
            kill_tree(worker.pid)
            worker.wait()
            mark_stopped(paths, reason)
            return EXIT_STOPPED
        time.sleep(POLL_S)

    if not paths.run_dir.exists():
        return EXIT_FAILED  # the job dir was removed under the worker: nothing left to record it in
    state = read_status(paths.run_dir).state
    if worker.returncode == 0 and state == "generated":
        return 0
    kill_tree(worker.pid)  # a several-GPU worker's ranks end with torchrun; nothing of it may outlive the run
    ranks = paths.rank_errors()  # a rank that died first is the cause; rank 0's own error may be its consequence
    if ranks or state not in TERMINAL_STATES:
        reason = f"the worker exited with status {worker.returncode}"
        if ranks:
            reason += ": " + "; ".join(ranks)
            if state == "failed":
                reason += f" (rank 0: {read_status(paths.run_dir).reason})"
        update_status(paths.run_dir, state="failed", reason=reason)
        log_progress(paths.run_dir, "failed", None, reason)
    remove_partial_files(paths)
    return EXIT_FAILED


def supervise_and_record(job_dir: Path, worker_argv: list[str] | None = None) -> int:
    """supervise(), then its exit code as the last write to status.json; a supervisor that fails records why."""
    run_dir = JobPaths(job_dir.resolve()).run_dir
    code = EXIT_FAILED
    try:
        code = supervise(job_dir, worker_argv)
    except Exception as exc:
        if run_dir.exists() and read_status(run_dir).state not in TERMINAL_STATES:
            update_status(run_dir, state="failed", reason=f"the supervisor failed: {exc!r}")
        raise
    finally:
        if run_dir.exists():
            update_status(run_dir, exit_code=code)
    return code


def stop(job_dir: Path) -> None:
    """Ask the supervisor to stop (it kills the worker and records why); kill the worker itself if alone."""
    paths = JobPaths(job_dir.resolve())
    status = read_status(paths.run_dir)
    if status.supervisor_pid and status.state not in TERMINAL_STATES:
        try:
            os.kill(status.supervisor_pid, signal.SIGTERM)
            return
        except ProcessLookupError:
            pass
    if status.worker_pid and status.state not in TERMINAL_STATES:
        kill_tree(status.worker_pid)
        mark_stopped(paths, "stopped from outside; the supervisor was gone")
        update_status(paths.run_dir, exit_code=EXIT_STOPPED)  # in the supervisor's place


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "--stop":
        stop(Path(args[1]))
        return 0
    if len(args) != 1:
        print("usage: python -m remote.supervise [--stop] JOB_DIR", file=sys.stderr)
        return 2
    return supervise_and_record(Path(args[0]))


if __name__ == "__main__":
    sys.exit(main())
