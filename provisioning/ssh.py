"""SSH: the transport to a box (fabric/paramiko), the wait until SSH answers, and the `ssh` provider.

Host keys are trusted on first use and then pinned for the rest of the run, in a known_hosts file of the
run's own: a box that answers with another key later is refused (paramiko's BadHostKeyException).
"""

from __future__ import annotations

import io
import posixpath
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko
from fabric import Connection

from provisioning.base import Box, InstanceCost
from provisioning.polling import poll_until

CONNECT_TIMEOUT_S = 10


class SshNotReady(RuntimeError):
    """SSH did not answer (or refused the key) before the deadline."""


@dataclass(frozen=True)
class SshTarget:
    host: str
    port: int
    user: str
    key_file: Path
    known_hosts: Path  # this run's own; created empty if missing

    def connect(self) -> Connection:
        self.known_hosts.parent.mkdir(parents=True, exist_ok=True)
        self.known_hosts.touch(exist_ok=True)
        connection = Connection(
            self.host,
            user=self.user,
            port=self.port,
            connect_timeout=CONNECT_TIMEOUT_S,
            connect_kwargs={
                "key_filename": str(self.key_file),
                "look_for_keys": False,
                "allow_agent": False,
                "banner_timeout": CONNECT_TIMEOUT_S,
                "auth_timeout": CONNECT_TIMEOUT_S,
            },
        )
        connection.client.load_host_keys(str(self.known_hosts))  # pins what AutoAddPolicy saves on first use
        return connection


def with_env(argv: list[str], env: dict[str, str]) -> str:
    """One shell-quoted command line; values travel quoted, never pasted into a shell string."""
    prefix = ["env", *(f"{key}={value}" for key, value in env.items())] if env else []
    return shlex.join([*prefix, *argv])


class SshTransport:
    """Commands over SSH with fabric, files over SFTP; `get` and `put` resume a partial copy."""

    def __init__(self, target: SshTarget) -> None:
        self.target = target
        self._connection: Connection | None = None
        self.bytes_moved = 0  # by put and get, for the transfer cost

    @property
    def connection(self) -> Connection:
        if self._connection is None or not self._connection.is_connected:
            self._connection = self.target.connect()
            self._connection.open()
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def run(
        self, argv: list[str], timeout_s: float, env: dict[str, str], stdin: str | None = None
    ) -> subprocess.CompletedProcess:
        feed = io.StringIO(stdin) if stdin is not None else False  # a file-like stream: invoke sends EOF at its end
        result = self.connection.run(with_env(argv, env), hide=True, warn=True, timeout=timeout_s, in_stream=feed)
        return subprocess.CompletedProcess(argv, result.exited, result.stdout, result.stderr)

    def start_detached(self, argv: list[str], log: str, env: dict[str, str]) -> int:
        # setsid + nohup + every stream redirected: the process outlives this SSH session and doesn't hold it open.
        # Every path is quoted as a whole (a space or `$(…)` in it stays part of the path).
        quoted_log, quoted_dir = shlex.quote(log), shlex.quote(posixpath.dirname(log) or ".")
        line = f"mkdir -p {quoted_dir}; setsid nohup {with_env(argv, env)} > {quoted_log} 2>&1 < /dev/null & echo $!"
        result = self.connection.run(line, hide=True, warn=False, timeout=60, in_stream=False)
        return int(result.stdout.split()[-1])

    def read_text(self, path: str) -> str | None:
        try:
            with self.connection.sftp().open(path, "r") as remote:
                return remote.read().decode()
        except FileNotFoundError:
            return None

    def put(self, local: Path, remote: str) -> None:
        sftp = self.connection.sftp()
        self.connection.run(shlex.join(["mkdir", "-p", str(Path(remote).parent)]), hide=True, in_stream=False)
        partial = remote + ".part"
        try:
            done = sftp.stat(partial).st_size
        except FileNotFoundError:
            done = 0
        with open(local, "rb") as source, sftp.open(partial, "ab" if done else "wb") as target:
            source.seek(done)
            for block in iter(lambda: source.read(1 << 20), b""):
                target.write(block)
                self.bytes_moved += len(block)
        sftp.posix_rename(partial, remote)

    def get(self, remote: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        partial = local.with_name(local.name + ".part")
        done = partial.stat().st_size if partial.exists() else 0
        with self.connection.sftp().open(remote, "rb") as source, open(partial, "ab" if done else "wb") as target:
            source.seek(done)
            source.prefetch()
            for block in iter(lambda: source.read(1 << 20), b""):
                target.write(block)
                self.bytes_moved += len(block)
        partial.replace(local)


def wait_for_ssh(target: SshTarget, deadline: float) -> SshTransport:
    """Retry until SSH answers a command, or the monotonic deadline passes ('running' ≠ SSH works); tried at least
    once, however little time is left."""
    started, last_error = time.monotonic(), None
    for _ in poll_until(deadline, interval_s=2.0):
        transport = SshTransport(target)
        try:
            done = transport.run(["true"], timeout_s=CONNECT_TIMEOUT_S, env={})
            if done.returncode == 0:
                return transport
            last_error = f"`true` exited {done.returncode}"
        except (TimeoutError, OSError, EOFError, paramiko.SSHException) as exc:
            last_error = repr(exc)
        transport.close()
    raise SshNotReady(
        f"SSH at {target.user}@{target.host}:{target.port} did not answer within "
        f"{time.monotonic() - started:.0f} s: {last_error}"
    )


class SshProvider:
    """A GPU box you already have (host, port, user, key): nothing is rented, nothing is destroyed.

    release() removes the run's job dir once its bundle is safe here, and keeps it otherwise."""

    name = "ssh"

    def __init__(self, target: SshTarget, root: str, venv: str | None = None, ready_timeout_s: float = 120) -> None:
        self.target, self.root, self.ready_timeout_s = target, root, ready_timeout_s
        self.venv = venv or f"{root}/venv"

    def acquire(self, run_id: str) -> Box:
        transport = wait_for_ssh(self.target, time.monotonic() + self.ready_timeout_s)
        return Box(provider=self.name, root=self.root, transport=transport, venv=self.venv)

    def release(self, box: Box | None, run_id: str, fetched: bool) -> str:
        if box is None:
            return "nothing to release"
        job_dir = box.job_dir(run_id)
        if not fetched:
            message = f"kept {box.root}/{run_id} on {self.target.host}: the bundle was not fetched"
        else:
            box.run(["rm", "-rf", job_dir], timeout_s=120)
            message = f"removed {job_dir} on {self.target.host}"
        box.transport.close()
        return message

    def costs(self) -> list[InstanceCost]:
        return []  # your own box: nothing is rented

    def interrupted(self) -> str | None:
        return None  # your own box: nothing takes it away
