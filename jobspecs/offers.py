"""Offer shapes: a box of `num_gpus` × `gpu` at a price, where that price is from, and what the planner made of one
(jobspecs/plan.py judges them and `pick_offer` picks one for `infrastructure.gpu` / `num_gpus: auto`).

    offer_shapes(spec)   the dated snapshot (jobspecs/offers.yaml): the shapes validate and the planner price with
                         where no other source is passed (tasks/offers.py passes Vast's live offers with a key)
    snapshot_shapes()    the snapshot's shapes

Imports only the config files (jobspecs/schema.py imports this module).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from jobspecs.config import offer_snapshot

if TYPE_CHECKING:
    from jobspecs.schema import JobSpec


class Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class OfferShape(Shape):
    """A box that can be rented: `num_gpus` × `gpu` for `usd_per_hour` (the whole box)."""

    gpu: str  # as Vast.ai writes it (throughput.yaml `gpus`)
    num_gpus: int = Field(ge=1, le=8)
    usd_per_hour: float = Field(gt=0)
    source: str  # where the price is from: "jobspecs/offers.yaml snapshot of 2026-12-01", or a live search

    @property
    def name(self) -> str:
        return f"{self.num_gpus}× {self.gpu}"


class OfferVerdict(Shape):
    """One offer shape as the planner judged it for a spec: a row of `shootout plan --offers`."""

    offer: OfferShape
    profile: str | None = None  # the profile it was predicted at (`auto`: the one picked there); None: refused
    longest_clip_s: float | None = None  # the longest clip's predicted seconds
    run_s: float | None = None  # the run's predicted seconds (load + every clip)
    rented_s: float | None = None  # what the box is paid for: setup + the weights' download + the run
    usd_per_film: float | None = None  # rented_s at the offer's price
    fits: bool = False  # every clip inside guardrails.clip_limit_s, the run inside its run limit
    within_cap: bool = True  # usd_per_hour ≤ infrastructure.max_usd_per_hour (or no cap)
    problem: str | None = None  # why it does not fit, or why the spec is refused on it
    chosen: bool = False  # the one the spec runs on


OfferSource = Callable[["JobSpec"], list[OfferShape]]  # a spec → the shapes to pick its offer from


def snapshot_source() -> str:
    """How the snapshot's shapes name their source."""
    return f"jobspecs/offers.yaml snapshot of {offer_snapshot().as_of.isoformat()}"


def snapshot_shapes() -> list[OfferShape]:
    """The snapshot's shapes (jobspecs/offers.yaml), in its order."""
    source = snapshot_source()
    return [
        OfferShape(gpu=shape.gpu, num_gpus=shape.num_gpus, usd_per_hour=shape.usd_per_hour, source=source)
        for shape in offer_snapshot().shapes
    ]


def offer_shapes(spec: JobSpec) -> list[OfferShape]:
    """The shapes a spec's offer is picked from and its plan priced with by default: the dated snapshot, offline and
    deterministic (tasks/offers.py offer_shapes_for searches Vast's live offers instead where a key is set)."""
    return snapshot_shapes()
