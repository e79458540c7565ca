"""Vast.ai: rent one RTX 4090 for a run, wait until SSH answers, destroy it — through the vastai SDK.

The CLI exits 0 on HTTP errors, so the lifecycle goes through the SDK (which raises); the equivalent
`vastai search offers '…'` line is logged so a user can repeat the search by hand. Every instance gets the
label `shootout:<flow-run-id>` and is reported to `on_created` the moment it exists, before anything else
can fail, so crash hooks and the reaper can find it. Only instances this attempt created are destroyed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import requests
from vastai import VastAI

from provisioning.base import Box
from provisioning.ssh import SshNotReady, SshTarget, wait_for_ssh

# actual_status values (None: still provisioning)
PENDING_STATUSES = {None, "created", "loading", "rebooting"}
RUNNING_STATUS = "running"
FAILED_STATUSES = {"exited", "unknown", "offline", "stopped", "frozen"}
RETRIED_HTTP = {429, 502, 503, 504}
LABEL_PREFIX = "shootout:"
DEFAULT_IMAGE = "pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime"  # Python 3.11; the venv brings its own torch


class VastError(RuntimeError):
    """Renting failed; the message says what to do. Never carries the API key."""


class OfferUnavailable(VastError):
    """The offer was taken between search and create."""


@dataclass(frozen=True)
class OfferQuery:
    gpu: str = "RTX 4090"
    num_gpus: int = 1
    min_reliability: float = 0.98
    min_inet_down_mbps: float = 200
    min_disk_gb: float = 80
    min_cuda: float = 12.8
    min_ram_gb: float = 32  # host RAM: Hunyuan's offload plan pins ~80 GB of weights there
    verified: bool = True
    max_usd_per_hour: float | None = None

    def text(self, exclude_machines: set[int] = frozenset()) -> str:
        """The query in the vastai search syntax (also what a user types)."""
        parts = [f"gpu_name={self.gpu.replace(' ', '_')}", f"num_gpus={self.num_gpus}",
                 f"reliability>{self.min_reliability}", f"inet_down>{self.min_inet_down_mbps}",
                 f"disk_space>={self.min_disk_gb}", f"cuda_vers>={self.min_cuda}", f"cpu_ram>={self.min_ram_gb}",
                 f"verified={str(self.verified).lower()}", "rentable=true"]  # fmt: skip
        if self.max_usd_per_hour is not None:
            parts.append(f"dph<={self.max_usd_per_hour}")
        if exclude_machines:
            parts.append(f"machine_id notin [{','.join(str(m) for m in sorted(exclude_machines))}]")
        return " ".join(parts)


@dataclass
class Rental:
    """One instance this run created: what it costs and since when."""

    instance_id: int
    offer: dict
    created_at: str
    created_monotonic: float
    destroyed_monotonic: float | None = None
    bytes_moved: int = 0
    estimate: dict = field(default_factory=dict)  # what the run was predicted to cost at this offer, before renting

    def cost(self) -> dict:
        """dph_total × billed seconds (create → confirmed destroy) + the offer's per-GB transfer prices."""
        end = self.destroyed_monotonic or time.monotonic()
        billed_s = max(0.0, end - self.created_monotonic)
        dph = float(self.offer.get("dph_total") or 0)
        per_gb = float(self.offer.get("inet_down_cost") or 0) + float(self.offer.get("inet_up_cost") or 0)
        transfer = self.bytes_moved / 1e9 * per_gb
        return {"instance_id": self.instance_id, "gpu": self.offer.get("gpu_name"), "usd_per_hour": dph,
                "billed_seconds": round(billed_s, 1), "bytes_moved": self.bytes_moved,
                "usd_transfer": round(transfer, 6), "usd_total": round(dph * billed_s / 3600 + transfer, 6),
                "destroyed": self.destroyed_monotonic is not None} | self.estimate  # fmt: skip


def cost_line(cost: dict) -> str:
    return (f"instance {cost['instance_id']}: {cost['billed_seconds']:.0f} s at ${cost['usd_per_hour']:.3f}/h "
            f"+ ${cost['usd_transfer']:.4f} transfer = ${cost['usd_total']:.4f}")  # fmt: skip


def with_backoff(call: Callable[[], object], deadline: float, what: str) -> object:
    """The SDK retries 429/5xx three times itself; past that, back off (1, 2, 4 … 15 s) until the deadline."""
    delay = 1.0
    while True:
        try:
            return call()
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status not in RETRIED_HTTP or time.monotonic() + delay > deadline:
                raise
        except requests.ConnectionError:
            if time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 15.0)


def error_body(exc: requests.HTTPError) -> dict:
    try:
        return exc.response.json()
    except (ValueError, AttributeError):
        return {}


def ssh_endpoint(row: dict) -> tuple[str, int] | None:
    """Direct (public_ipaddr + the 22/tcp mapping) when there is one, else the proxy (ssh_host:ssh_port)."""
    mapped = (row.get("ports") or {}).get("22/tcp")
    if row.get("public_ipaddr") and mapped:
        return row["public_ipaddr"].strip(), int(mapped[0]["HostPort"])
    if row.get("ssh_host") and row.get("ssh_port"):
        return row["ssh_host"], int(row["ssh_port"])
    return None


class VastClient:
    """The few SDK calls the provider and the reaper make, each bounded by a deadline."""

    def __init__(self, api_key: str, server_url: str | None = None) -> None:
        kwargs = {"server_url": server_url} if server_url else {}
        self.sdk = VastAI(api_key=api_key, retry=3, **kwargs)

    def search(self, query: OfferQuery, exclude_machines: set[int], deadline: float) -> list[dict]:
        text = query.text(exclude_machines)
        offers = with_backoff(
            lambda: self.sdk.search_offers(query=text, order="dph_total", limit=20), deadline, "search"
        )
        offers = [o for o in offers or [] if o.get("machine_id") not in exclude_machines]
        return sorted(offers, key=lambda o: float(o.get("dph_total") or 0))

    def show(self, instance_id: int, deadline: float) -> dict | None:
        return with_backoff(lambda: self.sdk.show_instance(id=instance_id), deadline, "show")

    def list_labelled(self, prefix: str, deadline: float) -> list[dict]:
        rows = with_backoff(lambda: self.sdk.show_instances(), deadline, "list") or []
        return [row for row in rows if str(row.get("label") or "").startswith(prefix)]

    def destroy(self, instance_id: int, deadline: float) -> None:
        """Destroy and confirm it is gone; an instance already gone counts as destroyed."""
        try:
            with_backoff(lambda: self.sdk.destroy_instance(id=instance_id), deadline, "destroy")
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status != 404 and error_body(exc).get("error") != "no_such_instance":
                raise
        while time.monotonic() < deadline:
            row = self.show(instance_id, deadline)
            if row is None:
                return
            time.sleep(1.0)
        raise VastError(f"instance {instance_id} still listed after destroy; destroy it by hand: "
                        f"vastai destroy instance {instance_id} -y")  # fmt: skip


class VastProvider:
    """Rents one instance per run: search → create (recorded at once) → running → SSH answers."""

    name = "vast"

    def __init__(
        self,
        client: VastClient,
        query: OfferQuery,
        label: str,
        key_file: Path,
        known_hosts: Path,
        on_created: Callable[[dict], None],
        approve: Callable[[dict], dict] = lambda offer: {},
        log: Callable[[str], None] = print,
        image: str = DEFAULT_IMAGE,
        disk_gb: float = 80,
        remote_root: str = "/workspace/i2v-shootout",
        venv: str | None = None,
        ssh_user: str = "root",
        max_attempts: int = 3,
        ready_timeout_s: float = 900,
        ssh_timeout_s: float = 300,
        poll_s: float = 5,
    ) -> None:
        self.client, self.query, self.label, self.key_file, self.known_hosts = (
            client,
            query,
            label,
            key_file,
            known_hosts,
        )
        self.on_created, self.log, self.image, self.disk_gb = on_created, log, image, disk_gb
        self.approve = approve  # offer → the cost estimate at its price; raises to refuse it before renting
        self.remote_root, self.venv, self.ssh_user, self.max_attempts = remote_root, venv, ssh_user, max_attempts
        self.ready_timeout_s, self.ssh_timeout_s, self.poll_s = ready_timeout_s, ssh_timeout_s, poll_s
        self.rentals: list[Rental] = []  # every instance this attempt created, destroyed or not

    def acquire(self, run_id: str) -> Box:
        failed_machines: set[int] = set()
        public_key = Path(f"{self.key_file}.pub").read_text().strip()
        self.register_key(public_key)
        self.log(f"offers: vastai search offers '{self.query.text()}' -o dph_total")
        for attempt in range(1, self.max_attempts + 1):
            deadline = time.monotonic() + self.ready_timeout_s
            offers = self.client.search(self.query, failed_machines, deadline)
            if not offers:
                raise VastError(f"no offer matches '{self.query.text(failed_machines)}'; raise the price cap or "
                                "relax the query")  # fmt: skip
            offer = offers[0]
            estimate = self.approve(offer)
            try:
                rental = self.create(offer, run_id, deadline)
                rental.estimate = estimate
            except OfferUnavailable as exc:
                self.log(f"attempt {attempt}: {exc}; trying the next offer")
                continue
            try:
                self.attach_key(rental.instance_id, public_key, deadline)
                row = self.wait_running(rental.instance_id, deadline)
                host, port = ssh_endpoint(row)
                target = SshTarget(host, port, self.ssh_user, self.key_file, self.known_hosts)
                transport = wait_for_ssh(target, time.monotonic() + self.ssh_timeout_s)
            except (VastError, SshNotReady) as exc:
                self.log(f"attempt {attempt}: instance {rental.instance_id} on machine {offer.get('machine_id')}: "
                         f"{exc}; destroying it")  # fmt: skip
                failed_machines.add(offer.get("machine_id"))
                self.destroy(rental)
                continue
            except BaseException:  # anything else (the API gave up, a cancel): nothing this attempt made survives
                self.destroy(rental)
                raise
            root = f"{self.remote_root}/{rental.instance_id}"
            env = {"HF_HOME": f"{self.remote_root}/hf", "HF_HUB_CACHE": f"{self.remote_root}/hf/hub"}
            return Box(provider=self.name, root=root, transport=transport, venv=self.venv or f"{root}/venv",
                       env=env, instance_id=rental.instance_id)  # fmt: skip
        raise VastError(f"no instance became ready in {self.max_attempts} attempts; every one was destroyed")

    def register_key(self, public_key: str) -> None:
        """The project's key on the account, so new instances get it (team accounts can't: attach covers them)."""
        try:
            with_backoff(lambda: self.client.sdk.create_ssh_key(ssh_key=public_key), time.monotonic() + 60, "key")
        except requests.HTTPError as exc:
            self.log(f"the account did not take the SSH key ({error_body(exc).get('error')}); attaching per instance")

    def attach_key(self, instance_id: int, public_key: str, deadline: float) -> None:
        try:
            with_backoff(lambda: self.client.sdk.attach_ssh(instance_id, public_key), deadline, "attach")
        except requests.HTTPError as exc:
            raise VastError(f"attaching the SSH key to instance {instance_id} failed ({error_body(exc)})") from None

    def create(self, offer: dict, run_id: str, deadline: float) -> Rental:
        """Create the instance; record it the moment it exists (also a `success: false` one, then destroy it)."""
        kwargs = dict(image=self.image, disk=self.disk_gb, label=self.label, ssh=True, direct=True,
                      env={"HF_HOME": f"{self.remote_root}/hf", "HF_HUB_CACHE": f"{self.remote_root}/hf/hub"},
                      onstart_cmd="touch ~/.no_auto_tmux")  # fmt: skip
        try:
            answer = with_backoff(lambda: self.client.sdk.create_instance(id=offer["id"], **kwargs), deadline, "create")
        except requests.HTTPError as exc:
            body = error_body(exc)
            if exc.response is not None and exc.response.status_code in (404, 410):
                raise OfferUnavailable(
                    f"offer {offer['id']} is gone ({body.get('msg') or body.get('error')})"
                ) from None
            raise VastError(f"create on offer {offer['id']} failed: HTTP {exc.response.status_code} "
                            f"{body.get('error') or ''} {body.get('msg') or ''}".strip()) from None  # fmt: skip
        instance_id = answer.get("new_contract")
        if instance_id is not None:
            rental = Rental(int(instance_id), offer, datetime.now(UTC).isoformat(timespec="seconds"), time.monotonic())
            self.rentals.append(rental)
            self.on_created({"instance_id": rental.instance_id, "label": self.label, "run_id": run_id,
                             "created_at": rental.created_at, "usd_per_hour": offer.get("dph_total")})  # fmt: skip
        if not answer.get("success"):
            if instance_id is not None:
                self.log(f"create answered success=false but made instance {instance_id}; destroying it")
                self.destroy(rental)
            raise OfferUnavailable(f"offer {offer['id']}: create failed ({answer.get('msg') or answer.get('error')})")
        self.log(f"created instance {instance_id} on offer {offer['id']} (machine {offer.get('machine_id')}, "
                 f"${float(offer.get('dph_total') or 0):.3f}/h), label {self.label}")  # fmt: skip
        return rental

    def wait_running(self, instance_id: int, deadline: float) -> dict:
        """Poll until running with an SSH endpoint; fail fast on a failed state; give up at the deadline."""
        status = "not visible yet"
        while time.monotonic() < deadline:
            row = self.client.show(instance_id, deadline)
            if row is not None:
                status = row.get("actual_status")
                if status in FAILED_STATUSES:
                    raise VastError(f"instance {instance_id} is {status}: {row.get('status_msg') or ''}".strip())
                if status == RUNNING_STATUS and ssh_endpoint(row):
                    return row
            time.sleep(self.poll_s)
        raise VastError(f"instance {instance_id} still {status!r} at the deadline ({self.ready_timeout_s:g} s)")

    def destroy(self, rental: Rental) -> None:
        self.client.destroy(rental.instance_id, time.monotonic() + 300)
        rental.destroyed_monotonic = time.monotonic()
        self.log(f"destroyed instance {rental.instance_id} (confirmed gone)")

    def release(self, box: Box | None, run_id: str, fetched: bool) -> str:
        """Destroy every instance this run created that still lives; a box holds nothing worth keeping after."""
        if box is not None:
            box.transport.close()
            self.rentals[-1].bytes_moved += getattr(box.transport, "bytes_moved", 0) + box.downloaded_bytes
        for rental in self.rentals:
            if rental.destroyed_monotonic is None:
                self.destroy(rental)
        return "; ".join(cost_line(r.cost()) for r in self.rentals)
