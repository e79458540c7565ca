"""The fake Vast API, driven through the real vastai 1.9.1 SDK (and raw HTTP where the SDK hides the detail)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from fakes.vast_api import RATE_LIMIT_TEXT, FakeVast, no_such_ask
from vastai import VastAI

KEY = "test-key"
SSH_PORT = 2222
QUERY = "gpu_name=RTX_4090 num_gpus=1 reliability>0.98 inet_down>200 dph<0.6"


@pytest.fixture
def fake(tmp_path, monkeypatch) -> Iterator[FakeVast]:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("VAST_API_KEY", raising=False)
    with FakeVast(ssh_port=SSH_PORT, api_key=KEY) as server:
        monkeypatch.setenv("VAST_URL", server.url)
        yield server


def sdk(fake: FakeVast, key: str = KEY) -> VastAI:
    return VastAI(api_key=key, server_url=fake.url, retry=3)


def create(vast: VastAI, offer_id: int = 5001, label: str | None = "shootout:run-1") -> int:
    answer = vast.create_instance(
        offer_id,
        image="pytorch/pytorch:2.4.0-cuda12.4-cudnn9-runtime",
        disk=20,
        ssh=True,
        direct=True,
        label=label,
        env={"RUN_ID": "run-1"},
    )
    assert answer["success"] is True
    return answer["new_contract"]


def poll_statuses(vast: VastAI, instance_id: int, n: int) -> list:
    rows = [vast.show_instance(instance_id) for _ in range(n)]
    return ["invisible" if row is None else row["actual_status"] for row in rows]


def test_search_filters_order_limit_and_defaults(fake: FakeVast) -> None:
    vast = sdk(fake)
    offers = vast.search_offers(QUERY, order="dph_total", limit=5)
    assert [o["id"] for o in offers] == [5001, 5002]  # 5003 unreliable, 5004 unverified, 5005 slow, 5006 2x, 5007 3090
    sent = fake.requests_to("POST", "/api/v0/bundles/")[-1]
    assert sent["body"]["num_gpus"] == {"eq": "1"} and sent["body"]["reliability"] == {"gt": "0.98"}
    assert sent["body"]["verified"] == {"eq": True} and sent["body"]["limit"] == 5
    assert sent["user_agent"].startswith("vastai-sdk/") and sent["auth_ok"]
    assert {"inet_up_cost", "inet_down_cost", "storage_cost", "machine_id", "cuda_max_good"} <= set(offers[0])

    # in / notin / gte / neq, the cuda_vers alias, descending order; without the defaults the unverified one shows
    picked = vast.search_offers(
        "cuda_vers>=12.8 num_gpus=1 gpu_name in [RTX_4090,RTX_3090] machine_id notin [15001]", order="dph_total"
    )
    assert [o["id"] for o in picked] == [5007, 5003]
    assert [o["id"] for o in vast.search_offers("gpu_name!=RTX_3090 num_gpus<=1", order="dph_total-")] == [
        5002,
        5005,
        5001,
        5003,
    ]
    assert vast.search_offers("gpu_name=RTX_4090 num_gpus=1", order="dph_total", no_default=True)[0]["id"] == 5004
    assert [o["id"] for o in vast.search_offers_new(QUERY, order="dph_total")] == [5001, 5002]
    assert fake.requests[-1]["method"] == "PUT" and fake.requests[-1]["path"] == "/api/v0/search/asks/"

    raw = requests.post(f"{fake.url}/api/v0/bundles/", json={}, headers={"Authorization": f"Bearer {KEY}"})
    assert raw.headers["Content-Type"] == "application/json"


def test_create_then_show_goes_invisible_null_loading_running(fake: FakeVast) -> None:
    vast = sdk(fake)
    fake.configure(invisible_polls=1, null_polls=1, loading_polls=2)
    instance_id = create(vast)
    assert fake.requests[-1]["body"]["env"] == {"RUN_ID": "run-1"}
    assert poll_statuses(vast, instance_id, 5) == ["invisible", None, "loading", "loading", "running"]

    row = vast.show_instance(instance_id)
    assert (row["ssh_host"], row["ssh_port"], row["public_ipaddr"]) == ("127.0.0.1", SSH_PORT, "127.0.0.1")
    assert row["ports"]["22/tcp"][0] == {"HostIp": "0.0.0.0", "HostPort": str(SSH_PORT)}
    assert row["label"] == "shootout:run-1" and row["extra_env"] == {"RUN_ID": "run-1"}
    assert (row["machine_id"], row["dph_total"], row["gpu_name"], row["num_gpus"], row["disk_space"]) == (
        15001,
        0.42,
        "RTX 4090",
        1,
        20.0,
    )
    assert row["inet_down_cost"] == 0.005 and row["intended_status"] == row["cur_state"] == "running"
    assert isinstance(row["start_date"], float)
    assert vast.ssh_url(instance_id) == f"ssh://root@127.0.0.1:{SSH_PORT}"
    assert fake.live_instances() == [instance_id]

    # the rented offer is gone: no longer found, and a second create on it is a 404 no_such_ask
    assert [o["id"] for o in vast.search_offers(QUERY, order="dph_total")] == [5002]
    with pytest.raises(requests.HTTPError) as gone:
        create(vast, 5001)
    assert gone.value.response.status_code == 404 and gone.value.response.json() == no_such_ask(5001)
    with pytest.raises(requests.HTTPError) as unknown:
        create(vast, 4242)
    assert unknown.value.response.status_code == 404


def test_final_status_per_offer_stuck_loading_and_release(fake: FakeVast) -> None:
    vast = sdk(fake)
    fake.configure(null_polls=0, loading_polls=1)
    fake.configure_offer(5002, final_status="exited")
    exited = create(vast, 5002)
    assert poll_statuses(vast, exited, 2) == ["loading", "exited"]
    assert vast.show_instance(exited)["ports"] is None

    fake.configure(stuck_loading=True)
    stuck = create(vast, 5001)
    assert poll_statuses(vast, stuck, 4) == ["loading"] * 4
    fake.configure_instance(stuck, stuck_loading=False, ssh_port=2299)
    assert vast.show_instance(stuck)["ports"]["22/tcp"][0]["HostPort"] == "2299"


def test_label_attach_ssh_and_account_keys(fake: FakeVast) -> None:
    vast = sdk(fake)
    account_key, run_key = "ssh-ed25519 AAAAaccount user@host", "ssh-ed25519 AAAArun shootout"
    assert vast.create_ssh_key(account_key)["key"]["public_key"] == account_key
    assert [k["public_key"] for k in vast.show_ssh_keys()] == [account_key]
    instance_id = create(vast)
    assert vast.attach_ssh(instance_id, run_key + "\n") == {"success": True, "msg": "SSH key attached successfully"}
    assert vast.label_instance(instance_id, "shootout:renamed") == {"success": True}

    seen = fake.instance(instance_id)
    assert seen["ssh_keys"] == [account_key, run_key]
    assert seen["label"] == "shootout:renamed" and seen["env"] == {"RUN_ID": "run-1"}
    with pytest.raises(requests.HTTPError) as long_label:
        vast.label_instance(instance_id, "x" * 1025)
    assert long_label.value.response.json()["error"] == "label_too_long"
    with pytest.raises(requests.HTTPError) as bad_create:
        create(vast, 5002, label="x" * 257)  # create allows 256
    assert bad_create.value.response.status_code == 400


def test_list_v1_label_filter_paging_and_show_instances(fake: FakeVast) -> None:
    vast = sdk(fake)
    ids = [create(vast, 5001, "shootout:a"), create(vast, 5002, "shootout:a"), create(vast, 5003, None)]
    params = {"select_filters": {"label": {"eq": "shootout:a"}}, "order_by": [{"col": "id", "dir": "desc"}], "limit": 1}
    first = vast.show_instances_v1(params)
    assert [r["id"] for r in first["instances"]] == [ids[1]] and first["next_token"]
    assert (first["total_instances"], first["instances_found"]) == (3, 2)
    assert first["label_counts"] == {"shootout:a": 2, "": 1}
    second = vast.show_instances_v1({**params, "after_token": first["next_token"]})
    assert [r["id"] for r in second["instances"]] == [ids[0]] and second["next_token"] is None

    unlabeled = vast.show_instances_v1({"select_filters": {"label": {"in": [None, "nope"]}}})
    assert [r["id"] for r in unlabeled["instances"]] == [ids[2]]

    fake.configure(page_size=1)  # forces paging: show_instances follows next_token over 3 pages
    before = len(fake.requests_to("GET", "/api/v1/instances/"))
    everything = vast.show_instances()
    assert [r["id"] for r in everything] == ids and everything[0]["extra_env"] == {"RUN_ID": "run-1"}
    assert len(fake.requests_to("GET", "/api/v1/instances/")) - before == 3

    with pytest.raises(requests.HTTPError) as bad_token:
        vast.show_instances_v1({"after_token": "not-a-token"})
    assert bad_token.value.response.json()["error"] == "invalid_token"


def test_destroy_then_gone_and_second_destroy_is_404(fake: FakeVast) -> None:
    vast = sdk(fake)
    instance_id = create(vast)
    assert vast.destroy_instance(instance_id) == {"success": True}
    billed = fake.billed_seconds(instance_id)
    assert vast.show_instance(instance_id) is None
    with pytest.raises(requests.HTTPError) as again:
        vast.destroy_instance(instance_id)
    assert again.value.response.status_code == 404 and again.value.response.json()["error"] == "no_such_instance"
    assert fake.live_instances() == [] and fake.instance(instance_id)["destroyed"] is True
    assert 0 < billed == fake.billed_seconds(instance_id)  # the meter stopped at destroy
    assert vast.search_offers(QUERY, order="dph_total")[0]["id"] == 5001  # the machine is offered again


def test_429_twice_is_absorbed_three_times_raises(fake: FakeVast) -> None:
    vast = sdk(fake)
    fake.inject(method="POST", path="/api/v0/bundles/", status=429, body=RATE_LIMIT_TEXT, times=2)
    assert vast.search_offers(QUERY, order="dph_total")[0]["id"] == 5001
    assert [r["status"] for r in fake.requests_to("POST", "/api/v0/bundles/")] == [429, 429, 200]

    instance_id = create(vast)
    fake.inject(method="GET", path="/api/v0/instances/*/", status=429, body=RATE_LIMIT_TEXT, times=3)
    with pytest.raises(requests.HTTPError) as limited:
        vast.show_instance(instance_id)
    assert limited.value.response.status_code == 429 and limited.value.response.text == RATE_LIMIT_TEXT
    assert vast.show_instance(instance_id)["actual_status"] is None  # queue used up; 429s did not advance it


def test_retry_after_is_honoured_and_a_long_one_is_not_waited(fake: FakeVast) -> None:
    vast = sdk(fake)
    fake.inject(method="PUT", path="/api/v0/asks/*/", status=429, body=RATE_LIMIT_TEXT, headers={"Retry-After": "1"})
    create(vast)
    first, second = fake.requests_to("PUT", "/api/v0/asks/*/")
    assert (first["status"], second["status"]) == (429, 200)
    assert second["time"] - first["time"] >= 0.95

    fake.inject(
        method="POST", path="/api/v0/bundles/", status=429, body={"detail": "slow down"}, headers={"Retry-After": "120"}
    )
    started = time.monotonic()
    with pytest.raises(requests.HTTPError):
        vast.search_offers(QUERY)
    assert time.monotonic() - started < 5 and fake.requests[-1]["status"] == 429


def test_5xx_502_is_retried_500_is_not(fake: FakeVast) -> None:
    vast = sdk(fake)
    instance_id = create(vast)
    fake.inject(method="GET", path="/api/v0/instances/*/", status=502, body="Bad Gateway")
    assert vast.show_instance(instance_id)["actual_status"] is None
    fake.inject(method="DELETE", path="/api/v0/instances/*/", status=500, body={"error": "internal"})
    with pytest.raises(requests.HTTPError):
        vast.destroy_instance(instance_id)
    assert fake.live_instances() == [instance_id]
    assert len(fake.requests_to("DELETE", "/api/v0/instances/*/")) == 1


def test_create_success_false_with_new_contract_leaves_a_live_instance(fake: FakeVast) -> None:
    vast = sdk(fake)
    fake.inject(method="PUT", path="/api/v0/asks/*/", status=200, create_stopped=True)
    answer = vast.create_instance(5001, image="x/y", disk=20, ssh=True)
    assert answer["success"] is False and answer["new_contract"] in fake.live_instances()
    row = vast.show_instance(answer["new_contract"])
    assert row["actual_status"] == row["cur_state"] == row["intended_status"] == row["next_state"] == "stopped"
    assert vast.start_instance(answer["new_contract"]) == {"success": True}  # PUT {"state": "running"}
    assert vast.show_instance(answer["new_contract"])["actual_status"] == "loading"
    vast.stop_instance(answer["new_contract"])
    assert vast.show_instance(answer["new_contract"])["actual_status"] == "stopped"
    vast.destroy_instance(answer["new_contract"])
    assert fake.live_instances() == []


def test_wrong_key_is_401_and_gpu_names_need_no_key(fake: FakeVast) -> None:
    with pytest.raises(requests.HTTPError) as denied:
        sdk(fake, key="wrong-key").show_user()
    assert denied.value.response.status_code == 401
    assert denied.value.response.json() == {"success": False, "error": "auth_error", "msg": "Invalid user key"}
    assert fake.requests[-1]["auth_ok"] is False
    assert sdk(fake).show_user()["id"] == 4242
    assert "RTX 4090" in requests.get(f"{fake.url}/api/v0/gpu_names/unique/").json()["gpu_names"]


def test_logs_follow_result_url_even_when_not_uploaded_yet(fake: FakeVast) -> None:
    vast = sdk(fake)
    instance_id = create(vast)
    fake.inject(method="GET", path="/_fake/logs/*", status=404, body="NoSuchKey", times=2)
    text = vast.logs(instance_id, tail="100")
    assert text.startswith(f"fake log of instance {instance_id}")
    assert [r["status"] for r in fake.requests_to("GET", "/_fake/logs/*")] == [404, 404, 200]


def test_raw_http_details(fake: FakeVast) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    gone = requests.get(f"{fake.url}/api/v0/instances/", headers=auth)
    assert gone.status_code == 410 and gone.json()["error"] == "deprecated_endpoint"
    string_env = requests.put(f"{fake.url}/api/v0/asks/5001/", json={"image": "x/y", "env": "-e A=1"}, headers=auth)
    assert string_env.status_code == 400 and "env must be a dict" in string_env.json()["msg"]
    assert fake.live_instances() == []


def test_http_control_endpoints_script_the_fake(fake: FakeVast) -> None:
    vast = sdk(fake)
    config = {
        "null_polls": 0,
        "loading_polls": 0,
        "final_status": "offline",
        "inject": [{"method": "GET", "path": "/api/v0/users/current", "status": 503, "times": 1}],
    }
    assert requests.post(f"{fake.url}/_fake/config", json=config).json() == {"success": True}
    assert requests.post(f"{fake.url}/_fake/config", json={"nul_polls": 1}).status_code == 400
    assert vast.show_user()["id"] == 4242  # the 503 was retried
    instance_id = create(vast)
    assert vast.show_instance(instance_id)["actual_status"] == "offline"

    logged = requests.get(f"{fake.url}/_fake/requests").json()
    assert [r["status"] for r in logged[:2]] == [503, 200] and all("/_fake/" not in r["path"] for r in logged)
    state = requests.get(f"{fake.url}/_fake/instances").json()
    assert state["live"] == [instance_id] and state["instances"][0]["billed_seconds"] > 0

    requests.post(f"{fake.url}/_fake/reset")
    assert fake.live_instances() == [] and fake.requests == []
    assert [o["id"] for o in vast.search_offers(QUERY, order="dph_total")] == [5001, 5002]


def test_a_dropped_connection_is_a_connection_error_and_logged_as_status_0(fake: FakeVast) -> None:
    vast = sdk(fake)
    instance_id = create(vast)
    fake.inject(method="DELETE", path="/api/v0/instances/*/", status=0, drop=True, times=3)  # the SDK's 3 tries
    with pytest.raises(requests.ConnectionError):
        vast.destroy_instance(instance_id)
    assert [r["status"] for r in fake.requests_to("DELETE", "/api/v0/instances/*/")] == [0, 0, 0]
    assert fake.live_instances() == [instance_id]
    fake.inject(method="DELETE", path="/api/v0/instances/*/", status=0, drop=True)  # one: the SDK's retry absorbs it
    assert vast.destroy_instance(instance_id) == {"success": True} and fake.live_instances() == []


# ---- interruptible (bid) instances and their preemption ------------------------------------------------------

IMAGE = "pytorch/pytorch:2.4.0-cuda12.4-cudnn9-runtime"


def create_bid(vast: VastAI, bid: float, offer_id: int = 5001) -> dict:
    return vast.create_instance(offer_id, image=IMAGE, disk=20, ssh=True, direct=True, bid_price=bid)


def test_bid_search_lists_only_offers_that_take_bids_with_their_min_bid(fake: FakeVast) -> None:
    vast = sdk(fake)
    for offer_id, min_bid in [(5001, 0.30), (5002, None), (5003, 0.12), (5005, 0.20)]:
        fake.update_offer(offer_id, min_bid=min_bid)
    query = "gpu_name=RTX_4090 num_gpus=1"  # verified by default: 5001, 5002, 5003, 5005
    assert [o["id"] for o in vast.search_offers(query, order="dph_total")] == [5003, 5001, 5005, 5002]

    bids = vast.search_offers(query, type="bid", order="min_bid")
    assert [(o["id"], o["min_bid"]) for o in bids] == [(5003, 0.12), (5005, 0.20), (5001, 0.30)]
    assert bids[0]["dph_total"] == 0.35  # the on-demand price is still there
    assert fake.requests_to("POST", "/api/v0/bundles/")[-1]["body"]["type"] == "bid"
    assert [o["id"] for o in vast.search_offers(query, type="interruptible", order="min_bid-")] == [5001, 5005, 5003]
    assert [o["id"] for o in vast.search_offers(query + " min_bid<0.25", type="bid", order="min_bid")] == [5003, 5005]
    assert len(vast.search_offers(query, type="reserved")) == 4

    auth = {"Authorization": f"Bearer {KEY}"}
    raw = requests.post(f"{fake.url}/api/v0/bundles/", json={"type": "interruptible"}, headers=auth).json()
    assert 5002 not in [o["id"] for o in raw["offers"]]
    bad = requests.post(f"{fake.url}/api/v0/bundles/", json={"type": "spot"}, headers=auth)
    assert bad.status_code == 400 and "'spot'" in bad.json()["msg"]


def test_a_bid_below_min_bid_leaves_a_stopped_live_instance_to_destroy(fake: FakeVast) -> None:
    vast = sdk(fake)
    answer = create_bid(vast, 0.10)  # 5001's min_bid is 0.25
    assert answer["success"] is False and answer["error"] == "insufficient_bid" and "0.25" in answer["msg"]
    instance_id = answer["new_contract"]
    assert fake.requests_to("PUT", "/api/v0/asks/*/")[-1]["body"]["price"] == 0.10
    assert fake.live_instances() == [instance_id]
    row = vast.show_instance(instance_id)
    assert row["actual_status"] == row["cur_state"] == row["intended_status"] == row["next_state"] == "stopped"
    assert row["ports"] is None and row["is_bid"] is True and row["dph_total"] == 0.10
    assert vast.start_instance(instance_id) == {"success": True}
    assert vast.show_instance(instance_id)["actual_status"] == "stopped"  # the bid is still too low
    assert fake.instance(instance_id)["underbid"] is True and fake.instance(instance_id)["preempted"] is False
    assert vast.destroy_instance(instance_id) == {"success": True} and fake.live_instances() == []


def test_a_sufficient_bid_runs_as_a_bid_billed_at_the_bid(fake: FakeVast) -> None:
    vast = sdk(fake)
    fake.configure(null_polls=0, loading_polls=0)
    answer = create_bid(vast, 0.30)
    assert answer["success"] is True
    row = vast.show_instance(answer["new_contract"])
    assert row["actual_status"] == "running" and row["ports"]["22/tcp"][0]["HostPort"] == str(SSH_PORT)
    assert (row["is_bid"], row["dph_total"], row["min_bid"]) == (True, 0.30, 0.25)
    seen = fake.instance(answer["new_contract"])
    assert (seen["bid"], seen["billed_dph"], seen["preempted"], seen["preempted_at"]) == (0.30, 0.30, False, None)

    on_demand = vast.show_instance(create(vast, 5002))
    assert (on_demand["is_bid"], on_demand["dph_total"]) == (False, 0.55)
    assert (fake.instance(on_demand["id"])["bid"], fake.instance(on_demand["id"])["billed_dph"]) == (None, 0.55)

    auth = {"Authorization": f"Bearer {KEY}"}
    for price in (-0.3, 0, "0.30", True):
        bad = requests.put(f"{fake.url}/api/v0/asks/5003/", json={"image": IMAGE, "price": price}, headers=auth)
        assert bad.status_code == 400 and bad.json()["error"] == "invalid_args" and "price" in bad.json()["msg"]
    fake.update_offer(5003, min_bid=None)
    no_bids = requests.put(f"{fake.url}/api/v0/asks/5003/", json={"image": IMAGE, "price": 0.3}, headers=auth)
    assert no_bids.status_code == 400 and "takes no bids" in no_bids.json()["msg"]
    assert len(fake.live_instances()) == 2


def test_preempt_stops_a_bid_instance_and_calls_on_preempt(fake: FakeVast) -> None:
    vast = sdk(fake)
    fake.configure(null_polls=0, loading_polls=0)
    preempted: list[int] = []
    fake.on_preempt.append(preempted.append)
    instance_id = create_bid(vast, 0.30)["new_contract"]
    assert vast.show_instance(instance_id)["actual_status"] == "running"

    fake.preempt(instance_id)
    assert preempted == [instance_id]
    row = vast.show_instance(instance_id)
    assert row["actual_status"] == row["cur_state"] == row["intended_status"] == row["next_state"] == "stopped"
    assert row["ports"] is None and row["status_msg"] == "Instance outbid: stopped"
    seen = fake.instance(instance_id)
    assert seen["preempted"] is True and seen["preempted_at_poll"] == 1 and seen["machine_gone"] is False
    assert fake.live_instances() == [instance_id]  # still there (storage billed) until destroyed
    assert vast.show_instances()[0]["actual_status"] == "stopped"

    with pytest.raises(ValueError, match="already preempted"):
        fake.preempt(instance_id)
    on_demand = create(vast, 5002)
    with pytest.raises(ValueError, match="on-demand"):
        fake.preempt(on_demand)
    with pytest.raises(KeyError):
        fake.preempt(4242)
    assert preempted == [instance_id] and vast.show_instance(on_demand)["actual_status"] == "running"

    vast.destroy_instance(instance_id)
    assert 5001 in [o["id"] for o in vast.search_offers(QUERY, type="bid")]  # the machine is offered again


def test_preempt_at_poll_stops_it_at_exactly_that_get(fake: FakeVast) -> None:
    vast = sdk(fake)
    fake.configure(null_polls=0, loading_polls=1, preempt_at_poll=3)
    preempted: list[int] = []
    fake.on_preempt.append(preempted.append)
    bid = create_bid(vast, 0.30)["new_contract"]
    on_demand = create(vast, 5002)
    assert poll_statuses(vast, bid, 2) == ["loading", "running"] and preempted == []
    row = vast.show_instance(bid)  # the 3rd GET
    assert (row["actual_status"], row["cur_state"], row["ports"]) == ("stopped", "stopped", None)
    assert preempted == [bid] and fake.instance(bid)["preempted_at_poll"] == 3
    assert poll_statuses(vast, bid, 2) == ["stopped", "stopped"] and preempted == [bid]
    assert poll_statuses(vast, on_demand, 4) == ["loading", "running", "running", "running"]  # on-demand: ignored

    # set on a live instance over HTTP: its next GET is the preempting one
    later = create_bid(vast, 0.30, offer_id=5003)["new_contract"]
    assert poll_statuses(vast, later, 2) == ["loading", "running"]
    config = {"instance_id": later, "preempt_at_poll": 1}
    assert requests.post(f"{fake.url}/_fake/config", json=config).json() == {"success": True}
    assert poll_statuses(vast, later, 1) == ["stopped"] and preempted == [bid, later]

    for bad in ({"preempt_at_poll": 0}, {"preempt_at_poll": "3"}, {"machine_gone_on_preempt": "yes"}):
        assert requests.post(f"{fake.url}/_fake/config", json=bad).status_code == 400
    with pytest.raises(ValueError, match="preempt_at_poll"):
        fake.configure_offer(5001, preempt_at_poll=-1)


def test_machine_gone_keeps_the_offer_off_the_market_after_destroy(fake: FakeVast) -> None:
    vast = sdk(fake)
    fake.configure_offer(5001, preempt_at_poll=1, machine_gone_on_preempt=True)
    first = create_bid(vast, 0.30)["new_contract"]
    assert vast.show_instance(first)["actual_status"] == "stopped" and fake.instance(first)["machine_gone"] is True
    vast.destroy_instance(first)
    assert [o["id"] for o in vast.search_offers(QUERY, type="bid", order="min_bid")] == [5002]
    assert [o["id"] for o in vast.search_offers(QUERY, order="dph_total")] == [5002]
    with pytest.raises(requests.HTTPError) as gone:
        create_bid(vast, 0.30)
    assert gone.value.response.status_code == 404 and gone.value.response.json() == no_such_ask(5001)

    second = create_bid(vast, 0.30, offer_id=5002)["new_contract"]
    fake.preempt(second, machine_gone=True)
    vast.destroy_instance(second)
    assert vast.search_offers(QUERY, type="bid") == []

    fake.reset()  # the machines are back
    assert [o["id"] for o in vast.search_offers(QUERY, type="bid", order="min_bid")] == [5001, 5002]


def test_http_preempt_endpoint_and_callback_errors(fake: FakeVast) -> None:
    vast = sdk(fake)
    preempted: list[int] = []

    def broken(instance_id: int) -> None:
        raise RuntimeError(f"cannot kill the workers of {instance_id}")

    fake.on_preempt.extend([preempted.append, broken])
    instance_id = create_bid(vast, 0.30)["new_contract"]
    on_demand = create(vast, 5002)
    answer = requests.post(f"{fake.url}/_fake/preempt", json={"instance_id": instance_id, "machine_gone": True})
    assert answer.status_code == 200 and answer.json() == {"success": True}
    assert preempted == [instance_id]  # called before the answer came back
    assert [(i, str(e)) for i, e in fake.on_preempt_errors] == [
        (instance_id, f"cannot kill the workers of {instance_id}")
    ]
    assert vast.show_instance(instance_id)["actual_status"] == "stopped" and fake.instance(instance_id)["machine_gone"]
    assert fake.requests_to("POST", "/_fake/*") == []  # control endpoints are not logged

    for body in ({"instance_id": on_demand}, {"instance_id": 4242}, {"instance_id": instance_id}, {}, None):
        refused = requests.post(f"{fake.url}/_fake/preempt", json=body)
        assert refused.status_code == 400 and refused.json()["error"] == "bad_config"
    assert preempted == [instance_id]

    requests.post(f"{fake.url}/_fake/reset")
    assert fake.on_preempt == [] and fake.on_preempt_errors == []
