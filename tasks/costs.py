"""What a run costs: the planner's prediction before anything is rented, the estimate at the offer's price
(shown before the instance is created), and the actual cost after — side by side in a table artifact under a
stable key per deployment (`cost-<deployment>`), the last runs' costs of that key in a markdown artifact
(`cost-history-<deployment>`), and in `<run_id>.cost.json` beside the bundle.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactCreate
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, ArtifactFilterType
from prefect.client.schemas.objects import Artifact
from prefect.client.schemas.sorting import ArtifactSort
from prefect.runtime import deployment, flow_run, task_run

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
    preempted = f" + {preemption_s:.0f} s expected preemption overhead" if preemption_s else ""
    return priced(
        seconds,
        usd_per_hour,
        budget_usd,
        lambda usd: (
            f"budget_usd: ${budget_usd:.2f} is left, and the estimate at the cheapest matching offer is "
            f"${usd:.2f} ({seconds:.0f} s at ${usd_per_hour:.3f}/h: {planned_s:.0f} s planned + {PROVISIONING_S:.0f} s "
            f"provisioning{preempted}); raise the budget, lower infrastructure.max_usd_per_hour or shorten the film"
        ),
    )


def priced(seconds: float, usd_per_hour: float, budget_usd: float | None, refusal: Callable[[float], str]) -> Estimate:
    """`seconds` at `usd_per_hour`; OverBudget (`refusal(usd)` its message) above `budget_usd`."""
    usd = usd_per_hour * seconds / 3600
    if budget_usd is not None and usd > budget_usd:
        raise OverBudget(refusal(usd))
    return Estimate(seconds=round(seconds), usd=round(usd, 4))


def night_estimate(
    predictions: list[RunPrediction], models: list[str], usd_per_hour: float, budget_usd: float | None
) -> Estimate:
    """One box for a night of runs (flows/onebox.py): every run's planned seconds, provisioning once, and each
    model's download (the offers.yaml rate; PROVISIONING_S already holds one download: an overestimate by that
    much), × $/h. Raises OverBudget above `budget_usd`."""
    planned_s = sum(prediction.total_s for prediction in predictions)
    seconds = planned_s + PROVISIONING_S + sum(download_seconds(model) for model in models)
    return priced(
        seconds,
        usd_per_hour,
        budget_usd,
        lambda usd: (
            f"budget_usd: ${budget_usd:.2f}, and the night's estimate on one box at the cheapest matching "
            f"offer is ${usd:.2f} ({seconds:.0f} s at ${usd_per_hour:.3f}/h: {planned_s:.0f} s planned for "
            f"{len(models)} runs + provisioning and downloads); raise the budget or use placement parallel"
        ),
    )


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


HISTORY_RUNS = 20  # the runs cost-history-<deployment> lists


def usd_text(usd: float | None) -> str:
    """Dollars for a table cell: $0.42, $12.35; under 10 cents two significant digits ($0.0042); None: -."""
    if usd is None:
        return "-"
    if usd == 0 or abs(usd) >= 0.1:
        return f"${usd:,.2f}"
    return f"${usd:.{1 - math.floor(math.log10(abs(usd)))}f}"


def rate_text(usd_per_hour: float) -> str:
    """A price per hour for a table cell: $0.24, $0.264 (a bid: three decimals where the third is not 0)."""
    text = f"{usd_per_hour:.3f}"
    return "$" + (text[:-1] if text.endswith("0") else text)


def duration_text(seconds: float | None) -> str:
    """Seconds for a table cell: "12 min 5 s", "1 h 2 min", "42 s"; None: -."""
    if seconds is None:
        return "-"
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{value} {unit}" for value, unit in ((hours, "h"), (minutes, "min"), (secs, "s")) if value]
    return " ".join(parts) or "0 s"


def cost_table_row(cost: RunCost) -> dict[str, str | int]:
    """The cost table artifact's row, as a user reads it: what ran first, the actual cost next to the estimate,
    the long ids last. Display only: the RunCost itself rides in the artifact's metadata (cost_of_artifact)."""
    return {
        "Model": cost.model,
        "GPU": cost.gpu or "-",
        "Clips": cost.clips,
        "$ actual": usd_text(cost.usd_total),
        "$ estimate": usd_text(cost.estimate_usd),
        "Billed": duration_text(cost.billed_s),
        "Estimated": duration_text(cost.estimate_s),
        "$/video s": usd_text(cost.usd_per_video_s),
        "$/h": rate_text(cost.usd_per_hour),
        "Preemptions": cost.preemptions,
        "Instances": cost.instance,
        "Run": cost.run,
    }


def cost_of_artifact(artifact: Artifact) -> RunCost | None:
    """The RunCost a `cost-<deployment>` table artifact carries: in its metadata (each field's JSON, written by
    publish_costs), else, in an artifact older than the human headers, as its one row; None where it holds neither
    (the night's `cost-overnight` table, a layout this code cannot read)."""
    if artifact.type != "table":
        return None
    fields = {name: value for name, value in (artifact.metadata_ or {}).items() if name in RunCost.model_fields}
    try:
        if fields:
            return RunCost.model_validate({name: json.loads(value) for name, value in fields.items()})
        rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
        return RunCost.model_validate(rows[0]) if rows else None
    except (ValueError, LookupError, TypeError):  # pydantic's ValidationError is a ValueError
        return None


def create_cost_artifact(key: str, cost: RunCost) -> None:
    """The cost table artifact: one human row (cost_table_row), the RunCost in the metadata for the readers
    (`shootout runs`, the cost history). Prefect's create_table_artifact takes no metadata, so the client does."""
    with get_client(sync_client=True) as client:
        client.create_artifact(
            ArtifactCreate(
                key=key,
                type="table",
                description=f"${cost.usd_total:.2f} (estimate ${cost.estimate_usd or 0:.2f})"
                + (f", {cost.preemptions} preemptions" if cost.preemptions else "")
                + f" — {cost.run}",
                data=json.dumps([cost_table_row(cost)]),
                # one JSON value per field: Prefect cuts a metadata value past 500 characters
                metadata_={name: json.dumps(value) for name, value in cost.model_dump(mode="json").items()},
                flow_run_id=flow_run.id,
                task_run_id=task_run.id,
            )
        )


def cost_history(key: str, limit: int = HISTORY_RUNS) -> list[tuple[datetime, RunCost]]:
    """The costs of the last `limit` versions of the `key` table artifact (one per run), newest first, each with
    when it was published; versions without a readable cost are left out."""
    with get_client(sync_client=True) as client:
        versions = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]), type=ArtifactFilterType(any_=["table"])),
            sort=ArtifactSort.CREATED_DESC,
            limit=limit,
        )
    history = [(version.created, cost_of_artifact(version)) for version in versions]
    return [(created.astimezone(UTC), cost) for created, cost in history if cost is not None]


def cost_history_markdown(key: str, history: list[tuple[datetime, RunCost]]) -> str:
    """The cost history page: one row per run, newest first, and their total."""
    right = ["Clips", "$ actual", "$ estimate", "Billed", "Estimated", "Preemptions"]  # numbers, right-aligned
    header = ["Ended (UTC)", "Model", "GPU", *right, "Run"]

    def line(cells: list) -> str:
        return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"

    rows = [
        [
            f"{created:%Y-%m-%d %H:%M}",
            cost.model,
            cost.gpu or "-",
            cost.clips,
            usd_text(cost.usd_total),
            usd_text(cost.estimate_usd),
            duration_text(cost.billed_s),
            duration_text(cost.estimate_s),
            cost.preemptions,
            cost.run,
        ]
        for created, cost in history
    ]
    costs = [cost for _, cost in history]
    runs = f"{len(costs)} run" + ("" if len(costs) == 1 else "s")
    usd = sum(cost.usd_total for cost in costs)
    estimate = sum(cost.estimate_usd or 0 for cost in costs)
    total = [
        f"**total, {runs}**",
        "",
        "",
        sum(cost.clips for cost in costs),
        f"**{usd_text(usd)}**",
        usd_text(estimate),
        duration_text(sum(cost.billed_s for cost in costs)),
        duration_text(sum(cost.estimate_s or 0 for cost in costs)),
        sum(cost.preemptions for cost in costs),
        "",
    ]
    return "\n".join(
        [
            f"# Cost history: `{key}`",
            "",
            f"The last {runs} of this key (at most {HISTORY_RUNS}), newest first: {usd_text(usd)} actual, "
            f"{usd_text(estimate)} estimated before renting.",
            "",
            line(header),
            line(["---:" if name in right else "---" for name in header]),
            *(line(row) for row in rows),
            line(total),
        ]
    )


@task(name="publish-costs")
def publish_costs(cost: RunCost, out_dir: Path) -> Path:
    """The cost table artifact (estimate next to actual), the cost history artifact (the last HISTORY_RUNS runs of
    that key, this one first) and `<run_id>.cost.json` beside the bundle."""
    key = artifact_key("cost", cost.model)
    create_cost_artifact(key, cost)
    history = cost_history(key)
    create_markdown_artifact(
        key=artifact_key("cost-history", cost.model),
        markdown=cost_history_markdown(key, history),
        description=f"${sum(c.usd_total for _, c in history):.2f} over the last {len(history)} runs of {key}",
    )
    path = out_dir / f"{cost.run}.cost.json"
    path.write_text(json.dumps(cost.model_dump(mode="json"), indent=2) + "\n")
    return path
