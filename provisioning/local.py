"""The `local` provider: this machine is the box; commands are subprocesses, files are copies.

Nothing is rented, so nothing is destroyed: release() removes the run's job dir once its bundle has been
fetched and verified, and keeps it (and says where) otherwise, so no finished clip is lost.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from provisioning.base import Box, InstanceCost


class LocalTransport:
    def run(
        self, argv: list[str], timeout_s: float, env: dict[str, str], stdin: str | None = None
    ) -> subprocess.CompletedProcess:
        feed = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, env=os.environ | env, **feed)

    def start_detached(self, argv: list[str], log: str, env: dict[str, str]) -> int:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            process = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=os.environ | env,
            )
        return process.pid

    def read_text(self, path: str) -> str | None:
        try:
            return Path(path).read_text()
        except FileNotFoundError:
            return None

    def put(self, local: Path, remote: str) -> None:
        Path(remote).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, remote)

    def get(self, remote: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(remote, local)

    def close(self) -> None:
        pass


class LocalProvider:
    name = "local"

    def __init__(self, root: Path, env: dict[str, str] | None = None) -> None:
        self.root = root.resolve()
        self.env = env or {}

    def acquire(self, run_id: str) -> Box:
        self.root.mkdir(parents=True, exist_ok=True)
        return Box(provider=self.name, root=str(self.root), transport=LocalTransport(), env=self.env)

    def release(self, box: Box | None, run_id: str, fetched: bool) -> str:
        if box is None:
            return "nothing to release"
        job_dir = Path(box.job_dir(run_id))
        if not fetched:
            return f"kept {job_dir}: the bundle was not fetched, its finished clips are there"
        shutil.rmtree(job_dir, ignore_errors=True)
        return f"removed {job_dir}"

    def costs(self) -> list[InstanceCost]:
        return []  # nothing is rented

    def interrupted(self) -> str | None:
        return None  # nothing can take this machine away
