"""The SSH transport against a real sshd: resumed copies, pinned host keys, commands that outlive the session."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time

import paramiko
import pytest
from sshd import make_sshd

from provisioning.ssh import SshTarget, SshTransport, wait_for_ssh


def target(sshd, tmp_path) -> SshTarget:
    return SshTarget("127.0.0.1", sshd.port, sshd.user, sshd.key_file, tmp_path / "known_hosts")


def test_a_cut_download_resumes_where_it_stopped(sshd_server, tmp_path) -> None:
    data = os.urandom(3_000_000)
    (tmp_path / "remote.bin").write_bytes(data)
    local = tmp_path / "local" / "copy.bin"
    local.parent.mkdir()
    local.with_name("copy.bin.part").write_bytes(data[:1_000_000])  # what a dropped connection left behind
    transport = SshTransport(target(sshd_server, tmp_path))
    transport.get(str(tmp_path / "remote.bin"), local)
    assert local.read_bytes() == data and transport.bytes_moved == 2_000_000
    assert not local.with_name("copy.bin.part").exists()
    transport.close()


def test_a_cut_upload_resumes_too(sshd_server, tmp_path) -> None:
    data = os.urandom(2_000_000)
    (tmp_path / "local.bin").write_bytes(data)
    remote = tmp_path / "remote" / "up.bin"
    remote.parent.mkdir()
    remote.with_name("up.bin.part").write_bytes(data[:500_000])
    transport = SshTransport(target(sshd_server, tmp_path))
    transport.put(tmp_path / "local.bin", str(remote))
    assert remote.read_bytes() == data and transport.bytes_moved == 1_500_000
    transport.close()


def test_host_key_is_trusted_on_first_use_then_pinned(tmp_path) -> None:
    first = make_sshd(tmp_path / "a").start()
    try:
        wait_for_ssh(target(first, tmp_path), time.monotonic() + 20).close()
        assert f"[127.0.0.1]:{first.port}" in (tmp_path / "known_hosts").read_text()
    finally:
        first.stop()
    impostor = make_sshd(tmp_path / "b", port=first.port, user_key=first.key_file).start()  # same address, new key
    try:
        with pytest.raises(paramiko.BadHostKeyException):
            SshTransport(target(impostor, tmp_path)).run(["true"], 10, {})
    finally:
        impostor.stop()


def test_a_detached_command_outlives_the_ssh_session(sshd_server, tmp_path) -> None:
    transport = SshTransport(target(sshd_server, tmp_path))
    marker = tmp_path / "done"
    pid = transport.start_detached(["sh", "-c", f"sleep 2; echo survived > {marker}"], str(tmp_path / "log"), {})
    transport.close()  # the SSH session ends while the command still sleeps
    deadline = time.monotonic() + 20
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.read_text() == "survived\n" and pid > 0


def test_a_secret_on_stdin_reaches_the_command_and_not_the_process_list(sshd_server, tmp_path) -> None:
    """How prefetch's Hugging Face token travels: on the command's standard input. The command reads it whole, and
    neither its command line nor its environment, nor its parent shell's, holds it (what `ps e` would show)."""
    secret = "hf_" + os.urandom(12).hex()
    script = (
        "import hashlib, os, sys; token = sys.stdin.readline().strip(); "
        "print(hashlib.sha256(token.encode()).hexdigest()); "
        "print(any(token.encode() in open(f'/proc/{pid}/{part}', 'rb').read() "
        "for pid in (os.getpid(), os.getppid()) for part in ('cmdline', 'environ')))"
    )
    transport = SshTransport(target(sshd_server, tmp_path))
    try:
        done = transport.run([sys.executable, "-c", script], timeout_s=30, env={"SOME": "setting"}, stdin=secret + "\n")
        leaked = transport.run([sys.executable, "-c", script], timeout_s=30, env={"TOKEN": secret}, stdin=secret + "\n")
    finally:
        transport.close()
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [hashlib.sha256(secret.encode()).hexdigest(), "False"]
    assert leaked.stdout.split()[-1] == "True"  # the check sees a token passed in the environment


def test_a_detached_command_under_a_root_with_a_space_and_shell_characters_lands_there(sshd_server, tmp_path) -> None:
    """Every interpolated path is quoted whole: nothing splits at the space, nothing runs the `$(…)`, and no stray
    folder appears in the login's home (where a split, relative word would land)."""
    transport = SshTransport(target(sshd_server, tmp_path))
    token = os.urandom(4).hex()
    root = tmp_path / f"box root-{token} $(touch pwned-{token}) it's"
    home = transport.run(["sh", "-c", "echo $HOME"], 10, {}).stdout.strip()
    before = set(os.listdir(home))
    log = root / "run" / "worker.log"
    try:
        pid = transport.start_detached(["sh", "-c", "echo started"], str(log), {"A": "b c"})
        deadline = time.monotonic() + 20
        while not (log.exists() and log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert pid > 0 and log.read_text() == "started\n"  # the log is where it was asked to be
        assert sorted(os.listdir(tmp_path)) == sorted(["known_hosts", root.name])
        stray = set(os.listdir(home)) - before
        assert not [name for name in stray if name in root.name], stray
    finally:
        transport.close()
        for name in set(os.listdir(home)) - before:  # what the unquoted line used to leave there
            if name in root.name:
                shutil.rmtree(os.path.join(home, name), ignore_errors=True)
