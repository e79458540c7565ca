"""The reaper: destroys Vast instances labelled `shootout:<flow-run-id>` whose flow run is over, unknown, or
older than a maximum age — what a killed laptop left running. Reports what it did.

    python -m flows.reaper            (or the reaper/sweep deployment, on an interval)
"""

from __future__ import annotations

import sys
import time
import uuid

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from provisioning.vast import LABEL_PREFIX
from tasks.providers import forget_record, vast_client

OVER = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def run_state(flow_run_id: str) -> str | None:
    """The flow run's state type, or None when Prefect doesn't know it (then nobody will destroy its box)."""
    try:
        uuid.UUID(flow_run_id)
    except ValueError:
        return None
    with get_client(sync_client=True) as client:
        try:
            return client.read_flow_run(uuid.UUID(flow_run_id)).state.type.value
        except ObjectNotFound:
            return None


@flow(name="reaper")
def sweep(max_age_hours: float = 12.0) -> list[dict]:
    logger = get_run_logger()
    client = vast_client()
    actions = []
    for row in client.list_labelled(LABEL_PREFIX, deadline=time.monotonic() + 120):
        flow_run_id = row["label"].removeprefix(LABEL_PREFIX)
        state = run_state(flow_run_id)
        age_h = (time.time() - float(row.get("start_date") or time.time())) / 3600
        why = ("its flow run is unknown" if state is None else f"its flow run is {state}" if state in OVER
               else f"it is {age_h:.1f} h old" if age_h > max_age_hours else None)  # fmt: skip
        if why is None:
            actions.append({"instance_id": row["id"], "flow_run": flow_run_id, "action": "kept", "state": state})
            continue
        client.destroy(int(row["id"]), deadline=time.monotonic() + 300)
        forget_record(flow_run_id)
        logger.warning(f"destroyed instance {row['id']} ({why})")
        actions.append({"instance_id": row["id"], "flow_run": flow_run_id, "action": "destroyed", "why": why})
    logger.info(f"reaper: {sum(a['action'] == 'destroyed' for a in actions)} destroyed, {len(actions)} seen")
    return actions


if __name__ == "__main__":
    sweep()
    sys.exit(0)
