"""Popping ahead: the worker's next batch, leased while the last one is admitted.

A batch of jobs under a limit (rate, cap) or an expiry is admitted by a script call after its
pop (`jobs.limits`), and holds its run slots meanwhile: with fast jobs the worker's loop would
be pop, admission, run, one after the other, an extra round trip on every batch's way. So
while jobs are in admission and none are held ahead yet, the worker pops up to as many as are
in admission and holds them here, leased but not admitted: they take no concurrency slot and
no rate start until run slots are free for them, and then go through the admission like any
popped batch. Pop and admission overlap; the loop's critical path is one round trip again.

The cost: a worker leases up to twice its concurrency, and the jobs held ahead wait in it
rather than in Redis, where another worker could take them. So it pops ahead only while its
jobs are fast: while the mean run time of its recent jobs is under `FAST`, a batch held
ahead waits about that long for slots. Jobs held ahead have their leases extended with the
running ones', and go back to their queue unrun when the worker stops, or when their queue
is paused before they were admitted.
"""

from __future__ import annotations

from collections.abc import Sequence

from redline.queue import Delivery

__all__ = ["FAST", "Ahead"]

FAST = 0.02  # seconds: a worker pops ahead while its recent jobs run shorter than this on average
_WEIGHT = 1 / 16  # of a finished job's run time in the running mean


class Ahead:
    """The jobs a worker popped ahead, and when to pop more (see the module docstring)."""

    def __init__(self) -> None:
        self.held: list[Delivery] = []  # popped ahead: leased, not admitted
        self.admitting = 0  # jobs in admission now
        self.armed = False  # an admission started since the last pop ahead
        self.mean_run = FAST  # seconds, a running mean; not fast until jobs have shown it
        self.rode = 0  # admissions sent in one round trip with a pop ahead (`Worker._ride`)

    def wanted(self, left: int | None = None) -> int:
        """How many jobs to pop ahead now (0: none): as many as are in admission, once per
        admission started (a pop ahead that finds nothing is not repeated at once), while the
        jobs are fast and nothing is held ahead yet; at most `left` (None: no bound)."""
        if not self.armed or self.held or not self.admitting or self.mean_run >= FAST:
            return 0
        return self.admitting if left is None else max(0, min(self.admitting, left))

    def admitting_now(self, count: int) -> None:
        """`count` popped jobs went into admission."""
        self.admitting += count
        self.armed = True

    def admitted(self, count: int) -> None:
        """The admission of `count` jobs is over (whatever it decided)."""
        self.admitting -= count

    def ran(self, seconds: float) -> None:
        """A job ran for `seconds`."""
        self.mean_run += (seconds - self.mean_run) * _WEIGHT

    def keep(self, deliveries: Sequence[Delivery]) -> None:
        """Hold `deliveries`, popped ahead."""
        self.held += deliveries
        self.armed = False

    def take(self, count: int) -> list[Delivery]:
        """Up to `count` of the jobs held ahead, oldest pop first."""
        taken, self.held = self.held[:count], self.held[count:]
        return taken

    def drop(self) -> list[Delivery]:
        """All the jobs held ahead (to give back)."""
        return self.take(len(self.held))
