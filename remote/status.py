"""The worker's status on the box: status/status.json (jobspecs.contracts.WorkerStatus, rewritten atomically) and
status/progress.log lines `ISO8601 | stage | clip=<i|-> | msg=...`, read by the laptop over SSH (or a local read)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from jobspecs.contracts import TERMINAL_STATES, WorkerStatus

# TERMINAL_STATES: the worker's last states (its supervisor's exit_code comes after), imported by the laptop's follower
__all__ = ["PARENT_TASK_RUN", "TERMINAL_STATES", "log_progress", "now_iso", "read_status", "update_status"]

# Set by the laptop only where the box reports to the laptop's own Prefect API (the local provider): the task run
# that started the worker, whose subflow the worker's flow run becomes.
PARENT_TASK_RUN = "SHOOTOUT_PARENT_TASK_RUN_ID"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def status_path(run_dir: Path) -> Path:
    return run_dir / "status" / "status.json"


def read_status(run_dir: Path) -> WorkerStatus:
    """The status so far; before the first write, a status with nothing set."""
    try:
        return WorkerStatus.model_validate_json(status_path(run_dir).read_text())
    except FileNotFoundError:
        return WorkerStatus()


def update_status(run_dir: Path, **fields: object) -> WorkerStatus:
    """Set `fields` (WorkerStatus fields) in status.json, keeping the others; written to a temporary file and
    renamed, so readers never see half. The file holds only the fields ever set. A run dir that is gone (removed
    once its bundle was fetched) is not made again: FileNotFoundError."""
    path = status_path(run_dir)
    path.parent.mkdir(exist_ok=True)
    so_far = read_status(run_dir).model_dump(exclude_unset=True)
    status = WorkerStatus.model_validate(so_far | fields | {"updated_at": now_iso()})
    tmp = path.with_name(f".status.{os.getpid()}.tmp")
    tmp.write_text(status.to_json(exclude_unset=True))
    os.replace(tmp, path)
    return status


def log_progress(run_dir: Path, stage: str, clip: int | None, msg: str) -> str:
    line = f"{now_iso()} | {stage} | clip={'-' if clip is None else clip} | msg={' '.join(msg.split())}"
    path = run_dir / "status" / "progress.log"
    path.parent.mkdir(exist_ok=True)  # not the run dir itself, as update_status
    with path.open("a") as log:
        log.write(line + "\n")
    return line
