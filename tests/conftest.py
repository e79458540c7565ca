"""Shared fixtures: one real `prefect server` per test session (and on it the deployments of prefect.yaml and a
process worker), the real sshd, spec files in tmp dirs, the demo run, a small local run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from jobspecs.contracts import ClipParams
from jobspecs.schema import SPEED_KNOBS

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "jobspecs" / "demo.yaml"
BIN = Path(sys.executable).parent
VAST_KEY = "vast-key-5ecr3t-do-not-log"
HF_TOKEN = "hf_t0ken5ecr3t-do-not-log"
# The demo at smoke scale (kenburns has no weights: `tiny` lets it render small and short): six chained 5 s clips
# at 256×144. The remote runs use it; their bytes are compared with the same spec run here (small_local_run).
SMALL = (
    "model_source=tiny",
    "generation.width=256",
    "generation.height=144",
    "stitch.preset=ultrafast",
    *(f"shots.{i}.duration_s=5" for i in range(6)),
)

# Whole runs against the fake Vast API: instances answer "running" on the first poll (the provider polls every 5 s);
# the loading sequence, stuck and failed instances are tests/test_vast.py's, at a 0.05 s poll.
RUNNING_AT_ONCE = {"null_polls": 0, "loading_polls": 0}

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def wait_until(condition, timeout_s: float = 300, what: str = "condition"):
    """condition()'s first truthy value, polled every 0.2 s; TimeoutError at the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)
    raise TimeoutError(f"{what}: not within {timeout_s:g} s")


def stop_box_processes(root: Path) -> None:
    """A destroyed fake instance is only a folder here: end the supervisor and worker it left, by pid (the worker's
    whole process group)."""
    for path in root.glob("**/run/status/status.json"):
        status = json.loads(path.read_text())
        for pid, group in ((status.get("worker_pid"), True), (status.get("supervisor_pid"), False)):
            if pid:
                try:
                    (os.killpg if group else os.kill)(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (a process worker's flow runs live in their own sessions)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop_tree(process: subprocess.Popen, grace_s: float = 15) -> None:
    """SIGTERM a process and everything below it, SIGKILL what is left after the grace period; by pid."""
    pids = [process.pid, *descendants(process.pid)]
    for pid in reversed(pids):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=30)


@pytest.fixture(scope="session")
def prefect_server_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the session's `prefect server` writes its output (tests read it for tracebacks)."""
    return tmp_path_factory.mktemp("prefect-server") / "server.log"


@pytest.fixture(scope="session")
def tiny_home(tmp_path_factory) -> dict:
    """The three tiny pipelines, built by the CLI into a fresh HF_HOME; {"home": Path, "commits": {id: sha}}."""
    home = tmp_path_factory.mktemp("tiny-hf")
    done = subprocess.run(
        [sys.executable, "-m", "remote.models.tiny", str(home)], capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line.split(": ", 1) for line in done.stdout.splitlines()]  # "<id>: <repo> @ <commit> in <hub>"
    commits = {model: text.split(" @ ")[1].split()[0] for model, text in lines}
    return {"home": home, "commits": commits}


@pytest.fixture
def worker_env(prefect_api, monkeypatch):
    """A worker process started by the test reports to the session's Prefect server; SIGTERM handling is restored
    after (the supervisor, run in the test's process, sets its own)."""
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    handler = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, handler)


@pytest.fixture(scope="session")
def prefect_api(prefect_server_log: Path) -> str:
    """A real `prefect server start` on 127.0.0.1 with its own PREFECT_HOME (a fresh SQLite database), its API
    URL; stopped by pid at the end. Processes the tests start get it through PREFECT_API_URL, this one too."""
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from sshd import free_port

    home = prefect_server_log.parent
    url = f"http://127.0.0.1:{free_port()}/api"
    env = os.environ | {"PREFECT_HOME": str(home), "PREFECT_SERVER_UI_ENABLED": "false"}
    with open(home / "server.log", "w") as log:
        server = subprocess.Popen(
            [
                str(BIN / "prefect"),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                url.split(":")[-1].removesuffix("/api"),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: healthy(url) or server.poll() is not None, 240, "prefect server start")
        assert server.poll() is None, (home / "server.log").read_text()[-3000:]
        os.environ["PREFECT_API_URL"] = url
        with temporary_settings({PREFECT_API_URL: url}):
            yield url
    finally:
        stop_tree(server)


@pytest.fixture(scope="session")
def prefect_worker(prefect_api, sshd_server, tmp_path_factory: pytest.TempPathFactory):
    """The README's laptop recipe on the session's server: `shootout setup`, `prefect deploy --all` (prefect.yaml),
    `prefect worker start --pool shootout` — with a fake Vast API in the worker's environment. Stopped by pid."""
    from fakes.vast_api import FakeVast

    home = tmp_path_factory.mktemp("worker-home")
    with FakeVast(ssh_host="127.0.0.1", ssh_port=sshd_server.port, api_key=VAST_KEY) as fake:
        fake.configure(**RUNNING_AT_ONCE)
        env = os.environ | {
            "PREFECT_API_URL": prefect_api,
            "HOME": str(home),
            "VAST_URL": fake.url,
            "VAST_API_KEY": VAST_KEY,
            "HF_TOKEN": HF_TOKEN,
            "PREFECT_WORKER_QUERY_SECONDS": "2",
        }
        for argv in (["shootout", "setup"], ["prefect", "--no-prompt", "deploy", "--all"]):
            done = subprocess.run(
                [str(BIN / argv[0]), *argv[1:]], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
            )
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        log_path = home / "worker.log"
        with open(log_path, "w") as log:
            worker = subprocess.Popen(
                [str(BIN / "prefect"), "worker", "start", "--pool", "shootout", "--name", "tests"],
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until(lambda: "started" in log_path.read_text() or worker.poll() is not None, 180, "worker")
            assert worker.poll() is None, log_path.read_text()[-3000:]
            yield {"api": prefect_api, "fake": fake, "env": env, "home": home, "log": log_path}
        finally:
            stop_tree(worker, grace_s=30)


def run_deployment_cli(env: dict, name: str, params: dict, timeout_s: float = 900) -> subprocess.CompletedProcess:
    """`prefect deployment run NAME --params JSON --watch`, as a user types it."""
    return subprocess.run(
        [
            str(BIN / "prefect"),
            "deployment",
            "run",
            name,
            "--params",
            json.dumps(params),
            "--watch",
            "--watch-timeout",
            str(int(timeout_s)),
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s + 60,
    )


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
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, timeout=timeout, env=os.environ | (env or {}), cwd=REPO
    )


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
def demo_run(prefect_worker: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The README's demo, run once as the shootout/demo deployment through the worker."""
    out = tmp_path_factory.mktemp("demo-out")
    done = run_deployment_cli(prefect_worker["env"], "shootout/demo", {"out_dir": str(out)})
    archives = sorted(out.glob("*.tar"))
    return {"result": done, "out": out, "archive": archives[0] if archives else None, "api": prefect_worker["api"]}


@pytest.fixture(scope="session")
def small_local_run(prefect_api: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The demo at smoke scale through `shootout run` on this machine: the bytes the remote runs must match."""
    out = tmp_path_factory.mktemp("small-out")
    done = shootout_cli(
        "run", str(DEMO), "--out", str(out), *(f"--set={o}" for o in SMALL), env={"PREFECT_API_URL": prefect_api}
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (archive,) = out.glob("*.tar")
    return {"result": done, "out": out, "archive": archive, "api": prefect_api}


def cpu_clip_params(width: int, height: int, frames: int, fps: int) -> ClipParams:
    """A clip log's settings for a clip made without a diffusers model (kenburns at the baseline profile): no steps,
    guidance or scheduler, no speed knob, nothing from an adapter; the clip file as generated."""
    return ClipParams(
        width=width,
        height=height,
        frames=frames,
        fps=fps,
        generated_frames=frames,
        generated_fps=fps,
        interpolation=None,
        profile="baseline",
        **dict.fromkeys(SPEED_KNOBS),
        steps=None,
        guidance=None,
        guidance_kind=None,
        scheduler=None,
        shift=None,
        adapter={},
    )
