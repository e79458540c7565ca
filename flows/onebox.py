"""The overnight's one-box placement: one instance for every model of the night, as the seed's chronology has it.

validate every spec → the one box they all fit on (jobspecs.plan.pick_night_box: the cheapest for the night, each
spec then run on it) → rent → setup once → prefetch every model (download only) → for each spec in turn: upload,
worker, stitch, bundle, fetch, verify (flows/shootout.py run_on_box), its job folder removed from the box → release
(destroy) after the last → each run's cost (its own time on the box + an even share of the setup, downloads and
release) and summary.

Cheaper than `parallel` (one setup, one box's hours), slower (the models run one after another). A model that fails
does not stop the night: the next one runs, and every bundle verified before it is here already. An interruptible
box is not offered here (a preempted night would have to resume each model on a new box): a spec asking for one is
refused before anything is rented.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.runtime import flow_run as current_flow_run

from flows.reaper import sweep
from flows.shootout import DirtyTree, destroy_on_crash, hf_token, run_on_box, within_budget
from jobspecs import JobSpec, LoadedSpec, SpecError
from jobspecs.contracts import NightCost, NightRun
from jobspecs.plan import NightBox, pick_night_box
from tasks.box import build_wheel, prefetch_model, setup_box
from tasks.costs import night_estimate, plan_run, publish_costs, shared_box_costs
from tasks.job import code_commit, load_job, new_run_id
from tasks.offers import offer_shapes_for
from tasks.providers import InstanceRecord, host_ram_gb, make_provider, rented
from tasks.report import publish_summary


def on_one_box(specs: dict[str, str], overrides: list[str]) -> tuple[dict[str, LoadedSpec], NightBox | None]:
    """Every spec loaded, then again on the one box they all fit on (rented ones; a box you have is the box). Refuses
    (SpecError) a night whose specs rent differently, or rent interruptible."""
    jobs = {name: load_job(spec, overrides) for name, spec in specs.items()}
    providers = {job.spec.infrastructure.provider for job in jobs.values()}
    if len(providers) > 1:
        raise SpecError(f"placement one-box: the specs rent on different providers ({', '.join(sorted(providers))})")
    if any(job.spec.infrastructure.interruptible for job in jobs.values()):
        raise SpecError(
            "placement one-box with infrastructure.interruptible = true is not built (a preempted night would resume "
            "each model on a new box): use placement parallel, or interruptible=false"
        )
    if providers != {"vast"}:
        return jobs, None
    first = next(iter(jobs.values())).spec
    night_box = pick_night_box([job.spec for job in jobs.values()], offer_shapes_for(first))
    get_run_logger().info(night_box.choice)
    on_box = [f"infrastructure.gpu={night_box.offer.gpu}", f"infrastructure.num_gpus={night_box.offer.num_gpus}"]
    return {name: load_job(spec, [*overrides, *on_box]) for name, spec in specs.items()}, night_box


def box_spec(jobs: dict[str, LoadedSpec], night_box: NightBox | None) -> JobSpec:
    """What the box is rented by: the first spec, with the night's disk and the host RAM the hungriest model needs."""
    spec = next(iter(jobs.values())).spec
    if night_box is None:
        return spec
    n = night_box.offer.num_gpus
    ram = max(job.spec.infrastructure.min_ram_gb or host_ram_gb(job.spec.model, n) for job in jobs.values())
    infra = spec.infrastructure.model_copy(update={"disk_gb": night_box.disk_gb, "min_ram_gb": ram})
    return spec.model_copy(update={"infrastructure": infra})


@flow(name="one-box-night", on_crashed=[destroy_on_crash], on_cancellation=[destroy_on_crash])
def one_box_night(
    specs: dict[str, str], night_dir: str, overrides: list[str] | None = None, budget_usd: float | None = None
) -> NightCost:
    """`specs` (name → spec file) one after another on one box, each run writing under `<night_dir>/<name>/`; what
    each run and the night cost, with each run's state (COMPLETED | FAILED). `budget_usd` refuses a night estimated
    above it before renting and cuts each run's limit to what is left of it."""
    logger = get_run_logger()
    night = Path(night_dir)
    jobs, night_box = on_one_box(specs, overrides or [])
    predictions = {name: plan_run(job.spec) for name, job in jobs.items()}
    spec = box_spec(jobs, night_box)
    commit = code_commit()
    if spec.infrastructure.provider != "local" and commit.get("dirty") and not spec.infrastructure.allow_dirty:
        raise DirtyTree("the working tree differs from its commit; commit first, or set infrastructure.allow_dirty")
    if spec.infrastructure.provider == "vast":
        swept = sweep(return_state=True)
        if not swept.is_completed():
            logger.warning(f"the start-of-run sweep: {swept.message}")
    night_id = f"night-{night.name}"
    record = InstanceRecord(str(current_flow_run.id))
    models = [job.spec.model for job in jobs.values()]
    provider = make_provider(
        spec,
        str(current_flow_run.id),
        night_id,
        night,
        on_created=record.write,
        approve=lambda offer, usd_per_hour: night_estimate(
            list(predictions.values()), models, usd_per_hour, budget_usd
        ),
    )
    states = {name: "FAILED" for name in jobs}
    ends, segments = {}, {}  # name → Finished; name → (run id, seconds on the box)
    with rented(provider, night_id, record) as box:
        if box.venv is not None:
            setup_box(box, build_wheel(night / ".wheels"))
            for job in jobs.values():
                if job.spec.model_source == "hub":
                    prefetch_model(box, job.spec.model, hf_token())
        for name, job in jobs.items():
            out = night / name
            out.mkdir(parents=True, exist_ok=True)
            run_id = new_run_id(job.spec.model)
            keep = out / f"{run_id}.partial" if box.provider != "local" else None
            began = time.monotonic()
            try:
                job = within_budget(job, provider, budget_usd)
                ends[name] = run_on_box(box, job, run_id, commit, None, keep, out, provider)
                states[name] = "COMPLETED" if ends[name].status.state == "generated" else "FAILED"
                box.run(["rm", "-rf", box.job_dir(run_id)], timeout_s=600)  # verified here: the box's copy goes
                if keep is not None:
                    shutil.rmtree(keep, ignore_errors=True)
            except Exception as exc:  # this model's failure; what earlier models made is verified here already
                logger.error(f"{name}: {type(exc).__name__}: {exc}; the night goes on with the next model")
            segments[name] = (run_id, time.monotonic() - began)
            logger.info(f"{name}: {states[name]} after {segments[name][1]:.0f} s on the box")
    shutil.rmtree(night / ".wheels", ignore_errors=True)
    instances = provider.costs()
    costs, shared_usd = shared_box_costs(instances, segments, {n: j.spec for n, j in jobs.items()}, predictions, ends)
    for name, cost in costs.items():
        publish_costs(cost, night / name)
        if name in ends:
            publish_summary(ends[name].manifest, night / name / cost.run, cost, jobs[name].spec.profile_choice)
    runs = [NightRun(name=n, run=c.run, state=states[n], usd_total=c.usd_total) for n, c in costs.items()]
    total = round(sum(cost.usd_total for cost in instances), 4)
    return NightCost(placement="one-box", instances=len(instances), usd_total=total, shared_usd=shared_usd, runs=runs)
