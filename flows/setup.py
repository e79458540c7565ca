"""`shootout setup`: what a Prefect server needs before `prefect deploy --all` (idempotent, run it again any time).

- the `shootout` process work pool;
- the global concurrency limit on live rented instances (`shootout-live-instances`);
- the automation that marks a shootout or overnight run Crashed when its heartbeats stop (a dead laptop); a
  crashed shootout run then starts `reaper/sweep` through the trigger in prefect.yaml;
- with --secrets-from-env, the Vast API key and HF token as Secret blocks (VAST_API_KEY, HF_TOKEN).
"""

from __future__ import annotations

import os
from datetime import timedelta

from prefect.automations import Automation
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate, WorkPoolCreate
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification
from prefect.exceptions import ObjectAlreadyExists

from tasks.providers import HF_TOKEN_BLOCK, LIVE_INSTANCES, VAST_KEY_BLOCK, ensure_live_instance_limit

WORK_POOL = "shootout"
ZOMBIE_AUTOMATION = "shootout: crash runs without heartbeats"
HEARTBEAT_FLOWS = ["shootout", "overnight"]  # flows/shootout.py, flows/overnight.py
SILENT_S = 90  # three missed heartbeats at PREFECT_FLOWS_HEARTBEAT_FREQUENCY=30 (prefect.yaml's work pool)
FINAL_EVENTS = {f"prefect.flow-run.{state}" for state in ("Completed", "Failed", "Cancelled", "Crashed")}


def ensure_work_pool() -> str:
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=WORK_POOL, type="process"))
            return f"work pool '{WORK_POOL}' (process) created"
        except ObjectAlreadyExists:
            return f"work pool '{WORK_POOL}' exists"


def ensure_zombie_automation() -> str:
    """A shootout or overnight run that stops sending heartbeats (its laptop or worker died) is marked Crashed. An
    automation of that name made by an older `shootout setup` is brought up to date."""
    automation = Automation(
        name=ZOMBIE_AUTOMATION,
        description=f"No heartbeat for {SILENT_S} s: the process running the flow is gone.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *FINAL_EVENTS},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            match_related=ResourceSpecification(
                {"prefect.resource.role": "flow", "prefect.resource.name": HEARTBEAT_FLOWS}
            ),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=SILENT_S),
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, message=f"no heartbeat for {SILENT_S} s")],
    )
    with get_client(sync_client=True) as client:
        existing = client.read_automations_by_name(ZOMBIE_AUTOMATION)
    if not existing:
        automation.create()
        return f"automation '{ZOMBIE_AUTOMATION}' created"
    automation.id = existing[0].id
    automation.update()
    return f"automation '{ZOMBIE_AUTOMATION}' exists (updated)"


def set_live_instances(limit: int) -> str:
    ensure_live_instance_limit(limit)
    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(LIVE_INSTANCES, GlobalConcurrencyLimitUpdate(limit=limit))
    return f"global concurrency limit '{LIVE_INSTANCES}' = {limit} live instances"


def store_secrets() -> list[str]:
    """VAST_API_KEY and HF_TOKEN from the environment into Secret blocks; values are never printed."""
    done = []
    for block, variable in ((VAST_KEY_BLOCK, "VAST_API_KEY"), (HF_TOKEN_BLOCK, "HF_TOKEN")):
        if os.environ.get(variable):
            Secret(value=os.environ[variable]).save(block, overwrite=True)
            done.append(f"Secret block '{block}' saved from {variable}")
        else:
            done.append(f"Secret block '{block}': {variable} is not set, left as it is")
    return done


def setup(live_instances: int, secrets_from_env: bool) -> list[str]:
    done = [ensure_work_pool(), set_live_instances(live_instances), ensure_zombie_automation()]
    return done + (store_secrets() if secrets_from_env else [])
