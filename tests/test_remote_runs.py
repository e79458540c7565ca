"""Whole runs on a remote box: `shootout run` → the real vastai client → the fake Vast API → a real sshd →
setup.sh → the worker with kenburns → bundle back → verified → instance destroyed; and the faults on the way.
Every test ends with zero live instances at the fake and nothing that had finished lost."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import (
    DEMO,
    HF_TOKEN,
    REPO,
    RUNNING_AT_ONCE,
    SMALL,
    VAST_KEY,
    shootout_cli,
    stop_box_processes,
    wait_until,
)
from fakes.vast_api import FakeVast
from test_models import tiny_spec

from remote.bundle import sha256_file

SMALL_SETS = [f"--set={override}" for override in SMALL]


@pytest.fixture
def fake(sshd_server, tmp_path):
    with FakeVast(ssh_host="127.0.0.1", ssh_port=sshd_server.port, api_key=VAST_KEY) as server:
        server.configure(**RUNNING_AT_ONCE)
        yield server
    stop_box_processes(tmp_path / "box")


def remote_args(provider: str, sshd, box_venv: str, root: Path, *extra: str) -> list[str]:
    sets = {
        "infrastructure.provider": provider,
        "infrastructure.key_file": str(sshd.key_file),
        "infrastructure.remote_root": str(root),
        "infrastructure.venv": box_venv,
        "infrastructure.allow_dirty": "true",
    }
    if provider == "ssh":
        sets |= {"infrastructure.host": "127.0.0.1", "infrastructure.port": str(sshd.port)}
    args = [arg for key, value in sets.items() for arg in ("--set", f"{key}={value}")]
    return [*args, *extra]


def run_env(prefect_api: str, tmp_path: Path, fake: FakeVast | None = None) -> dict[str, str]:
    env = {"PREFECT_API_URL": prefect_api, "HOME": str(tmp_path / "home"), "HF_TOKEN": HF_TOKEN}
    if fake is not None:
        env |= {"VAST_URL": fake.url, "VAST_API_KEY": VAST_KEY}
    return env


def start_run(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    exe = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" / "shootout"
    return subprocess.Popen(
        [str(exe), "run", str(DEMO), *args],
        env=os.environ | env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def bundle_of(out: Path) -> tuple[Path, dict]:
    archives = sorted(out.glob("*.tar"))
    assert len(archives) == 1, list(out.iterdir())
    run_dir = out / archives[0].name.removesuffix(".tar")
    return run_dir, json.loads((run_dir / "manifest.json").read_text())


def hashes(manifest: dict) -> dict[str, str]:
    return {name: digest for name, digest in manifest["files"].items() if name.startswith(("clips/", "frames/"))} | {
        "final": manifest["final_video"]["sha256"]
    }


def secrets_in(texts: list[str]) -> list[str]:
    return [secret for secret in (VAST_KEY, HF_TOKEN) if any(secret in text for text in texts)]


def all_text(folder: Path) -> list[str]:
    return [p.read_bytes().decode(errors="replace") for p in folder.rglob("*") if p.is_file()]


def assert_nothing_leaked(api: str, out: Path, root: Path, home: Path, *outputs: str) -> None:
    """No secret in any output, log, artifact, variable, manifest or file on either side; no record left."""
    api = api.rstrip("/")
    logs = httpx.post(f"{api}/logs/filter", json={"limit": 200, "sort": "TIMESTAMP_DESC"}).json()
    artifacts = httpx.post(f"{api}/artifacts/filter", json={}).json()
    variables = httpx.post(f"{api}/variables/filter", json={}).json()
    flow_runs = httpx.post(f"{api}/flow_runs/filter", json={"limit": 200}).json()
    texts = [
        *outputs,
        json.dumps(logs),
        json.dumps(artifacts),
        json.dumps(variables),
        json.dumps(flow_runs),
        *all_text(out),
        *all_text(root),
        *all_text(home),
    ]
    assert secrets_in(texts) == []
    assert not [v for v in variables if v["name"].startswith("shootout_instance_")]  # each record went with its box


def local_hashes(local_run) -> dict[str, str]:
    local_dir = local_run["out"] / local_run["archive"].name.removesuffix(".tar")
    return hashes(json.loads((local_dir / "manifest.json").read_text()))


def test_vast_run_killed_mid_clip_then_resumed_gives_the_same_bytes_as_local(
    small_local_run, fake, sshd_server, box_venv, tmp_path
) -> None:
    out, root = tmp_path / "out", tmp_path / "box"
    env = run_env(small_local_run["api"], tmp_path, fake)
    run = start_run(["--out", str(out), *remote_args("vast", sshd_server, box_venv, root, *SMALL_SETS)], env)
    try:
        _, status = wait_until(lambda: (s := box_status(root)) and s[1].get("clips_done", 0) >= 2 and s)
        os.kill(status["worker_pid"], signal.SIGKILL)  # the worker dies mid clip 2 (an OOM kill, say)
        first_out, first_err = run.communicate(timeout=300)
    finally:
        run.kill()
    assert run.returncode == 1 and "RunIncomplete" in first_err
    first_dir, first = bundle_of(out)  # what finished was still fetched, bundled and verified
    assert first["clips"]["finished"] >= 2 and first["guardrails"]["outcome"] == "failed"
    assert sha256_file(first_dir / "clips" / "clip_001.mp4") == first["files"]["clips/clip_001.mp4"]
    assert fake.live_instances() == []

    done = shootout_cli(
        "run",
        str(DEMO),
        "--out",
        str(out),
        "--resume",
        first_dir.name,
        *remote_args("vast", sshd_server, box_venv, root, *SMALL_SETS),
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert f"resuming after {first['clips']['finished']} clips" in done.stderr
    (archive,) = [a for a in out.glob("*.tar") if a.name != f"{first_dir.name}.tar"]
    second = json.loads((out / archive.name.removesuffix(".tar") / "manifest.json").read_text())
    assert hashes(second) == local_hashes(small_local_run)  # same spec and seed: the same clips, frames, film
    assert fake.live_instances() == [] and len(fake.requests_to("PUT", "/api/v0/asks/*/")) == 2
    (created, _) = fake.requests_to("PUT", "/api/v0/asks/*/")
    assert created["body"]["label"].startswith("shootout:") and VAST_KEY not in json.dumps(created["body"])
    assert "/h + $" in done.stdout and "transfer = $" in done.stdout  # the instance's cost is reported
    cost = json.loads((out / f"{archive.name.removesuffix('.tar')}.cost.json").read_text())
    assert cost["usd_total"] > 0 and cost["estimate_usd"] > 0 and cost["gpu"] == "RTX 4090"
    assert "estimate before renting: $" in done.stderr  # shown before the instance was created
    assert_nothing_leaked(
        small_local_run["api"], out, root, tmp_path / "home", first_out, first_err, done.stdout, done.stderr
    )


def test_ssh_run_gives_the_same_bytes_as_local(small_local_run, sshd_server, box_venv, tmp_path) -> None:
    out, root = tmp_path / "out", tmp_path / "box"
    done = shootout_cli(
        "run",
        str(DEMO),
        "--out",
        str(out),
        *remote_args("ssh", sshd_server, box_venv, root, *SMALL_SETS),
        env=run_env(small_local_run["api"], tmp_path),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    run_dir, manifest = bundle_of(out)
    assert hashes(manifest) == local_hashes(small_local_run)
    assert not (root / run_dir.name).exists()  # the job dir on the box is removed once the bundle is safe
    assert not (out / f"{run_dir.name}.partial").exists()  # the kept clips were folded into the verified bundle
    assert_nothing_leaked(small_local_run["api"], out, root, tmp_path / "home", done.stdout, done.stderr)


def test_a_two_gpu_offer_runs_one_clip_on_two_ranks_end_to_end(prefect_api, fake, sshd_server, box_venv, tmp_path):
    """num_gpus 2: the real vastai client finds the fake's 2× RTX 4090 offer, the instance is created from it, the box
    runs the worker as two ranks under torchrun (gloo on the CPU here) with the tiny Wan pipeline, the bundle comes
    back verified with its clips made by context parallelism, and nothing is left running."""
    data = tiny_spec("wan22_ti2v_5b")
    spec_file = tmp_path / "spec" / "two_gpus.yaml"
    spec_file.parent.mkdir()
    shutil.copy(REPO / "jobspecs" / data["reference_image"], spec_file.parent / data["reference_image"])
    spec_file.write_text(yaml.safe_dump(data))
    out, root = tmp_path / "out", tmp_path / "box"
    sets = remote_args("vast", sshd_server, box_venv, root, "--set", "infrastructure.num_gpus=2")
    done = shootout_cli("run", str(spec_file), "--out", str(out), *sets, env=run_env(prefect_api, tmp_path, fake))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    run_dir, manifest = bundle_of(out)
    assert manifest["clips"]["finished"] == 2
    (created,) = fake.requests_to("PUT", "/api/v0/asks/*/")
    assert created["path"].rstrip("/").endswith("/5006")  # the fake's one 2× RTX 4090 offer
    search = fake.requests_to("POST", "/api/v0/bundles/")[0]["body"]
    assert search["num_gpus"] == {"eq": "2"} or search["num_gpus"] == {"eq": 2}, search["num_gpus"]
    for i in range(2):
        log = json.loads((run_dir / "logs" / f"log_{i:03d}.json").read_text())
        assert "2 ranks (cpu)" in log["params"]["adapter"]["speed"]["context_parallel"]
    assert fake.live_instances() == []
    cost = json.loads((out / f"{run_dir.name}.cost.json").read_text())
    assert cost["gpu"] == "RTX 4090" and cost["usd_total"] > 0


def box_status(root: Path) -> tuple[Path, dict] | None:
    for path in root.glob("*/*/run/status/status.json"):
        try:
            return path, json.loads(path.read_text())
        except json.JSONDecodeError:
            return None
    return None


def test_cancelling_the_local_flow_destroys_the_instance(prefect_api, fake, sshd_server, box_venv, tmp_path) -> None:
    root = tmp_path / "box"
    run = start_run(
        ["--out", str(tmp_path / "out"), *remote_args("vast", sshd_server, box_venv, root)],
        run_env(prefect_api, tmp_path, fake),
    )
    try:
        wait_until(lambda: box_status(root))  # the instance exists and the worker runs
        assert len(fake.live_instances()) == 1
        run.send_signal(signal.SIGTERM)  # what `prefect flow-run cancel` and Ctrl-C end in
        run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode != 0 and fake.live_instances() == []


def test_a_killed_flow_leaves_an_orphan_the_reaper_destroys(prefect_api, fake, sshd_server, box_venv, tmp_path) -> None:
    root = tmp_path / "box"
    env = run_env(prefect_api, tmp_path, fake)
    run = start_run(["--out", str(tmp_path / "out"), *remote_args("vast", sshd_server, box_venv, root)], env)
    try:
        wait_until(lambda: box_status(root))
    finally:
        run.kill()  # SIGKILL: no finally, no hook — the instance is orphaned
        run.wait()
    (orphan,) = fake.live_instances()
    flow_run_id = fake.instance(orphan)["label"].removeprefix("shootout:")
    api = prefect_api.rstrip("/")
    # What the heartbeat automation does to a silent run: mark it Crashed.
    httpx.post(f"{api}/flow_runs/{flow_run_id}/set_state", json={"state": {"type": "CRASHED"}, "force": True})
    reaper = subprocess.run(
        [str(Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" / "python"), "-m", "flows.reaper"],
        env=os.environ | env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert reaper.returncode == 0, reaper.stderr[-3000:]
    assert f"destroyed instance {orphan}" in reaper.stdout + reaper.stderr
    assert fake.live_instances() == []


def heartbeats(api: str, flow_run_id: str) -> list[dict]:
    query = {
        "filter": {
            "event": {"name": ["prefect.flow-run.heartbeat"]},
            "resource": {"id": [f"prefect.flow-run.{flow_run_id}"]},
        },
        "limit": 5,
    }
    return httpx.post(f"{api}/events/filter", json=query).json()["events"]


def test_a_kill_9_terminal_run_is_destroyed_once_its_lease_lapses(
    prefect_api, fake, sshd_server, box_venv, tmp_path
) -> None:
    """`kill -9` of a terminal `shootout run`: nothing tells Prefect, so the run stays Running. It sent heartbeats
    (for the automation), and its instance record carries a lease its process renewed: the reaper keeps the instance
    while the lease is fresh, destroys it once the lease has lapsed, and marks the run Crashed."""
    root, api = tmp_path / "box", prefect_api.rstrip("/")
    env = run_env(prefect_api, tmp_path, fake)
    run = start_run(["--out", str(tmp_path / "out"), *remote_args("vast", sshd_server, box_venv, root)], env)
    try:
        wait_until(lambda: box_status(root) or run.poll() is not None)
        assert run.poll() is None, run.communicate()[1][-5000:]
        (instance,) = fake.live_instances()
        flow_run_id = fake.instance(instance)["label"].removeprefix("shootout:")
        wait_until(lambda: heartbeats(api, flow_run_id), 120, "a heartbeat from the terminal run")
    finally:
        run.kill()  # SIGKILL: no finally, no hook, no state change
        run.wait()
    assert httpx.get(f"{api}/flow_runs/{flow_run_id}").json()["state_type"] == "RUNNING"
    python = str(Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" / "python")

    def reaper(*args: str) -> str:
        done = subprocess.run(
            [python, "-m", "flows.reaper", *args],
            env=os.environ | env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout + done.stderr

    reaper()  # renewed within the last 30 s: not yet distinguishable from a live run
    assert fake.live_instances() == [instance]
    record = f"{api}/variables/name/shootout_instance_{flow_run_id.replace('-', '')}"
    renewed = httpx.get(record).json()["value"]["renewed_at"]
    wait_until(lambda: time.time() - datetime.fromisoformat(renewed).timestamp() > 6, 30, "the lease to age")
    swept = reaper("--lease-s", "5")
    assert f"destroyed instance {instance}" in swept and "lease was last renewed" in swept
    assert fake.live_instances() == [] and httpx.get(record).status_code == 404
    state = httpx.get(f"{api}/flow_runs/{flow_run_id}").json()
    assert state["state_type"] == "CRASHED" and f"destroyed instance {instance}" in state["state"]["message"]


def test_the_reaper_sweeps_every_instance_even_when_one_destroy_keeps_failing(prefect_api, fake, tmp_path) -> None:
    from provisioning.vast import VastClient

    sdk = VastClient(VAST_KEY, fake.url).sdk
    created = [
        sdk.create_instance(id=offer, image="x", disk=20, label=f"shootout:gone-{offer}", ssh=True, direct=True)[
            "new_contract"
        ]
        for offer in (5001, 5003)
    ]
    stuck, other = created
    fake.inject("DELETE", f"/api/v0/instances/{stuck}/", 502, body="Bad Gateway", times=None)
    python = str(Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" / "python")
    done = subprocess.run(
        [python, "-m", "flows.reaper", "--destroy-timeout-s", "3"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | run_env(prefect_api, tmp_path, fake),
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert f"vastai destroy instance {stuck}" in done.stderr and f"destroyed instance {other}" in done.stderr
    assert fake.live_instances() == [stuck]  # named, with the command to end it; the next sweep tries again
    fake.clear_faults()
    assert (
        subprocess.run(
            [python, "-m", "flows.reaper"],
            cwd=REPO,
            capture_output=True,
            timeout=300,
            env=os.environ | run_env(prefect_api, tmp_path, fake),
        ).returncode
        == 0
    )
    assert fake.live_instances() == []


def test_a_lost_box_loses_at_most_the_clip_in_progress(prefect_api, fake, sshd_server, box_venv, tmp_path) -> None:
    out, root = tmp_path / "out", tmp_path / "box"
    run = start_run(
        ["--out", str(out), *remote_args("vast", sshd_server, box_venv, root)], run_env(prefect_api, tmp_path, fake)
    )
    try:
        wait_until(lambda: list(out.glob("*.partial/logs/log_000.json")))  # clip 0 is finished and copied here
        path, _ = box_status(root)
        stop_box_processes(root)  # the instance dies with its disk: processes and files gone
        shutil.rmtree(path.parents[2])
        _, stderr = run.communicate(timeout=300)
    finally:
        run.kill()
    assert run.returncode == 1 and "the box lost the run" in stderr
    (kept,) = out.glob("*.partial")
    log = json.loads((kept / "logs" / "log_000.json").read_text())
    assert sha256_file(kept / "clips" / "clip_000.mp4") == log["clip_file"]["sha256"]
    assert sha256_file(kept / "frames" / "last_frame_000.png") == log["last_frame"]["sha256"]
    assert (kept / "job.yaml").exists()  # enough to resume on a new box
    assert fake.live_instances() == []


class RunLog(list):  # what the follower logs, as the run's log would show it
    def info(self, message: str) -> None:
        self.append(message)

    warning = error = info


def test_a_stop_request_that_fails_at_the_local_deadline_still_ends_the_run(tmp_path, monkeypatch) -> None:
    """The box's supervisor missed the run limit and the stop request this machine sends fails (an SSH drop): the
    grace period after the request ends the run here, as stopped, with what the box said last."""
    import tasks.box
    from provisioning.base import Box
    from provisioning.local import LocalTransport
    from provisioning.polling import poll_until

    class StopDropped(LocalTransport):
        def run(self, argv: list[str], timeout_s: float, env: dict[str, str], stdin: str | None = None):
            if "--stop" in argv:
                raise ConnectionResetError("the connection dropped")
            return super().run(argv, timeout_s, env, stdin)

    monkeypatch.setattr(tasks.box, "STOP_GRACE_S", 0.2)
    status = tmp_path / "job" / "run" / "status"
    status.mkdir(parents=True)
    (status / "status.json").write_text(json.dumps({"state": "generating", "clip": 1, "clips_done": 1}))
    (status / "progress.log").write_text("clip=0 done\nclip=1 half a li")
    box = Box(provider="local", root=str(tmp_path), transport=StopDropped())
    said = RunLog()
    follower = tasks.box.WorkerFollower(box, str(tmp_path / "job"), run_limit_s=0.1, keep=None, log=said)
    for _ in poll_until(None, 0.05):
        progress_log, seen = follower.read()
        follower.mirror(progress_log)
        if (final := follower.outcome(seen)) is not None:
            break
    assert final.model_dump(exclude_unset=True) == {
        "state": "stopped",
        "clip": 1,
        "clips_done": 1,
        "reason": "stopped by the local deadline; the box did not answer",
    }
    assert said.count("clip=0 done") == 1 and not any("half a li" in line for line in said)
    assert "the stop request did not reach the box (ConnectionResetError: the connection dropped)" in said


def test_the_run_on_the_box_ends_at_the_supervisors_exit_code_not_the_workers_last_state(tmp_path, monkeypatch) -> None:
    """The worker writes "generated" a moment before it exits, and its supervisor writes after that: the laptop must
    not stitch, bundle or remove the job dir before the supervisor's exit_code (the CI race: the removed job dir came
    back); a supervisor that never writes it (killed) is waited for EXIT_WAIT_S, then the run goes on, warned."""
    import tasks.box
    from provisioning.base import Box
    from provisioning.local import LocalTransport

    status_file = tmp_path / "job" / "run" / "status" / "status.json"
    status_file.parent.mkdir(parents=True)
    box = Box(provider="local", root=str(tmp_path), transport=LocalTransport())
    said = RunLog()
    follower = tasks.box.WorkerFollower(box, str(tmp_path / "job"), run_limit_s=600, keep=None, log=said)

    def outcome_of(**status: object) -> object:
        status_file.write_text(json.dumps({"clips_done": 2, **status}))
        return follower.outcome(follower.read()[1])

    assert outcome_of(state="generating", clip=1) is None
    assert outcome_of(state="generated") is None  # the worker's last state, its supervisor still running
    final = outcome_of(state="generated", exit_code=0)
    assert (final.state, final.exit_code, final.clips_done) == ("generated", 0, 2)
    assert said == []

    monkeypatch.setattr(tasks.box, "EXIT_WAIT_S", 0)
    follower.ended_at = time.monotonic() - 1
    assert outcome_of(state="failed", reason="the worker exited with status 1").state == "failed"
    assert said == ["the worker ended failed but its supervisor has not exited in 0 s"]
