"""Polling against a deadline: every wait on this machine for something elsewhere (an instance, SSH, a box's
worker, Vast's API, Prefect) is a loop of tries with sleeps between them, each sleep cut short at the deadline.

    for _ in poll_until(deadline, interval_s=5):
        row = client.show(instance_id, deadline)
        if ready(row):
            return row
    raise NotReady("… at the deadline")

Deadlines are `time.monotonic()` values (None: no deadline; the loop's body decides when to stop).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator


def sleep_until_next(interval_s: float, deadline: float | None) -> bool:
    """Sleep `interval_s`, or only until the deadline; False (and no sleep) once the deadline has passed."""
    if deadline is None:
        time.sleep(interval_s)
        return True
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return False
    time.sleep(min(interval_s, remaining))
    return True


def poll_until(deadline: float | None, interval_s: float) -> Iterator[int]:
    """The tries of a poll, numbered from 1: the first at once (however little time is left), the next
    `interval_s` later, the sleep cut short at the deadline; a try that ends with the deadline passed is the last.
    The body returns or breaks when it is done; the code after the loop is what happens at the deadline."""
    for tries in itertools.count(1):
        yield tries
        if not sleep_until_next(interval_s, deadline):
            return
