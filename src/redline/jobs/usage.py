"""The current use of rate limits and concurrency caps, for `redline jobs limits`, `redline
status` and the dashboard.

Slot and rate keys are per task and per limit key (``rate_key=``/``concurrency_key=``), so a
reader cannot name them without scanning. Instead each queue keeps a registry,
``{q}:job-limits``: a sorted set whose members describe one limit (JSON
``["concurrency", task, key, cap]`` or ``["rate", task, key, count, period_ms]``, ``key``
null for a task-wide limit), scored by when a worker last registered it. `job_admit.lua`
writes it when a worker first meets a limit and then at most every `REGISTER_EVERY` seconds
per limit and worker; members not registered for `KEPT` seconds are dropped (a per-customer
key that stopped being used leaves the registry a day later).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from redline.connection import AsyncClient, text
from redline.keys import derived

__all__ = [
    "KEPT",
    "REGISTER_EVERY",
    "LimitUse",
    "Registrar",
    "limit_keys",
    "limit_use",
    "limits_key",
    "member",
    "rate_starts",
]

REGISTER_EVERY = 60.0  # seconds between a worker's registrations of one limit
KEPT = 86_400.0  # seconds a limit stays registered after its last registration
READ = 1000  # registry members a reader looks at (the most recently registered)


def limit_keys(queue: str, kind: str, task: str, key: str | None) -> tuple[str, str]:
    """The two keys of one limit: `kind` "concurrency" (slots, waiters) or "rate" (log,
    spreading), of `task` on `queue`, per `key` when the task has one."""
    parts = [task] if key is None else [task, key]
    return derived(queue, f"job-{kind}", *parts), derived(queue, f"job-{kind}-next", *parts)


def limits_key(queue: str) -> str:
    """``{q}:job-limits``: the registry of `queue`'s limits in use."""
    return derived(queue, "job-limits")


def member(kind: str, task: str, key: str | None, count: int, period_ms: int = 0) -> str:
    """The registry member of one limit (`kind` "concurrency": `count` is its cap)."""
    described: list[Any] = [kind, task, key, count]
    if kind == "rate":
        described.append(period_ms)
    return json.dumps(described, separators=(",", ":"))


class Registrar:
    """A worker's memory of the limits it registered lately: `due` says which member to
    send with the next admission (once per `REGISTER_EVERY`)."""

    def __init__(self) -> None:
        self._sent: dict[tuple[str, str], float] = {}

    def due(self, queue: str, described: str) -> str:
        now = time.monotonic()
        if now - self._sent.get((queue, described), -REGISTER_EVERY) < REGISTER_EVERY:
            return ""
        if len(self._sent) > 10_000:  # many per-key limits: forget, and register again
            self._sent.clear()
        self._sent[(queue, described)] = now
        return described


@dataclass(frozen=True)
class LimitUse:
    """One limit's use now: `used` of `limit` (slots held, or starts within the last
    `period_ms`), and for a cap the jobs waiting for a slot (`waiting`, approximate)."""

    queue: str
    kind: str
    task: str
    key: str | None
    limit: int
    period_ms: int
    used: int
    waiting: int = 0

    @property
    def per(self) -> str:
        """``"running"`` for a cap, ``"per 1s"`` / ``"per 60s"`` for a rate."""
        return "running" if self.kind == "concurrency" else f"per {self.period_ms / 1000:g}s"


async def limit_use(client: AsyncClient, queue: str) -> list[LimitUse]:
    """The limits of `queue` registered within `KEPT` seconds, each with its use now (by this
    host's clock: the scripts go by the server's, so keep clocks in sync), the busiest first."""
    now = round(time.time() * 1000)
    raw = await client.zrevrangebyscore(limits_key(queue), "+inf", now - KEPT * 1000, 0, READ)
    described = _latest(text(m) for m in raw)
    pipe = client.pipeline(transaction=False)
    for kind, task, key, _, period in described:
        held, waiters = limit_keys(queue, kind, task, key)
        if kind == "concurrency":
            pipe.zcount(held, f"({now}", "+inf")  # slots whose lease has not lapsed
            pipe.llen(waiters)
        else:  # starts within the window; its jobs wait in the delayed set, uncounted
            since = f"({now - period}"
            pipe.zrangebyscore(held, since, "+inf", 0, 1)
            pipe.zrevrangebyscore(held, "+inf", since, 0, 1)
            pipe.zcount(held, since, "+inf")
    found = iter(await pipe.execute())
    uses = [
        LimitUse(queue, kind, task, key, count, period, *_used(kind, found))
        for kind, task, key, count, period in described
    ]
    return sorted(uses, key=lambda u: (-u.used / max(u.limit, 1), u.task, u.key or ""))


def _used(kind: str, found: Any) -> tuple[int, int]:
    """A limit's use and waiting jobs from its replies in `found`: a cap's slots and waiters
    list; a rate log's first and last member in the window and how many members it has."""
    if kind == "concurrency":
        return int(next(found)), int(next(found))
    first, last, members = next(found), next(found), int(next(found))
    return rate_starts(first[0] if first else None, last[0] if last else None, members), 0


def rate_starts(first: bytes | str | None, last: bytes | str | None, members: int) -> int:
    """The starts a rate log holds in a window (`job_admit.lua`, `_rate_log.lua`): each member
    ``#<total>:<n>`` logs n starts, total the running count up to them; a member of an
    earlier version (one per start) counts one, so a window of such is its `members`."""
    if first is None or last is None:
        return 0
    low, high = _rate_member(text(first)), _rate_member(text(last))
    if low is None or high is None or high[0] < low[0]:
        return members
    return high[0] - low[0] + low[1]


def _rate_member(member: str) -> tuple[int, int] | None:
    total, _, n = member.removeprefix("#").partition(":")
    if not member.startswith("#") or not (total.isdigit() and n.isdigit()):
        return None
    return int(total), int(n)


def _latest(members: Any) -> list[tuple[str, str, str | None, int, int]]:
    """Each limit once (the newest description: a task's cap may have changed)."""
    seen: dict[tuple[str, str, str | None], tuple[str, str, str | None, int, int]] = {}
    for raw in members:
        try:
            kind, task, key, count, *period = json.loads(raw)
        except (ValueError, TypeError):
            continue
        if kind in ("concurrency", "rate") and (kind, task, key) not in seen:
            seen[(kind, task, key)] = (kind, task, key, int(count), int(period[0] if period else 0))
    return list(seen.values())
