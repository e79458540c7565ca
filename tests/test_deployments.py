"""The product surface in Prefect, driven as a user drives it: prefect.yaml's deployments run by a process worker
on a real `prefect server` (tests/conftest.py: prefect_worker), the cost, progress and summary artifacts, the
terminal views, a deployment run that fails, and the overnight side-by-side run with its comparison report."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from conftest import BIN, HF_TOKEN, REPO, SMALL, VAST_KEY, run_deployment_cli, shootout_cli, wait_until

from remote.bundle import verify_bundle
from tasks.costs import duration_text

TINY = [
    "model_source=tiny",
    "generation.width=64",
    "generation.height=64",
    "generation.steps=2",
    "generation.fps=8",
    "stitch.preset=ultrafast",
    *(f"shots.{i}.duration_s=5" for i in range(6)),
]
# The overnight tests' films: two shots (one seam), so three models (parallel or on one box) stay a few minutes.
TWO_SHOTS = (
    "shots=[{subject: a red espresso cup, action: the crema settles, environment: a wooden counter, camera: push-in,"
    " duration_s: 5}, {subject: the steel spoon, action: a highlight slides along it, environment: the wooden"
    " counter, camera: pan right, duration_s: 5}]"
)
NIGHT = [*(o for o in TINY if not o.startswith("shots.")), TWO_SHOTS]


def flow_run_id(done) -> str:
    return re.search(r"UUID: ([0-9a-f-]{36})", done.stdout).group(1)


def artifacts_of(api: str, run_id: str) -> dict[str, dict]:
    found = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}).json()
    return {a["key"]: a for a in found}


def logs_of(api: str, run_id: str) -> str:
    logs = httpx.post(f"{api}/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200}).json()
    return "\n".join(log["message"] for log in logs)


def everything_prefect_holds(api: str) -> str:
    """Every log line, artifact, variable and flow run on the server, as one text."""
    texts, offset = [], 0
    while page := httpx.post(f"{api}/logs/filter", json={"limit": 200, "offset": offset}).json():
        texts += [log["message"] for log in page]
        offset += len(page)
    for kind in ("artifacts", "variables", "flow_runs", "deployments"):
        texts.append(httpx.post(f"{api}/{kind}/filter", json={}).text)
    return "\n".join(texts)


def vast_overrides(sshd, box_venv: str, root: Path) -> list[str]:
    return [
        "infrastructure.provider=vast",
        f"infrastructure.key_file={sshd.key_file}",
        f"infrastructure.remote_root={root}",
        f"infrastructure.venv={box_venv}",
        "infrastructure.allow_dirty=true",
    ]


def test_the_demo_deployment_shows_its_cost_progress_and_summary_in_prefect(demo_run) -> None:
    done, api = demo_run["result"], demo_run["api"].rstrip("/")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = httpx.get(f"{api}/flow_runs/{flow_run_id(done)}").json()
    assert run["state_type"] == "COMPLETED"
    artifacts = artifacts_of(api, run["id"])
    assert {"cost-demo", "cost-history-demo", "progress-demo", "summary-demo"} <= set(artifacts)
    run_id = demo_run["archive"].name.removesuffix(".tar")
    cost = json.loads((demo_run["out"] / f"{run_id}.cost.json").read_text())  # the RunCost the report reads
    assert cost | {"billed_s": None, "estimate_s": None} == {
        "run": run_id,
        "model": "kenburns",
        "clips": 6,
        "instance": "local",
        "gpu": "this machine",
        "usd_per_hour": 0.0,
        "billed_s": None,
        "usd_total": 0.0,
        "usd_per_video_s": 0.0,
        "estimate_usd": 0.0,
        "estimate_s": None,
        "preemptions": 0,
    }
    assert cost["billed_s"] > 0 and cost["estimate_s"] > 0  # the planner's prediction, next to the wall time
    (row,) = json.loads(artifacts["cost-demo"]["data"])  # the table the UI shows under a stable key
    assert row == {
        "Model": "kenburns",
        "GPU": "this machine",
        "Clips": 6,
        "$ actual": "$0.00",
        "$ estimate": "$0.00",
        "Billed": duration_text(cost["billed_s"]),
        "Estimated": duration_text(cost["estimate_s"]),
        "$/video s": "$0.00",
        "$/h": "$0.00",
        "Preemptions": 0,
        "Instances": "local",
        "Run": run_id,
    }
    assert {key: json.loads(value) for key, value in artifacts["cost-demo"]["metadata_"].items()} == cost
    history = artifacts["cost-history-demo"]["data"]  # the last runs of cost-demo, this one first
    assert history.startswith("# Cost history: `cost-demo`") and f"| {run_id} |" in history
    assert artifacts["progress-demo"]["data"] == 100.0
    summary = artifacts["summary-demo"]["data"]
    assert "final/final_stitched.mp4" in summary and "guardrails: ok" in summary and "cost: $0.00" in summary
    assert "![contact sheet](data:image/jpeg;base64," in summary
    plan = logs_of(api, run["id"])
    assert "plan: clip 5:" in plan and "clip=5" in plan  # predicted per clip, and the box's progress mirrored


def test_shootout_runs_and_watch_read_the_runs_back_from_prefect(demo_run) -> None:
    env = {"PREFECT_API_URL": demo_run["api"]}
    listed = shootout_cli("runs", "--json", env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr[-3000:]
    (row,) = [r for r in json.loads(listed.stdout) if r["id"] == flow_run_id(demo_run["result"])]
    assert (row["deployment"], row["state"], row["model"], row["clips"], row["usd_total"]) == (
        "demo",
        "COMPLETED",
        "kenburns",
        6,
        0.0,
    )
    assert row["files"] == f"{demo_run['out']}/{row['run_id']}/" and row["run_id"] in demo_run["archive"].name
    watched = shootout_cli("watch", row["flow_run"], env=env, timeout=120)
    assert watched.returncode == 0, watched.stderr[-3000:]
    assert "progress: 100 % (6 of 6 clips)" in watched.stdout and "COMPLETED" in watched.stdout
    assert "clip=5" in watched.stdout
    missing = shootout_cli("watch", "no-such-run", env=env, timeout=120)
    assert missing.returncode == 2 and "no flow run with id or name 'no-such-run'" in missing.stderr


def test_a_failing_deployment_run_exits_non_zero_and_leaves_no_instance(prefect_worker, sshd_server, tmp_path):
    fake, api = prefect_worker["fake"], prefect_worker["api"].rstrip("/")
    started = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    overrides = [*TINY, *vast_overrides(sshd_server, "/proc/no-venv-here", tmp_path / "box")]  # setup.sh fails
    done = run_deployment_cli(prefect_worker["env"], "shootout/wan", {"out_dir": str(tmp_path), "overrides": overrides})
    assert done.returncode == 1 and "finished in state 'Failed'" in done.stdout, done.stdout[-3000:]
    logs = logs_of(api, flow_run_id(done))
    assert "estimate before renting: $" in logs and "setup.sh failed on the box" in logs and "== setup" in logs
    assert fake.live_instances() == [] and fake.requests_to("DELETE", "/api/v0/instances/*/")

    def reaper_ran() -> list[dict]:  # prefect.yaml's trigger: a shootout run that ends badly starts reaper/sweep
        runs = httpx.post(f"{api}/flow_runs/filter", json={"flows": {"name": {"any_": ["reaper"]}}}).json()
        by_trigger = [r for r in runs if (r["created_by"] or {}).get("type") == "AUTOMATION"]  # not its own sweep
        return [r for r in by_trigger if r["state_type"] == "COMPLETED" and (r["start_time"] or "") > started]

    wait_until(reaper_ran, 120, "reaper/sweep after the failed run")
    automations = httpx.post(f"{api}/automations/filter", json={}).json()
    (zombie,) = [a for a in automations if a["name"] == "shootout: crash runs without heartbeats"]
    assert zombie["trigger"]["posture"] == "Proactive" and zombie["actions"][0]["state"] == "CRASHED"


def test_overnight_runs_the_three_models_side_by_side_and_reports(prefect_worker, sshd_server, box_venv, tmp_path):
    fake, api = prefect_worker["fake"], prefect_worker["api"].rstrip("/")
    for offer in (5001, 5002, 5003):  # three good machines (Hunyuan's query also asks for 96 GB of RAM)
        fake.update_offer(offer, cpu_ram=128000, cuda_max_good=13.0, reliability=0.995, reliability2=0.995)
    params = {"out_dir": str(tmp_path), "overrides": [*NIGHT, *vast_overrides(sshd_server, box_venv, tmp_path / "box")]}
    done = run_deployment_cli(prefect_worker["env"], "overnight/nightly", params, timeout_s=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (night,) = tmp_path.glob("compare-*")
    archives = sorted(night.glob("*/*.tar"))
    assert [a.parent.name for a in archives] == ["cogvideox", "hunyuan", "wan"]  # one verified bundle each
    models = {verify_bundle(a).model.id for a in archives}
    assert models == {"wan22_ti2v_5b", "hunyuan_i2v", "cogvideox15_5b_i2v"}
    report = json.loads((night / "report" / "report.json").read_text())
    assert len(report["runs"]) == 3 and report["winner"]
    for run in report["runs"]:  # every metric filled for every model
        assert all(value is not None for value in run["metrics"].values()), run
    page = (night / "report" / "report.html").read_text()
    assert "<svg" in page and "data:image/" in page and "http://" not in page and "https://" not in page
    assert fake.live_instances() == [] and len(fake.requests_to("PUT", "/api/v0/asks/*/")) >= 3
    night_cost = json.loads((night / "night.cost.json").read_text())  # each model's cost and the night's total
    assert night_cost["placement"] == "parallel" and night_cost["instances"] >= 3 and night_cost["shared_usd"] == 0
    runs_usd = [json.loads(p.read_text())["usd_total"] for p in sorted(night.glob("*/*.cost.json"))]
    assert sorted(run["usd_total"] for run in night_cost["runs"]) == sorted(runs_usd)
    assert (
        night_cost["usd_total"] == pytest.approx(sum(runs_usd), abs=1e-3) and report["night"]["placement"] == "parallel"
    )
    artifacts = artifacts_of(api, flow_run_id(done))
    assert "report-overnight" in artifacts and report["winner"] in artifacts["report-overnight"]["data"]
    assert "cost-overnight" in artifacts
    live = httpx.get(f"{api}/v2/concurrency_limits/shootout-live-instances").json()
    assert live["limit"] == 3 and live["active_slots"] == 0  # each run held a slot from renting to destroy
    held = everything_prefect_holds(api)  # the worker had both secrets in its environment: none reached Prefect
    assert VAST_KEY not in held and HF_TOKEN not in held and "created instance " in held
    assert held.count("waiting for a slot of the 'shootout-live-instances' limit") >= 3


def test_a_scheduled_deployment_gets_a_run_that_the_worker_completes(prefect_worker, prefect_server_log) -> None:
    """The scheduler really creates runs (SQLAlchemy 2.1 broke prefect 3.8.8's: no scheduled run, ever): a copy of
    reaper/sweep with a schedule a few seconds away is run by the worker to Completed, and the server logs no
    traceback meanwhile."""
    from datetime import UTC, datetime, timedelta

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import IntervalSchedule

    api = prefect_worker["api"].rstrip("/")
    log_offset = prefect_server_log.stat().st_size
    first = datetime.now(UTC) + timedelta(seconds=8)
    with get_client(sync_client=True) as client:
        sweep = client.read_deployment_by_name("reaper/sweep")
        schedule = IntervalSchedule(interval=timedelta(hours=1), anchor_date=first)
        deployment_id = client.create_deployment(
            flow_id=sweep.flow_id,
            name="scheduled-check",
            entrypoint=sweep.entrypoint,
            path=sweep.path,
            work_pool_name=sweep.work_pool_name,
            pull_steps=sweep.pull_steps,
            job_variables=sweep.job_variables,
            schedules=[DeploymentScheduleCreate(schedule=schedule, active=True)],
        )
        try:

            def completed() -> list[dict]:
                query = {"flow_runs": {"deployment_id": {"any_": [str(deployment_id)]}}}
                runs = httpx.post(f"{api}/flow_runs/filter", json=query).json()
                return [r for r in runs if r["state_type"] == "COMPLETED"]

            (run,) = wait_until(completed, 240, "the scheduled run, Completed")
            assert run["auto_scheduled"] and run["expected_start_time"] >= first.isoformat()[:19]
        finally:
            client.delete_deployment(deployment_id)
    with open(prefect_server_log, "rb") as log:
        log.seek(log_offset)
        written = log.read().decode(errors="replace")
    assert "Traceback" not in written, written[-3000:]
    assert "bulk DML" not in prefect_server_log.read_text(errors="replace")


def test_watch_of_a_live_run_prints_every_line_up_to_the_engines_last(prefect_worker, tmp_path) -> None:
    """`shootout watch` started with the run: its last lines (bundle, fetch, verify) reach the server after the final
    state does, and watch drains them before it exits."""
    env, api = prefect_worker["env"], prefect_worker["api"].rstrip("/")
    params = {"out_dir": str(tmp_path), "overrides": list(SMALL)}
    argv = [str(BIN / "prefect"), "deployment", "run", "shootout/demo", "--params", json.dumps(params)]
    started = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
    run_id = flow_run_id(started)
    watched = shootout_cli("watch", run_id, env=env, timeout=900)
    assert watched.returncode == 0, watched.stdout[-3000:] + watched.stderr[-3000:]
    assert "Finished in state Completed()" in watched.stdout and "COMPLETED" in watched.stdout.splitlines()[-1]
    logs = httpx.post(f"{api}/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200}).json()
    missing = [log["message"] for log in logs if log["message"] not in watched.stdout]
    assert not missing and any("verified" in log["message"] for log in logs), missing


def test_the_local_worker_flow_is_a_subflow_of_the_run_not_a_second_run(demo_run) -> None:
    """The local provider's box reports to the same Prefect API: its `generate-clips` flow run hangs under the
    shootout run's start-worker task (hidden by the UI's "Hide subflows"), not beside it."""
    api, demo = demo_run["api"].rstrip("/"), flow_run_id(demo_run["result"])
    workers = httpx.post(f"{api}/flow_runs/filter", json={"flows": {"name": {"any_": ["generate-clips"]}}}).json()
    assert workers and all(run["parent_task_run_id"] for run in workers)
    parents = [httpx.get(f"{api}/task_runs/{run['parent_task_run_id']}").json() for run in workers]
    mine = [task for task in parents if task["flow_run_id"] == demo]
    assert len(mine) == 1 and mine[0]["name"].startswith("start-worker")


def test_the_one_box_night_makes_three_verified_bundles_and_one_report_from_one_instance(
    prefect_worker, sshd_server, box_venv, tmp_path
):
    fake, api = prefect_worker["fake"], prefect_worker["api"].rstrip("/")
    for offer in (5001, 5002, 5003):  # Hunyuan's 96 GB of host RAM; the night's disk holds every model's weights
        fake.update_offer(offer, cpu_ram=128000, cuda_max_good=13.0, reliability=0.995, reliability2=0.995)
    created_before = len(fake.requests_to("PUT", "/api/v0/asks/*/"))
    overrides = [*NIGHT, *vast_overrides(sshd_server, box_venv, tmp_path / "box")]
    params = {"out_dir": str(tmp_path), "overrides": overrides, "placement": "one-box"}
    done = run_deployment_cli(prefect_worker["env"], "overnight/nightly", params, timeout_s=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (night,) = tmp_path.glob("compare-*")
    archives = sorted(night.glob("*/*.tar"))
    assert [a.parent.name for a in archives] == ["cogvideox", "hunyuan", "wan"]  # one verified bundle each
    assert {verify_bundle(a).model.id for a in archives} == {"wan22_ti2v_5b", "hunyuan_i2v", "cogvideox15_5b_i2v"}
    created = fake.requests_to("PUT", "/api/v0/asks/*/")[created_before:]
    assert len(created) == 1 and fake.live_instances() == []  # one instance for the night, destroyed after the last
    (instance_id,) = {json.loads(p.read_text())["instance"] for p in night.glob("*/*.cost.json")}
    night_cost = json.loads((night / "night.cost.json").read_text())
    assert night_cost["placement"] == "one-box" and night_cost["instances"] == 1
    assert [run["name"] for run in night_cost["runs"]] == ["wan", "hunyuan", "cogvideox"]
    assert all(run["state"] == "COMPLETED" and run["usd_total"] > 0 for run in night_cost["runs"])
    # the runs' costs (own time + an even share of setup and release) add up to what the one instance cost
    assert sum(run["usd_total"] for run in night_cost["runs"]) == pytest.approx(night_cost["usd_total"], abs=1e-3)
    run_costs = [json.loads(p.read_text()) for p in night.glob("*/*.cost.json")]
    billed = sum(cost["billed_s"] for cost in run_costs)  # the instance's billed time, split into the runs
    assert billed == pytest.approx(fake.billed_seconds(int(instance_id)), rel=0.05, abs=3)
    report = json.loads((night / "report" / "report.json").read_text())
    assert len(report["runs"]) == 3 and report["night"]["placement"] == "one-box"
    assert "one-box" in (night / "report" / "report.md").read_text()
    artifacts = artifacts_of(api, flow_run_id(done))
    assert "cost-overnight" in artifacts and "report-overnight" in artifacts
