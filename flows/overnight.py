"""The overnight: the three models' films, then the comparison report over their verified runs and what the night cost.

Two placements (the `placement` parameter):
- `parallel` (the default): each deployment (shootout/wan, shootout/hunyuan, shootout/cogvideox in prefect.yaml's
  `overnight/nightly`, at 01:00 UTC) runs as its own `shootout` flow run at the same time: its own process, instance
  (on the box its planner picks), crash hooks and artifacts, at most `shootout-live-instances` alive at once. The
  budget is split evenly; each run refuses an estimate above its share before renting and cuts its run limit to what
  its share buys. Fastest; each model pays its own setup and download.
- `one-box`: one instance for the whole night (flows/onebox.py): every model prefetched first, then the specs one
  after another, the box destroyed after the last. Cheaper (one setup, one box's hours), slower.

The report is the `report-overnight` artifact and `<out_dir>/compare-<UTC time>/report/`; the night's cost (each
model's and the total) is the `cost-overnight` table artifact and `<night>/night.cost.json`, and the report shows it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger

from flows.onebox import one_box_night
from flows.shootout import RunIncomplete, shootout
from jobspecs import SpecError
from jobspecs.contracts import NightCost
from jobspecs.plan import NightPlacements, night_placements
from tasks.costs import publish_night_cost
from tasks.job import load_job
from tasks.offers import offer_shapes_for
from tasks.report import compare_runs_task, deployment_specs, parallel_night_cost, run_side_by_side


@flow(name="overnight")
def overnight(
    deployments: list[str],
    out_dir: str = "outputs",
    overrides: list[str] | None = None,
    budget_usd: float | None = None,
    placement: Literal["parallel", "one-box"] = "parallel",
) -> dict:
    """`deployments` (names such as shootout/wan), each run writing under `<out_dir>/compare-<UTC time>/<name>/`,
    side by side (`parallel`) or one after another on one instance (`one-box`); then the report over every run whose
    bundle was verified, with the night's cost; `overrides` (as `--set` takes them) go to every run. Fails, after the
    report, when a run did not complete."""
    night = Path(out_dir).resolve() / f"compare-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    night.mkdir(parents=True, exist_ok=True)
    specs = deployment_specs(deployments, default=shootout.parameters.properties["spec"]["default"])
    planned = plan_placements(specs, overrides or [])
    if placement == "one-box":
        night_cost = one_box_night(specs, str(night), overrides or [], budget_usd)
        finished = {run.name: run.state for run in night_cost.runs}
    else:
        share = budget_usd / len(deployments) if budget_usd is not None else None
        finished = run_side_by_side(deployments, night, overrides or [], share)
        night_cost = parallel_night_cost(night, finished)
    if planned is not None:
        night_cost = night_cost.model_copy(
            update={"planned_parallel_usd": planned.parallel_usd, "planned_one_box_usd": planned.one_box_usd}
        )
    publish_night_cost(night_cost, night)
    get_run_logger().info(night_summary(night_cost))
    report = compare_runs_task(night, deployments, night_cost)
    failed = [name for name, state in finished.items() if state != "COMPLETED"]
    if failed:
        raise RunIncomplete(f"{', '.join(failed)} did not complete; the report over what finished: {report['html']}")
    return {"report": str(report["html"]), "runs": finished, "winner": report["winner"], "usd": night_cost.usd_total}


def plan_placements(specs: dict[str, str], overrides: list[str]) -> NightPlacements | None:
    """The planner's dollars for the night in both placements, on the prices a run would see (live with a Vast key),
    logged before anything is rented; None (and a warning) where a spec does not load: its run will say why."""
    logger = get_run_logger()
    try:
        jobs = [load_job(spec, overrides).spec for spec in specs.values()]
    except SpecError as exc:
        logger.warning(f"the night's placements were not planned: {exc}")
        return None
    planned = night_placements(jobs, offer_shapes_for(jobs[0]))

    def usd(value: float | None) -> str:
        return f"${value:.2f}" if value is not None else "can't"

    logger.info(
        f"planned: parallel {usd(planned.parallel_usd)}, one-box {usd(planned.one_box_usd)} ({planned.one_box})"
    )
    return planned


def night_summary(night: NightCost) -> str:
    """'the night (one-box, 1 instance): wan $0.41, hunyuan $1.02, cogvideox $0.77 = $2.20 (shared $0.31 in them)'"""
    each = ", ".join(
        f"{run.name} " + (f"${run.usd_total:.2f}" if run.usd_total is not None else "—") for run in night.runs
    )
    shared = f" (shared ${night.shared_usd:.2f} in them)" if night.placement == "one-box" else ""
    return f"the night ({night.placement}, {night.instances} instances): {each} = ${night.usd_total:.2f}{shared}"
