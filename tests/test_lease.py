"""The instance record's lease: renewed by the run's own process while it lives, so the reaper can tell a live run
from one whose process was killed even while Prefect shows both Running."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from conftest import wait_until
from prefect import flow
from prefect.variables import Variable

import tasks.providers as providers
from provisioning.base import CreatedInstance


def test_a_live_run_keeps_renewing_its_lease_and_forgets_it_at_the_end(prefect_api, monkeypatch) -> None:
    monkeypatch.setattr(providers, "LEASE_RENEW_S", 0.5)
    renewals: list[str] = []
    release = threading.Event()

    @flow(name="lease-check")
    def holds_an_instance() -> str:
        from prefect.runtime import flow_run

        with providers.InstanceRecord(str(flow_run.id)) as record:
            created_at = datetime.now(UTC).isoformat(timespec="seconds")
            label = f"shootout:{flow_run.id}"
            record.write(
                CreatedInstance(instance_id=7, label=label, run_id="run-1", created_at=created_at, usd_per_hour=0.4)
            )
            name = providers.record_name(str(flow_run.id))

            def renewed() -> bool:
                value = Variable.get(name)["renewed_at"]
                if value not in renewals:
                    renewals.append(value)
                return len(renewals) >= 3

            wait_until(renewed, 30, "three renewals of the lease")
            assert providers.lease_age_s(providers.read_record(str(flow_run.id))) < 5
            record.forget()
            release.set()
            return name

    name = holds_an_instance()
    assert release.is_set() and Variable.get(name) is None  # forgotten with its instance
    assert sorted(renewals) == renewals and len({datetime.fromisoformat(r) for r in renewals}) >= 3
