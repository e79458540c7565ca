"""VastProvider through the real vastai SDK → the fake Vast API → a real sshd: every fault ends with zero live
instances at the fake, and a ready box whose SSH answers when the run can go on."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from conftest import REPO
from fakes.vast_api import RATE_LIMIT_TEXT, FakeVast, no_such_ask
from sshd import free_port, make_sshd

from provisioning.vast import OfferQuery, VastClient, VastError, VastProvider

QUERY = OfferQuery(min_cuda=12.4, min_disk_gb=60)  # 5001 ($0.42), then 5002 ($0.55) match


@pytest.fixture
def sshd(sshd_server):
    return sshd_server


@pytest.fixture
def fake(sshd, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the client caches under ~/.config and ~/.cache
    with FakeVast(ssh_host="127.0.0.1", ssh_port=sshd.port, api_key="test-key") as server:
        monkeypatch.setenv("VAST_URL", server.url)
        yield server


def provider(fake, sshd, tmp_path, **kwargs) -> tuple[VastProvider, list[dict], list[str]]:
    records, logs = [], []
    made = VastProvider(
        VastClient("test-key", fake.url),
        kwargs.pop("query", QUERY),
        label="shootout:test-flow-run",
        key_file=sshd.key_file,
        known_hosts=tmp_path / "known_hosts",
        on_created=records.append,
        log=logs.append,
        remote_root=str(tmp_path / "box"),
        poll_s=0.05,
        **kwargs,
    )
    return made, records, logs


def acquire_and_release(made: VastProvider, fake: FakeVast) -> int:
    box = made.acquire("run-1")
    assert box.transport.run(["echo", "ready"], 10, {}).stdout == "ready\n"  # SSH really answers
    assert fake.live_instances() == [box.instance_id]
    made.release(box, "run-1", fetched=True)
    assert fake.live_instances() == []
    return box.instance_id


def test_rent_label_record_ssh_destroy(fake, sshd, tmp_path) -> None:
    made, records, logs = provider(fake, sshd, tmp_path)
    instance_id = acquire_and_release(made, fake)
    row = fake.instance(instance_id)
    assert row["label"] == "shootout:test-flow-run" and row["destroyed"]
    assert records == [{"instance_id": instance_id, "label": "shootout:test-flow-run", "run_id": "run-1",
                        "created_at": records[0]["created_at"], "usd_per_hour": 0.42}]  # fmt: skip
    assert any("vastai search offers 'gpu_name=RTX_4090 num_gpus=1" in line for line in logs)
    cost = made.rentals[0].cost()
    assert cost["destroyed"] and cost["usd_per_hour"] == 0.42
    assert abs(cost["billed_seconds"] - fake.billed_seconds(instance_id)) < 2
    assert "test-key" not in " ".join(logs) + repr(records)
    assert (sshd.key_file.with_suffix(".pub").read_text().strip()) in row["ssh_keys"]  # the project's key


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/v0/bundles/"), ("PUT", "/api/v0/asks/*/"), ("GET", "/api/v0/instances/*/")],
)
@pytest.mark.parametrize("retry_after", [None, "1"])
def test_429s_are_retried_with_backoff(fake, sshd, tmp_path, method, path, retry_after) -> None:
    headers = {"Retry-After": retry_after} if retry_after else {}
    fake.inject(method, path, 429, body=RATE_LIMIT_TEXT, headers=headers, times=4)  # more than the SDK's 3 tries
    made, _, _ = provider(fake, sshd, tmp_path)
    acquire_and_release(made, fake)
    statuses = [r["status"] for r in fake.requests_to(method, path)]
    assert statuses[:4] == [429] * 4 and statuses[4] == 200


def test_offer_gone_between_search_and_create_takes_the_next(fake, sshd, tmp_path) -> None:
    fake.inject("PUT", "/api/v0/asks/5001/", 404, body=no_such_ask(5001))
    made, _, logs = provider(fake, sshd, tmp_path)
    instance_id = acquire_and_release(made, fake)
    assert fake.instance(instance_id)["create_body"] is not None
    assert any("offer 5001 is gone" in line for line in logs)


def test_create_that_fails_but_makes_an_instance_destroys_it(fake, sshd, tmp_path) -> None:
    fake.inject("PUT", "/api/v0/asks/*/", 200, create_stopped=True)
    made, records, _ = provider(fake, sshd, tmp_path)
    acquire_and_release(made, fake)
    first = records[0]["instance_id"]
    assert fake.instance(first)["destroyed"]  # recorded at once, destroyed although create "failed"
    assert len(records) == 2


def test_stuck_loading_is_destroyed_and_another_machine_tried(fake, sshd, tmp_path) -> None:
    fake.configure_offer(5001, stuck_loading=True)
    made, records, _ = provider(fake, sshd, tmp_path, ready_timeout_s=1.5)
    acquire_and_release(made, fake)
    stuck = fake.instance(records[0]["instance_id"])
    assert stuck["destroyed"] and stuck["actual_status"] == "loading"
    assert records[1]["usd_per_hour"] == 0.55  # 5002: the failed machine is excluded


def test_exited_right_after_create_fails_fast(fake, sshd, tmp_path) -> None:
    fake.configure_offer(5001, final_status="exited")
    made, records, logs = provider(fake, sshd, tmp_path, ready_timeout_s=60)
    started = time.monotonic()
    acquire_and_release(made, fake)
    assert time.monotonic() - started < 30  # not the 60 s deadline
    assert any("is exited" in line for line in logs)
    assert fake.instance(records[0]["instance_id"])["destroyed"]


def test_ssh_refused_for_a_while_after_running_is_waited_for(fake, sshd, tmp_path) -> None:
    late_port = free_port()
    fake.configure(ssh_port=late_port)  # 'running' at once, but its sshd only starts 3 s later
    late = make_sshd(tmp_path / "late-sshd", port=late_port, user_key=sshd.key_file)
    timer = threading.Timer(3, late.start)
    timer.start()
    try:
        made, records, _ = provider(fake, sshd, tmp_path, ssh_timeout_s=60)
        started = time.monotonic()
        acquire_and_release(made, fake)
        assert time.monotonic() - started >= 3 and len(records) == 1  # waited, no second instance
    finally:
        timer.join()
        late.stop()


def test_every_attempt_failing_leaves_nothing_running(fake, sshd, tmp_path) -> None:
    fake.configure(final_status="offline")
    made, records, _ = provider(fake, sshd, tmp_path, max_attempts=2)
    with pytest.raises(VastError, match="no instance became ready in 2 attempts"):
        made.acquire("run-1")
    assert len(records) == 2 and fake.live_instances() == []


def test_no_matching_offer_is_refused_before_creating_anything(fake, sshd, tmp_path) -> None:
    made, records, _ = provider(fake, sshd, tmp_path, query=OfferQuery(max_usd_per_hour=0.1))
    with pytest.raises(VastError, match="no offer matches"):
        made.acquire("run-1")
    assert records == [] and fake.requests_to("PUT", "/api/v0/asks/*/") == []


def test_an_api_that_gives_up_mid_wait_still_leaves_nothing_running(fake, sshd, tmp_path) -> None:
    fake.inject("GET", "/api/v0/instances/*/", 429, body=RATE_LIMIT_TEXT, times=6)
    made, records, _ = provider(fake, sshd, tmp_path, ready_timeout_s=1)
    with pytest.raises(requests.HTTPError):
        made.acquire("run-1")
    assert len(records) == 1 and fake.live_instances() == []


def test_host_ram_is_part_of_the_offer_query(fake, sshd, tmp_path) -> None:
    made, records, _ = provider(fake, sshd, tmp_path, query=OfferQuery(min_cuda=12.4, min_ram_gb=96))
    with pytest.raises(VastError, match="cpu_ram>=96"):  # the fake's offers have 64 GB
        made.acquire("run-1")
    assert records == []


def test_an_estimate_over_budget_is_refused_before_anything_is_rented(fake, sshd, tmp_path) -> None:
    from jobspecs import load_spec
    from jobspecs.plan import predict_run
    from tasks.costs import PROVISIONING_S, OverBudget, estimate_at

    spec = load_spec(REPO / "jobspecs" / "wan.yaml").spec
    prediction = predict_run(spec)
    seen = []

    def approve(offer: dict) -> dict:
        seen.append(offer["id"])
        return estimate_at(prediction, float(offer["dph_total"]), budget_usd=0.10)

    made, records, _ = provider(fake, sshd, tmp_path, approve=approve)
    with pytest.raises(OverBudget, match=r"budget_usd = 0.10: the estimate at the cheapest matching offer is \$"):
        made.acquire("run-1")
    assert seen == [5001] and records == [] and fake.requests_to("PUT", "/api/v0/asks/*/") == []
    # within budget, the estimate is kept with the rental and shows next to the actual cost
    made, _, _ = provider(fake, sshd, tmp_path, approve=lambda offer: estimate_at(prediction, 0.42, budget_usd=50))
    box = made.acquire("run-2")
    made.release(box, "run-2", fetched=True)
    cost = made.rentals[0].cost()
    assert cost["estimate_usd"] == round(0.42 * (prediction.total_s + PROVISIONING_S) / 3600, 4)
    assert cost["estimate_s"] == round(prediction.total_s + PROVISIONING_S) and cost["usd_total"] > 0
