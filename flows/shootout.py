"""The shootout flow: one job spec → chained clips on a box → one verified bundle on this machine.

validate → plan (refuse what can't fit) → (commit check) → sweep orphans → box (the estimate at the offer's price
shown before renting) → setup → prefetch → upload → worker (followed here: logs, progress artifact, clips copied as
they finish) → stitch → bundle → fetch → verify → release the box (destroy a rented one) → cost table and summary
artifacts

The box is released when the `rented` block ends, however it ends (cancellation too); if this process is killed, the
on_crashed/on_cancellation hooks (run by Prefect's worker in a fresh process) destroy the instance recorded for this
flow run, and the reaper catches anything left after that. Several deployments side by side: flows/overnight.py.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import yaml
from prefect import flow, get_run_logger
from prefect.logging.loggers import flow_run_logger
from prefect.runtime import flow_run as current_flow_run

from flows.reaper import sweep
from jobspecs import LoadedSpec
from jobspecs.load import resume_source
from provisioning.base import Estimate, Provider
from tasks.box import (
    build_wheel,
    bundle_on_box,
    fetch_bundle,
    follow_worker,
    prefetch_model,
    resolved_spec,
    setup_box,
    start_worker,
    stitch_on_box,
    upload_job,
)
from tasks.costs import artifact_key, estimate_at, plan_run, publish_costs, run_cost
from tasks.job import code_commit, load_job, new_run_id
from tasks.providers import HF_TOKEN_BLOCK, InstanceRecord, destroy_recorded, make_provider, rented, secret
from tasks.report import publish_summary, verify

AFTER_GENERATION_S = 300.0  # stitch, bundle, fetch and destroy: kept out of a budget-capped run limit


class RunIncomplete(RuntimeError):
    """The worker stopped (a guardrail) or failed, or (the overnight) a run did not complete; what finished was
    still bundled and verified."""


class DirtyTree(RuntimeError):
    """The code differs from its commit; a rented box only runs committed code unless allowed."""


def destroy_on_crash(flow, flow_run, state) -> None:
    """on_crashed / on_cancellation: the release that ends the `rented` block may not have run; destroy the
    instance this flow run recorded."""
    flow_run_logger(flow_run, flow).warning(destroy_recorded(str(flow_run.id)))


def resumable_clips(out: Path, run_id: str, job: LoadedSpec) -> Path:
    """Where a failed run's finished clips are (its .partial folder, else its verified run directory), after
    checking that the spec asks for the same film (guardrails and infrastructure may differ)."""
    source = resume_source(out, run_id)  # the CLI checks the same before the flow starts
    before = yaml.safe_load((source / "job.yaml").read_text())
    now = resolved_spec(job)
    changed = sorted(
        k
        for k in before.keys() | now.keys()
        if k not in ("guardrails", "infrastructure") and before.get(k) != now.get(k)
    )
    if changed:
        raise ValueError(f"resume_from={run_id}: the spec differs from that run's in {', '.join(changed)}")
    return source


def hf_token() -> str | None:
    try:
        return secret(HF_TOKEN_BLOCK, "HF_TOKEN")
    except RuntimeError:
        return None  # public repos need none


def within_budget(job: LoadedSpec, provider: Provider, budget_usd: float | None) -> LoadedSpec:
    """With a budget, the run limit the worker gets is what the rest of the budget buys at the instance's price:
    less the time since it was created, and AFTER_GENERATION_S kept for stitching, fetching and destroying."""
    costs = provider.costs()
    if budget_usd is None or not costs or not costs[-1].usd_per_hour:
        return job
    held = costs[-1]  # the instance the box runs on (any before it never became ready and was destroyed)
    affordable_s = budget_usd / held.usd_per_hour * 3600 - held.billed_seconds - AFTER_GENERATION_S
    if affordable_s >= job.spec.run_limit_s:
        return job
    guardrails = job.spec.guardrails.model_copy(update={"run_limit_s": max(1.0, affordable_s)})
    get_run_logger().warning(f"budget_usd = {budget_usd:.2f}: the run limit is cut to {affordable_s:.0f} s")
    return dataclasses.replace(job, spec=job.spec.model_copy(update={"guardrails": guardrails}))


@flow(name="shootout", on_crashed=[destroy_on_crash], on_cancellation=[destroy_on_crash])
def shootout(
    spec: str = "jobspecs/demo.yaml",
    out_dir: str = "outputs",
    overrides: list[str] | None = None,
    resume_from: str | None = None,
    budget_usd: float | None = None,
) -> dict:
    """One spec → one verified film: the bundle, the run directory, the video and what it cost. `overrides` as
    `--set` takes them; `resume_from` a failed run's id; `budget_usd` refuses an estimate above it before renting
    and cuts the run limit to what it buys."""
    started = time.monotonic()
    job = load_job(spec, overrides or [])
    prediction = plan_run(job.spec)
    infra = job.spec.infrastructure
    commit = code_commit()
    if infra.provider != "local" and commit.get("dirty") and not infra.allow_dirty:
        raise DirtyTree("the working tree differs from its commit; commit first, or set infrastructure.allow_dirty")
    out = Path(out_dir).resolve()
    finished = resumable_clips(out, resume_from, job) if resume_from else None
    if infra.provider == "vast":
        swept = sweep(return_state=True)  # what a killed laptop left running before this run rents anything
        if not swept.is_completed():  # named in the sweep's log, with the command to destroy it; this run goes on
            get_run_logger().warning(f"the start-of-run sweep: {swept.message}")
    run_id = new_run_id(job.spec.model)
    # a remote box's finished clips, copied here as each finishes (the box can vanish); a local run's are here
    keep = out / f"{run_id}.partial" if infra.provider != "local" else None
    record = InstanceRecord(str(current_flow_run.id))  # the instance's record for the hooks and the reaper
    provider = make_provider(
        job.spec,
        str(current_flow_run.id),
        run_id,
        out,
        on_created=record.write,
        approve=lambda offer: estimate_at(prediction, offer.usd_per_hour, budget_usd),
    )
    with rented(provider, run_id, record) as box:
        if box.venv is not None:
            setup_box(box, build_wheel(out / ".wheels" / run_id))
            if job.spec.model_source == "hub":  # tiny weights are built on the box, offline
                prefetch_model(box, job.spec.model, hf_token())
        job = within_budget(job, provider, budget_usd)
        job_dir = upload_job(box, job, run_id, commit, finished=finished, keep=keep)
        start_worker(box, job_dir)
        progress_key = artifact_key("progress", job.spec.model)
        status = follow_worker(box, job_dir, job.spec.clip_count, job.spec.run_limit_s, keep, progress_key)
        if status.clips_done:
            stitch_on_box(box, job_dir)
        bundle = bundle_on_box(box, job_dir)
        archive = fetch_bundle(box, job_dir, bundle.archive, out)
        manifest = verify(archive, out)  # the block ends here: the bundle is safe, the box's copy may go
    if keep is not None:
        shutil.rmtree(keep, ignore_errors=True)  # the verified bundle holds everything kept there
    shutil.rmtree(out / ".wheels" / run_id, ignore_errors=True)
    video = manifest.final_video
    costs = provider.costs()
    cost = run_cost(
        run_id,
        job.spec.model,
        manifest.clips.finished,
        costs,
        video.seconds if video else 0.0,
        time.monotonic() - started,
        Estimate(seconds=round(prediction.total_s), usd=0.0),
        infra.provider,
    )
    publish_costs(cost, out)
    publish_summary(manifest, out / run_id, cost, job.spec.profile_choice)
    if status.state != "generated":
        raise RunIncomplete(
            f"{status.state}: {status.reason}; {status.clips_done} finished clips "
            f"are in {out / run_id} (guardrails: {manifest.guardrails.outcome})"
        )
    return {
        "run_id": run_id,
        "archive": str(archive),
        "run_dir": str(out / run_id),
        "video": str(out / run_id / video.path),
        "seconds": video.seconds,
        "costs": costs,
        "cost": cost,
    }
