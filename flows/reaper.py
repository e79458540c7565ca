"""The reaper: destroys Vast instances labelled `shootout:<flow-run-id>` whose flow run is over, unknown, whose
process stopped renewing its lease (a `kill -9`'d laptop: Prefect still shows such a run Running), or older than a
maximum age — what a killed laptop left running. Reports what it did; a run whose lease ran out is marked Crashed.

    python -m flows.reaper [--lease-s S] [--max-age-hours H] [--destroy-timeout-s S]
    (or the reaper/sweep deployment, on an interval)
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.states import Crashed, Failed, State

from provisioning.vast import LABEL_PREFIX, VastError
from tasks.providers import LEASE_S, forget_record, lease_age_s, read_record, vast_client

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


def mark_crashed(flow_run_id: str, message: str) -> None:
    """What Prefect would show had the run's process said goodbye."""
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(uuid.UUID(flow_run_id), Crashed(message=message), force=True)


@flow(name="reaper")
def sweep(max_age_hours: float = 12.0, lease_s: float = LEASE_S, destroy_timeout_s: float = 300) -> list[dict] | State:
    logger = get_run_logger()
    client = vast_client()
    actions = []
    for row in client.list_labelled(LABEL_PREFIX, deadline=time.monotonic() + 120):
        flow_run_id = row["label"].removeprefix(LABEL_PREFIX)
        state = run_state(flow_run_id)
        lease_age = lease_age_s(read_record(flow_run_id)) if state is not None else None
        lapsed = state not in OVER and lease_age is not None and lease_age > lease_s
        age_h = (time.time() - float(row.get("start_date") or time.time())) / 3600
        why = (
            "its flow run is unknown"
            if state is None
            else f"its flow run is {state}"
            if state in OVER
            else f"its run's lease was last renewed {lease_age:.0f} s ago (the process is gone)"
            if lapsed
            else f"it is {age_h:.1f} h old"
            if age_h > max_age_hours
            else None
        )
        if why is None:
            actions.append({"instance_id": row["id"], "flow_run": flow_run_id, "action": "kept", "state": state})
            continue
        try:
            client.destroy(int(row["id"]), deadline=time.monotonic() + destroy_timeout_s)
        except VastError as exc:  # the record stays: the next sweep tries again; the others are swept now
            logger.error(f"instance {row['id']} ({why}): {exc}")
            actions.append({"instance_id": row["id"], "flow_run": flow_run_id, "action": "failed", "why": str(exc)})
            continue
        forget_record(flow_run_id)
        if lapsed:
            mark_crashed(flow_run_id, f"the reaper destroyed instance {row['id']}: {why}")
        logger.warning(f"destroyed instance {row['id']} ({why})")
        actions.append({"instance_id": row["id"], "flow_run": flow_run_id, "action": "destroyed", "why": why})
    count = {action: sum(a["action"] == action for a in actions) for action in ("destroyed", "failed")}
    logger.info(f"reaper: {count['destroyed']} destroyed, {count['failed']} failed, {len(actions)} seen")
    if count["failed"]:  # the run ends Failed, with the instances named above (no traceback: nothing crashed)
        return Failed(
            message=f"could not destroy {count['failed']} instance(s): "
            + "; ".join(a["why"] for a in actions if a["action"] == "failed"),
            data=actions,
        )
    return actions


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(prog="python -m flows.reaper", description=__doc__.splitlines()[0])
    args.add_argument("--lease-s", type=float, default=LEASE_S, help=f"a lease older than this has lapsed ({LEASE_S})")
    args.add_argument("--max-age-hours", type=float, default=12.0, help="destroy anything older (12)")
    args.add_argument("--destroy-timeout-s", type=float, default=300, help="how long one destroy is retried (300)")
    parsed = args.parse_args(argv)
    state = sweep(
        max_age_hours=parsed.max_age_hours,
        lease_s=parsed.lease_s,
        destroy_timeout_s=parsed.destroy_timeout_s,
        return_state=True,
    )
    if not state.is_completed():
        print(f"FAILED: {state.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
