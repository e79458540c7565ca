"""A fake of Vast.ai's REST API on 127.0.0.1, for driving the real `vastai` 1.9.1 client in tests.

It serves what the client's SDK (`vastai.VastAI`) uses for an instance's lifecycle, at the paths and in the shapes
that SDK sends and reads (vastai 1.9.1's vast.py and Vast's REST API docs): offer search, create, show (v0, per id),
list (v1, keyset paging), label / stop / start, destroy, SSH keys, logs. Instances point their SSH endpoint at a
host/port the test chooses (a real sshd).

    with FakeVast(ssh_port=sshd.port) as fake:
        vast = VastAI(api_key=fake.api_key, server_url=fake.url, retry=3)
        fake.configure(loading_polls=1)
        fake.inject(method="POST", path="/api/v0/bundles/", status=429, body=RATE_LIMIT_TEXT, times=2)
        ...
        assert fake.live_instances() == []

Lifecycle: each GET /api/v0/instances/{id}/ advances that instance by one poll. The first `invisible_polls`
polls answer {"instances": null} (the read path has not seen the create yet), the next `null_polls` show
actual_status null, the next `loading_polls` 'loading', and every poll after that `final_status`
('loading' forever with `stuck_loading`). The knobs are copied into an instance when it is created:
the defaults (configure) overlaid by the offer's own (configure_offer); configure_instance changes a live one.
The v1 list shows every live instance in its current state (it never hides one and never advances one).

Interruptible (bid) instances: search with type "bid" (or "interruptible") lists only the offers with a numeric
`min_bid`. A create whose body has a `price` (the SDK's price= / bid_price=) is a bid: below the offer's min_bid
the instance is created stopped and the answer is {"success": false, "new_contract": id, ...} (the caller must
destroy it); otherwise it runs as any instance, with is_bid true and dph_total = the bid (what it is billed at).
An outbid instance is stopped: actual_status, cur_state, intended_status and next_state "stopped", ports null;
it stays live (storage is billed) until destroyed. Preempt one with `preempt(id)`, POST /_fake/preempt, or the
knob `preempt_at_poll` (at its Nth GET /api/v0/instances/{id}/, that GET's row already stopped; on-demand
instances ignore it); `machine_gone` / `machine_gone_on_preempt` keep its offer rented by the higher bidder
(not in search, 404 no_such_ask on create) even after it is destroyed. `fake.on_preempt` callbacks are called
with the id on every preemption (outside the lock, in the preempting thread).

Knobs (INSTANCE_KNOBS): invisible_polls, null_polls, loading_polls (int >= 0), final_status, stuck_loading,
status_msg, ssh_host, ssh_port, preempt_at_poll (int >= 1 or None), machine_gone_on_preempt (bool).

Scripted faults (inject) are answered before authentication and routing, first match wins; see `inject`.
The test-only endpoints, unauthenticated and not in the request log, let another process script the fake:
POST /_fake/config, POST /_fake/reset, GET /_fake/requests, GET /_fake/instances,
POST /_fake/preempt {"instance_id": n, "machine_gone": false}.
"""

from __future__ import annotations

import argparse
import base64
import copy
import fnmatch
import functools
import json
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

USER_ID = 4242
FIRST_INSTANCE_ID = 7000001
RATE_LIMIT_TEXT = "API requests too frequent endpoint threshold=4.5"
AUTH_ERROR = {"success": False, "error": "auth_error", "msg": "Invalid user key"}
DROPPED = 0  # the logged status of a request whose connection an injected `drop` fault closed unanswered
FINAL_STATUSES = ("running", "exited", "unknown", "offline", "created")
# Knobs an instance copies at create; configure() sets their defaults, configure_offer() per-offer overrides.
INSTANCE_KNOBS = (
    "invisible_polls",
    "null_polls",
    "loading_polls",
    "final_status",
    "stuck_loading",
    "status_msg",
    "ssh_host",
    "ssh_port",
    "preempt_at_poll",
    "machine_gone_on_preempt",
)
# The search types the SDK sends ("interruptible" is mapped to "bid" by vastai 1.9.1; accepted here too).
OFFER_TYPES = ("on-demand", "reserved", "bid", "interruptible")
# Keys of a search body that are not field filters.
SEARCH_CONTROL_KEYS = {"order", "type", "limit", "allocated_storage", "disable_bundling"}
FILTER_OPS = {"eq", "neq", "gt", "gte", "lt", "lte", "in", "notin"}
STATUS_MSGS = {
    None: "",
    "loading": "Pulling image layers",
    "exited": "Error: container exited",
    "unknown": "no heartbeat from the host",
    "offline": "host is offline",
    "created": "Error response from daemon: failed to create task for container: OCI runtime create failed: "
    "runc create failed: unable to start container process",
    "stopped": "Instance stopped",
}
# The status_msg of a stopped bid instance: ours, not Vast's exact wording.
OUTBID_MSG = "Instance outbid: stopped"
UNDERBID_MSG = "Bid below the offer's min_bid: stopped"


def no_such_ask(offer_id: int) -> dict:
    """The 404 body real Vast answers when creating on an offer that is gone (research §1.5)."""
    return {
        "success": False,
        "error": "invalid_args",
        "ask_id": offer_id,
        "msg": f"error 404/3603: no_such_ask Instance type by id {offer_id} is not available.",
    }


def no_such_instance(instance_id: int) -> dict:
    """The 404 body for an instance that does not exist or was destroyed."""
    return {"success": False, "error": "no_such_instance", "msg": f"Instance {instance_id} not found."}


def make_offer(offer_id: int, **fields: Any) -> dict:
    """A full offer row (a 1x RTX 4090 by default) with `fields` overriding; machine_id defaults to 10000 + id."""
    offer = {
        "id": offer_id,
        "ask_contract_id": offer_id,
        "bundle_id": offer_id,
        "machine_id": 10000 + offer_id,
        "host_id": 900 + offer_id % 100,
        "gpu_name": "RTX 4090",
        "num_gpus": 1,
        "gpu_ram": 24564,
        "gpu_total_ram": 24564,
        "gpu_arch": "nvidia",
        "compute_cap": 890,
        "gpu_frac": 1.0,
        "gpu_mem_bw": 900.0,
        "cpu_name": "AMD EPYC 7543",
        "cpu_cores": 64,
        "cpu_cores_effective": 16.0,
        "cpu_ram": 64000,
        "cpu_ghz": 3.7,
        "cpu_arch": "amd64",
        "has_avx": 1,
        "disk_space": 200.0,
        "disk_bw": 3000.0,
        "disk_name": "nvme",
        "dph_total": 0.45,
        "dph_base": 0.42,
        "min_bid": 0.25,
        "storage_cost": 0.15,
        "inet_up_cost": 0.005,
        "inet_down_cost": 0.005,
        "dlperf": 80.0,
        "dlperf_per_dphtotal": 170.0,
        "total_flops": 82.6,
        "flops_per_dphtotal": 180.0,
        "score": 150.0,
        "cuda_max_good": 13.0,
        "driver_version": "580.95.05",
        "inet_up": 700.0,
        "inet_down": 800.0,
        "reliability": 0.995,
        "reliability2": 0.995,
        "duration": 2592000.0,
        "verification": "verified",
        "verified": True,
        "rentable": True,
        "rented": False,
        "external": False,
        "hosting_type": 0,
        "direct_port_count": 100,
        "public_ipaddr": "127.0.0.1",
        "geolocation": "Norway, NO",
        "pcie_bw": 25.0,
        "pci_gen": 4.0,
        "static_ip": True,
        "vms_enabled": False,
        "cluster_id": None,
        "mobo_name": "ROMED8-2T",
        "ubuntu_version": "22.04",
        "gpu_display_active": False,
    }
    offer.update(fields)
    return offer


def default_offers() -> list[dict]:
    """Seven offers: five 1x RTX 4090 that differ in price, reliability, network, CUDA, disk and verification,
    one 2x RTX 4090 and one RTX 3090. `gpu_name=RTX_4090 num_gpus=1 reliability>0.98 inet_down>200 verified=true`
    ordered by dph_total gives 5001 (0.42), 5002 (0.55); 5003 is cheaper but unreliable, 5004 cheaper but
    unverified, 5005 has slow internet and CUDA 12.2. CUDA 13.0 (driver R580) by default, 5002 12.4."""
    return [
        make_offer(
            5001,
            dph_total=0.42,
            dph_base=0.40,
            reliability=0.995,
            reliability2=0.995,
            inet_down=850.0,
            cuda_max_good=13.0,
            disk_space=200.0,
            score=160.0,
        ),
        make_offer(
            5002,
            dph_total=0.55,
            dph_base=0.52,
            reliability=0.99,
            reliability2=0.99,
            inet_down=500.0,
            cuda_max_good=12.4,
            disk_space=120.0,
            score=120.0,
            inet_down_cost=0.01,
            inet_up_cost=0.01,
        ),
        make_offer(
            5003,
            dph_total=0.35,
            dph_base=0.33,
            reliability=0.93,
            reliability2=0.93,
            inet_down=900.0,
            cuda_max_good=13.0,
            disk_space=300.0,
            score=90.0,
        ),
        make_offer(
            5004,
            dph_total=0.30,
            dph_base=0.28,
            reliability=0.999,
            reliability2=0.999,
            inet_down=1000.0,
            cuda_max_good=13.0,
            verified=False,
            verification="unverified",
            score=100.0,
        ),
        make_offer(
            5005,
            dph_total=0.48,
            dph_base=0.46,
            reliability=0.997,
            reliability2=0.997,
            inet_down=120.0,
            inet_up=60.0,
            cuda_max_good=12.2,
            disk_space=60.0,
            score=110.0,
            hosting_type=1,
        ),
        make_offer(
            5006, gpu_name="RTX 4090", num_gpus=2, gpu_total_ram=49128, dph_total=0.90, dph_base=0.86, score=200.0
        ),
        make_offer(
            5007,
            gpu_name="RTX 3090",
            gpu_ram=24576,
            gpu_total_ram=24576,
            compute_cap=860,
            dph_total=0.20,
            dph_base=0.18,
            reliability=0.999,
            reliability2=0.999,
            score=80.0,
        ),
    ]


@dataclass
class Reply:
    """One HTTP answer: a dict/list body is sent as JSON, a str as text/plain, None as an empty JSON object."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Fault:
    method: str
    path: str  # a glob (fnmatch) over the URL path, without the query
    status: int
    body: Any
    headers: dict[str, str]
    times: int | None  # None: every matching request
    skip: int
    create_stopped: bool
    drop: bool = False

    def matches(self, method: str, path: str) -> bool:
        return self.method in (method, "*") and fnmatch.fnmatchcase(path, self.path)


@dataclass
class _Instance:
    id: int
    offer: dict
    knobs: dict
    body: dict  # the create request
    env: dict[str, str]
    label: str | None
    ssh_keys: list[str]
    api_key: str
    start_date: float  # epoch, as Vast reports it
    created_at: float  # time.monotonic(), for billing
    polls: int = 0
    stopped: bool = False
    destroyed_at: float | None = None
    bid: float | None = None  # $/h: the create body's price (a bid instance), billed at that
    underbid: bool = False  # created with a bid below the offer's min_bid: stopped from the start
    preempted_at: float | None = None  # time.monotonic() when it was outbid
    preempted_at_poll: int | None = None  # its `polls` then
    machine_gone: bool = False  # preempted and the machine kept by the higher bidder

    def status_at(self, polls: int) -> str | None:
        """actual_status after `polls` GETs of this instance, or 'invisible'."""
        if self.stopped:
            return "stopped"
        k = self.knobs
        if polls <= k["invisible_polls"]:
            return "invisible"
        n = polls - k["invisible_polls"]
        if n <= k["null_polls"]:
            return None
        n -= k["null_polls"]
        if k["stuck_loading"] or n <= k["loading_polls"]:
            return "loading"
        return k["final_status"]


class FakeVast:
    """The fake server and its state. Thread-safe; all methods may be called while it serves."""

    def __init__(
        self,
        ssh_host: str = "127.0.0.1",
        ssh_port: int = 22,
        api_key: str = "test-key",
        offers: list[dict] | None = None,
        port: int = 0,
    ) -> None:
        """`offers`: the offer rows (each needs an "id"; missing fields are filled in by make_offer), default
        default_offers(). `ssh_host`/`ssh_port`: where every instance's SSH endpoint points (knob defaults).
        `port`: the HTTP port, 0 for a free one."""
        self.api_key = api_key
        self._port = port
        self._initial_offers = [make_offer(o["id"], **o) for o in offers] if offers is not None else default_offers()
        self._initial_knobs = {
            "invisible_polls": 0,
            "null_polls": 1,
            "loading_polls": 2,
            "final_status": "running",
            "stuck_loading": False,
            "status_msg": None,
            "ssh_host": ssh_host,
            "ssh_port": ssh_port,
            "preempt_at_poll": None,
            "machine_gone_on_preempt": False,
        }
        self._lock = threading.RLock()
        self._local = threading.local()  # .preempted: ids this thread preempted, whose callbacks are due
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    # ---- lifecycle of the server -------------------------------------------------------------------------

    def start(self) -> FakeVast:
        """Serve on 127.0.0.1 in a background thread."""
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-vast", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> FakeVast:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:40123 (for VastAI(server_url=...) and VAST_URL)."""
        if self._server is None:
            raise RuntimeError("FakeVast is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ---- scripting ---------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the initial state: offers, knobs, no instances, keys, faults or logged requests; the
        on_preempt callbacks are dropped too (a test after a reset starts without them)."""
        with self._lock:
            # fn(instance_id) for each preemption; appended by tests, called outside the lock in the preempting thread
            self.on_preempt: list[Callable[[int], None]] = []
            self._taken_offers: set[int] = set()  # offers a higher bidder keeps (machine_gone)
            self._offers = {o["id"]: copy.deepcopy(o) for o in self._initial_offers}
            self._knobs = dict(self._initial_knobs)
            self._page_size: int | None = None
            self._offer_knobs: dict[int, dict] = {}
            self._instances: dict[int, _Instance] = {}
            self._next_id = FIRST_INSTANCE_ID
            self._faults: list[_Fault] = []
            self._requests: list[dict] = []
            self._account_keys: list[dict] = []
            # (instance_id, exception) of on_preempt callbacks that raised in a server thread (HTTP-driven
            # preemptions); preempt() called directly lets a callback's exception propagate instead
            self.on_preempt_errors: list[tuple[int, BaseException]] = []

    def configure(self, page_size: int | None = None, **knobs: Any) -> None:
        """Defaults for instances created from now on: invisible_polls, null_polls, loading_polls (int),
        final_status (one of FINAL_STATUSES), stuck_loading (bool), status_msg (str for the final state),
        ssh_host, ssh_port, preempt_at_poll (int >= 1 or None: a bid instance is outbid at its Nth GET),
        machine_gone_on_preempt (bool: that preemption also keeps the offer off the market).
        `page_size` caps the v1 list's `limit` (forces next_token paging); 0 removes the cap."""
        with self._lock:
            self._knobs.update(_checked_knobs(knobs))
            if page_size is not None:
                if int(page_size) < 0:
                    raise ValueError("page_size must be >= 0")
                self._page_size = int(page_size) or None

    def configure_offer(self, offer_id: int, **knobs: Any) -> None:
        """Knobs for instances created on this offer, over the defaults (e.g. final_status="exited")."""
        with self._lock:
            if offer_id not in self._offers:
                raise KeyError(f"no offer {offer_id}")
            self._offer_knobs.setdefault(offer_id, {}).update(_checked_knobs(knobs))

    def configure_instance(self, instance_id: int, **knobs: Any) -> None:
        """Change the knobs of an existing instance (e.g. stuck_loading=False, ssh_port=...)."""
        with self._lock:
            self._instances[instance_id].knobs.update(_checked_knobs(knobs))

    def update_offer(self, offer_id: int, **fields: Any) -> None:
        """Change an offer's fields; rented=True makes it vanish from search and 404 on create (rented=False
        brings back even an offer a preemption's machine_gone took)."""
        with self._lock:
            self._offers[offer_id].update(fields)
            if fields.get("rented") is False:
                self._taken_offers.discard(offer_id)

    def preempt(self, instance_id: int, machine_gone: bool = False) -> None:
        """Outbid the live bid instance `instance_id`: it is stopped (actual_status, cur_state, intended_status,
        next_state "stopped", ports null, status_msg OUTBID_MSG) and stays live until destroyed; then each
        `on_preempt` callback is called with the id. `machine_gone`: the higher bidder keeps the machine, so the
        offer is not offered again (not in search, 404 no_such_ask on create), even after the instance is
        destroyed. KeyError: no such live instance; ValueError: an on-demand instance, or one already preempted."""
        with self._lock:
            self._preempt_checked(instance_id, machine_gone)
        self._run_preempt_callbacks()

    def _preempt_checked(self, instance_id: int, machine_gone: bool) -> None:
        if not isinstance(machine_gone, bool):
            raise TypeError(f"machine_gone must be a bool, not {machine_gone!r}")
        inst = self._live_instance(int(instance_id))
        if inst is None:
            raise KeyError(f"no live instance {instance_id}")
        if inst.bid is None:
            raise ValueError(f"instance {instance_id} is on-demand (created without a price): it is not outbid")
        if inst.preempted_at is not None:
            raise ValueError(f"instance {instance_id} was already preempted")
        self._preempt_locked(inst, machine_gone)

    def inject(
        self,
        method: str,
        path: str,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        times: int | None = 1,
        skip: int = 0,
        create_stopped: bool = False,
        drop: bool = False,
    ) -> None:
        """Queue a scripted answer for `times` requests (None: all) matching `method` ("*" for any) and `path`,
        a glob over the URL path without the query (e.g. "/api/v0/instances/*/"). The first `skip` matching
        requests pass through (to later faults, then the real route). `body`: dict/list → JSON, str → text/plain.
        `create_stopped` (create only): the instance really is created, in the stopped state, and the answer is
        `body` plus "new_contract": <its id> (the spot-bid-too-low case: success false, yet an instance exists).
        `drop`: close the connection without answering (the client sees a ConnectionError; logged as status 0).
        """
        if times is not None and times < 1:
            raise ValueError("times must be >= 1, or None for every matching request")
        if create_stopped and not isinstance(body, dict):
            body = {"success": False, "error": "invalid_price", "msg": "error 400/3467: bid price too low"}
        with self._lock:
            self._faults.append(
                _Fault(
                    method.upper(),
                    path,
                    0 if drop else int(status),
                    body,
                    dict(headers or {}),
                    times,
                    int(skip),
                    create_stopped,
                    drop,
                )
            )

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._faults.clear()

    # ---- accounting ----------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[dict]:
        """The request log (a copy): method, path, query (dict of str), body (JSON, text or None), auth_ok,
        user_agent, time (time.monotonic()), status. The /_fake/ control endpoints are not logged."""
        with self._lock:
            return copy.deepcopy(self._requests)

    def requests_to(self, method: str, path: str) -> list[dict]:
        """Logged requests with this method and a path matching the glob `path`."""
        return [r for r in self.requests if r["method"] == method.upper() and fnmatch.fnmatchcase(r["path"], path)]

    def live_instances(self) -> list[int]:
        """Ids created and not destroyed (including ones left by a `success: false` create), ascending."""
        with self._lock:
            return sorted(i for i, inst in self._instances.items() if inst.destroyed_at is None)

    def instance(self, instance_id: int) -> dict | None:
        """The instance's row as the API shows it now (without advancing it), plus destroyed (bool),
        billed_seconds, billed_dph (the $/h it is billed at: the bid, else the offer's dph_total), polls,
        env (dict), ssh_keys (account keys at create + attached), create_body, bid ($/h or None: on-demand),
        underbid (created with a bid below min_bid, hence stopped), preempted (bool), preempted_at
        (time.monotonic() or None), preempted_at_poll (its polls count then, or None) and machine_gone (bool);
        None if it never existed."""
        with self._lock:
            inst = self._instances.get(instance_id)
            if inst is None:
                return None
            row = self._row(inst, max(inst.polls, inst.knobs["invisible_polls"] + 1))
            row.update(
                destroyed=inst.destroyed_at is not None,
                billed_seconds=self.billed_seconds(instance_id),
                billed_dph=inst.bid if inst.bid is not None else inst.offer["dph_total"],
                polls=inst.polls,
                env=dict(inst.env),
                ssh_keys=list(inst.ssh_keys),
                create_body=copy.deepcopy(inst.body),
                bid=inst.bid,
                underbid=inst.underbid,
                preempted=inst.preempted_at is not None,
                preempted_at=inst.preempted_at,
                preempted_at_poll=inst.preempted_at_poll,
                machine_gone=inst.machine_gone,
            )
            return row

    def billed_seconds(self, instance_id: int) -> float:
        """Seconds from create to destroy (to now while live), on time.monotonic()."""
        with self._lock:
            inst = self._instances[instance_id]
            end = inst.destroyed_at if inst.destroyed_at is not None else time.monotonic()
            return end - inst.created_at

    # ---- request handling (called by _Handler) ------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes) -> Reply:
        parts = urlsplit(raw_path)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        text = raw_body.decode("utf-8", "replace")
        try:
            body = json.loads(text) if text.strip() else None
        except ValueError:
            body = text
        if path in CONTROL_ROUTES:
            return self._control(method, path, body)

        auth_ok = headers.get("authorization") == f"Bearer {self.api_key}"
        with self._lock:
            entry = {
                "method": method,
                "path": path,
                "query": query,
                "body": body,
                "auth_ok": auth_ok,
                "user_agent": headers.get("user-agent", ""),
                "time": time.monotonic(),
                "status": None,
            }
            self._requests.append(entry)
            reply = self._answer(method, path, query, body, auth_ok)
            entry["status"] = reply.status
        self._run_preempt_callbacks(collect_errors=True)  # a preempt_at_poll preemption, before the reply goes
        return reply

    def _answer(self, method: str, path: str, query: dict, body: Any, auth_ok: bool) -> Reply:
        fault = self._take_fault(method, path)
        if fault is not None:
            return self._fault_reply(fault, method, path, body)
        for route_method, pattern, name, needs_auth in ROUTES:
            m = re.fullmatch(pattern, path)
            if m and route_method == method:
                if needs_auth and not auth_ok:
                    return Reply(401, AUTH_ERROR)
                args = {k: int(v) for k, v in m.groupdict().items()}
                return getattr(self, name)(query=query, body=body, **args)
        return Reply(404, {"success": False, "error": "not_found", "msg": f"{method} {path} is not a route"})

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        for fault in self._faults:
            if not fault.matches(method, path):
                continue
            if fault.skip > 0:
                fault.skip -= 1
                continue
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
            return fault
        return None

    def _fault_reply(self, fault: _Fault, method: str, path: str, body: Any) -> Reply:
        if fault.create_stopped:
            m = re.fullmatch(r"/api/v0/asks/(\d+)/?", path)
            if method != "PUT" or not m:
                return Reply(500, {"error": "fake_misuse", "msg": "create_stopped only applies to PUT /asks/{id}/"})
            created = self._create(int(m.group(1)), body=body, query={}, stopped=True)
            if created.status != 200:
                return created
            reply_body = dict(fault.body)
            reply_body["new_contract"] = created.body["new_contract"]
            return Reply(fault.status, reply_body, fault.headers)
        return Reply(fault.status, copy.deepcopy(fault.body), fault.headers)

    # ---- the API ------------------------------------------------------------------------------------------

    def _gpu_names(self, **_: Any) -> Reply:
        return Reply(200, {"gpu_names": sorted({o["gpu_name"] for o in self._offers.values()})})

    def _show_user(self, **_: Any) -> Reply:
        return Reply(
            200,
            {
                "id": USER_ID,
                "username": "fake-user",
                "email": "test@example.com",
                "fullname": "Fake User",
                "balance": 0.0,
                "credit": 25.5,
                "can_pay": True,
                "has_billing": True,
                "host_agreement_accepted": False,
                "sid": None,
            },
        )

    def _search_bundles(self, body: Any, **_: Any) -> Reply:
        return self._search(body)

    def _search_asks(self, body: Any, **_: Any) -> Reply:
        if not isinstance(body, dict):
            return _invalid_request("body must be a JSON object")
        return self._search(body.get("q") or {})

    def _search(self, q: Any) -> Reply:
        if not isinstance(q, dict):
            return _invalid_request("body must be a JSON object")
        offer_type = q.get("type") or "on-demand"
        if offer_type not in OFFER_TYPES:
            return _invalid_request(f"type must be one of {OFFER_TYPES}, not {offer_type!r}")
        try:
            filters = {k: v for k, v in q.items() if k not in SEARCH_CONTROL_KEYS}
            rows = [o for o in self._offers.values() if not o["rented"] and _matches(o, filters)]
            if offer_type in ("bid", "interruptible"):  # only the offers that take bids
                rows = [o for o in rows if _is_number(o.get("min_bid"))]
            order = q.get("order") or [["score", "desc"]]
            rows = _sorted(rows, [(col, direction) for col, direction in order])
            limit = int(q["limit"]) if q.get("limit") is not None else None
        except (ValueError, TypeError) as e:
            return _invalid_request(str(e))
        if limit is not None:
            rows = rows[:limit]
        return Reply(200, {"offers": copy.deepcopy(rows)})

    def _create(self, offer_id: int, body: Any, stopped: bool = False, **_: Any) -> Reply:
        if not isinstance(body, dict):
            return _invalid_args("request body must be a JSON object")
        offer = self._offers.get(offer_id)
        if offer is None or offer["rented"]:
            if body.get("cancel_unavail"):
                msg = f"error 410/3907: no_such_ask Instance type {offer_id} is no longer available."
                return Reply(410, {"success": False, "error": "no_such_ask", "msg": msg, "ask_id": offer_id})
            return Reply(404, no_such_ask(offer_id))
        env = body.get("env") or {}
        image = body.get("image")
        label = body.get("label")
        disk = body.get("disk", 10)
        if not isinstance(env, dict):
            return _invalid_args("invalid env type: env must be a dict")
        if not image and not body.get("template_hash_id"):
            return _invalid_args("image is required")
        if image is not None and (not isinstance(image, str) or len(image) > 1024):
            return _invalid_args("image must be a string of at most 1024 characters")
        if label is not None and (not isinstance(label, str) or len(label) > 256):
            return _invalid_args("label must be a string of at most 256 characters")
        if any(len(str(v)) > 256 for v in env.values()):
            return _invalid_args("env values must be at most 256 characters")
        if len(str(body.get("onstart") or "")) + len(json.dumps(body.get("args") or "")) > 4096:
            return _invalid_args("args + onstart must be at most 4096 characters")
        if not isinstance(disk, int | float) or disk < 8 or disk > offer["disk_space"]:
            return _invalid_args(f"disk must be between 8 and {offer['disk_space']} GB")
        price = body.get("price")
        if price is not None:
            if not _is_number(price) or not math.isfinite(price) or price <= 0:
                return _invalid_args(f"price (the bid, $/h) must be a positive number, not {price!r}")
            if not _is_number(offer.get("min_bid")):  # our choice: an offer that states no min_bid takes no bids
                return _invalid_args(f"offer {offer_id} takes no bids (its min_bid is {offer.get('min_bid')!r})")
        underbid = price is not None and price < offer["min_bid"]

        instance_id = self._next_id
        self._next_id += 1
        offer["rented"] = True
        knobs = {**self._knobs, **self._offer_knobs.get(offer_id, {})}
        self._instances[instance_id] = _Instance(
            id=instance_id,
            offer=copy.deepcopy(offer),
            knobs=knobs,
            body=copy.deepcopy(body),
            env={str(k): str(v) for k, v in env.items()},
            label=label,
            ssh_keys=[k["public_key"] for k in self._account_keys],
            api_key=f"ik-{instance_id:x}-fake",
            start_date=time.time(),
            created_at=time.monotonic(),
            stopped=stopped or underbid,
            bid=float(price) if price is not None else None,
            underbid=underbid,
        )
        if underbid:
            # Vast creates the instance stopped and answers success false with its id (dstack PR #4036); the
            # error name, code and wording here are ours (plausible, not Vast's exact text).
            msg = (
                f"error 400/3467: insufficient_bid Your bid ${price}/h is below the minimum bid "
                f"${offer['min_bid']}/h for ask {offer_id}; instance {instance_id} was created stopped."
            )
            return Reply(
                200,
                {
                    "success": False,
                    "new_contract": instance_id,
                    "instance_api_key": f"ik-{instance_id:x}-fake",
                    "error": "insufficient_bid",
                    "msg": msg,
                },
            )
        return Reply(
            200, {"success": True, "new_contract": instance_id, "instance_api_key": f"ik-{instance_id:x}-fake"}
        )

    def _v0_list(self, **_: Any) -> Reply:
        return Reply(
            410,
            {
                "success": False,
                "error": "deprecated_endpoint",
                "msg": "/api/v0/instances/ is deprecated. Use /api/v1/instances/ instead.",
            },
        )

    def _instance_filters(self, **_: Any) -> Reply:
        rows = [self._row(i, max(i.polls, 1)) for i in self._live()]
        return Reply(
            200,
            {
                "filters": [
                    {"actual_status": r["actual_status"], "gpu_name": r["gpu_name"], "verification": r["verification"]}
                    for r in rows
                ]
            },
        )

    def _show_instance(self, instance_id: int, **_: Any) -> Reply:
        inst = self._instances.get(instance_id)
        if inst is None or inst.destroyed_at is not None:
            return Reply(200, {"instances": None})
        inst.polls += 1
        at = inst.knobs["preempt_at_poll"]
        if at is not None and inst.polls >= at and inst.bid is not None and inst.preempted_at is None:
            self._preempt_locked(inst, inst.knobs["machine_gone_on_preempt"])
        if inst.status_at(inst.polls) == "invisible":
            return Reply(200, {"instances": None})
        return Reply(200, {"instances": self._row(inst, inst.polls)})

    def _update_instance(self, instance_id: int, body: Any, **_: Any) -> Reply:
        inst = self._live_instance(instance_id)
        if inst is None:
            return Reply(404, no_such_instance(instance_id))
        if not isinstance(body, dict):
            return _invalid_args("request body must be a JSON object")
        if "label" in body:
            if body["label"] is not None and len(str(body["label"])) > 1024:
                return Reply(400, {"success": False, "error": "label_too_long", "msg": "Label is too long."})
            inst.label = body["label"]
        if "state" in body:
            if body["state"] not in ("running", "stopped"):
                return _invalid_args("state must be running or stopped")
            # an outbid or underbid instance stays stopped: the higher bid still holds the machine (the fake has
            # no change_bid, and no higher bidder that leaves); the request itself is answered success
            inst.stopped = body["state"] == "stopped" or inst.preempted_at is not None or inst.underbid
        return Reply(200, {"success": True})

    def _destroy_instance(self, instance_id: int, **_: Any) -> Reply:
        inst = self._live_instance(instance_id)
        if inst is None:
            return Reply(404, no_such_instance(instance_id))
        inst.destroyed_at = time.monotonic()
        offer = self._offers.get(inst.offer["id"])
        if offer is not None and offer["id"] not in self._taken_offers:
            offer["rented"] = False  # the machine is offered again (not when a higher bidder took it)
        return Reply(200, {"success": True})

    def _attach_ssh(self, instance_id: int, body: Any, **_: Any) -> Reply:
        inst = self._live_instance(instance_id)
        if inst is None:
            return Reply(404, no_such_instance(instance_id))
        key = _ssh_key(body)
        if key is None:
            return _invalid_args("ssh_key must be an OpenSSH public key")
        if key not in inst.ssh_keys:
            inst.ssh_keys.append(key)
        return Reply(200, {"success": True, "msg": "SSH key attached successfully"})

    def _create_ssh_key(self, body: Any, **_: Any) -> Reply:
        key = _ssh_key(body)
        if key is None:
            return Reply(400, {"success": False, "error": "no_ssh_key", "msg": "ssh_key must be an OpenSSH public key"})
        for existing in self._account_keys:
            if existing["public_key"] == key:
                return Reply(200, {"success": True, "key": dict(existing)})
        entry = {
            "id": 100 + len(self._account_keys),
            "user_id": USER_ID,
            "public_key": key,
            "created_at": time.time(),
            "deleted_at": None,
        }
        self._account_keys.append(entry)
        return Reply(200, {"success": True, "key": dict(entry)})

    def _show_ssh_keys(self, **_: Any) -> Reply:
        return Reply(200, copy.deepcopy(self._account_keys))

    def _request_logs(self, instance_id: int, **_: Any) -> Reply:
        if self._live_instance(instance_id) is None:
            return Reply(404, {"success": False, "error": "invalid_id", "msg": "Invalid instance id."})
        return Reply(
            200,
            {
                "success": True,
                "result_url": f"{self.url}/_fake/logs/{instance_id}.log",
                "msg": "Logs are being uploaded.",
            },
        )

    def _log_text(self, instance_id: int, **_: Any) -> Reply:
        inst = self._instances.get(instance_id)
        if inst is None:
            return Reply(404, "NoSuchKey")
        status = inst.status_at(max(inst.polls, inst.knobs["invisible_polls"] + 1))
        return Reply(200, f"fake log of instance {instance_id}\nimage {inst.body.get('image')}\nstatus {status}\n")

    def _list_instances(self, query: dict, **_: Any) -> Reply:
        try:
            filters = json.loads(query.get("select_filters") or "{}")
            order_by = json.loads(query.get("order_by") or '[{"col": "id", "dir": "asc"}]')
            select_cols = json.loads(query.get("select_cols") or '["*"]')
            limit = int(query.get("limit") or 25)
            if not isinstance(filters, dict) or not isinstance(order_by, list) or limit < 1:
                raise ValueError("select_filters must be an object, order_by a list, limit >= 1")
            order = [(o["col"], o["dir"]) for o in order_by]
            if "id" not in [col for col, _dir in order]:
                order.append(("id", "asc"))
            all_rows = [self._row(i, max(i.polls, i.knobs["invisible_polls"] + 1)) for i in self._live()]
            rows = _sorted([r for r in all_rows if _matches(r, filters)], order)
        except (ValueError, TypeError, KeyError) as e:
            return _invalid_request(str(e))
        found = len(rows)
        if query.get("after_token"):
            try:
                after = json.loads(base64.urlsafe_b64decode(query["after_token"].encode()))
                after_row = dict(zip([col for col, _dir in order], after, strict=True))
            except (ValueError, TypeError):
                return Reply(400, {"success": False, "error": "invalid_token", "msg": "Invalid after_token."})
            rows = [r for r in rows if _compare_rows(r, after_row, order) > 0]
        if self._page_size is not None:
            limit = min(limit, self._page_size)
        page, more = rows[:limit], len(rows) > limit
        next_token = None
        if more:
            key = json.dumps([page[-1].get(col) for col, _dir in order])
            next_token = base64.urlsafe_b64encode(key.encode()).decode()
        if "*" not in select_cols:
            page = [{c: r.get(c) for c in ["id", *select_cols]} for r in page]
        label_counts: dict[str, int] = {}
        for r in all_rows:
            label_counts[r["label"] or ""] = label_counts.get(r["label"] or "", 0) + 1
        return Reply(
            200,
            {
                "success": True,
                "instances": page,
                "next_token": next_token,
                "total_instances": len(all_rows),
                "instances_found": found,
                "label_counts": label_counts,
            },
        )

    # ---- helpers --------------------------------------------------------------------------------------------

    def _live(self) -> list[_Instance]:
        return [i for i in self._instances.values() if i.destroyed_at is None]

    def _live_instance(self, instance_id: int) -> _Instance | None:
        inst = self._instances.get(instance_id)
        return inst if inst is not None and inst.destroyed_at is None else None

    def _preempt_locked(self, inst: _Instance, machine_gone: bool) -> None:
        """Stop `inst` as outbid (the caller holds the lock and checked it is a live bid instance); its
        on_preempt callbacks are due in this thread (_run_preempt_callbacks, once the lock is released)."""
        inst.stopped = True
        inst.preempted_at = time.monotonic()
        inst.preempted_at_poll = inst.polls
        inst.machine_gone = machine_gone
        if machine_gone:
            self._taken_offers.add(inst.offer["id"])
            offer = self._offers.get(inst.offer["id"])
            if offer is not None:
                offer["rented"] = True
        if not hasattr(self._local, "preempted"):
            self._local.preempted = []
        self._local.preempted.append(inst.id)

    def _run_preempt_callbacks(self, collect_errors: bool = False) -> None:
        """Call the on_preempt callbacks for the preemptions this thread made; outside the lock."""
        due = getattr(self._local, "preempted", None)
        if not due:
            return
        self._local.preempted = []
        with self._lock:
            callbacks = list(self.on_preempt)
        for instance_id in due:
            for fn in callbacks:
                if not collect_errors:
                    fn(instance_id)
                    continue
                try:
                    fn(instance_id)
                except Exception as e:  # a server thread: keep answering, let the test look
                    with self._lock:
                        self.on_preempt_errors.append((instance_id, e))

    def _row(self, inst: _Instance, polls: int) -> dict:
        status = inst.status_at(polls)
        if status == "invisible":
            status = None
        k, offer = inst.knobs, inst.offer
        state = "stopped" if status == "stopped" else "running"
        msg = STATUS_MSGS.get(status, "")
        if status == "stopped" and inst.preempted_at is not None:
            msg = OUTBID_MSG
        elif status == "stopped" and inst.underbid:
            msg = UNDERBID_MSG
        if status == "running":
            msg = f"success, running {inst.body.get('image')}"
        if status in FINAL_STATUSES and k["status_msg"] is not None:
            msg = k["status_msg"]
        port = str(k["ssh_port"])
        ports = None
        if status == "running":
            ports = {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": port}, {"HostIp": "::", "HostPort": port}]}
        now = time.time()
        return {
            "id": inst.id,
            "machine_id": offer["machine_id"],
            "host_id": offer["host_id"],
            "bundle_id": offer["id"],
            "actual_status": status,
            "intended_status": state,
            "cur_state": state,
            "next_state": state,
            "status_msg": msg,
            "label": inst.label,
            "start_date": inst.start_date,
            "end_date": inst.start_date + float(offer.get("duration") or 0),
            "uptime_mins": (now - inst.start_date) / 60,
            "extra_env": [[key, value] for key, value in inst.env.items()],
            "image_uuid": inst.body.get("image"),
            "image_runtype": inst.body.get("runtype") or "ssh",
            "image_args": inst.body.get("args") or [],
            "onstart": inst.body.get("onstart"),
            "template_id": None,
            "template_hash_id": inst.body.get("template_hash_id"),
            "template_name": None,
            "jupyter_token": "",
            "ssh_host": k["ssh_host"],
            "ssh_port": int(k["ssh_port"]),
            "ssh_idx": "1",
            "public_ipaddr": k["ssh_host"],
            "local_ipaddrs": "127.0.0.1\n",
            "ports": ports,
            "direct_port_start": int(k["ssh_port"]),
            "direct_port_end": int(k["ssh_port"]),
            "machine_dir_ssh_port": int(k["ssh_port"]),
            "gpu_name": offer["gpu_name"],
            "num_gpus": offer["num_gpus"],
            "gpu_ram": offer["gpu_ram"],
            "gpu_totalram": offer["gpu_total_ram"],
            "gpu_util": 0.0 if status == "running" else None,
            "cuda_max_good": offer["cuda_max_good"],
            "driver_version": offer["driver_version"],
            "cpu_cores_effective": offer["cpu_cores_effective"],
            "cpu_ram": offer["cpu_ram"],
            "disk_space": float(inst.body.get("disk") or 10),
            "disk_util": 0.0,
            "dph_total": inst.bid if inst.bid is not None else offer["dph_total"],  # a bid instance is billed its bid
            "dph_base": offer["dph_base"],
            "storage_cost": offer["storage_cost"],
            "inet_up_cost": offer["inet_up_cost"],
            "inet_down_cost": offer["inet_down_cost"],
            "is_bid": inst.bid is not None,
            "min_bid": offer["min_bid"],
            "inet_up": offer["inet_up"],
            "inet_down": offer["inet_down"],
            "reliability2": offer["reliability2"],
            "verification": offer["verification"],
            "geolocation": offer["geolocation"],
            "hosting_type": offer["hosting_type"],
            "volume_info": inst.body.get("volume_info"),
        }

    def _control(self, method: str, path: str, body: Any) -> Reply:
        """The test-only endpoints (research §1.4)."""
        try:
            if (method, path) == ("POST", "/_fake/reset"):
                self.reset()
                return Reply(200, {"success": True})
            if (method, path) == ("GET", "/_fake/requests"):
                return Reply(200, self.requests)
            if (method, path) == ("GET", "/_fake/instances"):
                with self._lock:
                    ids = sorted(self._instances)
                return Reply(200, {"live": self.live_instances(), "instances": [self.instance(i) for i in ids]})
            if (method, path) == ("POST", "/_fake/config"):
                self._apply_config(body if isinstance(body, dict) else {})
                return Reply(200, {"success": True})
            if (method, path) == ("POST", "/_fake/preempt"):
                if not isinstance(body, dict) or not isinstance(body.get("instance_id"), int):
                    raise ValueError(f'body must be {{"instance_id": <int>, "machine_gone": <bool>}}, not {body!r}')
                with self._lock:  # callbacks run in this server thread: their errors are collected, not raised
                    self._preempt_checked(body["instance_id"], body.get("machine_gone", False))
                self._run_preempt_callbacks(collect_errors=True)
                return Reply(200, {"success": True})
        except (ValueError, TypeError, KeyError) as e:
            return Reply(400, {"success": False, "error": "bad_config", "msg": repr(e)})
        return Reply(405, {"success": False, "error": "method_not_allowed", "msg": f"{method} {path}"})

    def _apply_config(self, config: dict) -> None:
        """POST /_fake/config: {knobs..., "page_size": n} sets defaults; with "offer_id" or "instance_id" the
        knobs go to that offer / instance; "inject" (alias "fail_next"): a list of inject() keyword dicts;
        "update_offer": {"id": n, fields...}."""
        config = dict(config)
        faults = config.pop("inject", []) + config.pop("fail_next", [])
        update = config.pop("update_offer", None)
        offer_id = config.pop("offer_id", None)
        instance_id = config.pop("instance_id", None)
        if offer_id is not None:
            self.configure_offer(int(offer_id), **config)
        elif instance_id is not None:
            self.configure_instance(int(instance_id), **config)
        elif config:
            self.configure(**config)
        for fault in faults:
            self.inject(**fault)
        if update:
            update = dict(update)
            self.update_offer(int(update.pop("id")), **update)


CONTROL_ROUTES = {"/_fake/config", "/_fake/reset", "/_fake/requests", "/_fake/instances", "/_fake/preempt"}
# (method, path regex, FakeVast method, needs auth); numeric groups are passed as ints.
ROUTES = [
    ("GET", r"/api/v0/gpu_names/unique/?", "_gpu_names", False),
    ("GET", r"/api/v0/users/current/?", "_show_user", True),
    ("POST", r"/api/v0/bundles/?", "_search_bundles", True),
    ("PUT", r"/api/v0/search/asks/?", "_search_asks", True),
    ("PUT", r"/api/v0/asks/(?P<offer_id>\d+)/?", "_create", True),
    ("GET", r"/api/v0/instances/?", "_v0_list", True),
    ("GET", r"/api/v0/instances/filters/?", "_instance_filters", True),
    ("GET", r"/api/v0/instances/(?P<instance_id>\d+)/?", "_show_instance", True),
    ("PUT", r"/api/v0/instances/(?P<instance_id>\d+)/?", "_update_instance", True),
    ("DELETE", r"/api/v0/instances/(?P<instance_id>\d+)/?", "_destroy_instance", True),
    ("POST", r"/api/v0/instances/(?P<instance_id>\d+)/ssh/?", "_attach_ssh", True),
    ("PUT", r"/api/v0/instances/request_logs/(?P<instance_id>\d+)/?", "_request_logs", True),
    ("GET", r"/api/v1/instances/?", "_list_instances", True),
    ("POST", r"/api/v0/ssh/?", "_create_ssh_key", True),
    ("GET", r"/api/v0/ssh/?", "_show_ssh_keys", True),
    ("GET", r"/_fake/logs/(?P<instance_id>\d+)\.log", "_log_text", False),  # the logs' result_url (S3 in reality)
]


class _Handler(BaseHTTPRequestHandler):
    server_version = "fake-vast"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = self.server.fake.handle(self.command, self.path, headers, raw_body)  # type: ignore[attr-defined]
        if reply.status == DROPPED:  # an injected `drop`: close without a word
            self.close_connection = True
            return
        if isinstance(reply.body, str):
            data, content_type = reply.body.encode(), "text/plain"
        else:
            data, content_type = json.dumps({} if reply.body is None else reply.body).encode(), "application/json"
        self.send_response(reply.status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in reply.headers.items():
            self.send_header(name, str(value))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


def _checked_knobs(knobs: dict) -> dict:
    unknown = set(knobs) - set(INSTANCE_KNOBS)
    if unknown:
        raise ValueError(f"unknown knobs {sorted(unknown)}; known: {INSTANCE_KNOBS}")
    for name in ("invisible_polls", "null_polls", "loading_polls", "ssh_port"):
        if name in knobs and (not isinstance(knobs[name], int) or knobs[name] < 0):
            raise ValueError(f"{name} must be an int >= 0")
    if "stuck_loading" in knobs and not isinstance(knobs["stuck_loading"], bool):
        raise ValueError("stuck_loading must be a bool")
    if "final_status" in knobs and knobs["final_status"] not in FINAL_STATUSES:
        raise ValueError(f"final_status must be one of {FINAL_STATUSES}")
    at = knobs.get("preempt_at_poll")
    if at is not None and (not isinstance(at, int) or isinstance(at, bool) or at < 1):
        raise ValueError(f"preempt_at_poll must be an int >= 1 or None, not {at!r}")
    if "machine_gone_on_preempt" in knobs and not isinstance(knobs["machine_gone_on_preempt"], bool):
        raise ValueError(f"machine_gone_on_preempt must be a bool, not {knobs['machine_gone_on_preempt']!r}")
    return dict(knobs)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _invalid_args(msg: str) -> Reply:
    return Reply(400, {"success": False, "error": "invalid_args", "msg": f"error 400/3467: Invalid args: {msg}"})


def _invalid_request(msg: str) -> Reply:
    return Reply(400, {"success": False, "error": "invalid_request", "msg": msg})


def _ssh_key(body: Any) -> str | None:
    key = body.get("ssh_key") if isinstance(body, dict) else None
    if not isinstance(key, str) or not key.strip().startswith(("ssh-", "ecdsa-", "sk-")):
        return None
    return key.strip()


def _scalar(value: Any) -> Any:
    """A value as compared by filters and sorting: numbers (and numeric strings) as float, others unchanged."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _equal(a: Any, b: Any) -> bool:
    return _scalar(a) == _scalar(b)


def _compare(a: Any, b: Any) -> int:
    """-1/0/1 with None first, numbers before strings."""
    a, b = _scalar(a), _scalar(b)
    if a == b:
        return 0
    if a is None or b is None:
        return -1 if a is None else 1
    if isinstance(a, bool | float) and isinstance(b, bool | float):
        return -1 if a < b else 1
    if isinstance(a, bool | float) != isinstance(b, bool | float):
        return -1 if isinstance(a, bool | float) else 1
    return -1 if str(a) < str(b) else 1


def _op(value: Any, op: str, operand: Any) -> bool:
    if op == "eq":
        return _equal(value, operand)
    if op == "neq":
        return not _equal(value, operand)
    if op in ("in", "notin"):
        if not isinstance(operand, list):
            raise ValueError(f"{op} needs a list")
        found = any(_equal(value, x) for x in operand)
        return found if op == "in" else not found
    if value is None or operand is None:
        return False
    a, b = _scalar(value), _scalar(operand)
    if isinstance(a, str) != isinstance(b, str):
        return False
    c = _compare(a, b)
    return {"gt": c > 0, "gte": c >= 0, "lt": c < 0, "lte": c <= 0}[op]


def _matches(row: dict, filters: dict) -> bool:
    """Whether `row` passes Vast-style filters {field: {op: operand}} (a bare value means eq)."""
    for name, ops in filters.items():
        if not isinstance(ops, dict):
            ops = {"eq": ops}
        for op, operand in ops.items():
            if op not in FILTER_OPS:
                raise ValueError(f"unknown operator {op!r} for {name}")
            if not _op(row.get(name), op, operand):
                return False
    return True


def _compare_rows(a: dict, b: dict, order: list[tuple[str, str]]) -> int:
    for col, direction in order:
        c = _compare(a.get(col), b.get(col))
        if c:
            return -c if direction == "desc" else c
    return 0


def _sorted(rows: list[dict], order: list[tuple[str, str]]) -> list[dict]:
    for _col, direction in order:
        if direction not in ("asc", "desc"):
            raise ValueError(f"order direction must be asc or desc, not {direction!r}")
    order = [*order, ("id", "asc")]
    return sorted(rows, key=functools.cmp_to_key(lambda a, b: _compare_rows(a, b, order)))


def main() -> None:
    """Run the fake standalone: python tests/fakes/vast_api.py --port 8765 --ssh-port 2222."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--ssh-host", default="127.0.0.1")
    parser.add_argument("--ssh-port", type=int, default=22)
    parser.add_argument("--api-key", default="test-key")
    args = parser.parse_args()
    fake = FakeVast(ssh_host=args.ssh_host, ssh_port=args.ssh_port, api_key=args.api_key, port=args.port).start()
    print(fake.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
