"""The worker's status on the box: status/status.json (atomic rewrites) and status/progress.log lines
`ISO8601 | stage | clip=<i|-> | msg=...`, read by the laptop over SSH (or a local read)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

# The states of a run on the box. Terminal ones end the supervisor.
RUNNING_STATES = {"starting", "loading", "generating"}
TERMINAL_STATES = {"generated", "stopped", "failed"}
# Set by the laptop only where the box reports to the laptop's own Prefect API (the local provider): the task run
# that started the worker, whose subflow the worker's flow run becomes.
PARENT_TASK_RUN = "SHOOTOUT_PARENT_TASK_RUN_ID"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def read_status(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "status" / "status.json").read_text())
    except FileNotFoundError:
        return {}


def update_status(run_dir: Path, **fields: object) -> dict:
    """Merge fields into status.json; written to a temporary file and renamed, so readers never see half."""
    path = run_dir / "status" / "status.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    status = read_status(run_dir) | fields | {"updated_at": now_iso()}
    tmp = path.with_name(f".status.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(status, indent=2, sort_keys=True))
    os.replace(tmp, path)
    return status


def log_progress(run_dir: Path, stage: str, clip: int | None, msg: str) -> str:
    line = f"{now_iso()} | {stage} | clip={'-' if clip is None else clip} | msg={' '.join(msg.split())}"
    path = run_dir / "status" / "progress.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as log:
        log.write(line + "\n")
    return line
