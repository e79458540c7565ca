"""The shootout flow: one job spec → chained clips on a box → one verified bundle on this machine.

validate → plan → (commit check) → box → setup → prefetch → upload → worker (followed here, clips copied as they
finish) → stitch → bundle → fetch → verify → release the box (destroy a rented one) → summary

The box is released in a `finally`, which also runs on cancellation; if this process is killed, the
on_crashed/on_cancellation hooks (run by Prefect's worker in a fresh process) destroy the instance recorded
for this flow run, and the reaper catches anything left after that.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from prefect import flow
from prefect.logging.loggers import flow_run_logger
from prefect.runtime import flow_run as current_flow_run

from jobspecs import LoadedSpec
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
from tasks.job import code_commit, load_job, new_run_id
from tasks.providers import destroy_recorded, forget_record, make_provider, secret
from tasks.report import publish_summary, verify


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
    source = next((p for p in (out / f"{run_id}.partial", out / run_id) if (p / "job.yaml").exists()), None)
    if source is None:
        raise FileNotFoundError(f"resume_from={run_id}: no {run_id}.partial/ or {run_id}/ with a job.yaml in {out}")
    before = yaml.safe_load((source / "job.yaml").read_text())
    now = resolved_spec(job)
    changed = sorted(k for k in before.keys() | now.keys() if k not in ("guardrails", "infrastructure")
                     and before.get(k) != now.get(k))  # fmt: skip
    if changed:
        raise ValueError(f"resume_from={run_id}: the spec differs from that run's in {', '.join(changed)}")
    return source


def hf_token() -> str | None:
    try:
        return secret("hf-token", "HF_TOKEN")
    except RuntimeError:
        return None  # public repos need none


@flow(name="shootout", on_crashed=[destroy_on_crash], on_cancellation=[destroy_on_crash])
def shootout(
    spec: str = "jobspecs/demo.yaml",
    out_dir: str = "outputs",
    overrides: list[str] | None = None,
    resume_from: str | None = None,
) -> dict:
    job = load_job(spec, overrides or [])
    infra = job.spec.infrastructure
    commit = code_commit()
    if infra.provider != "local" and commit.get("dirty") and not infra.allow_dirty:
        raise DirtyTree("the working tree differs from its commit; commit first, or set infrastructure.allow_dirty")
    out = Path(out_dir).resolve()
    finished = resumable_clips(out, resume_from, job) if resume_from else None
    run_id = new_run_id(job.spec.model)
    keep = out / f"{run_id}.partial"  # finished clips, copied as they finish (a rented box can vanish)
    remote = infra.provider != "local"
    provider = make_provider(job.spec, str(current_flow_run.id), run_id, out)
    box, fetched = None, False
    try:
        box = acquire_box(provider, run_id)
        if box.venv is not None:
            setup_box(box, build_wheel(out / ".wheels" / run_id))
            if job.spec.model_source == "hub":  # tiny weights are built on the box, offline
                prefetch_model(box, job.spec.model, hf_token())
        job_dir = upload_job(box, job, run_id, commit, finished=finished, keep=keep if remote else None)
        start_worker(box, job_dir)
        status = follow_worker(box, job_dir, job.spec.clip_count, job.spec.run_limit_s, keep if remote else None)
        if status.get("clips_done"):
            stitch_on_box(box, job_dir)
        bundle = bundle_on_box(box, job_dir)
        archive = fetch_bundle(box, job_dir, bundle["archive"], out)
        manifest = verify(archive, out)
        fetched = True
    finally:
        release_box(provider, box, run_id, fetched)
        forget_record(str(current_flow_run.id))  # reached only when the release (the destroy) succeeded
    shutil.rmtree(keep, ignore_errors=True)  # the verified bundle holds everything kept there
    shutil.rmtree(out / ".wheels" / run_id, ignore_errors=True)
    publish_summary(manifest, out / run_id)
    if status.get("state") != "generated":
        raise RunIncomplete(
            f"{status.get('state')}: {status.get('reason')}; {status.get('clips_done', 0)} finished clips "
            f"are in {out / run_id}"
        )
    video = manifest["final_video"]
    return {"run_id": run_id, "archive": str(archive), "run_dir": str(out / run_id),
            "video": str(out / run_id / video["path"]), "seconds": video["seconds"],
            "costs": [rental.cost() for rental in getattr(provider, "rentals", [])]}  # fmt: skip
