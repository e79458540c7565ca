"""Vast.ai: rent one RTX 4090 for a run, wait until SSH answers, destroy it — through the vastai SDK.

The CLI exits 0 on HTTP errors, so the lifecycle goes through the SDK (which raises); the equivalent
`vastai search offers '…'` line is logged so a user can repeat the search by hand. Every instance gets the
label `shootout:<flow-run-id>` and is reported to `on_created` the moment it exists, before anything else
can fail, so crash hooks and the reaper can find it. Only instances this attempt created are destroyed.
"""

from __future__ import annotations

import importlib.metadata
import itertools
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import requests
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from vastai import VastAI

from provisioning.base import Box, CreatedInstance, Estimate, InstanceCost
from provisioning.polling import poll_until, sleep_until_next
from provisioning.ssh import SshNotReady, SshTarget, wait_for_ssh

# An instance's actual_status: running (usable once SSH answers), or failed for good (destroy it, try another
# machine); anything else (none yet, created, loading, rebooting …) is still on its way.
RUNNING_STATUS = "running"
FAILED_STATUSES = {"exited", "unknown", "offline", "stopped", "frozen"}
TRANSIENT_HTTP = {429, 500, 502, 503, 504}  # retried with backoff until the deadline (a daily quota 429 is not)
KEY_REFUSED_HTTP = {401, 403}
DAILY_QUOTA_ERROR = "search_quota_exceeded"  # a 429 with this JSON error resets at UTC midnight (vastai's own
# is_search_quota_exceeded, which its retry loop refuses to retry, looks at the same field)
GONE_ERRORS = {"no_such_instance", "not_found"}  # a DELETE answering 404 with these: already destroyed
REQUEST_TIMEOUT_S = 30  # one HTTP request (the SDK's default, 120 s, times its 3 tries, would outlast a deadline)
BACKOFF_CAP_S = 15.0
DESTROY_TIMEOUT_S = 300
LABEL_PREFIX = "shootout:"
DEFAULT_IMAGE = "pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime"  # Python 3.11; the venv brings its own torch
# The torch pin of the project's `remote` extra → the lowest CUDA the host's driver must support (Vast's cuda_vers /
# cuda_max_good) to run it. remote/setup.sh installs `<wheel>[remote]` from the default PyPI index, so the box gets
# torch's default Linux x86_64 wheel, which brings its own CUDA runtime; only the driver comes from the host.
# 2.13.0: that wheel requires cuda-toolkit==13.0.3 and nvidia-*-cu13 (pip's report of its metadata): CUDA 13.0,
# whose runtime runs on any driver that supports 13.0 or newer (R580+).
TORCH_MIN_DRIVER_CUDA = {"2.13.0": 13.0}


class VastError(RuntimeError):
    """Renting failed; the message says what to do. Never carries the API key."""


class OfferUnavailable(VastError):
    """The offer was taken between search and create."""


class InstanceNotReady(VastError):
    """This instance will not become usable (a failed state, stuck at the deadline, SSH silent): try another."""


class VastApiError(VastError):
    """Vast answered an error that is not retried (or kept failing transiently until the deadline)."""

    def __init__(self, message: str, status: int | None = None, body: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.body = status, body or {}


class KeyRefused(VastError):
    """Vast refused the API key (HTTP 401/403); the message says where the key was read from, never the key."""


class DestroyFailed(VastError):
    """An instance could not be destroyed within the deadline; the message gives the command to do it by hand."""


def torch_pin() -> str:
    """The torch version the box installs: the `remote` extra's pin in this package's metadata (from pyproject)."""
    for requirement in importlib.metadata.requires("i2v-shootout") or []:
        found = re.match(r"torch==([\w.]+)\s*;.*extra\s*==\s*['\"]remote['\"]", requirement)
        if found:
            return found.group(1)
    raise VastError("no torch==X pin in the i2v-shootout package's `remote` extra")


def min_driver_cuda(pin: str | None = None) -> float:
    """The lowest driver CUDA (cuda_vers) the pinned torch wheel runs on."""
    pin = pin or torch_pin()
    if pin not in TORCH_MIN_DRIVER_CUDA:
        raise VastError(
            f"torch=={pin} (the `remote` extra) is not in TORCH_MIN_DRIVER_CUDA: add the CUDA its default "
            "PyPI wheel is built for (its nvidia-*-cuNN / cuda-toolkit requirements)"
        )
    return TORCH_MIN_DRIVER_CUDA[pin]


@dataclass(frozen=True)
class OfferQuery:
    gpu: str = "RTX 4090"
    num_gpus: int = 1
    min_reliability: float = 0.98
    min_inet_down_mbps: float = 200
    min_disk_gb: float = 80
    min_cuda: float = field(default_factory=min_driver_cuda)  # what the box's torch needs
    min_ram_gb: float = 32  # host RAM: Hunyuan's offload plan pins ~80 GB of weights there
    verified: bool = True
    max_usd_per_hour: float | None = None  # on demand: the offer's dph_total; interruptible: its min_bid
    interruptible: bool = False  # bid offers (Vast's search type "bid"), each with its min_bid

    @property
    def offer_type(self) -> str:
        """Vast's search type: "bid" (interruptible) or "on-demand"."""
        return "bid" if self.interruptible else "on-demand"

    def text(self, exclude_machines: set[int] = frozenset()) -> str:
        """The query in the vastai search syntax (also what a user types)."""
        parts = [
            f"gpu_name={self.gpu.replace(' ', '_')}",
            f"num_gpus={self.num_gpus}",
            f"reliability>{self.min_reliability}",
            f"inet_down>{self.min_inet_down_mbps}",
            f"disk_space>={self.min_disk_gb}",
            f"cuda_vers>={self.min_cuda}",
            f"cpu_ram>={self.min_ram_gb}",
            f"verified={str(self.verified).lower()}",
            "rentable=true",
        ]
        if self.max_usd_per_hour is not None:
            parts.append(f"{'min_bid' if self.interruptible else 'dph'}<={self.max_usd_per_hour}")
        if exclude_machines:
            parts.append(f"machine_id notin [{','.join(str(m) for m in sorted(exclude_machines))}]")
        return " ".join(parts)


def number_or_none(value: object) -> float | None:
    """A number as Vast sends it (a number or a numeric string); None for null, a missing key, '' or a word."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


Number = Annotated[float | None, BeforeValidator(number_or_none)]
WholeNumber = Annotated[int | None, BeforeValidator(number_or_none)]


class VastOffer(BaseModel):
    """One row of Vast's offer search, read once where the SDK answers: the fields this project uses (Vast sends
    about a hundred more, ignored). A price or version that is missing, null or not a number is None."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int  # the offer ("ask") that create rents
    machine_id: WholeNumber = None  # the host; a machine that failed is not tried again in the same run
    gpu_name: str | None = None
    num_gpus: WholeNumber = None
    dph_total: Number = None  # $/h, all in (GPU, CPU, disk)
    cuda_max_good: Number = None  # the newest CUDA the host's driver runs
    inet_up_cost: Number = None  # $/GB sent from the box
    inet_down_cost: Number = None  # $/GB the box downloads
    min_bid: Number = None  # $/h: the lowest bid an interruptible instance of this offer is created with

    @property
    def usd_per_hour(self) -> float:
        """dph_total; 0 for an offer that states no price."""
        return self.dph_total or 0.0

    def bid(self, margin: float, cap: float | None) -> float | None:
        """What to bid for it as an interruptible instance: min_bid × margin, at most `cap`; None when it states no
        min_bid or the min_bid is above the cap."""
        if self.min_bid is None or (cap is not None and self.min_bid > cap):
            return None
        bid = self.min_bid * margin
        return round(min(bid, cap) if cap is not None else bid, 4)


def parse_offers(rows: object) -> list[VastOffer]:
    """The SDK's search answer as offers; a row that cannot be rented (no offer id) is dropped."""
    offers = []
    for row in rows or []:
        try:
            offers.append(VastOffer.model_validate(row))
        except ValidationError:
            continue
    return offers


@dataclass
class Rental:
    """One instance this run created: what it costs and since when."""

    instance_id: int
    offer: VastOffer
    created_at: str
    created_monotonic: float
    destroyed_monotonic: float | None = None
    bytes_moved: int = 0
    estimate: Estimate | None = None  # what the run was predicted to cost at this offer, before renting
    bid: float | None = None  # $/h: an interruptible instance's bid (what it is billed at)
    interrupted: str | None = None  # why Vast took it away (outbid), once seen

    @property
    def usd_per_hour(self) -> float:
        """What it is billed at: the bid of an interruptible instance, else the offer's dph_total."""
        return self.bid if self.bid is not None else self.offer.usd_per_hour

    def cost(self) -> InstanceCost:
        """The price (dph_total, or the bid) × billed seconds (create → confirmed destroy) + the offer's per-GB
        transfer prices."""
        end = self.destroyed_monotonic or time.monotonic()
        billed_s = max(0.0, end - self.created_monotonic)
        price = self.usd_per_hour
        transfer = self.bytes_moved / 1e9 * ((self.offer.inet_down_cost or 0) + (self.offer.inet_up_cost or 0))
        return InstanceCost(
            instance_id=self.instance_id,
            gpu=self.offer.gpu_name,
            usd_per_hour=price,
            billed_seconds=round(billed_s, 1),
            bytes_moved=self.bytes_moved,
            usd_transfer=round(transfer, 6),
            usd_total=round(price * billed_s / 3600 + transfer, 6),
            destroyed=self.destroyed_monotonic is not None,
            estimate_s=self.estimate.seconds if self.estimate else None,
            estimate_usd=self.estimate.usd if self.estimate else None,
            interruptible=self.bid is not None,
            interrupted=self.interrupted,
        )


def error_body(exc: requests.RequestException) -> dict:
    try:
        body = exc.response.json()
    except (ValueError, AttributeError):
        return {}
    return body if isinstance(body, dict) else {}


def http_status(exc: requests.RequestException) -> int | None:
    return exc.response.status_code if exc.response is not None else None


def is_daily_quota(exc: requests.RequestException) -> bool:
    return http_status(exc) == 429 and error_body(exc).get("error") == DAILY_QUOTA_ERROR


def is_transient(exc: requests.RequestException) -> bool:
    """Worth retrying: 500–504, a plain 429, a connection error or timeout (not 4xx, not the daily quota)."""
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return True
    return http_status(exc) in TRANSIENT_HTTP and not is_daily_quota(exc)


def describe(exc: requests.RequestException) -> str:
    """'HTTP 500 on GET /api/v0/instances/7/' or 'ConnectionError on DELETE /api/v0/instances/7/'."""
    request = exc.request or getattr(exc.response, "request", None)
    where = f"{request.method} {urlsplit(request.url).path}" if request is not None else "Vast's API"
    status = http_status(exc)
    return f"HTTP {status} on {where}" if status is not None else f"{type(exc).__name__} on {where}"


def quota_reset(exc: requests.RequestException) -> str:
    """When the daily quota resets, from its X-RateLimit-Reset header (epoch seconds) where there is one."""
    try:
        reset = datetime.fromtimestamp(float(exc.response.headers["X-RateLimit-Reset"]), UTC)
    except (KeyError, TypeError, ValueError, OverflowError):
        return "it resets at midnight UTC"
    return f"it resets at {reset:%Y-%m-%d %H:%M} UTC"


def detail(exc: requests.RequestException) -> str:
    """What Vast said, briefly (its error code and message; the text of a plain-text answer)."""
    body = error_body(exc)
    said = " ".join(str(body[k]) for k in ("error", "msg", "detail") if body.get(k))
    if not said and exc.response is not None:
        said = exc.response.text.strip()[:200]
    return f" ({said})" if said else ""


def ssh_endpoint(row: dict) -> tuple[str, int] | None:
    """Direct (public_ipaddr + the 22/tcp mapping) when there is one, else the proxy (ssh_host:ssh_port)."""
    mapped = (row.get("ports") or {}).get("22/tcp")
    if row.get("public_ipaddr") and mapped:
        return row["public_ipaddr"].strip(), int(mapped[0]["HostPort"])
    if row.get("ssh_host") and row.get("ssh_port"):
        return row["ssh_host"], int(row["ssh_port"])
    return None


class VastClient:
    """The SDK calls the provider and the reaper make, each bounded by a deadline; every failure is a VastError.

    Transient failures (500–504, plain 429s, connection errors and timeouts) are retried with capped exponential
    backoff (1, 2, 4 … 15 s, each sleep capped at the deadline) until the deadline; the SDK itself first tries a
    429/502–504 three times. Anything else, and the daily search quota, ends the call at once."""

    def __init__(self, api_key: str, server_url: str | None = None, key_source: str = "the api_key argument") -> None:
        kwargs = {"server_url": server_url} if server_url else {}
        self.sdk = VastAI(api_key=api_key, retry=3, **kwargs)
        self.sdk.client.timeout = REQUEST_TIMEOUT_S
        self.key_source = key_source  # where the key was read from, for the message when Vast refuses it

    def call(self, request: Callable[[], object], deadline: float) -> object:
        started, delay = time.monotonic(), 1.0
        for tries in itertools.count(1):
            try:
                return request()
            except requests.RequestException as exc:
                self.refuse_unless_transient(exc)
                failure = exc
            if not sleep_until_next(delay, deadline):
                waited = time.monotonic() - started
                message = f"{describe(failure)}{detail(failure)}, retried {tries - 1} times over {waited:.0f} s"
                raise VastApiError(message, http_status(failure), error_body(failure))
            delay = min(delay * 2, BACKOFF_CAP_S)

    def refuse_unless_transient(self, exc: requests.RequestException) -> None:
        """Raise what a failure not worth retrying means: a refused key, the daily quota, any other error answer."""
        status, said = http_status(exc), f"{describe(exc)}{detail(exc)}"
        if status in KEY_REFUSED_HTTP:
            raise KeyRefused(
                f"Vast refused the API key read from {self.key_source}: {said}; check or replace the key there"
            ) from None
        if is_daily_quota(exc):
            raise VastApiError(
                f"Vast answered {describe(exc)} daily quota exceeded: not retried ({quota_reset(exc)})",
                status,
                error_body(exc),
            ) from None
        if not is_transient(exc):
            raise VastApiError(f"Vast answered {said}: not retried", status, error_body(exc)) from None

    def search(self, query: OfferQuery, exclude_machines: set[int], deadline: float) -> list[VastOffer]:
        """Matching offers, cheapest first; hosts whose driver is below the query's CUDA are dropped here too (a
        filter the server does not apply must not rent a box the torch wheel can't use; an offer that does not say
        is left to the server's filter)."""
        text = query.text(exclude_machines)
        order = "min_bid" if query.interruptible else "dph_total"
        answer = self.call(
            lambda: self.sdk.search_offers(query=text, type=query.offer_type, order=order, limit=20), deadline
        )
        offers = [
            offer
            for offer in parse_offers(answer)
            if offer.machine_id not in exclude_machines
            and (offer.cuda_max_good or query.min_cuda) >= query.min_cuda
            and (offer.min_bid is not None or not query.interruptible)
        ]
        return sorted(offers, key=lambda offer: offer.min_bid if query.interruptible else offer.usd_per_hour)

    def show(self, instance_id: int, deadline: float) -> dict | None:
        """The instance's row; None when Vast does not list it (`{"instances": null}`, or a 404 for one gone)."""
        try:
            return self.call(lambda: self.sdk.show_instance(id=instance_id), deadline)
        except VastApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list_labelled(self, prefix: str, deadline: float) -> list[dict]:
        rows = self.call(lambda: self.sdk.show_instances(), deadline) or []
        return [row for row in rows if str(row.get("label") or "").startswith(prefix)]

    def register_key(self, public_key: str, deadline: float) -> None:
        self.call(lambda: self.sdk.create_ssh_key(ssh_key=public_key), deadline)

    def attach_key(self, instance_id: int, public_key: str, deadline: float) -> None:
        self.call(lambda: self.sdk.attach_ssh(instance_id, public_key), deadline)

    def create(self, offer_id: int, deadline: float, **kwargs: object) -> dict:
        return self.call(lambda: self.sdk.create_instance(id=offer_id, **kwargs), deadline)

    def destroy(self, instance_id: int, deadline: float) -> None:
        """Destroy and confirm it is gone (one already gone counts), retrying every transient failure until the
        deadline; DestroyFailed says what happened and how to destroy it by hand."""
        started = time.monotonic()
        try:
            for _ in poll_until(deadline, interval_s=2.0):  # DELETE again while it is still listed
                try:
                    self.call(lambda: self.sdk.destroy_instance(id=instance_id), deadline)
                except VastApiError as exc:
                    if exc.status != 404 and exc.body.get("error") not in GONE_ERRORS:
                        raise
                if self.show(instance_id, deadline) is None:
                    return
            raise VastError("it is still listed after DELETE answered")
        except VastError as exc:
            raise DestroyFailed(
                f"could not destroy instance {instance_id} (tried for {time.monotonic() - started:.0f}"
                f" s): {exc}. It may still be running and billed: destroy it by hand with "
                f"`vastai destroy instance {instance_id}`"
            ) from None


class VastProvider:
    """Rents one instance per run: search → create (recorded at once) → running → SSH answers, all within one
    deadline per attempt (`ready_timeout_s`); an instance that does not get there is destroyed and another machine
    tried, up to `max_attempts`."""

    name = "vast"

    def __init__(
        self,
        client: VastClient,
        query: OfferQuery,
        label: str,
        key_file: Path,
        known_hosts: Path,
        on_created: Callable[[CreatedInstance], None],
        approve: Callable[[VastOffer, float], Estimate] | None = None,
        log: Callable[[str], None] = print,
        image: str = DEFAULT_IMAGE,
        disk_gb: float = 80,
        remote_root: str = "/workspace/i2v-shootout",
        venv: str | None = None,
        ssh_user: str = "root",
        max_attempts: int = 3,
        ready_timeout_s: float = 900,
        destroy_timeout_s: float = DESTROY_TIMEOUT_S,
        poll_s: float = 5,
        bid_margin: float = 1.25,
    ) -> None:
        self.client, self.query, self.label = client, query, label
        self.key_file, self.known_hosts, self.ssh_user = key_file, known_hosts, ssh_user
        self.on_created = on_created  # the instance's record, the moment it exists
        self.approve = approve  # (offer, $/h) → the run's cost estimate at that price; raises to refuse it
        self.log = log
        self.image, self.disk_gb, self.remote_root, self.venv = image, disk_gb, remote_root, venv
        self.max_attempts, self.ready_timeout_s, self.poll_s = max_attempts, ready_timeout_s, poll_s
        self.destroy_timeout_s = destroy_timeout_s
        self.bid_margin = bid_margin  # interruptible (query.interruptible): the bid is min_bid × this, ≤ the cap
        self.rentals: list[Rental] = []  # every instance this run created, destroyed or not (over every acquire)
        self.first_rental = 0

    def acquire(self, run_id: str) -> Box:
        """A ready box: the cheapest matching offer rented (at a bid where interruptible), running and answering SSH.
        Called again after an interruption, it rents anew (the same machine too, if it is offered again)."""
        failed_machines: set[int] = set()
        given_up: list[str] = []  # "instance 7 on machine 3: why", for the message when none becomes ready
        public_key = Path(f"{self.key_file}.pub").read_text().strip()
        self.register_key(public_key)
        self.first_rental = len(self.rentals)  # this acquire's rentals come after the earlier acquires'
        kind = "--type bid -o min_bid" if self.query.interruptible else "-o dph_total"
        self.log(f"offers: vastai search offers '{self.query.text()}' {kind}")
        for attempt in range(1, self.max_attempts + 1):
            deadline = time.monotonic() + self.ready_timeout_s  # this attempt's: search, create, running, SSH
            offers = self.client.search(self.query, failed_machines, deadline)
            if not offers:
                raise VastError(self.nothing_matches(given_up, failed_machines))
            offer = offers[0]
            price = self.price(offer)
            estimate = self.estimate(offer, price)
            try:
                rental = self.create(offer, price, run_id, deadline)
                rental.estimate = estimate
            except OfferUnavailable as exc:
                self.log(f"attempt {attempt}: {exc}; trying the next offer")
                given_up.append(str(exc))
                continue
            try:
                self.attach_key(rental.instance_id, public_key, deadline)
                row = self.wait_running(rental.instance_id, deadline)
                host, port = ssh_endpoint(row)
                target = SshTarget(host, port, self.ssh_user, self.key_file, self.known_hosts)
                transport = wait_for_ssh(target, deadline)
            except (InstanceNotReady, SshNotReady) as exc:
                why = f"instance {rental.instance_id} on machine {offer.machine_id}: {exc}"
                self.log(f"attempt {attempt}: {why}; destroying it")
                given_up.append(why)
                if offer.machine_id is not None:
                    failed_machines.add(offer.machine_id)
                self.destroy(rental)
                continue
            except BaseException:  # anything else (the API gave up, a cancel): nothing this attempt made survives
                self.destroy(rental)
                raise
            root = f"{self.remote_root}/{rental.instance_id}"
            env = {"HF_HOME": f"{self.remote_root}/hf", "HF_HUB_CACHE": f"{self.remote_root}/hf/hub"}
            return Box(
                provider=self.name,
                root=root,
                transport=transport,
                venv=self.venv or f"{root}/venv",
                env=env,
                instance_id=rental.instance_id,
            )
        raise VastError(f"no instance became ready in {self.max_attempts} attempts: {self.tried(given_up)}")

    def price(self, offer: VastOffer) -> float:
        """$/h the instance will be billed at: the bid (min_bid × bid_margin, at most the cap) where interruptible,
        else dph_total. The search keeps only offers whose min_bid is within the cap."""
        if not self.query.interruptible:
            return offer.usd_per_hour
        bid = offer.bid(self.bid_margin, self.query.max_usd_per_hour)
        if bid is None:  # the search's filter should have left it out
            raise OfferUnavailable(f"offer {offer.id}: no min_bid within the cap to bid at")
        return bid

    def estimate(self, offer: VastOffer, price: float) -> Estimate | None:
        """Before the instance is created: the run's cost at this price, logged (`approve` raises to refuse it)."""
        if self.approve is None:
            return None
        estimate = self.approve(offer, price)
        bid = f" (bid: min_bid ${offer.min_bid:.3f} × {self.bid_margin:g})" if self.query.interruptible else ""
        self.log(
            f"estimate before renting: ${estimate.usd:.2f} for {estimate.seconds:.0f} s at "
            f"${price:.3f}/h{bid} (offer {offer.id}, {offer.gpu_name})"
        )
        return estimate

    def costs(self) -> list[InstanceCost]:
        return [rental.cost() for rental in self.rentals]

    def tried(self, given_up: list[str]) -> str:
        return f"{len(self.rentals) - self.first_rental} tried and destroyed ({'; '.join(given_up)})"

    def nothing_matches(self, given_up: list[str], failed_machines: set[int]) -> str:
        query = self.query.text(failed_machines)
        if len(self.rentals) == self.first_rental:
            taken = f" ({'; '.join(given_up)})" if given_up else ""
            return f"no offer matches '{query}'{taken}; raise the price cap or relax the query"
        return f"no instance became ready: {self.tried(given_up)}; no other offer matches '{query}'"

    def register_key(self, public_key: str) -> None:
        """The project's key on the account, so new instances get it (team accounts can't: attach covers them)."""
        try:
            self.client.register_key(public_key, time.monotonic() + 60)
        except VastApiError as exc:
            self.log(f"the account did not take the SSH key ({exc}); attaching it per instance")

    def attach_key(self, instance_id: int, public_key: str, deadline: float) -> None:
        try:
            self.client.attach_key(instance_id, public_key, deadline)
        except VastApiError as exc:
            if exc.status is None or exc.status >= 500 or exc.status == 429:
                raise  # the API gave up, not this instance
            raise InstanceNotReady(f"attaching the SSH key failed: {exc}") from None

    def create(self, offer: VastOffer, price: float, run_id: str, deadline: float) -> Rental:
        """Create the instance (interruptible: with the bid `price`, always passed: without it Vast rents on demand);
        record it the moment it exists (also a `success: false` one, as a bid below min_bid makes: destroy it)."""
        bid = price if self.query.interruptible else None
        kwargs = dict(
            image=self.image,
            disk=self.disk_gb,
            label=self.label,
            ssh=True,
            direct=True,
            env={"HF_HOME": f"{self.remote_root}/hf", "HF_HUB_CACHE": f"{self.remote_root}/hf/hub"},
            onstart_cmd="touch ~/.no_auto_tmux",
        )
        if bid is not None:
            kwargs["bid_price"] = bid
        try:
            answer = self.client.create(offer.id, deadline, **kwargs)
        except VastApiError as exc:
            if exc.status in (404, 410):
                raise OfferUnavailable(
                    f"offer {offer.id} is gone ({exc.body.get('msg') or exc.body.get('error')})"
                ) from None
            raise VastError(f"create on offer {offer.id} failed: {exc}") from None
        instance_id = answer.get("new_contract")
        if instance_id is not None:
            created_at = datetime.now(UTC).isoformat(timespec="seconds")
            rental = Rental(int(instance_id), offer, created_at, time.monotonic(), bid=bid)
            self.rentals.append(rental)
            self.on_created(
                CreatedInstance(
                    instance_id=rental.instance_id,
                    label=self.label,
                    run_id=run_id,
                    created_at=rental.created_at,
                    usd_per_hour=rental.usd_per_hour,
                )
            )
        if not answer.get("success"):
            why = f"offer {offer.id}: create failed ({answer.get('msg') or answer.get('error')})"
            if instance_id is not None:
                self.log(f"create answered success=false but made instance {instance_id}; destroying it")
                self.destroy(rental)
                why = f"instance {instance_id} on machine {offer.machine_id}: create answered success=false"
            raise OfferUnavailable(why)
        if instance_id is None:  # nothing to record or destroy: an answer the client cannot use
            raise OfferUnavailable(f"offer {offer.id}: create answered success without an instance id")
        self.log(
            f"created instance {instance_id} on offer {offer.id} (machine {offer.machine_id}, "
            f"${rental.usd_per_hour:.3f}/h{' bid' if bid is not None else ''}), label {self.label}"
        )
        return rental

    def wait_running(self, instance_id: int, deadline: float) -> dict:
        """Poll until running with an SSH endpoint; fail fast on a failed state; give up at the deadline."""
        status = "not visible yet"
        for _ in poll_until(deadline, self.poll_s):
            row = self.client.show(instance_id, deadline)
            if row is not None:
                status = row.get("actual_status") or "provisioning"
                message = str(row.get("status_msg") or "").strip()
                if status in FAILED_STATUSES or (status == "created" and "OCI runtime create failed" in message):
                    raise InstanceNotReady(f"{status}: {message}" if message else status)
                if status == RUNNING_STATUS and ssh_endpoint(row):
                    if self.query.interruptible and row.get("is_bid") is False:
                        self.log(f"instance {instance_id}: Vast reports it is not a bid instance (is_bid false)")
                    return row
        raise InstanceNotReady(f"stuck {status!r} at the deadline ({self.ready_timeout_s:g} s)")

    def interrupted(self) -> str | None:
        """Whether Vast took the box away: the instance now held (interruptible only) shows stopped in any of
        actual_status, cur_state, intended_status, next_state (an outbid bid instance: all four, dstack PR #4037),
        or is no longer listed. None while it runs; an API that does not answer says nothing either way (None)."""
        rental = self.rentals[-1] if self.rentals else None
        if not self.query.interruptible or rental is None or rental.destroyed_monotonic is not None:
            return None
        if rental.interrupted is not None:
            return rental.interrupted
        try:
            row = self.client.show(rental.instance_id, time.monotonic() + REQUEST_TIMEOUT_S)
        except VastError as exc:
            self.log(f"instance {rental.instance_id}: could not ask Vast whether it still runs ({exc})")
            return None
        if row is None:
            rental.interrupted = f"instance {rental.instance_id} is no longer listed by Vast"
            return rental.interrupted
        states = {key: row.get(key) for key in ("actual_status", "cur_state", "intended_status", "next_state")}
        if "stopped" not in states.values():
            return None
        message = str(row.get("status_msg") or "").strip()
        said = ", ".join(f"{key} {value}" for key, value in states.items() if value is not None)
        rental.interrupted = f"Vast stopped interruptible instance {rental.instance_id} ({said}" + (
            f"; {message})" if message else ")"
        )
        return rental.interrupted

    def destroy(self, rental: Rental) -> None:
        self.client.destroy(rental.instance_id, time.monotonic() + self.destroy_timeout_s)
        rental.destroyed_monotonic = time.monotonic()
        self.log(f"destroyed instance {rental.instance_id} (confirmed gone)")

    def release(self, box: Box | None, run_id: str, fetched: bool) -> str:
        """Destroy every instance this run created that still lives (each one tried, whatever another's fate); a box
        holds nothing worth keeping after."""
        if box is not None:
            box.transport.close()
            self.rentals[-1].bytes_moved += getattr(box.transport, "bytes_moved", 0) + box.downloaded_bytes
        failures = []
        for rental in self.rentals:
            if rental.destroyed_monotonic is None:
                try:
                    self.destroy(rental)
                except DestroyFailed as exc:
                    failures.append(str(exc))
        if failures:
            raise DestroyFailed("; ".join(failures))
        return "; ".join(cost.line() for cost in self.costs())
