"""Tasks before anything runs: load and validate the spec, plan the clips, name the run."""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

from prefect import get_run_logger, task

from jobspecs import LoadedSpec, load_spec
from jobspecs.plan import plan_table
from tasks.offers import offer_shapes_for

REPO = Path(__file__).resolve().parents[1]


@task(name="load-spec")
def load_job(spec_path: str, overrides: list[str]) -> LoadedSpec:
    """Validate before any work: a bad spec fails the run here, naming the field, value and rule."""
    job = load_spec(spec_path, overrides, offers=offer_shapes_for)  # `auto`: live Vast offers with a key
    logger = get_run_logger()
    for line in plan_table(job.spec).splitlines():
        logger.info(line)
    return job


def new_run_id(model: str) -> str:
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{model}-{uuid.uuid4().hex[:6]}"


def code_commit() -> dict:
    """The commit this code runs at, and whether the working tree differs from it."""

    def git(*args: str) -> str | None:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    if sha is None:
        return {"sha": None, "dirty": None, "note": "not a git checkout"}
    return {"sha": sha, "dirty": bool(git("status", "--porcelain", "--untracked-files=normal"))}
