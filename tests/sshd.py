"""A real OpenSSH server (Debian openssh-server) on 127.0.0.1 with throwaway host and user keys."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Sshd:
    folder: Path
    port: int
    user: str
    key_file: Path  # the client's private key
    process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 20) -> Sshd:
        try:
            Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation dir sshd insists on (as root)
        except PermissionError:
            pass
        with open(self.folder / "sshd.log", "ab") as log:
            config = str(self.folder / "sshd_config")
            self.process = subprocess.Popen([SSHD, "-D", "-e", "-f", config], stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"sshd did not start: {(self.folder / 'sshd.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def make_sshd(folder: Path, port: int | None = None, user_key: Path | None = None) -> Sshd:
    """Config and keys for an sshd on 127.0.0.1:`port` (a free one by default) that lets in `user_key`
    (a new throwaway key by default)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("host_key", "user_key") if user_key is None else ("host_key",):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)], check=True)
    user_key = user_key or folder / "user_key"
    (folder / "authorized_keys").write_text(Path(f"{user_key}.pub").read_text())
    port = port or free_port()
    (folder / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\nPidFile {folder / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nUsePAM no\nStrictModes no\n"
        "PermitRootLogin yes\nSubsystem sftp internal-sftp\nLogLevel ERROR\nMaxStartups 100\nMaxSessions 100\n"
    )
    return Sshd(folder=folder, port=port, user=os.environ.get("USER") or "root", key_file=user_key)
