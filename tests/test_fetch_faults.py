"""The bundle's trip home: a cut download resumes, a corrupted one is refused with the file named — and the
instance is destroyed either way. The flow runs in this process (so the network fault can be injected at the
transport) against the session's Prefect server, the fake Vast API and the real sshd."""

from __future__ import annotations

import pytest
from conftest import DEMO, RUNNING_AT_ONCE
from fakes.vast_api import FakeVast

from flows.shootout import RunIncomplete, shootout
from provisioning.ssh import SshTransport
from remote.bundle import BundleError, verify_bundle

ORIGINAL_GET = SshTransport.get


@pytest.fixture
def vast_env(prefect_api, sshd_server, box_venv, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with FakeVast(ssh_host="127.0.0.1", ssh_port=sshd_server.port, api_key="k") as fake:
        fake.configure(**RUNNING_AT_ONCE)
        monkeypatch.setenv("VAST_URL", fake.url)
        monkeypatch.setenv("VAST_API_KEY", "k")
        infrastructure = {
            "provider": "vast",
            "key_file": sshd_server.key_file,
            "remote_root": tmp_path / "box",
            "venv": box_venv,
            "allow_dirty": "true",
        }
        overrides = [f"infrastructure.{k}={v}" for k, v in infrastructure.items()]
        overrides += ["guardrails.clip_limit_s=3", "guardrails.run_limit_s=900"]  # only the clip limit may trip
        overrides += ["guardrails.plan_check=warn"]  # the planner knows a clip takes longer than 3 s
        yield fake, overrides  # clip 0 is stopped at 3 s: a small bundle, made quickly


def test_a_cut_download_resumes_and_verifies(vast_env, tmp_path, monkeypatch) -> None:
    fake, overrides = vast_env
    cuts = []

    def cut_once(self: SshTransport, remote: str, local) -> None:
        if remote.endswith(".tar") and not cuts:
            with self.connection.sftp().open(remote, "rb") as source:
                cuts.append(source.stat().st_size)
                local.with_name(local.name + ".part").write_bytes(source.read(cuts[0] // 2))
            raise ConnectionResetError("the connection dropped mid-download")
        ORIGINAL_GET(self, remote, local)

    monkeypatch.setattr(SshTransport, "get", cut_once)
    with pytest.raises(RunIncomplete, match="clip 0 ran past the clip limit"):  # the run itself was stopped
        shootout(spec=str(DEMO), out_dir=str(tmp_path / "out"), overrides=overrides)
    (archive,) = (tmp_path / "out").glob("*.tar")
    assert cuts and archive.stat().st_size == cuts[0]  # the retry resumed the cut copy to the full size
    verify_bundle(archive)
    assert fake.live_instances() == []


def test_a_corrupted_download_is_refused_naming_the_file(vast_env, tmp_path, monkeypatch) -> None:
    fake, overrides = vast_env

    def corrupt(self: SshTransport, remote: str, local) -> None:
        ORIGINAL_GET(self, remote, local)
        if remote.endswith(".tar"):
            data = bytearray(local.read_bytes())
            data[len(data) // 2] ^= 0x01
            local.write_bytes(bytes(data))

    monkeypatch.setattr(SshTransport, "get", corrupt)
    with pytest.raises(BundleError, match=r"sha256|damaged|missing|disagrees"):
        shootout(spec=str(DEMO), out_dir=str(tmp_path / "out"), overrides=overrides)
    assert fake.live_instances() == []
    (kept,) = (tmp_path / "out").glob("*.partial")  # what the run kept stays for a resume
    assert [p.name for p in (tmp_path / "out").iterdir() if p.is_dir() and not p.name.startswith(".")] == [
        kept.name
    ]  # and nothing unverified was extracted
