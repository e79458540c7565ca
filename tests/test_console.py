"""The terminal's view of Prefect: one message, never a traceback, when there is no server to see; the cost table
and cost history artifacts, and `shootout runs` reading them back."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from conftest import shootout_cli
from sshd import free_port

from jobspecs.contracts import RunCost


def test_runs_and_watch_with_the_server_down_say_so_in_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
    for args in (("runs",), ("watch", "some-run")):
        done = shootout_cli(*args, env={"PREFECT_API_URL": url}, timeout=120)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
        assert done.stderr.strip().splitlines() == [done.stderr.strip()]
        assert f"the Prefect API at {url} did not answer" in done.stderr and "prefect server start" in done.stderr


def test_setup_without_a_server_is_refused(tmp_path) -> None:
    done = shootout_cli("setup", env={"PREFECT_API_URL": "", "PREFECT_HOME": str(tmp_path)}, timeout=120)
    assert done.returncode == 2 and "PREFECT_API_URL is not set" in done.stderr and "Traceback" not in done.stderr


def test_the_scripts_the_readme_runs_by_path_are_executable() -> None:
    from conftest import REPO

    for script in sorted((REPO / "scripts").iterdir()):
        assert os.access(script, os.X_OK) and script.read_text().startswith("#!"), script.name


def test_watch_reads_back_for_lines_that_reach_the_server_late(prefect_api, monkeypatch) -> None:
    """A line stamped before one already printed (the Prefect worker's "submitting flow run …", sent from its own
    process after the flow's first lines) is still found on the next poll, once."""
    from datetime import UTC, datetime, timedelta

    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import LogCreate

    from flows.console import new_logs

    monkeypatch.setenv("PREFECT_API_URL", prefect_api)

    @flow(name="late-lines")
    def late_lines() -> None: ...

    now = datetime.now(UTC)

    def line(message: str, at: datetime) -> LogCreate:
        return LogCreate(name="test", level=20, message=message, timestamp=at, flow_run_id=run.id)

    with get_client(sync_client=True) as client:
        run = client.create_flow_run(late_lines)
        client.create_logs([line("printed first", now)])
        seen: set = set()
        (first,) = new_logs(client, run.id, None, seen)
        client.create_logs([line("stamped earlier, arrived later", now - timedelta(seconds=5))])
        late = new_logs(client, run.id, first.timestamp, seen)
        assert [log.message for log in late] == ["stamped earlier, arrived later"]
        assert new_logs(client, run.id, first.timestamp, seen) == []  # each line once


def run_cost_of(model: str, tag: str, **fields) -> RunCost:
    values = dict(
        run=f"20260101-010101-{model}-{tag}",
        model=model,
        clips=6,
        instance="7001",
        gpu="RTX 4090",
        usd_per_hour=0.24,
        billed_s=725.0,
        usd_total=0.0483,
        usd_per_video_s=0.0016,
        estimate_usd=0.0612,
        estimate_s=918,
    )
    return RunCost(**(values | fields))


def test_two_runs_cost_table_history_and_files(prefect_api, monkeypatch, tmp_path) -> None:
    """Two runs publish their costs under one key: the cost table reads at a glance (human headers, the actual next
    to the estimate, the run id last), the history lists both runs newest first with their total, the cost files
    keep the RunCost contract, and `shootout runs` says where each run's files are."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort
    from prefect.logging.handlers import APILogWorker

    from flows.console import past_runs, runs_table
    from tasks.costs import publish_costs

    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    model = f"costs-test-{uuid.uuid4().hex[:6]}"  # its own key on the session's server: cost-<model>

    @flow(name="shootout")  # a flow `shootout runs` lists, as flows/shootout.py's calls publish_costs
    def a_run(cost: RunCost, out_dir: str = "outputs") -> None:
        publish_costs(cost, Path(out_dir))

    first = run_cost_of(model, "aaaaaa")
    second = run_cost_of(
        model, "bbbbbb", usd_total=0.42, billed_s=3605.4, instance="7002, 7003", preemptions=1, usd_per_hour=0.264
    )
    a_run(first, out_dir="out")
    a_run(second, out_dir="out")
    APILogWorker.drain_all(timeout=30)  # the runs' last lines, sent now (not at exit, after the server stopped)

    def versions(key: str) -> list:
        with get_client(sync_client=True) as client:
            filter_ = ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
            return client.read_artifacts(artifact_filter=filter_, sort=ArtifactSort.CREATED_DESC)

    tables = versions(f"cost-{model}")
    assert len(tables) == 2
    (row,) = json.loads(tables[0].data)
    assert row == {
        "Model": model,
        "GPU": "RTX 4090",
        "Clips": 6,
        "$ actual": "$0.42",
        "$ estimate": "$0.061",
        "Billed": "1 h 5 s",
        "Estimated": "15 min 18 s",
        "$/video s": "$0.0016",
        "$/h": "$0.264",
        "Preemptions": 1,
        "Instances": "7002, 7003",
        "Run": second.run,
    }
    assert list(row)[:5] == ["Model", "GPU", "Clips", "$ actual", "$ estimate"] and list(row)[-1] == "Run"
    for cost in (first, second):  # the contract the report reads, unchanged
        assert json.loads((tmp_path / "out" / f"{cost.run}.cost.json").read_text()) == cost.model_dump(mode="json")

    (history, *_) = versions(f"cost-history-{model}")
    assert history.type == "markdown"
    lines = history.data.splitlines()
    assert lines[0] == f"# Cost history: `cost-{model}`"
    assert lines[4] == (
        "| Ended (UTC) | Model | GPU | Clips | $ actual | $ estimate | Billed | Estimated | Preemptions | Run |"
    )
    rows = [line for line in lines if line.startswith("| 20")]
    assert [row.split(" | ")[-1] for row in rows] == [f"{second.run} |", f"{first.run} |"]  # newest first
    assert rows[1].split(" | ")[1:9] == [model, "RTX 4090", "6", "$0.048", "$0.061", "12 min 5 s", "15 min 18 s", "0"]
    assert lines[-1] == "| **total, 2 runs** |  |  | 12 | **$0.47** | $0.12 | 1 h 12 min 10 s | 30 min 36 s | 1 |  |"

    listed = {row["run_id"]: row for row in past_runs(limit=20) if row["model"] == model}
    assert {run: row["files"] for run, row in listed.items()} == {
        first.run: f"out/{first.run}/",
        second.run: f"out/{second.run}/",
    }
    table = runs_table(list(listed.values())).splitlines()
    for row in listed.values():
        at = next(i for i, line in enumerate(table) if line.startswith(row["flow_run"].split(" · ")[0]))
        assert table[at].split()[-1] == f"${row['usd_total']:.2f}" and table[at + 1] == f"  files: {row['files']}"
    assert max(len(line) for line in table) <= 120


def test_a_cost_artifact_from_before_the_human_headers_is_still_read() -> None:
    """An older `cost-<deployment>` version (its row in RunCost's own layout) is read by the history and `shootout
    runs`; the night's table and a row this code cannot read are none."""
    from prefect.client.schemas.objects import Artifact

    from tasks.costs import cost_of_artifact

    cost = run_cost_of("wan22_ti2v_5b", "cccccc")
    old = Artifact(key="cost-wan", type="table", data=json.dumps([cost.model_dump(mode="json")]))
    assert cost_of_artifact(old) == cost
    night = Artifact(key="cost-overnight", type="table", data=json.dumps([{"model": "wan", "usd": 0.4}]))
    assert cost_of_artifact(night) is None
    assert cost_of_artifact(Artifact(key="cost-wan", type="markdown", data="# not a table")) is None


def test_runs_table_fits_120_columns_with_a_long_run_name() -> None:
    """A shootout run's name holds the model, the title and the run id (tasks/naming.py): the table shows the
    name `shootout watch` takes, the run's files on the line under it, and no line is wider than 120 columns."""
    from flows.console import runs_table

    run_id = "20260101-120000-wan22_ti2v_5b-1a2b3c"
    row = {
        "flow_run": f"grumpy-cat · wan22_ti2v_5b: A barista pulls a shot of espresso in the… · {run_id}",
        "id": str(uuid.uuid4()),
        "deployment": "wan",
        "state": "COMPLETED",
        "started": "2026-01-01 12:00",
        "wall_s": 4321,
        "model": "wan22_ti2v_5b",
        "clips": 12,
        "usd_total": 0.2875,
        "run_id": run_id,
        "files": f"outputs/{run_id}/",
    }
    header, rule, line, files = runs_table([row]).splitlines()
    assert line.split()[0] == "grumpy-cat" and line.split()[-1] == "$0.29" and files == f"  files: outputs/{run_id}/"
    assert header.split()[:2] == ["flow", "run"] and max(map(len, (header, rule, line, files))) <= 120
