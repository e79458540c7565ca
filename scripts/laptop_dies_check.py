#!/usr/bin/env python3
"""A laptop that dies mid-run (worker and flow SIGKILLed) → the heartbeat automation marks the run Crashed →
prefect.yaml's trigger creates a reaper/sweep run → a worker comes back → the instance is destroyed.

    .venv/bin/python scripts/laptop_dies_check.py [WORK_DIR]     # ~5 min on 2 cores (a box venv is built first)

Everything runs on 127.0.0.1: a real `prefect server`, `shootout setup`, `prefect deploy --all`, a process worker,
the fake Vast API and a real sshd from tests/; the demo deployment on a "rented" box. Not in CI: the heartbeat
automation alone waits 90 s. Measured 2026-11-22 (two runs): Crashed 79–92 s after the kill; the instance
destroyed 6–10 s after a worker was back. Exit 0 when the instance is gone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path[:0] = [str(REPO / "tests")]
from conftest import descendants, healthy, stop_box_processes, stop_tree, wait_until  # noqa: E402
from fakes.vast_api import FakeVast  # noqa: E402
from sshd import free_port, make_sshd  # noqa: E402

START = time.monotonic()


def say(message: str) -> None:
    print(f"{time.monotonic() - START:7.1f}s {message}", flush=True)


def reaper_runs(api: str) -> list[tuple[str, str]]:
    runs = httpx.post(f"{api}/flow_runs/filter", json={"flows": {"name": {"any_": ["reaper"]}}}).json()
    return [(run["name"], run["state_type"]) for run in runs]


def main(work: Path) -> int:
    work.mkdir(parents=True, exist_ok=True)
    sshd = make_sshd(work / "sshd").start()
    fake = FakeVast(ssh_host="127.0.0.1", ssh_port=sshd.port, api_key="k").start()
    api = f"http://127.0.0.1:{free_port()}/api"
    env = os.environ | {
        "PREFECT_HOME": str(work / "home"),
        "PREFECT_API_URL": api,
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "VAST_URL": fake.url,
        "VAST_API_KEY": "k",
    }
    server = subprocess.Popen(
        [BIN / "prefect", "server", "start", "--host", "127.0.0.1", "--port", api.split(":")[-1].removesuffix("/api")],
        env=env,
        stdout=open(work / "server.log", "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def worker() -> subprocess.Popen:
        return subprocess.Popen(
            [BIN / "prefect", "worker", "start", "--pool", "shootout"],
            env=env,
            cwd=REPO,
            stdout=open(work / "worker.log", "a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    try:
        wait_until(lambda: healthy(api), 240, "prefect server start")
        for argv in (["shootout", "setup"], ["prefect", "--no-prompt", "deploy", "--all"]):
            subprocess.run([BIN / argv[0], *argv[1:]], env=env, cwd=REPO, check=True, capture_output=True)
        first = worker()
        overrides = [
            "infrastructure.provider=vast",
            f"infrastructure.key_file={sshd.key_file}",
            f"infrastructure.remote_root={work / 'box'}",
            f"infrastructure.venv={work / 'box-venv'}",
            "infrastructure.allow_dirty=true",
        ]
        created = subprocess.run(
            [
                BIN / "prefect",
                "deployment",
                "run",
                "shootout/demo",
                "--params",
                json.dumps({"out_dir": str(work / "out"), "overrides": overrides}),
            ],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        flow_run = created.stdout.split("UUID: ")[1].split()[0]
        say(f"flow run {flow_run} created")
        wait_until(lambda: list((work / "box").glob("*/*/run/status/status.json")), 600, "the worker on the box")
        say(f"the worker runs on the box; live instances {fake.live_instances()}")
        for pid in [first.pid, *descendants(first.pid)]:
            os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        say("the laptop died: worker and flow SIGKILLed")
        state = wait_until(
            lambda: (s := httpx.get(f"{api}/flow_runs/{flow_run}").json()["state_type"]) != "RUNNING" and s,
            600,
            "the run leaving RUNNING",
        )
        say(f"the flow run is {state} {time.monotonic() - killed:.0f} s after the kill; live {fake.live_instances()}")
        say(f"reaper runs: {wait_until(lambda: reaper_runs(api), 60, 'a reaper run')}")
        second = worker()
        say("the laptop is back: a worker again")
        wait_until(lambda: not fake.live_instances(), 600, "the instance destroyed")
        say(f"live instances {fake.live_instances()} {time.monotonic() - killed:.0f} s after the kill")
        say(f"reaper runs: {reaper_runs(api)}")
        stop_tree(second)
        return 0 if not fake.live_instances() else 1
    finally:
        stop_box_processes(work / "box")
        stop_tree(server)
        fake.stop()
        sshd.stop()


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/laptop-dies")))
