"""The overnight: several deployments side by side, then the comparison report over their verified runs.

Each deployment (shootout/wan, shootout/hunyuan, shootout/cogvideox in prefect.yaml's `overnight/nightly`, at 01:00
UTC) runs as its own `shootout` flow run: its own process, instance, crash hooks and artifacts, at most
`shootout-live-instances` alive at once. The budget is split evenly; each run refuses an estimate above its share
before renting and cuts its run limit to what its share buys. The report is the `report-overnight` artifact and
`<out_dir>/compare-<UTC time>/report/`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prefect import flow

from flows.shootout import RunIncomplete
from tasks.report import compare_runs_task, run_side_by_side


@flow(name="overnight")
def overnight(
    deployments: list[str],
    out_dir: str = "outputs",
    overrides: list[str] | None = None,
    budget_usd: float | None = None,
) -> dict:
    """`deployments` (names such as shootout/wan) side by side, each run writing under
    `<out_dir>/compare-<UTC time>/<name>/`, then the report over every run whose bundle was verified; `overrides`
    (as `--set` takes them) go to every run. Fails, after the report, when a run did not complete."""
    night = Path(out_dir).resolve() / f"compare-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    share = budget_usd / len(deployments) if budget_usd is not None else None
    finished = run_side_by_side(deployments, night, overrides or [], share)
    report = compare_runs_task(night, deployments)
    failed = [name for name, state in finished.items() if state != "COMPLETED"]
    if failed:
        raise RunIncomplete(f"{', '.join(failed)} did not complete; the report over what finished: {report['html']}")
    return {"report": str(report["html"]), "runs": finished, "winner": report["winner"]}
