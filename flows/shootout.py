"""The shootout flow: one job spec → chained clips on a box → one verified bundle on this machine.

validate → plan (refuse what can't fit) → (commit check) → sweep orphans → box (the estimate at the offer's price
shown before renting) → setup → prefetch → upload → worker (followed here: logs, progress artifact, clips copied as
they finish) → stitch → bundle → fetch → verify → release the box (destroy a rented one) → cost table and summary
artifacts

An interruptible (bid) instance that Vast stops is noticed (tasks/box.py WorkerFollower asks the provider every
infrastructure.preemption_check_s, and at once when the box stops answering), destroyed, and another rented: the run
goes on from the last clip copied here, up to max_preemptions and within the budget; past either, the kept clips are
stitched and bundled on this machine (bundle_here).

The box is released when the `rented` block ends, however it ends (cancellation too); if this process is killed, the
on_crashed/on_cancellation hooks (run by Prefect's worker in a fresh process) destroy the instance recorded for this
flow run, and the reaper catches anything left after that. Several deployments side by side: flows/overnight.py.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from prefect import flow, get_run_logger
from prefect.logging.loggers import flow_run_logger
from prefect.runtime import flow_run as current_flow_run

from flows.reaper import sweep
from jobspecs import LoadedSpec
from jobspecs.contracts import Manifest, WorkerStatus
from jobspecs.load import resume_source
from provisioning.base import Box, Estimate, Interrupted, Provider
from provisioning.local import LocalProvider
from provisioning.vast import DestroyFailed
from tasks.box import (
    build_wheel,
    bundle_on_box,
    fetch_bundle,
    follow_worker,
    kept_clip_count,
    mark_stopped,
    prefetch_model,
    resolved_spec,
    setup_box,
    start_worker,
    stitch_on_box,
    upload_job,
)
from tasks.costs import artifact_key, estimate_at, plan_run, publish_costs, run_cost
from tasks.job import code_commit, load_job, new_run_id
from tasks.naming import add_run_id_to_name, shootout_run_name
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
    less what every earlier instance cost, the time since this one was created, and AFTER_GENERATION_S kept for
    stitching, fetching and destroying."""
    costs = provider.costs()
    if budget_usd is None or not costs or not costs[-1].usd_per_hour:
        return job
    held, earlier = costs[-1], costs[:-1]  # the box's instance; before it: never ready, or taken away (preempted)
    left_usd = budget_usd - sum(cost.usd_total for cost in earlier)
    affordable_s = left_usd / held.usd_per_hour * 3600 - held.billed_seconds - AFTER_GENERATION_S
    if affordable_s >= job.spec.run_limit_s:
        return job
    guardrails = job.spec.guardrails.model_copy(update={"run_limit_s": max(1.0, affordable_s)})
    get_run_logger().warning(f"budget_usd = {budget_usd:.2f}: the run limit is cut to {affordable_s:.0f} s")
    return dataclasses.replace(job, spec=job.spec.model_copy(update={"guardrails": guardrails}))


def remaining_budget(budget_usd: float | None, provider: Provider) -> float | None:
    """What is left of the budget after every instance rented so far (None: no budget)."""
    if budget_usd is None:
        return None
    return budget_usd - sum(cost.usd_total for cost in provider.costs())


@contextmanager
def noticing_interruptions(provider: Provider) -> Iterator[None]:
    """Inside a rented block: a failure while the provider says it took the box away (an SSH drop, a command that
    died with its box, in any phase) is that interruption (Interrupted), asked before the block destroys the box."""
    try:
        yield
    except Interrupted:
        raise
    except Exception as exc:
        reason = provider.interrupted()
        if reason is None:
            raise
        raise Interrupted(f"{reason} ({type(exc).__name__} on the box)") from exc


@dataclasses.dataclass
class Finished:
    """A run's end on a box: the worker's final status and the verified bundle here."""

    status: WorkerStatus
    archive: Path
    manifest: Manifest


def run_on_box(
    box: Box,
    job: LoadedSpec,
    run_id: str,
    commit: dict,
    finished: Path | None,
    keep: Path | None,
    out: Path,
    provider: Provider,
) -> Finished:
    """One run on a box that is set up and holds the model: upload (with the clips finished before), the worker
    followed to its end (Interrupted if the provider takes the box away), stitch, bundle, fetch, verify."""
    job_dir = upload_job(box, job, run_id, commit, finished=finished, keep=keep)
    start_worker(box, job_dir)
    progress_key = artifact_key("progress", job.spec.model)
    status = follow_worker(
        box,
        job_dir,
        job.spec.clip_count,
        job.spec.run_limit_s,
        keep,
        progress_key,
        interrupted=provider.interrupted,
        check_every_s=job.spec.infrastructure.preemption_check_s,
    )
    if status.clips_done:
        stitch_on_box(box, job_dir)
    bundle = bundle_on_box(box, job_dir)
    archive = fetch_bundle(box, job_dir, bundle.archive, out)
    manifest = verify(archive, out)
    return Finished(status, archive, manifest)


def generate_on_a_box(
    provider: Provider,
    job: LoadedSpec,
    run_id: str,
    record: InstanceRecord,
    commit: dict,
    finished: Path | None,
    keep: Path | None,
    out: Path,
    budget_usd: float | None,
) -> Finished:
    """One box from renting to release: set up, prefetch, then the run (run_on_box). Interrupted when the provider
    takes the box away."""
    with rented(provider, run_id, record) as box, noticing_interruptions(provider):
        if box.venv is not None:
            setup_box(box, build_wheel(out / ".wheels" / run_id))
            if job.spec.model_source == "hub":  # tiny weights are built on the box, offline
                prefetch_model(box, job.spec.model, hf_token())
        job = within_budget(job, provider, budget_usd)
        # verified here when it returns: the block's end may then destroy the box and its copy
        return run_on_box(box, job, run_id, commit, finished, keep, out, provider)


def bundle_here(job: LoadedSpec, run_id: str, commit: dict, finished: Path | None, out: Path, reason: str) -> Finished:
    """No box is left to finish on: the clips finished so far (kept here), stitched and bundled on this machine as a
    stopped run (the same stitch and bundle code as on a box), fetched and verified like any bundle."""
    provider = LocalProvider(out / ".box")
    box = provider.acquire(run_id)
    job_dir = upload_job(box, job, run_id, commit, finished=finished)
    status = mark_stopped(box, job_dir, job.spec.clip_count, reason)
    if status.clips_done:
        stitch_on_box(box, job_dir)
    bundle = bundle_on_box(box, job_dir)
    archive = fetch_bundle(box, job_dir, bundle.archive, out)
    manifest = verify(archive, out)
    get_run_logger().info(provider.release(box, run_id, fetched=True))
    return Finished(status, archive, manifest)


@flow(
    name="shootout",
    flow_run_name=shootout_run_name,
    on_crashed=[destroy_on_crash],
    on_cancellation=[destroy_on_crash],
)
def shootout(
    spec: str = "jobspecs/demo.yaml",
    out_dir: str = "outputs",
    overrides: list[str] | None = None,
    resume_from: str | None = None,
    budget_usd: float | None = None,
) -> dict:
    """One spec → one verified film: the bundle, the run directory, the video and what it cost. `overrides` as
    `--set` takes them; `resume_from` a failed run's id; `budget_usd` refuses an estimate above it before renting
    (what is left of it before renting again) and cuts the run limit to what it buys. An interruptible instance that
    Vast takes away is destroyed and another rented, the run going on from the last clip kept here, at most
    `infrastructure.max_preemptions` times and never past the budget; past either, what finished is bundled here."""
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
    add_run_id_to_name(run_id)  # the flow run's name (tasks/naming.py) then ends with the run id
    # a remote box's finished clips, copied here as each finishes (the box can vanish); a local run's are here
    keep = out / f"{run_id}.partial" if infra.provider != "local" else None
    record = InstanceRecord(str(current_flow_run.id))  # the instance's record for the hooks and the reaper
    provider = make_provider(
        job.spec,
        str(current_flow_run.id),
        run_id,
        out,
        on_created=record.write,
        approve=lambda offer, usd_per_hour: estimate_at(
            prediction,
            usd_per_hour,
            remaining_budget(budget_usd, provider),
            clips_done=max(kept_clip_count(keep), kept_clip_count(finished)),
            spec=job.spec,
        ),
    )
    interruptions: list[str] = []
    while True:
        try:
            end = generate_on_a_box(provider, job, run_id, record, commit, finished, keep, out, budget_usd)
            break
        except Interrupted as exc:
            interruptions.append(str(exc))
            get_run_logger().warning(f"preemption {len(interruptions)} of at most {infra.max_preemptions}: {exc}")
            stop = None
        except Exception as exc:
            if not interruptions or isinstance(exc, DestroyFailed):
                raise  # a run's own failure (the box's bundle holds what finished), or an instance that may live on
            stop = f"preempted {len(interruptions)} times, then {type(exc).__name__}: {exc}"  # renting again failed
        if kept_clip_count(keep) > kept_clip_count(finished):
            finished = keep  # the next box starts from what was copied here
        left = remaining_budget(budget_usd, provider)
        if stop is None and len(interruptions) > infra.max_preemptions:
            stop = f"preempted {len(interruptions)} times, more than max_preemptions = {infra.max_preemptions}"
            stop += f"; the last: {interruptions[-1]}"
        elif stop is None and left is not None and left <= 0:
            stop = f"preempted {len(interruptions)} times and budget_usd = {budget_usd:.2f} is spent"
        if stop is not None:  # no box is rented again: what finished is bundled here
            end = bundle_here(job, run_id, commit, finished, out, stop)
            break
        get_run_logger().info(f"renting again: the run goes on after {kept_clip_count(finished)} finished clips")
    if keep is not None:
        shutil.rmtree(keep, ignore_errors=True)  # the verified bundle holds everything kept there
    shutil.rmtree(out / ".wheels" / run_id, ignore_errors=True)
    status, manifest, archive = end.status, end.manifest, end.archive
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
        preemptions=len(interruptions),
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
        "preemptions": len(interruptions),
    }
