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
    """A box that can be rented: `num_gpus` × `gpu` for `usd_per_hour` on demand (the whole box), or as an
    interruptible instance for a bid of at least `min_bid_usd_per_hour` (None: no min_bid known)."""

    gpu: str  # as Vast.ai writes it (throughput.yaml `gpus`)
    num_gpus: int = Field(ge=1, le=8)
    usd_per_hour: float = Field(gt=0)
    source: str  # where the price is from: "jobspecs/offers.yaml snapshot of 2026-12-01", or a live search
    min_bid_usd_per_hour: float | None = Field(None, gt=0)

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
    usd_per_film: float | None = None  # rented_s at the offer's on-demand price
    fits: bool = False  # every clip inside guardrails.clip_limit_s, the run inside its run limit
    # the price the run pays, under the cap: on demand, usd_per_hour ≤ infrastructure.max_usd_per_hour (or no cap);
    # interruptible, a bid at or under the cap exists (bid_usd_per_hour is not None)
    within_cap: bool = True
    problem: str | None = None  # why it does not fit, or why the spec is refused on it
    chosen: bool = False  # the one the spec runs on
    # As an interruptible instance, whatever the spec's infrastructure.interruptible (so that both can be compared):
    interruptible: bool = False  # the spec rents it interruptible: its price is the bid, its $/film the one below
    bid_usd_per_hour: float | None = None  # min_bid × bid_margin, at most max_usd_per_hour; None: no bid (bid_problem)
    bid_problem: str | None = None  # why it can't be rented interruptible: no min_bid, or min_bid above the cap
    expected_preemptions: float | None = None  # preemptions_per_hour × rented_s / 3600 (offers.yaml, ASSUMED)
    preemption_s: float | None = None  # the rented seconds one preemption adds (jobspecs/plan.py expected_preemption_s)
    usd_per_film_interruptible: float | None = None  # (rented_s + expected_preemptions × preemption_s) at the bid

    @property
    def run_usd_per_hour(self) -> float | None:
        """The price per hour the run pays: the bid when it rents interruptible, else on demand."""
        return self.bid_usd_per_hour if self.interruptible else self.offer.usd_per_hour

    @property
    def run_usd_per_film(self) -> float | None:
        """The dollars per film the run pays: interruptible (at the bid) when it rents so, else on demand."""
        return self.usd_per_film_interruptible if self.interruptible else self.usd_per_film


OfferSource = Callable[["JobSpec"], list[OfferShape]]  # a spec → the shapes to pick its offer from


def snapshot_source() -> str:
    """How the snapshot's shapes name their source."""
    return f"jobspecs/offers.yaml snapshot of {offer_snapshot().as_of.isoformat()}"


def snapshot_shapes() -> list[OfferShape]:
    """The snapshot's shapes (jobspecs/offers.yaml), in its order."""
    source = snapshot_source()
    return [
        OfferShape(
            gpu=shape.gpu,
            num_gpus=shape.num_gpus,
            usd_per_hour=shape.usd_per_hour,
            min_bid_usd_per_hour=shape.min_bid_usd_per_hour,
            source=source,
        )
        for shape in offer_snapshot().shapes
    ]


def offer_shapes(spec: JobSpec) -> list[OfferShape]:
    """The shapes a spec's offer is picked from and its plan priced with by default: the dated snapshot, offline and
    deterministic (tasks/offers.py offer_shapes_for searches Vast's live offers instead where a key is set)."""
    return snapshot_shapes()
