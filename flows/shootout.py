"""The shootout flow: one job spec → chained clips on a box → one verified bundle on this machine.

validate → plan → box → upload → worker (followed here) → stitch → bundle → fetch → verify → release → summary
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.client.orchestration import get_client

from provisioning.base import Provider
from provisioning.local import LocalProvider
from tasks.box import (
    acquire_box,
    bundle_on_box,
    fetch_bundle,
    follow_worker,
    release_box,
    start_worker,
    stitch_on_box,
    upload_job,
)
from tasks.job import code_commit, load_job, new_run_id
from tasks.report import publish_summary, verify


class RunIncomplete(RuntimeError):
    """The worker stopped (a guardrail) or failed; what finished was still bundled and verified."""


def make_provider(name: str, out_dir: Path) -> Provider:
    if name == "local":
        # This machine is the box, so its worker flow may report to the same Prefect API as this flow.
        with get_client(sync_client=True) as client:
            api_url = str(client.api_url)
        return LocalProvider(out_dir / ".box", env={"PREFECT_API_URL": api_url})
    raise ValueError(f"provider {name!r} is not built yet")  # jobspecs refuses it before this point


@flow(name="shootout")
def shootout(spec: str = "jobspecs/demo.yaml", out_dir: str = "outputs", overrides: list[str] | None = None) -> dict:
    job = load_job(spec, overrides or [])
    run_id = new_run_id(job.spec.model)
    out = Path(out_dir).resolve()
    provider = make_provider(job.spec.infrastructure.provider, out)
    box = acquire_box(provider, run_id)
    fetched = False
    try:
        job_dir = upload_job(box, job, run_id, code_commit())
        start_worker(box, job_dir)
        status = follow_worker(box, job_dir, job.spec.clip_count, job.spec.run_limit_s)
        if status.get("clips_done"):
            stitch_on_box(box, job_dir)
        bundle = bundle_on_box(box, job_dir)
        archive = fetch_bundle(box, job_dir, bundle["archive"], out)
        manifest = verify(archive, out)
        fetched = True
    finally:
        release_box(provider, box, run_id, fetched)
    publish_summary(manifest, out / run_id)
    if status.get("state") != "generated":
        raise RunIncomplete(
            f"{status.get('state')}: {status.get('reason')}; {status.get('clips_done', 0)} finished clips "
            f"are in {out / run_id}"
        )
    video = manifest["final_video"]
    return {"run_id": run_id, "archive": str(archive), "run_dir": str(out / run_id),
            "video": str(out / run_id / video["path"]), "seconds": video["seconds"]}  # fmt: skip
