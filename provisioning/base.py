"""What every provider (local, ssh, vast) and transport implements, the box a run gets, and what a rented box
costs."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict


class BoxError(RuntimeError):
    """A command on the box failed; the message carries the tail of its output."""


class Interrupted(BoxError):
    """The provider took the box away (Vast stopped an outbid interruptible instance): what the box was doing is lost,
    the clips already copied to this machine are not; the run rents again and continues from them."""


class Transport(Protocol):
    def run(
        self, argv: list[str], timeout_s: float, env: dict[str, str], stdin: str | None = None
    ) -> subprocess.CompletedProcess:
        """Run a command to the end (argv, never a shell string); output captured. `stdin`: what the command reads
        on its standard input (how a secret reaches it without showing in the box's process list)."""

    def start_detached(self, argv: list[str], log: str, env: dict[str, str]) -> int:
        """Start a command that outlives this connection; returns its pid."""

    def read_text(self, path: str) -> str | None:
        """A small text file's contents, or None if it doesn't exist."""

    def put(self, local: Path, remote: str) -> None:
        """Copy a file to the box (resuming a partial copy where the transport can)."""

    def get(self, remote: str, local: Path) -> None:
        """Copy a file from the box (resuming a partial copy where the transport can)."""

    def close(self) -> None: ...


@dataclass
class Box:
    """A machine that runs the worker: where the project's Python is and where runs live."""

    provider: str
    root: str  # the box's run root: <root>/<run_id>/ is one job dir
    transport: Transport
    venv: str | None = None  # where remote/setup.sh installs the project; None: this interpreter (local)
    env: dict[str, str] = field(default_factory=dict)  # for every command on the box
    instance_id: int | None = None  # a rented instance, where there is one
    downloaded_bytes: int = 0  # what the box fetched itself (the model), for the transfer cost

    @property
    def python(self) -> str:
        return sys.executable if self.venv is None else f"{self.venv}/bin/python"

    def job_dir(self, run_id: str) -> str:
        return f"{self.root}/{run_id}"

    def run(self, argv: list[str], timeout_s: float) -> str:
        """Run on the box; returns stdout, raises BoxError with the output's tail on a non-zero exit."""
        done = self.transport.run(argv, timeout_s, self.env)
        if done.returncode:
            tail = (done.stderr or done.stdout or "").strip().splitlines()[-15:]
            raise BoxError(f"`{' '.join(argv[:4])} …` exited {done.returncode} on the box:\n" + "\n".join(tail))
        return done.stdout

    def python_module(self, module: str, *args: str, timeout_s: float = 3600) -> str:
        return self.run([self.python, "-m", module, *args], timeout_s)


class Estimate(BaseModel):
    """What a run is predicted to cost on a box, made before it is rented: planned seconds and their price."""

    model_config = ConfigDict(frozen=True)

    seconds: int
    usd: float


class CreatedInstance(BaseModel):
    """A rented instance, reported the moment it exists (a provider's `on_created`): what another process needs to
    find it and destroy it."""

    model_config = ConfigDict(frozen=True)

    instance_id: int
    label: str  # shootout:<flow-run-id>
    run_id: str
    created_at: str  # ISO 8601 UTC
    usd_per_hour: float | None


class InstanceCost(BaseModel):
    """What one rented instance cost: its price × billed seconds (create → confirmed destroy) + the data it moved at
    the offer's per-GB prices; next to it, the estimate made before renting it (None: none was made)."""

    model_config = ConfigDict(frozen=True)

    instance_id: int
    gpu: str | None
    usd_per_hour: float
    billed_seconds: float
    bytes_moved: int
    usd_transfer: float
    usd_total: float
    destroyed: bool
    estimate_s: int | None = None
    estimate_usd: float | None = None
    interruptible: bool = False  # a bid instance: usd_per_hour is the bid
    interrupted: str | None = None  # why the provider took it away (outbid), if it did

    def line(self) -> str:
        """'instance 7: 120 s at $0.420/h + $0.0001 transfer = $0.0141'"""
        return (
            f"instance {self.instance_id}: {self.billed_seconds:.0f} s at ${self.usd_per_hour:.3f}/h"
            f"{' (bid)' if self.interruptible else ''} + ${self.usd_transfer:.4f} transfer = ${self.usd_total:.4f}"
            f"{' (preempted)' if self.interrupted else ''}"
        )


class Provider(Protocol):
    name: str

    def acquire(self, run_id: str) -> Box:
        """A box ready to take a job (rented, set up and reachable, where that applies)."""

    def release(self, box: Box | None, run_id: str, fetched: bool) -> str:
        """Give the box back (`fetched`: the bundle is safely on this machine; `box` None: acquire failed, so
        destroy whatever the attempt created); says what was done."""

    def costs(self) -> list[InstanceCost]:
        """Every instance rented for this run, oldest first (the last is the one the box runs on; earlier ones were
        attempts that never became ready, or interrupted), each one's cost so far. Empty where nothing is rented
        (local, ssh)."""

    def interrupted(self) -> str | None:
        """Why the box now held was taken away (an outbid interruptible instance), asked of the provider; None while
        it runs, and always where nothing can take it (local, ssh, on-demand)."""
