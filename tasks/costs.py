"""What a run costs: the planner's prediction before anything is rented, the estimate at the offer's price
(shown before the instance is created), and the actual cost after — side by side in a table artifact under a
stable key per deployment, so the Prefect UI keeps the cost history, and in `<run_id>.cost.json` beside the bundle.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.runtime import deployment

from jobspecs import JobSpec
from jobspecs.contracts import RunCost
from jobspecs.plan import RunPrediction, check_plan, expected_preemption_s
from provisioning.base import Estimate, InstanceCost

# Create → running → SSH → setup.sh → prefetch → bundle → fetch, on top of the planned clip time. An assumption
# (a fresh Vast 4090 with a ~30 GB download at ~1 Gbit/s), not a measurement; the cost table shows how it held.
PROVISIONING_S = 900.0


class OverBudget(RuntimeError):
    """The estimate at the cheapest matching offer is above the run's budget: nothing was rented."""


@task(name="plan-run")
def plan_run(spec: JobSpec) -> RunPrediction:
    """The planner, first step of every run: predicted seconds per clip on the target GPU; a plan whose clips
    cannot fit the clip limit is refused here (jobspecs.plan.check_plan), before anything is rented."""
    prediction = check_plan(spec, spec.infrastructure.gpu)
    logger = get_run_logger()
    for clip in prediction.clips:
        logger.info(f"plan: clip {clip.index}: {clip.seconds:.0f} s predicted on {prediction.device}")
    logger.info(
        f"plan: {prediction.total_s:.0f} s of generation for {len(prediction.clips)} clips on {prediction.device}"
    )
    for warning in prediction.warnings:  # guardrails.plan_check = warn, or tiny weights
        logger.warning(f"plan: {warning}")
    return prediction


def estimate_at(
    prediction: RunPrediction,
    usd_per_hour: float,
    budget_usd: float | None,
    clips_done: int = 0,
    spec: JobSpec | None = None,
) -> Estimate:
    """The run's cost at an offer's price: the planned seconds still to go (the model's load and the clips after
    `clips_done`, those already finished and kept), plus provisioning, × $/h; where the `spec` rents interruptible, plus the
    expected preemptions' overhead (jobspecs.plan.expected_preemption_s: an assumed rate × the seconds each costs).
    Raises OverBudget above `budget_usd` (what is left of the budget)."""
    planned_s = prediction.load_s + sum(clip.seconds for clip in prediction.clips[clips_done:])
    preemption_s = 0.0
    if spec is not None and spec.infrastructure.interruptible:
        preemption_s = expected_preemption_s(spec, planned_s + PROVISIONING_S, prediction).extra_s
    seconds = planned_s + PROVISIONING_S + preemption_s
    usd = usd_per_hour * seconds / 3600
    if budget_usd is not None and usd > budget_usd:
        preempted = f" + {preemption_s:.0f} s expected preemption overhead" if preemption_s else ""
        raise OverBudget(
            f"budget_usd: ${budget_usd:.2f} is left, and the estimate at the cheapest matching offer is ${usd:.2f} "
            f"({seconds:.0f} s at ${usd_per_hour:.3f}/h: {planned_s:.0f} s planned + {PROVISIONING_S:.0f} s "
            f"provisioning{preempted}); raise the budget, lower infrastructure.max_usd_per_hour or shorten the film"
        )
    return Estimate(seconds=round(seconds), usd=round(usd, 4))


def artifact_key(kind: str, model: str) -> str:
    """A stable key per deployment (`cost-wan`, `progress-demo`), else per model; Prefect allows a-z0-9-."""
    name = deployment.name or model
    return f"{kind}-" + re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")


def run_cost(
    run_id: str,
    model: str,
    clips: int,
    costs: list[InstanceCost],
    video_s: float,
    wall_s: float,
    estimate: Estimate,
    provider: str,
    preemptions: int = 0,
) -> RunCost:
    """One run's cost: every rented instance summed (a run may have destroyed a failed instance before the one it
    used, or ones Vast took away: `preemptions`), the estimate made before renting the last. Without an instance
    (local, ssh) the box costs nothing here, the wall time stands in for the billed time and `estimate` (the
    planner's) for the estimate."""
    total = sum(cost.usd_total for cost in costs)
    last = costs[-1] if costs else None
    return RunCost(
        run=run_id,
        model=model,
        clips=clips,
        instance=", ".join(str(cost.instance_id) for cost in costs) or provider,
        gpu=last.gpu if last else ("this machine" if provider == "local" else "your box"),
        usd_per_hour=last.usd_per_hour if last else 0.0,
        billed_s=round(sum(cost.billed_seconds for cost in costs), 1) if costs else round(wall_s, 1),
        usd_total=round(total, 4),
        usd_per_video_s=round(total / video_s, 5) if video_s else None,
        estimate_s=last.estimate_s if last else estimate.seconds,
        estimate_usd=last.estimate_usd if last else estimate.usd,
        preemptions=preemptions,
    )


@task(name="publish-costs")
def publish_costs(cost: RunCost, out_dir: Path) -> Path:
    """The cost table artifact (estimate next to actual) and `<run_id>.cost.json` beside the bundle."""
    row = cost.model_dump(mode="json")
    create_table_artifact(
        key=artifact_key("cost", cost.model),
        table=[row],
        description=f"${cost.usd_total:.2f} (estimate ${cost.estimate_usd or 0:.2f})"
        + (f", {cost.preemptions} preemptions" if cost.preemptions else "")
        + f" — {cost.run}",
    )
    path = out_dir / f"{cost.run}.cost.json"
    path.write_text(json.dumps(row, indent=2) + "\n")
    return path
