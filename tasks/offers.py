"""Where `infrastructure.gpu` / `num_gpus: auto` and `shootout plan --offers` take their prices: Vast.ai's live offers
when the spec rents on Vast and a key is set (the cheapest matching offer of each shape the planner knows), else the
dated snapshot (jobspecs/offers.yaml). One function, `offer_shapes_for`, passed to jobspecs.load_spec as `offers`.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from prefect.context import FlowRunContext

from jobspecs.offers import OfferShape, snapshot_shapes
from jobspecs.plan import offer_matches
from jobspecs.schema import JobSpec
from provisioning.vast import OfferQuery, VastClient
from tasks.providers import VAST_KEY_BLOCK, MissingSecret, SecretValue, host_ram_gb, secret

SEARCH_S = 120  # all the shapes' searches together


def vast_key() -> SecretValue | None:
    """The Vast key as a run would take it (tasks.providers.secret: the Secret block, else VAST_API_KEY) where a
    Prefect API is running already (inside a flow run, or PREFECT_API_URL set); else VAST_API_KEY alone: `shootout
    plan` never starts a Prefect server to look for a key. None: no key."""
    if os.environ.get("PREFECT_API_URL") or FlowRunContext.get():
        try:
            return secret(VAST_KEY_BLOCK, "VAST_API_KEY")
        except MissingSecret:
            return None
    if os.environ.get("VAST_API_KEY", "").strip():
        return SecretValue(os.environ["VAST_API_KEY"].strip(), "the VAST_API_KEY environment variable")
    return None


def live_shapes(spec: JobSpec, key: SecretValue) -> list[OfferShape]:
    """For each shape of the snapshot the spec could run on, the cheapest live Vast offer that matches the spec's
    query (disk, host RAM per GPU, price cap, the box's CUDA): its prices are the shape's, on demand (dph_total) and
    its min_bid. With infrastructure.interruptible the search is for bid offers (the cap applied to min_bid, the
    cheapest min_bid first), else on-demand ones (their min_bid where the row states one, else None): one search a
    shape either way. A shape with no offer now is left out."""
    infra, client = spec.infrastructure, VastClient(key.value, os.environ.get("VAST_URL"), key_source=key.source)
    deadline = time.monotonic() + SEARCH_S
    source = f"Vast.ai live offers, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    shapes = []
    for shape in snapshot_shapes():
        if not offer_matches(spec, shape):
            continue
        query = OfferQuery(
            gpu=shape.gpu,
            num_gpus=shape.num_gpus,
            max_usd_per_hour=infra.max_usd_per_hour,
            min_disk_gb=infra.disk_gb,
            min_ram_gb=infra.min_ram_gb or host_ram_gb(spec.model, shape.num_gpus),
            interruptible=infra.interruptible,
        )
        offers = client.search(query, set(), deadline)
        if offers:
            cheapest = offers[0]
            prices = {"usd_per_hour": cheapest.usd_per_hour, "min_bid_usd_per_hour": cheapest.min_bid or None}
            shapes.append(shape.model_copy(update={**prices, "source": source}))
    return shapes


def offer_shapes_for(spec: JobSpec) -> list[OfferShape]:
    """Live offers where the spec rents on Vast and a key is set, else the snapshot."""
    key = vast_key() if spec.infrastructure.provider == "vast" else None
    return live_shapes(spec, key) if key is not None else snapshot_shapes()
