"""The terminal's view of Prefect: `shootout watch RUN` follows one run live, `shootout runs` lists past ones.
Both only read the Prefect API (PREFECT_API_URL); nothing here talks to a box."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterName,
    LogFilter,
    LogFilterFlowRunId,
    LogFilterTimestamp,
)
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import FlowRunSort, LogSort

from provisioning.polling import poll_until

POLL_S = 2.0
LATE_S = 120.0  # how far back each poll reads again for lines that reached the server late (new_logs)
DRAIN_S = 10.0  # after the run's end: stop once no new log line came for this long (if no last line came)
LOG_PAGE = 200
ENGINE_LAST_LINE = "Finished in state"  # what Prefect's flow engine logs last, after the final state (tasks too)
RUN_FLOWS = ["shootout", "overnight"]  # what `shootout runs` lists (flows/shootout.py, flows/overnight.py)


class RunNotFound(LookupError):
    """No flow run with that id or name on this Prefect server."""


def find_run(client: SyncPrefectClient, run: str) -> FlowRun:
    """A flow run by its id or its name (what the UI shows), else the newest whose name holds `run`: a shootout run's
    name holds the name `prefect deployment run` printed and the run id (tasks/naming.py)."""
    try:
        by = FlowRunFilter(id=FlowRunFilterId(any_=[uuid.UUID(run)]))
    except ValueError:
        by = FlowRunFilter(name=FlowRunFilterName(any_=[run]))
    found = client.read_flow_runs(flow_run_filter=by, limit=1)
    if not found and by.name is not None:
        by = FlowRunFilter(name=FlowRunFilterName(like_=run))
        found = client.read_flow_runs(flow_run_filter=by, sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=1)
    if not found:
        raise RunNotFound(f"no flow run with id or name '{run}' at {client.api_url}")
    return found[0]


def run_artifacts(client: SyncPrefectClient, flow_run_ids: list[uuid.UUID]) -> list:
    return client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=flow_run_ids)))


def new_logs(client: SyncPrefectClient, flow_run_id: uuid.UUID, since: datetime | None, seen: set) -> list:
    """The run's log lines from LATE_S before `since` on whose ids are not in `seen` yet (added there now), oldest
    first: every page of them. The look back: lines from another process (the Prefect worker's "submitting flow
    run …") can reach the server after lines stamped later than them were printed."""
    new, after = [], since - timedelta(seconds=LATE_S) if since else None
    while True:
        page = client.read_logs(
            LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]),
                timestamp=LogFilterTimestamp(after_=after) if after else None,
            ),
            sort=LogSort.TIMESTAMP_ASC,
            limit=LOG_PAGE,
        )
        fresh = [log for log in page if log.id not in seen]
        seen.update(log.id for log in fresh)
        new += fresh
        if len(page) < LOG_PAGE or page[-1].timestamp == after:  # the last page, or a page of one instant
            return new
        after = page[-1].timestamp


def watch(run: str, out: Callable[[str], None] = print, poll_s: float = POLL_S, drain_s: float = DRAIN_S) -> int:
    """Print the run's log lines (the box's clip progress is mirrored into them) and its progress artifact (clip,
    step and time left: tasks/box.py ClipProgress) whenever it changes, until the run ends; 0 when it ends
    Completed, 1 otherwise. A run's last lines reach the server after its final state does, so the
    log is drained after the end: until the engine's own last line ("Finished in state …"), or `drain_s` without a
    new line (a run whose process was killed writes no last line)."""
    with get_client(sync_client=True) as client:
        flow_run = find_run(client, run)
        out(f"watching flow run {flow_run.name} ({flow_run.id})")
        since, seen, progress = None, set(), None
        quiet_since, finished = None, False  # when the last new line came; the engine's last line seen
        for _ in poll_until(None, poll_s):
            flow_run = client.read_flow_run(flow_run.id)  # its state before its lines: none is missed after the end
            ended = flow_run.state is not None and flow_run.state.is_final()
            new = new_logs(client, flow_run.id, since, seen)
            for log in new:
                out(f"{log.timestamp:%H:%M:%S} {log.name.split('.')[-1]:>10} | {log.message}")
                since = log.timestamp
                finished = finished or (log.task_run_id is None and log.message.startswith(ENGINE_LAST_LINE))
            for artifact in run_artifacts(client, [flow_run.id]):
                if artifact.type == "progress" and (artifact.data, artifact.description) != progress:
                    progress = (artifact.data, artifact.description)
                    out(f"progress: {float(artifact.data):.0f} % ({artifact.description})")
            now = time.monotonic()
            quiet_since = quiet_since if not new and quiet_since is not None else now
            if ended and (finished or now - quiet_since >= drain_s):
                break
        out(f"{flow_run.name}: {flow_run.state.type.value} {flow_run.state.message or ''}".rstrip())
        return 0 if flow_run.state.is_completed() else 1


def past_runs(limit: int = 20) -> list[dict]:
    """The latest shootout and overnight runs, newest first: deployment, state, model, clips, wall time, cost and
    where the run's files are: `<out_dir>/<run_id>/` (its bundle `<run_id>.tar` beside it) with out_dir as the flow
    run was given it (relative: to where it ran); an overnight's `<out_dir>/compare-<UTC date>-*/`; only out_dir
    where no cost names the run id (a run that failed before its cost)."""
    from tasks.costs import cost_of_artifact  # here: tasks.costs loads the planner

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=RUN_FLOWS)),
            sort=FlowRunSort.START_TIME_DESC,
            limit=limit,
        )
        runs = [run for run in runs if run.state is not None and not run.state.is_scheduled()]
        artifacts = run_artifacts(client, [run.id for run in runs]) if runs else []
        deployments = {d: client.read_deployment(d).name for d in {r.deployment_id for r in runs if r.deployment_id}}
    costs = {}  # flow run id → its RunCost (tasks/costs.py publish_costs' table artifact)
    for artifact in artifacts:
        if (artifact.key or "").startswith("cost-") and (cost := cost_of_artifact(artifact)) is not None:
            costs.setdefault(artifact.flow_run_id, cost)
    rows = []
    for run in runs:
        cost = costs.get(run.id)
        out_dir = str(run.parameters.get("out_dir") or "outputs").rstrip("/")
        if "deployments" in run.parameters:  # overnight: <out_dir>/compare-<UTC time>/<name>/<run_id>/
            files = f"{out_dir}/compare-{run.start_time:%Y%m%d}-*/" if run.start_time else f"{out_dir}/compare-*/"
        elif cost:
            files = f"{out_dir}/{cost.run}/"
        else:
            files = f"{out_dir}/"
        rows.append(
            {
                "flow_run": run.name,
                "id": str(run.id),
                "deployment": deployments.get(run.deployment_id, "-"),
                "state": run.state.type.value,
                "started": f"{run.start_time:%Y-%m-%d %H:%M}" if run.start_time else "-",
                "wall_s": round(run.total_run_time.total_seconds()),
                "model": cost.model if cost else "-",
                "clips": cost.clips if cost else "-",
                "usd_total": cost.usd_total if cost else None,
                "run_id": cost.run if cost else None,
                "files": files,
            }
        )
    return rows


def runs_table(rows: list[dict]) -> str:
    """The runs as text for 120 columns: one line each, where its files are on the line under it. A flow run's
    name shows up to its first " · " (tasks/naming.py: Prefect's own name, which `shootout watch` takes; the model,
    title and run id follow it), cut at 24 characters; `--json` has it whole."""
    header = (
        f"{'flow run':<24} {'deployment':<11} {'state':<10} {'started (UTC)':<17} {'wall':>7} "
        f"{'model':<20} {'clips':>5} {'cost':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        cost = f"${r['usd_total']:.2f}" if r["usd_total"] is not None else "-"
        name = r["flow_run"].split(" · ")[0][:24]
        lines.append(
            f"{name:<24} {r['deployment']:<11} {r['state']:<10} {r['started']:<17} "
            f"{r['wall_s']:>6}s {r['model']:<20} {r['clips']!s:>5} {cost:>8}"
        )
        lines.append(f"  files: {r['files']}")
    return "\n".join(lines)
