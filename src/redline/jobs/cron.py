"""Periodic jobs: 5-field cron schedules, and one active scheduler across any number of replicas.

Schedules are ``minute hour day-of-month month day-of-week`` with ``*``, numbers, ranges
``a-b``, steps ``*/n`` and ``a-b/n``, lists ``a,b``, and names (``jan``, ``mon``); day 7 is
Sunday too. As in Vixie cron, when both day fields are restricted a day matching either runs.
Times are UTC. (A parser of ~60 lines rather than the `croniter` package: this is all of cron
redline needs, and it keeps a dependency out of every install.)

Every worker runs a `CronScheduler`; only the one holding the lease key ``<prefix>:lease`` (a
``SET NX PX`` renewed by its owner) enqueues. The last run time of each entry is kept in Redis
(``<prefix>:last``), so a scheduler taking over does not repeat a run; runs missed while no
scheduler was active collapse into one.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redline.connection import AsyncClient
from redline.errors import JobError
from redline.scripting.scripts import run

__all__ = ["CronSchedule", "CronScheduler"]

log = logging.getLogger(__name__)

_NAMES = {
    3: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
    4: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
}
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")


def _number(text: str, index: int) -> int:
    names = _NAMES.get(index)
    if names and text.lower() in names:
        return names.index(text.lower()) + (1 if index == 3 else 0)
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a number")
    return int(text)


def _part(part: str, index: int) -> set[int]:
    low, high = _BOUNDS[index]
    span, _, step_text = part.partition("/")
    step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else 0
    if step_text and not step:
        raise ValueError(f"step {step_text!r} must be a positive number")
    if span == "*":
        first, last = low, high
    else:
        first_text, dash, last_text = span.partition("-")
        first = _number(first_text, index)
        last = _number(last_text, index) if dash else (high if step else first)
    if not (low <= first <= last <= high):
        raise ValueError(f"{part!r} is outside {low}-{high}")
    return set(range(first, last + 1, step or 1))


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron expression; `next_after(t)` is the first matching minute after `t`."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday … 6
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, text: str) -> CronSchedule:
        fields = text.split()
        if len(fields) != 5:
            raise JobError(
                f"cron {text!r}: expected 5 fields (minute hour day-of-month month "
                f"day-of-week), got {len(fields)}"
            )
        sets: list[set[int]] = []
        for index, field_text in enumerate(fields):
            try:
                sets.append(set().union(*(_part(p, index) for p in field_text.split(","))))
            except ValueError as exc:
                raise JobError(f"cron {text!r}: {_FIELDS[index]} field: {exc}") from None
        weekdays = {d % 7 for d in sets[4]}
        minutes, hours, days, months = (frozenset(s) for s in sets[:4])
        return cls(
            text,
            minutes,
            hours,
            days,
            months,
            frozenset(weekdays),
            any_day=fields[2] == "*",
            any_weekday=fields[4] == "*",
        )

    def _day_matches(self, day: dt.datetime) -> bool:
        in_month = day.day in self.days
        in_week = (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return in_month and in_week
        return in_month or in_week

    def next_after(self, after: dt.datetime) -> dt.datetime:
        """The first time strictly after `after` (UTC, whole minute) that the schedule matches."""
        t = after.astimezone(dt.UTC).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        for _ in range(100_000):  # at most a few hundred steps for any valid schedule
            if t.month not in self.months:
                t = (t.replace(day=1) + dt.timedelta(days=32)).replace(day=1, hour=0, minute=0)
            elif not self._day_matches(t):
                t = (t + dt.timedelta(days=1)).replace(hour=0, minute=0)
            elif t.hour not in self.hours:
                t = (t + dt.timedelta(hours=1)).replace(minute=0)
            elif t.minute not in self.minutes:
                t += dt.timedelta(minutes=1)
            else:
                return t
        raise JobError(f"cron {self.text!r} never matches (e.g. 30 February)")


Enqueue = Callable[[str, dt.datetime], Awaitable[Any]]


class CronScheduler:
    """Enqueues due entries while it holds the lease; call `run(stopping)` in every replica.

    `entries` are ``(name, schedule)`` pairs; `enqueue(name, when)` enqueues one run.
    """

    def __init__(
        self,
        client: AsyncClient,
        entries: Sequence[tuple[str, CronSchedule]],
        enqueue: Enqueue,
        prefix: str = "redline:cron",
        lease: float = 10.0,
        owner: str | None = None,
    ) -> None:
        self.client, self.entries, self.enqueue = client, list(entries), enqueue
        self.lease_key, self.last_key = f"{prefix}:lease", f"{prefix}:last"
        self.lease = lease
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.active = False

    async def hold_lease(self) -> bool:
        """Take or renew the lease; True while this scheduler is the active one."""
        ms = int(self.lease * 1000)
        held = await run(self.client, "cron_lease", [self.lease_key], [self.owner, ms])
        if bool(held) != self.active:
            log.info("cron scheduler owner=%s active=%s", self.owner, bool(held))
        self.active = bool(held)
        return self.active

    async def release(self) -> None:
        await run(self.client, "cron_lease", [self.lease_key], [self.owner, 0])
        self.active = False

    async def tick(self, now: dt.datetime | None = None) -> list[tuple[str, dt.datetime]]:
        """Enqueue every entry that is due (only when holding the lease); returns what ran."""
        if not await self.hold_lease():
            return []
        now = now or dt.datetime.now(dt.UTC)
        fired: list[tuple[str, dt.datetime]] = []
        for name, schedule in self.entries:
            last_text = await self.client.hget(self.last_key, name)
            last = _from_stamp(last_text) if last_text else now - dt.timedelta(minutes=1)
            due = _latest_due(schedule, last, now)
            if due is not None:
                await self.enqueue(name, due)
                await self.client.hset(self.last_key, name, str(due.timestamp()))
                fired.append((name, due))
                log.info("cron enqueued task=%s due=%s", name, due.isoformat())
        return fired

    async def run(self, stopping: asyncio.Event, every: float = 1.0) -> None:
        """Tick every `every` seconds until `stopping` is set; then give the lease up."""
        try:
            while not stopping.is_set():
                await self.tick()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), every)
        finally:
            with contextlib.suppress(Exception):
                await self.release()


def _latest_due(schedule: CronSchedule, last: dt.datetime, now: dt.datetime) -> dt.datetime | None:
    """The latest run due after `last` and by `now`: runs missed while no scheduler was active
    collapse into one, rather than firing in a burst."""
    due = schedule.next_after(last)
    if due > now:
        return None
    for _ in range(100_000):
        following = schedule.next_after(due)
        if following > now:
            break
        due = following
    return due


def _from_stamp(text: bytes | str) -> dt.datetime:
    return dt.datetime.fromtimestamp(float(text), dt.UTC)
