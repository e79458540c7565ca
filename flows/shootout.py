"""The shootout flow: one job spec → chained clips on a box → one verified bundle on this machine; or, with
`compare`, several deployments side by side (each its own flow run on its own instance) → the comparison report.

One film: validate → plan (refuse what can't fit) → (commit check) → sweep orphans → box (the estimate at the
offer's price shown before renting) → setup → prefetch → upload → worker (followed here: logs, progress artifact,
clips copied as they finish) → stitch → bundle → fetch → verify → release the box (destroy a rented one) →
cost table and summary artifacts

The box is released in a `finally`, which also runs on cancellation; if this process is killed, the
on_crashed/on_cancellation hooks (run by Prefect's worker in a fresh process) destroy the instance recorded
for this flow run, and the reaper catches anything left after that.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml
from prefect import flow, get_run_logger
from prefect.logging.loggers import flow_run_logger
from prefect.runtime import flow_run as current_flow_run

from flows.reaper import sweep
from jobspecs import LoadedSpec
from jobspecs.load import resume_source
from tasks.box import (
    acquire_box,
    build_wheel,
    bundle_on_box,
    fetch_bundle,
    follow_worker,
    prefetch_model,
    release_box,
    resolved_spec,
    setup_box,
    start_worker,
    stitch_on_box,
    upload_job,
)
from tasks.costs import artifact_key, cost_summary, estimate_at, plan_run, publish_costs
from tasks.job import code_commit, load_job, new_run_id
from tasks.providers import (
    HF_TOKEN_BLOCK,
    InstanceRecord,
    destroy_recorded,
    live_instance_slot,
    make_provider,
    secret,
)
from tasks.report import compare_runs_task, publish_summary, run_side_by_side, verify

AFTER_GENERATION_S = 300.0  # stitch, bundle, fetch and destroy: kept out of a budget-capped run limit


class RunIncomplete(RuntimeError):
    """The worker stopped (a guardrail) or failed; what finished was still bundled and verified."""


class DirtyTree(RuntimeError):
    """The code differs from its commit; a rented box only runs committed code unless allowed."""


def destroy_on_crash(flow, flow_run, state) -> None:  # noqa: ANN001 — Prefect's hook signature
    """on_crashed / on_cancellation: this flow's own `finally` may not have run; destroy what it recorded."""
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


def within_budget(job: LoadedSpec, rentals: list, budget_usd: float | None) -> LoadedSpec:
    """With a budget, the run limit the worker gets is what the rest of the budget buys at the instance's price."""
    if budget_usd is None or not rentals or not float(rentals[-1].offer.get("dph_total") or 0):
        return job
    spent_s = time.monotonic() - rentals[-1].created_monotonic
    affordable_s = budget_usd / float(rentals[-1].offer["dph_total"]) * 3600 - spent_s - AFTER_GENERATION_S
    if affordable_s >= job.spec.run_limit_s:
        return job
    guardrails = job.spec.guardrails.model_copy(update={"run_limit_s": max(1.0, affordable_s)})
    get_run_logger().warning(f"budget_usd = {budget_usd:.2f}: the run limit is cut to {affordable_s:.0f} s")
    return dataclasses.replace(job, spec=job.spec.model_copy(update={"guardrails": guardrails}))


def one_film(spec: str, out_dir: str, overrides: list[str], resume_from: str | None, budget_usd: float | None) -> dict:
    started = time.monotonic()
    job = load_job(spec, overrides)
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
    keep = out / f"{run_id}.partial"  # finished clips, copied as they finish (a rented box can vanish)
    remote = infra.provider != "local"
    record = InstanceRecord(str(current_flow_run.id))  # the instance's record for the hooks and the reaper
    provider = make_provider(
        job.spec,
        str(current_flow_run.id),
        run_id,
        out,
        approve=lambda offer: estimate_at(prediction, float(offer.get("dph_total") or 0), budget_usd),
        on_created=record.write,
    )
    rentals = getattr(provider, "rentals", [])
    box, fetched = None, False
    with live_instance_slot(infra.provider), record:  # the global limit on live rented instances; the lease
        try:
            box = acquire_box(provider, run_id)
            if box.venv is not None:
                setup_box(box, build_wheel(out / ".wheels" / run_id))
                if job.spec.model_source == "hub":  # tiny weights are built on the box, offline
                    prefetch_model(box, job.spec.model, hf_token())
            job = within_budget(job, rentals, budget_usd)
            job_dir = upload_job(box, job, run_id, commit, finished=finished, keep=keep if remote else None)
            start_worker(box, job_dir)
            status = follow_worker(
                box,
                job_dir,
                job.spec.clip_count,
                job.spec.run_limit_s,
                keep if remote else None,
                progress_key=artifact_key("progress", job.spec.model),
            )
            if status.get("clips_done"):
                stitch_on_box(box, job_dir)
            bundle = bundle_on_box(box, job_dir)
            archive = fetch_bundle(box, job_dir, bundle["archive"], out)
            manifest = verify(archive, out)
            fetched = True
        finally:
            release_box(provider, box, run_id, fetched)
            record.forget()  # reached only when the release (the destroy) succeeded
    shutil.rmtree(keep, ignore_errors=True)  # the verified bundle holds everything kept there
    shutil.rmtree(out / ".wheels" / run_id, ignore_errors=True)
    video = manifest["final_video"]
    costs = [rental.cost() for rental in rentals]
    summary = cost_summary(
        costs,
        video["seconds"] if video else 0.0,
        time.monotonic() - started,
        {"estimate_s": round(prediction.total_s), "estimate_usd": 0.0},
        infra.provider,
    )
    publish_costs(run_id, job.spec.model, manifest["clips"]["finished"], summary, out)
    publish_summary(manifest, out / run_id, summary)
    if status.get("state") != "generated":
        raise RunIncomplete(
            f"{status.get('state')}: {status.get('reason')}; {status.get('clips_done', 0)} finished clips "
            f"are in {out / run_id} (guardrails: {manifest['guardrails']['outcome']})"
        )
    return {
        "run_id": run_id,
        "archive": str(archive),
        "run_dir": str(out / run_id),
        "video": str(out / run_id / video["path"]),
        "seconds": video["seconds"],
        "costs": costs,
        "cost": summary,
    }


def side_by_side(deployments: list[str], out_dir: str, overrides: list[str], budget_usd: float | None) -> dict:
    """Each deployment as its own flow run (its own process, instance, hooks and artifacts), all at once, then
    the comparison report over the verified runs. The budget is split evenly; each run refuses an estimate
    above its share before renting and cuts its run limit to what its share buys."""
    night = Path(out_dir).resolve() / f"compare-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    share = budget_usd / len(deployments) if budget_usd is not None else None
    finished = run_side_by_side(deployments, night, overrides, share)
    report = compare_runs_task(night, deployments)
    failed = [name for name, state in finished.items() if state != "COMPLETED"]
    if failed:
        raise RunIncomplete(f"{', '.join(failed)} did not complete; the report over what finished: {report['html']}")
    return {"report": str(report["html"]), "runs": finished, "winner": report["winner"]}


@flow(name="shootout", on_crashed=[destroy_on_crash], on_cancellation=[destroy_on_crash])
def shootout(
    spec: str = "jobspecs/demo.yaml",
    out_dir: str = "outputs",
    overrides: list[str] | None = None,
    resume_from: str | None = None,
    compare: list[str] | None = None,
    budget_usd: float | None = None,
) -> dict:
    """One spec → one verified film. With `compare` (deployment names such as shootout/wan), those deployments
    side by side, each on its own instance, then the comparison report; `overrides` then go to every one."""
    if compare:
        return side_by_side(compare, out_dir, overrides or [], budget_usd)
    return one_film(spec, out_dir, overrides or [], resume_from, budget_usd)
