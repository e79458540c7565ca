"""Tasks after the bundle is here: verify every hash, extract, publish the summary; and, for the overnight, run
several deployments at once and publish the comparison report over their verified runs."""

from __future__ import annotations

import base64
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment

from jobspecs import load_spec
from jobspecs.contracts import Manifest, NightCost, NightRun, RunCost
from provisioning.polling import poll_until
from remote.bundle import verify_bundle
from report import compare_runs, contact_sheet
from tasks.costs import artifact_key

POLL_S = 5.0
REPORT_KEY = "report-overnight"  # the comparison report's markdown artifact: one history, whatever started it


@task(name="verify-bundle")
def verify(archive: Path, out_dir: Path) -> Manifest:
    """The archive's hash, every member's hash, safe extraction into out_dir/<run_id>/."""
    manifest = verify_bundle(archive, dest=out_dir)
    get_run_logger().info(f"verified {archive.name}: {len(manifest.files) + 2} files, every sha256 matches")
    return manifest


def summary_markdown(
    manifest: Manifest, run_dir: Path, cost: RunCost, sheet: Path | None, profile_choice: str | None = None
) -> str:
    """The summary; `profile_choice`: what `generation.profile: auto` picked and why (jobspecs.plan.pick_profile)."""
    video, guard, clips = manifest.final_video, manifest.guardrails, manifest.clips
    profile = (manifest.model.model_extra or {}).get("profile")
    lines = [
        f"# {manifest.title} — {manifest.model.id}" + (f" ({profile} profile)" if profile else ""),
        "",
        f"- run: `{manifest.run_id}`",
        f"- video: `{run_dir / video.path}` ({video.seconds:.2f} s, {video.frames} frames, "
        f"{manifest.stitch.size} @ {manifest.stitch.fps} fps)"
        if video and manifest.stitch
        else "- video: none (no clip finished)",
        *([f"- {profile_choice}"] if profile_choice else []),
        f"- clips: {clips.finished} of {clips.planned} finished",
        f"- guardrails: {guard.outcome}"
        + (f" — {guard.reason}" if guard.reason else "")
        + f" (clip limit {guard.clip_limit_s:g} s, run limit {guard.run_limit_s:g} s)",
        f"- cost: ${cost.usd_total:.2f} on {cost.gpu} (estimate ${cost.estimate_usd or 0:.2f}), "
        f"{cost.billed_s:.0f} s billed",
        f"- code: `{manifest.pipeline_commit.sha}`" + (" (dirty)" if manifest.pipeline_commit.dirty else ""),
        "",
        "| clip | shot | camera | seconds | seed | total s |",
        "|---:|---:|---|---:|---:|---:|",
    ]
    for clip in clips.entries:
        lines.append(
            f"| {clip.clip} | {clip.shot} | {clip.camera} | {clip.seconds:.2f} | {clip.seed} | "
            f"{clip.timings_s.clip_total:.1f} |"
        )
    if sheet is not None:  # inline, so the artifact shows it without access to this machine's files
        data = base64.b64encode(sheet.read_bytes()).decode()
        lines += [
            "",
            f"Contact sheet (first and last frame of each clip; `{sheet}`):",
            "",
            f"![contact sheet](data:image/jpeg;base64,{data})",
        ]
    return "\n".join(lines)


@task(name="publish-summary")
def publish_summary(manifest: Manifest, run_dir: Path, cost: RunCost, profile_choice: str | None = None) -> str:
    """The run's markdown summary artifact: video path, guardrail outcome, cost, clips and a contact sheet."""
    sheet = None
    if manifest.clips.finished:
        sheet = contact_sheet(run_dir, run_dir.with_name(f"{run_dir.name}.contact.jpg"), thumb_width=160)
    markdown = summary_markdown(manifest, run_dir, cost, sheet, profile_choice)
    create_markdown_artifact(
        key=artifact_key("summary", manifest.model.id),
        markdown=markdown,
        description=f"{manifest.title}: {manifest.clips.finished} clips, {manifest.guardrails.outcome}",
    )
    return markdown


@task(name="run-side-by-side", cache_policy=NO_CACHE)
def run_side_by_side(deployments: list[str], night: Path, overrides: list[str], budget_usd: float | None) -> dict:
    """Start every deployment at once (linked to this run as subflows), wait for all; {deployment: final state}.
    Each writes into its own folder under `night`; each enforces its own clip, run and budget limits."""
    logger = get_run_logger()
    started = {}
    for name in deployments:
        parameters = {"out_dir": str(night / name.rsplit("/", 1)[-1]), "overrides": overrides, "budget_usd": budget_usd}
        started[name] = run_deployment(name, parameters=parameters, timeout=0, as_subflow=True).id
        logger.info(f"started {name}: flow run {started[name]}")
    states: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        for _ in poll_until(None, POLL_S):
            for name in started.keys() - states.keys():
                state = client.read_flow_run(started[name]).state
                if state is not None and state.is_final():
                    states[name] = state.type.value
                    logger.info(f"{name}: {state.type.value} {state.message or ''}".strip())
            if len(states) == len(started):
                return states


def deployment_specs(deployments: list[str], default: str | None = None) -> dict[str, str | None]:
    """Each deployment's short name (shootout/wan → wan) → the spec file it runs (its `spec` parameter, else
    `default`: the flow's own)."""
    with get_client(sync_client=True) as client:
        return {
            name.rsplit("/", 1)[-1]: client.read_deployment_by_name(name).parameters.get("spec", default)
            for name in deployments
        }


def parallel_night_cost(night: Path, states: dict[str, str]) -> NightCost:
    """The night's cost when every model had its own instance (`states`: deployment → final state): each run's
    <run_id>.cost.json under <night>/<name>/, summed."""
    runs, instances = [], 0
    for deployment, state in states.items():
        name = deployment.rsplit("/", 1)[-1]
        found = sorted((night / name).glob("*.cost.json"))
        cost = RunCost.model_validate_json(found[-1].read_text()) if found else None
        runs.append(NightRun(name=name, run=cost.run if cost else None, state=state, usd_total=cost and cost.usd_total))
        instances += len([i for i in cost.instance.split(", ") if i.isdigit()]) if cost else 0
    total = round(sum(run.usd_total or 0.0 for run in runs), 4)
    return NightCost(placement="parallel", instances=instances, usd_total=total, shared_usd=0.0, runs=runs)


@task(name="compare-runs", cache_policy=NO_CACHE)
def compare_runs_task(night: Path, deployments: list[str], night_cost: NightCost | None = None) -> dict:
    """The comparison report over every verified run under `night` (HTML, JSON, and a markdown artifact), with what
    the night cost."""
    run_dirs = sorted(p.parent for p in night.glob("*/*/manifest.json"))
    spec = deployment_specs(deployments[:1]).popitem()[1]  # the first model's reference image
    reference = load_spec(spec).reference if spec else None
    report = compare_runs(run_dirs, night / "report", reference=reference, night=night_cost)
    create_markdown_artifact(
        key=REPORT_KEY,
        markdown=report["markdown"],
        description=f"winner: {report['winner']} ({len(run_dirs)} runs)",
    )
    get_run_logger().info(f"report: {report['html']} (winner {report['winner']})")
    return report
