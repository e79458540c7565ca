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
from jobspecs.contracts import NightCost, RunCost
from jobspecs.plan import RunPrediction, check_plan, download_seconds, expected_preemption_s
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
    `clips_done`, those already finished and kept), plus provisioning, × $/h; where the `spec` rents interruptible,
    plus the expected preemptions' overhead (jobspecs.plan.expected_preemption_s: an assumed rate × the seconds each
    costs). Raises OverBudget above `budget_usd` (what is left of the budget)."""
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


def night_estimate(
    predictions: list[RunPrediction], models: list[str], usd_per_hour: float, budget_usd: float | None
) -> Estimate:
    """One box for a night of runs (flows/onebox.py): every run's planned seconds, provisioning once, and each
    model's download (the offers.yaml rate; PROVISIONING_S already holds one download: an overestimate by that
    much), × $/h. Raises OverBudget above `budget_usd`."""
    planned_s = sum(prediction.total_s for prediction in predictions)
    seconds = planned_s + PROVISIONING_S + sum(download_seconds(model) for model in models)
    usd = usd_per_hour * seconds / 3600
    if budget_usd is not None and usd > budget_usd:
        raise OverBudget(
            f"budget_usd: ${budget_usd:.2f}, and the night's estimate on one box at the cheapest matching offer is "
            f"${usd:.2f} ({seconds:.0f} s at ${usd_per_hour:.3f}/h: {planned_s:.0f} s planned for {len(models)} "
            f"runs + provisioning and downloads); raise the budget or use placement parallel"
        )
    return Estimate(seconds=round(seconds), usd=round(usd, 4))


def shared_box_costs(
    instances: list[InstanceCost],
    segments: dict[str, tuple[str, float]],
    specs: dict[str, JobSpec],
    predictions: dict[str, RunPrediction],
    ends: dict,
) -> tuple[dict[str, RunCost], float]:
    """Each run's cost on a box it shared (flows/onebox.py) and the shared part: a run pays its own seconds on the
    box (`segments`: name → (run id, seconds), from its upload to its verified bundle) at the box's price, and an
    even share of the rest (setup, downloads, release, and any instance that never became ready), so the runs' costs
    add up to what the instances cost. The night's estimate is split the same way, by planned seconds. `ends`: name
    → the run's Finished (flows/shootout.py) where it got that far."""
    total_usd = sum(cost.usd_total for cost in instances)
    total_s = sum(cost.billed_seconds for cost in instances)
    last = instances[-1] if instances else None
    price = last.usd_per_hour if last else 0.0
    own_s = {name: seconds for name, (_, seconds) in segments.items()}
    shared_usd = max(0.0, total_usd - sum(own_s.values()) * price / 3600)
    shared_s = max(0.0, total_s - sum(own_s.values())) if instances else 0.0
    planned = sum(predictions[name].total_s for name in segments) or 1.0
    costs = {}
    for name, (run_id, seconds) in segments.items():
        end = ends.get(name)
        video = end.manifest.final_video if end else None
        usd = seconds * price / 3600 + shared_usd / len(segments)
        share = predictions[name].total_s / planned
        costs[name] = RunCost(
            run=run_id,
            model=specs[name].model,
            clips=end.manifest.clips.finished if end else 0,
            instance=", ".join(str(cost.instance_id) for cost in instances) or specs[name].infrastructure.provider,
            gpu=last.gpu if last else "this machine",
            usd_per_hour=price,
            billed_s=round(seconds + shared_s / len(segments), 1),
            usd_total=round(usd, 4),
            usd_per_video_s=round(usd / video.seconds, 5) if video and video.seconds else None,
            estimate_s=round(last.estimate_s * share) if last and last.estimate_s else round(predictions[name].total_s),
            estimate_usd=round(last.estimate_usd * share, 4) if last and last.estimate_usd is not None else 0.0,
        )
    return costs, round(shared_usd, 4)


def night_cost_table(night: NightCost) -> list[dict]:
    """The night's cost as table rows: one per model, then the shared part (one-box) and the total."""
    rows = [{"model": run.name, "run": run.run, "state": run.state, "usd": run.usd_total} for run in night.runs]
    if night.placement == "one-box":
        rows.append({"model": "(shared: setup, downloads)", "run": None, "state": None, "usd": night.shared_usd})
    rows.append({"model": f"night total ({night.placement})", "run": None, "state": None, "usd": night.usd_total})
    return rows


@task(name="publish-night-cost")
def publish_night_cost(night: NightCost, night_dir: Path) -> Path:
    """`<night>/night.cost.json` and the `cost-overnight` table artifact: each model's run and the night's total."""
    create_table_artifact(
        key="cost-overnight",
        table=night_cost_table(night),
        description=f"${night.usd_total:.2f} for the night ({night.placement}, {night.instances} instances)",
    )
    path = night_dir / "night.cost.json"
    path.write_text(night.to_json() + "\n")
    return path


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
