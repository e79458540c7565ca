"""VastProvider through the real vastai SDK → the fake Vast API → a real sshd: every fault ends with zero live
instances at the fake, and a ready box whose SSH answers when the run can go on."""

from __future__ import annotations

import re
import threading
import time
import tomllib

import pytest
from conftest import REPO
from fakes.vast_api import RATE_LIMIT_TEXT, FakeVast, make_offer, no_such_ask
from sshd import free_port, make_sshd

from provisioning.base import Estimate
from provisioning.vast import (
    TORCH_MIN_DRIVER_CUDA,
    DestroyFailed,
    KeyRefused,
    OfferQuery,
    VastClient,
    VastError,
    VastOffer,
    VastProvider,
    min_driver_cuda,
    torch_pin,
)

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
        on_created=lambda created: records.append(created.model_dump()),
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
    assert records == [
        {
            "instance_id": instance_id,
            "label": "shootout:test-flow-run",
            "run_id": "run-1",
            "created_at": records[0]["created_at"],
            "usd_per_hour": 0.42,
        }
    ]
    assert any("vastai search offers 'gpu_name=RTX_4090 num_gpus=1" in line for line in logs)
    (cost,) = made.costs()
    assert cost.destroyed and cost.usd_per_hour == 0.42
    assert abs(cost.billed_seconds - fake.billed_seconds(instance_id)) < 2
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
    assert any("on machine 15001: exited: Error: container exited; destroying it" in line for line in logs)
    assert fake.instance(records[0]["instance_id"])["destroyed"]


def test_ssh_refused_for_a_while_after_running_is_waited_for(fake, sshd, tmp_path) -> None:
    late_port = free_port()
    fake.configure(ssh_port=late_port)  # 'running' at once, but its sshd only starts 3 s later
    late = make_sshd(tmp_path / "late-sshd", port=late_port, user_key=sshd.key_file)
    timer = threading.Timer(3, late.start)
    timer.start()
    try:
        made, records, _ = provider(fake, sshd, tmp_path, ready_timeout_s=60)
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
    with pytest.raises(
        VastError,
        match=r"^HTTP 429 on GET /api/v0/instances/\d+/ \(API requests too frequent .*\), "
        r"retried \d+ times over 1 s$",
    ):
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

    def approve(offer: VastOffer, usd_per_hour: float) -> Estimate:
        seen.append((offer.id, usd_per_hour))
        return estimate_at(prediction, usd_per_hour, budget_usd=0.10)

    made, records, _ = provider(fake, sshd, tmp_path, approve=approve)
    with pytest.raises(
        OverBudget, match=r"budget_usd: \$0.10 is left, and the estimate at the cheapest matching offer"
    ):
        made.acquire("run-1")
    assert seen == [(5001, 0.42)] and records == [] and fake.requests_to("PUT", "/api/v0/asks/*/") == []
    # within budget, the estimate is kept with the rental and shows next to the actual cost
    made, _, _ = provider(
        fake, sshd, tmp_path, approve=lambda offer, price: estimate_at(prediction, price, budget_usd=50)
    )
    box = made.acquire("run-2")
    made.release(box, "run-2", fetched=True)
    (cost,) = made.costs()
    assert cost.estimate_usd == round(0.42 * (prediction.total_s + PROVISIONING_S) / 3600, 4)
    assert cost.estimate_s == round(prediction.total_s + PROVISIONING_S) and cost.usd_total > 0


def test_one_500_on_destroy_and_dropped_connections_are_retried(fake, sshd, tmp_path) -> None:
    fake.inject("DELETE", "/api/v0/instances/*/", 500, body={"error": "internal"})
    fake.inject("DELETE", "/api/v0/instances/*/", 0, drop=True, times=3)  # the SDK's 3 tries, all cut off
    made, _, logs = provider(fake, sshd, tmp_path)
    acquire_and_release(made, fake)
    assert [r["status"] for r in fake.requests_to("DELETE", "/api/v0/instances/*/")] == [500, 0, 0, 0, 200]
    assert any("(confirmed gone)" in line for line in logs)


def test_a_destroy_that_keeps_failing_says_so_and_how_to_do_it_by_hand(fake, sshd, tmp_path) -> None:
    made, records, _ = provider(fake, sshd, tmp_path, destroy_timeout_s=3)
    box = made.acquire("run-1")
    fake.inject("DELETE", "/api/v0/instances/*/", 502, body="Bad Gateway", times=None)
    started = time.monotonic()
    with pytest.raises(DestroyFailed) as failed:
        made.release(box, "run-1", fetched=True)
    assert time.monotonic() - started < 60  # the bound passed in, not 300 s
    n = box.instance_id
    assert re.fullmatch(
        rf"could not destroy instance {n} \(tried for \d+ s\): HTTP 502 on DELETE "
        rf"/api/v0/instances/{n}/ \(Bad Gateway\), retried \d+ times over \d+ s\. It may still be "
        rf"running and billed: destroy it by hand with `vastai destroy instance {n}`",
        str(failed.value),
    ), str(failed.value)
    assert len(fake.requests_to("DELETE", "/api/v0/instances/*/")) > 3  # retried past the SDK's own 3 tries
    assert fake.live_instances() == [n] and records[0]["instance_id"] == n  # still alive: the record is for the reaper
    fake.clear_faults()  # what the reaper (or the user, by hand) then does
    VastClient("test-key", fake.url).destroy(n, time.monotonic() + 30)
    assert fake.live_instances() == []


def test_why_each_instance_was_given_up_when_the_offers_run_out(fake, sshd, tmp_path) -> None:
    fake.configure_offer(5001, stuck_loading=True)
    fake.configure_offer(5002, final_status="exited")
    made, records, _ = provider(fake, sshd, tmp_path, ready_timeout_s=1.5, max_attempts=3)
    with pytest.raises(VastError) as failed:
        made.acquire("run-1")
    first, second = (r["instance_id"] for r in records)
    assert str(failed.value) == (
        f"no instance became ready: 2 tried and destroyed (instance {first} on machine 15001: stuck 'loading' at the "
        f"deadline (1.5 s); instance {second} on machine 15002: exited: Error: container exited); no other offer "
        f"matches '{QUERY.text({15001, 15002})}'"
    )
    assert "raise the price cap" not in str(failed.value) and fake.live_instances() == []


def test_ssh_that_never_answers_is_bounded_by_the_ready_timeout(fake, sshd, tmp_path) -> None:
    fake.configure(ssh_port=free_port())  # 'running', but nothing listens
    made, records, _ = provider(fake, sshd, tmp_path, ready_timeout_s=3, max_attempts=1)
    started = time.monotonic()
    with pytest.raises(VastError) as failed:
        made.acquire("run-1")
    assert time.monotonic() - started < 120  # one deadline for running and SSH, not 3 s + 300 s
    assert re.match(
        rf"no instance became ready in 1 attempts: 1 tried and destroyed \(instance "
        rf"{records[0]['instance_id']} on machine 15001: SSH at \S+ did not answer within \d+ s: "
        r"NoValidConnectionsError",
        str(failed.value),
    ), str(failed.value)
    assert fake.live_instances() == []


@pytest.mark.parametrize(("method", "path"), [("POST", "/api/v0/bundles/"), ("GET", "/api/v0/instances/*/")])
def test_a_transient_500_on_search_or_a_poll_is_retried(fake, sshd, tmp_path, method, path) -> None:
    fake.inject(method, path, 500, body={"error": "internal", "msg": "try again"})
    made, records, _ = provider(fake, sshd, tmp_path)
    acquire_and_release(made, fake)
    assert [r["status"] for r in fake.requests_to(method, path)][:2] == [500, 200] and len(records) == 1


def test_a_daily_quota_429_is_not_retried(fake, sshd, tmp_path) -> None:
    body = {"error": "search_quota_exceeded", "msg": "Daily search quota exceeded"}
    fake.inject("POST", "/api/v0/bundles/", 429, body=body, headers={"X-RateLimit-Reset": "1796169600"}, times=None)
    made, records, _ = provider(fake, sshd, tmp_path, ready_timeout_s=10)  # a retried quota would show in 10 s
    with pytest.raises(VastError) as failed:
        made.acquire("run-1")
    assert len(fake.requests_to("POST", "/api/v0/bundles/")) == 1  # not retried (it was, for 15 minutes)
    assert str(failed.value) == (
        "Vast answered HTTP 429 on POST /api/v0/bundles/ daily quota exceeded: not retried "
        "(it resets at 2026-12-02 00:00 UTC)"
    )
    assert records == []


def test_a_400_on_a_poll_is_not_retried_and_nothing_is_left(fake, sshd, tmp_path) -> None:
    fake.inject("GET", "/api/v0/instances/*/", 400, body={"error": "invalid_args", "msg": "bad id"})
    made, records, _ = provider(fake, sshd, tmp_path)
    with pytest.raises(
        VastError,
        match=r"^Vast answered HTTP 400 on GET /api/v0/instances/\d+/ \(invalid_args bad "
        r"id\): not retried$",
    ):
        made.acquire("run-1")
    assert len(records) == 1 and fake.live_instances() == []


def test_a_refused_key_says_so_and_where_it_came_from(fake, sshd, tmp_path, monkeypatch) -> None:
    import tasks.providers as providers

    def no_block(name: str) -> None:
        raise ValueError(f"Unable to find block document named {name}")

    monkeypatch.setattr(providers.Secret, "load", no_block)
    monkeypatch.setenv("VAST_API_KEY", "wrong-key-5ecr3t\n")
    client = providers.vast_client()
    made, records, logs = provider(fake, sshd, tmp_path)
    made.client = client
    with pytest.raises(KeyRefused) as refused:
        made.acquire("run-1")
    assert str(refused.value) == (
        "Vast refused the API key read from the VAST_API_KEY environment variable: HTTP 401 "
        "on POST /api/v0/ssh/ (auth_error Invalid user key); check or replace the key there"
    )
    assert "5ecr3t" not in str(refused.value) + " ".join(logs) and records == []
    assert fake.requests[-1]["auth_ok"] is False  # the key was sent stripped of its newline, and refused


def test_the_torch_pin_in_pyproject_has_a_minimum_driver_cuda() -> None:
    remote = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["remote"]
    (pin,) = [r.removeprefix("torch==") for r in remote if r.startswith("torch==")]
    assert pin in TORCH_MIN_DRIVER_CUDA and torch_pin() == pin  # the installed metadata is pyproject's
    assert TORCH_MIN_DRIVER_CUDA["2.13.0"] == 13.0  # its default PyPI wheel: cuda-toolkit 13.0.3, nvidia-*-cu13
    assert OfferQuery().min_cuda == min_driver_cuda() and f"cuda_vers>={min_driver_cuda()}" in OfferQuery().text()


def test_a_host_whose_driver_is_below_the_torch_wheels_cuda_is_skipped(fake, sshd, tmp_path) -> None:
    fake.update_offer(5001, cuda_max_good=12.8)  # the cheapest, but its driver can't run torch 2.13's CUDA 13.0
    made, records, _ = provider(fake, sshd, tmp_path, query=OfferQuery(min_disk_gb=60))
    fake.update_offer(5002, cuda_max_good=13.0)
    acquire_and_release(made, fake)
    assert records[0]["usd_per_hour"] == 0.55
    # an API that does not apply the filter: the offer is dropped here as well
    fake.inject(
        "POST",
        "/api/v0/bundles/",
        200,
        body={
            "offers": [
                make_offer(5001, dph_total=0.42, cuda_max_good=12.8),
                make_offer(5002, dph_total=0.55, cuda_max_good=13.0),
            ]
        },
    )
    made, records, _ = provider(fake, sshd, tmp_path, query=OfferQuery(min_disk_gb=60))
    acquire_and_release(made, fake)
    assert records[0]["usd_per_hour"] == 0.55 and fake.requests_to("PUT", "/api/v0/asks/5001/") == []


def test_a_404_for_a_destroyed_instance_counts_as_gone(fake, sshd, tmp_path) -> None:
    """Vast answers `{"instances": null}` for a destroyed instance; an API that answers 404 instead means the same."""
    made, _, _ = provider(fake, sshd, tmp_path)
    box = made.acquire("run-1")
    gone = {"success": False, "error": "no_such_instance", "msg": "Instance not found"}
    fake.inject("GET", f"/api/v0/instances/{box.instance_id}/", 404, body=gone, times=None)
    made.release(box, "run-1", fetched=True)
    assert fake.live_instances() == [] and made.costs()[0].destroyed


def test_a_create_that_names_no_instance_takes_the_next_offer(fake, sshd, tmp_path) -> None:
    fake.inject("PUT", "/api/v0/asks/5001/", 200, body={"success": True})  # no new_contract: nothing exists
    made, records, logs = provider(fake, sshd, tmp_path)
    acquire_and_release(made, fake)
    assert any("create answered success without an instance id" in line for line in logs) and len(records) == 1


def test_an_offer_reads_numbers_sent_as_strings_nulls_and_missing_keys() -> None:
    offer = VastOffer.model_validate(
        {"id": "5001", "machine_id": "15001", "dph_total": "0.42", "cuda_max_good": None, "inet_up_cost": "", "x": 1}
    )
    assert (offer.id, offer.machine_id, offer.dph_total, offer.cuda_max_good) == (5001, 15001, 0.42, None)
    assert offer.inet_up_cost is None and offer.inet_down_cost is None and offer.gpu_name is None
    assert offer.usd_per_hour == 0.42 and VastOffer(id=7, dph_total="n/a").usd_per_hour == 0.0


def test_odd_offers_from_the_api_are_rented_and_costed_or_skipped(fake, sshd, tmp_path) -> None:
    """What a real search may send: numbers as strings, nulls, missing keys; a row without an offer id is skipped."""
    odd = make_offer(5001, dph_total="0.42", cuda_max_good="13.0", machine_id="15001", inet_up_cost=None)
    del odd["inet_down_cost"]
    no_id = make_offer(5003, dph_total=0.10)
    del no_id["id"]
    fake.inject("POST", "/api/v0/bundles/", 200, body={"offers": [no_id, odd]})
    made, records, logs = provider(fake, sshd, tmp_path)
    acquire_and_release(made, fake)
    assert records[0]["usd_per_hour"] == 0.42 and fake.requests_to("PUT", "/api/v0/asks/5001/")
    (cost,) = made.costs()
    assert cost.usd_per_hour == 0.42 and cost.usd_transfer == 0.0 and cost.usd_total > 0
    assert any("(machine 15001, $0.420/h)" in line for line in logs)


def test_an_interruptible_instance_is_created_with_its_bid_and_reported_once_vast_stops_it(fake, sshd, tmp_path):
    """The bid search (type bid), the cheapest min_bid first; the create carries min_bid × margin; interrupted() is
    None while it runs and names Vast's stop once the fake outbids it; its cost is billed at the bid."""
    import dataclasses

    fake.update_offer(5001, min_bid=0.30)
    fake.update_offer(5002, min_bid=0.20)  # the cheaper bid, though dearer on demand
    made, records, logs = provider(fake, sshd, tmp_path, query=dataclasses.replace(QUERY, interruptible=True))
    box = made.acquire("run-1")
    search = fake.requests_to("POST", "/api/v0/bundles/")[-1]["body"]
    assert search["type"] == "bid"
    (create,) = fake.requests_to("PUT", "/api/v0/asks/*/")
    assert create["path"].rstrip("/").endswith("/5002") and create["body"]["price"] == pytest.approx(0.25)
    assert made.interrupted() is None and records[0]["usd_per_hour"] == pytest.approx(0.25)
    fake.preempt(box.instance_id)
    reason = made.interrupted()
    assert reason.startswith(f"Vast stopped interruptible instance {box.instance_id} (actual_status stopped")
    made.release(box, "run-1", fetched=False)
    (cost,) = made.costs()
    assert cost.interruptible and cost.interrupted == reason and cost.usd_per_hour == pytest.approx(0.25)
    assert "(bid)" in cost.line() and "(preempted)" in cost.line() and fake.live_instances() == []
    assert any("--type bid -o min_bid" in line for line in logs)


def test_a_bid_vast_refuses_leaves_a_stopped_instance_that_is_destroyed_and_on_demand_is_never_asked(
    fake, sshd, tmp_path
):
    """A create Vast answers with success false and a new_contract (a bid below a min_bid that rose since the search:
    the instance exists, stopped): it is destroyed and a fresh search tried (its min_bid now current). An on-demand
    provider never asks Vast whether it was interrupted."""
    import dataclasses

    fake.update_offer(5001, min_bid=0.20)
    refused = {"success": False, "error": "insufficient_bid", "msg": "your bid is below the minimum"}
    fake.inject("PUT", "/api/v0/asks/5001/", 200, body=refused, create_stopped=True, times=1)
    made, _, logs = provider(fake, sshd, tmp_path, query=dataclasses.replace(QUERY, interruptible=True))
    box = made.acquire("run-1")
    assert [r["path"].rstrip("/")[-4:] for r in fake.requests_to("PUT", "/api/v0/asks/*/")] == ["5001", "5001"]
    assert fake.live_instances() == [box.instance_id]  # the stopped one is gone
    assert any("create answered success=false but made instance" in line for line in logs)
    made.release(box, "run-1", fetched=True)
    on_demand, _, _ = provider(fake, sshd, tmp_path)
    box = on_demand.acquire("run-2")
    shows = len(fake.requests_to("GET", "/api/v0/instances/*/"))
    assert on_demand.interrupted() is None and len(fake.requests_to("GET", "/api/v0/instances/*/")) == shows
    on_demand.release(box, "run-2", fetched=True)
