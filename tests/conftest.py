"""Shared fixtures: one real Prefect server per test session, spec files in tmp dirs, the demo run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "jobspecs" / "demo.yaml"

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session")
def prefect_api() -> str:
    """A real Prefect server (the test harness: subprocess server, temporary database), its API URL.

    Processes the tests start get it through PREFECT_API_URL; this process through the harness."""
    from prefect.client.orchestration import get_client
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        with get_client(sync_client=True) as client:
            yield str(client.api_url)


def demo_data() -> dict:
    return yaml.safe_load(DEMO.read_text())


def write_spec(folder: Path, data: dict, name: str = "spec.yaml") -> Path:
    """`data` as a spec file next to a copy of the demo's reference image."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "jobspecs" / "espresso.png", folder / "espresso.png")
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def shootout_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """The real console script, as a user runs it."""
    exe = Path(sys.executable).with_name("shootout")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout,
                          env=os.environ | (env or {}), cwd=REPO)  # fmt: skip


@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory: pytest.TempPathFactory):
    """A real OpenSSH server on 127.0.0.1 (throwaway host and user keys), stopped by pid at the end."""
    from sshd import make_sshd

    server = make_sshd(tmp_path_factory.mktemp("sshd")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def box_venv(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One venv for every box of the session (they share this machine): remote/setup.sh creates it on first use."""
    return str(tmp_path_factory.mktemp("box-venv") / "venv")


@pytest.fixture(scope="session")
def demo_run(prefect_api: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The README's demo, run once through `shootout run` against the session's Prefect server."""
    out = tmp_path_factory.mktemp("demo-out")
    done = shootout_cli("run", str(DEMO), "--out", str(out), env={"PREFECT_API_URL": prefect_api})
    archives = sorted(out.glob("*.tar"))
    return {"result": done, "out": out, "archive": archives[0] if archives else None, "api": prefect_api}
