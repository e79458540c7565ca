"""Which box a run gets and how it is given back, the durable record of a rented instance, and the secrets.

    with rented(provider, run_id, record) as box:   # acquire-box … release-box, whatever happens in between

The record (a Prefect Variable per flow run, plus the instance's label `shootout:<flow-run-id>`) is written
the moment an instance exists, so the crash/cancel hooks and the reaper can destroy it when this process can't.
"""

from __future__ import annotations

import contextvars
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from prefect import get_run_logger, task
from prefect.blocks.system import Secret
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectNotFound
from prefect.logging import get_logger
from prefect.variables import Variable
from pydantic import ValidationError

from jobspecs import JobSpec
from provisioning.base import Box, CreatedInstance, Estimate, Provider
from provisioning.keys import config_dir, project_key
from provisioning.local import LocalProvider
from provisioning.ssh import SshProvider, SshTarget
from provisioning.vast import LABEL_PREFIX, OfferQuery, VastClient, VastOffer, VastProvider

VAST_KEY_BLOCK = "vast-api-key"  # a Prefect Secret block; VAST_API_KEY in the environment is the fallback
HF_TOKEN_BLOCK = "hf-token"  # likewise; HF_TOKEN is the fallback
LIVE_INSTANCES = "shootout-live-instances"  # a global concurrency limit: rented instances alive at once
SLOT_LEASE_S = 60  # seconds a slot stays held without a renewal from its flow
LEASE_RENEW_S = 30  # a run renews its instance record's lease this often
LEASE_S = 120  # a lease not renewed for this long (four renewals missed): the run's process is gone
DEFAULT_LIVE_INSTANCES = 3


class MissingSecret(RuntimeError):
    """A secret the run needs is in neither its Secret block nor the environment."""


class SecretValue(str):
    """A secret's value (a plain str, as callers use it) that also says where it was read from: `.source`."""

    source: str

    def __new__(cls, value: str, source: str) -> SecretValue:
        made = super().__new__(cls, value)
        made.source = source
        return made

    @property
    def value(self) -> str:
        return str(self)


def secret(block: str, env_var: str) -> SecretValue:
    """A Secret block's value, else the environment variable's (surrounding whitespace dropped); `.source` names
    which. The value itself is never logged or raised."""
    try:
        return SecretValue(str(Secret.load(block).get()).strip(), f"the Prefect Secret block '{block}'")
    except ValueError:
        pass
    if os.environ.get(env_var, "").strip():
        return SecretValue(os.environ[env_var].strip(), f"the {env_var} environment variable")
    raise MissingSecret(f"no Prefect Secret block '{block}' and no {env_var} in the environment")


def vast_client(server_url: str | None = None) -> VastClient:
    """The Vast client with the project's key; a key Vast refuses ends in a KeyRefused naming where it came from."""
    key = secret(VAST_KEY_BLOCK, "VAST_API_KEY")
    return VastClient(key.value, server_url or os.environ.get("VAST_URL"), key_source=key.source)


def record_name(flow_run_id: str) -> str:
    return "shootout_instance_" + str(flow_run_id).replace("-", "")


class InstanceLease(CreatedInstance):
    """An instance's record, a Prefect Variable per flow run (`record_name`): the instance as created, the Vast API it
    lives on, and when the run's process last renewed its lease. Written by the run, read by its crash hooks and the
    reaper (other processes)."""

    server_url: str | None = None  # a Vast API other than Vast's own (VAST_URL)
    renewed_at: str | None = None  # ISO 8601 UTC


def write_record(flow_run_id: str, record: InstanceLease) -> None:
    Variable.set(record_name(flow_run_id), record.model_dump(mode="json"), overwrite=True)


def read_record(flow_run_id: str) -> InstanceLease | None:
    """The flow run's instance record; None when there is none, or one this code cannot read (the reaper then goes
    by the run's state and the instance's age; it finds instances by their label, not by this record)."""
    value = Variable.get(record_name(flow_run_id))
    if value is None:
        return None
    try:
        return InstanceLease.model_validate(value)
    except ValidationError as exc:
        get_logger("shootout.lease").warning(f"instance record {record_name(flow_run_id)} is unreadable: {exc}")
        return None


def forget_record(flow_run_id: str) -> None:
    if Variable.get(record_name(flow_run_id)) is not None:
        Variable.unset(record_name(flow_run_id))


def lease_age_s(record: InstanceLease | None) -> float | None:
    """Seconds since the record's lease was last renewed (None: no record, or a record without a lease)."""
    if record is None or not record.renewed_at:
        return None
    return (datetime.now(UTC) - datetime.fromisoformat(record.renewed_at)).total_seconds()


class InstanceRecord:
    """The durable record of this flow run's instance, with a lease that a thread of this process renews every
    LEASE_RENEW_S while the instance may live. Prefect keeps a `kill -9`'d run Running until something says
    otherwise (heartbeats do only where `shootout setup`'s automation is on the server); the lease is what tells any
    sweep, whichever way the run was started and whatever the server has, that the process which would destroy the
    instance is gone."""

    def __init__(self, flow_run_id: str) -> None:
        self.flow_run_id, self.server_url = flow_run_id, os.environ.get("VAST_URL")  # a Vast API other than Vast's
        self.record: InstanceLease | None = None
        self.stopped = threading.Event()
        self.renewer: threading.Thread | None = None

    def __enter__(self) -> InstanceRecord:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_renewing()  # the record stays (a failed destroy): its lease lapses, and the reaper takes over

    def write(self, created: CreatedInstance) -> None:
        """on_created: record the instance the moment it exists, and keep its lease renewed from now on (also for
        the next instance, after an interrupted one was destroyed and its record forgotten)."""
        self.record = InstanceLease(**created.model_dump(), server_url=self.server_url)
        self.renew()
        if self.renewer is not None and self.stopped.is_set():  # forgotten: a new instance gets a new renewer
            self.renewer, self.stopped = None, threading.Event()
        if self.renewer is None:  # the thread sees this run's Prefect settings (an ephemeral server's URL too)
            context = contextvars.copy_context()
            self.renewer = threading.Thread(target=context.run, args=(self.keep_renewing,), daemon=True)
            self.renewer.start()

    def renew(self) -> None:
        renewed_at = datetime.now(UTC).isoformat(timespec="seconds")
        write_record(self.flow_run_id, self.record.model_copy(update={"renewed_at": renewed_at}))

    def keep_renewing(self) -> None:
        while not self.stopped.wait(LEASE_RENEW_S):
            try:
                self.renew()
            except Exception as exc:  # the API may be briefly down; the lease only lapses after LEASE_S
                get_logger("shootout.lease").warning(f"renewing the instance record failed ({type(exc).__name__})")

    def stop_renewing(self) -> None:
        self.stopped.set()
        if self.renewer is not None:
            self.renewer.join(timeout=30)

    def forget(self) -> None:
        """The instance is confirmed destroyed: stop renewing (no renewal can write it back), then drop the record."""
        self.stop_renewing()
        forget_record(self.flow_run_id)


def destroy_recorded(flow_run_id: str) -> str:
    """Destroy the instance a flow run recorded (idempotent) and drop the record."""
    record = read_record(flow_run_id)
    if record is None:
        return f"flow run {flow_run_id}: no instance recorded"
    vast_client(record.server_url).destroy(record.instance_id, deadline=time.monotonic() + 300)
    Variable.unset(record_name(flow_run_id))
    return f"flow run {flow_run_id}: destroyed instance {record.instance_id}"


def local_api_url() -> str:
    with get_client(sync_client=True) as client:
        return str(client.api_url)


def ensure_live_instance_limit(limit: int = DEFAULT_LIVE_INSTANCES) -> int:
    """The global concurrency limit on live rented instances (created with `limit` if missing); its limit."""
    with get_client(sync_client=True) as client:
        try:
            return client.read_global_concurrency_limit_by_name(LIVE_INSTANCES).limit
        except ObjectNotFound:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=LIVE_INSTANCES, limit=limit))
            return limit


@contextmanager
def live_instance_slot(provider: str) -> Iterator[None]:
    """Hold one slot of the live-instance limit from renting to the confirmed destroy (rented boxes only)."""
    if provider != "vast":
        yield
        return
    ensure_live_instance_limit()
    get_run_logger().info(f"waiting for a slot of the '{LIVE_INSTANCES}' limit")
    # the lease is renewed while this flow lives; a flow killed with its laptop frees its slot within about a minute
    # (Prefect's default, 300 s, kept a dead run's slot for five)
    with concurrency(
        LIVE_INSTANCES, occupy=1, strict=True, lease_duration=SLOT_LEASE_S, raise_on_lease_renewal_failure=False
    ):
        yield


def host_ram_gb(model: str, num_gpus: int) -> float:
    """The host RAM an offer needs by default: each rank (one per GPU) loads the pipeline through host memory, and
    Hunyuan's 24gb plan pins ~80 GB of weights there per rank."""
    return (96 if model == "hunyuan_i2v" else 32) * num_gpus


def make_provider(
    spec: JobSpec,
    flow_run_id: str,
    run_id: str,
    out_dir: Path,
    on_created: Callable[[CreatedInstance], None],
    approve: Callable[[VastOffer, float], Estimate] | None = None,
) -> Provider:
    """The spec's provider. A rented instance is reported to `on_created` the moment it exists; `approve` gives
    the run's estimate at an offer's price ($/h: the bid where interruptible) before it is rented, and raises to
    refuse it."""
    infra = spec.infrastructure
    if infra.provider == "local":
        # This machine is the box, so its worker flow may report to the same Prefect API as this flow.
        return LocalProvider(out_dir / ".box", env={"PREFECT_API_URL": local_api_url()})
    known_hosts = config_dir() / "known_hosts" / run_id  # this run's own: trust on first use, then pinned
    key_file = Path(infra.key_file).expanduser() if infra.key_file else project_key()
    if infra.provider == "ssh":
        target = SshTarget(infra.host, infra.port, infra.user, key_file, known_hosts)
        root = infra.remote_root or "i2v-shootout"  # relative: under the user's home on the box
        return SshProvider(target, root=root, venv=infra.venv, ready_timeout_s=infra.ready_timeout_s)
    return VastProvider(
        vast_client(),
        OfferQuery(
            gpu=infra.gpu,
            num_gpus=infra.num_gpus,
            max_usd_per_hour=infra.max_usd_per_hour,
            min_disk_gb=infra.disk_gb,
            min_ram_gb=infra.min_ram_gb or host_ram_gb(spec.model, infra.num_gpus),
            interruptible=infra.interruptible,
        ),
        label=f"{LABEL_PREFIX}{flow_run_id}",
        key_file=key_file,
        known_hosts=known_hosts,
        on_created=on_created,
        approve=approve,
        log=get_run_logger().info,
        image=infra.image,
        disk_gb=infra.disk_gb,
        remote_root=infra.remote_root or "/workspace/i2v-shootout",
        venv=infra.venv,
        ready_timeout_s=infra.ready_timeout_s,
        bid_margin=infra.bid_margin,
    )


@task(name="acquire-box", cache_policy=NO_CACHE)
def acquire_box(provider: Provider, run_id: str) -> Box:
    box = provider.acquire(run_id)
    get_run_logger().info(f"box: {box.provider} at {box.root}")
    return box


@task(name="release-box", cache_policy=NO_CACHE)
def release_box(provider: Provider, box: Box | None, run_id: str, fetched: bool) -> None:
    get_run_logger().info(provider.release(box, run_id, fetched))


@contextmanager
def rented(provider: Provider, run_id: str, record: InstanceRecord) -> Iterator[Box]:
    """The run's box, from acquire-box to release-box, holding a slot of the live-instance limit throughout (rented
    boxes only). The release runs however the block ends (an error, a cancel), told `fetched` (the box's copy of the
    run may go) only when the block ran to its end: end it once the bundle is here and verified. The instance's
    record is dropped only after a release that succeeded; a destroy that failed leaves it to the crash hooks and
    the reaper (its lease lapses once this process is gone)."""
    with live_instance_slot(provider.name), record:
        box, fetched = None, False
        try:
            box = acquire_box(provider, run_id)
            yield box
            fetched = True
        finally:
            release_box(provider, box, run_id, fetched)
            record.forget()
