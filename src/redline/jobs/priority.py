"""Priorities: a plain Redis list per priority beside the queue, popped highest first.

Priority 0 is the queue's own list (so ``LPUSH jobs …`` from any client still enqueues);
priority N (1-9) is the list ``{jobs}:priority:N``, a ReliableQueue key of its own in the same
cluster slot (its leases, retries and dead letters beside it). Enqueueing with a priority adds
N to the set ``{jobs}:job-priorities``, which workers read every half second: a queue whose
jobs never use a priority costs its workers nothing more than that read.

A worker pops its keys in order (priority 9 of every queue, then 8, …, then the queues' own
lists), so under sustained load at a high priority the lower ones wait: there is no aging. See
docs/jobs.md ("Priorities").

A priority no longer used is forgotten: every `FORGET_EVERY` seconds a worker removes from the
set each priority its tasks do not declare and at which nothing is left — no job waiting, in
flight, delayed, scheduled or dead-lettered (``job_levels_forget.lua``, atomic against the
enqueue scripts, which add the priority back in the same call as their push).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields

from redline.connection import AsyncClient
from redline.jobs.document import job_keys
from redline.jobs.options import MAX_PRIORITY
from redline.keys import derived
from redline.queue import QueueKeys
from redline.scripting.scripts import run

__all__ = [
    "FORGET_EVERY",
    "Levels",
    "forget_level",
    "levels_key",
    "priority_counts",
    "priority_key",
    "scheduled_key",
]

FORGET_EVERY = 30.0  # seconds between a worker's looks for priorities no longer used
# Queue keys that outlive their messages (counters, settings): left out of "is anything there?"
_LASTING = {"ids", "seq", "retention"}


def priority_key(queue: str, priority: int) -> str:
    """The list jobs of `priority` wait in: the queue itself for 0."""
    return queue if priority == 0 else derived(queue, "priority", str(priority))


def scheduled_key(queue: str, priority: int) -> str:
    """The sorted set of scheduled jobs of `priority` (by due time)."""
    scheduled = job_keys(queue).scheduled
    return scheduled if priority == 0 else f"{scheduled}:{priority}"


def levels_key(queue: str) -> str:
    """The set of the priorities (1-9) jobs of `queue` have been enqueued with."""
    return derived(queue, "job-priorities")


class Levels:
    """The keys a worker pops, highest priority first, and the way back from a key to its
    queue and priority (a delivery names the key it came from)."""

    def __init__(self, queues: Sequence[str], declared: Mapping[str, Iterable[int]]) -> None:
        self.queues = list(queues)
        self.declared: dict[str, set[int]] = {q: {0, *declared.get(q, ())} for q in self.queues}
        self.used: dict[str, set[int]] = {q: set(self.declared[q]) for q in self.queues}
        self.keys: list[str] = []
        # Every level's key, used or not: a job popped from a level forgotten meanwhile still
        # finds its queue.
        self._home = {
            priority_key(q, p): (q, p) for q in self.queues for p in range(MAX_PRIORITY + 1)
        }
        self._build()

    def _build(self) -> None:
        pairs = [(p, i, q) for i, q in enumerate(self.queues) for p in self.used[q]]
        self.keys = [priority_key(q, p) for p, _, q in sorted(pairs, key=lambda x: (-x[0], x[1]))]

    def keys_for(self, queues: Sequence[str]) -> list[str]:
        """The keys to pop for some of the queues (e.g. those not paused), highest first."""
        if len(queues) == len(self.queues):
            return self.keys
        wanted = set(queues)
        return [key for key in self.keys if self._home[key][0] in wanted]

    def queue_of(self, key: str) -> str:
        """The queue a delivery from `key` belongs to."""
        return self._home.get(key, (key, 0))[0]

    def priority_of(self, key: str) -> int:
        return self._home.get(key, (key, 0))[1]

    def pairs(self) -> list[tuple[str, int]]:
        """(queue, priority) of every level in use."""
        return [(q, p) for q in self.queues for p in sorted(self.used[q])]

    async def refresh(self, client: AsyncClient) -> None:
        """Take in the priorities producers have used since, and drop those forgotten."""
        pipe = client.pipeline(transaction=False)
        for queue in self.queues:
            pipe.smembers(levels_key(queue))
        found = await pipe.execute()
        changed = False
        for queue, members in zip(self.queues, found, strict=True):
            new = {int(m) for m in members if m.isdigit() and 0 < int(m) <= MAX_PRIORITY}
            new |= self.declared[queue]
            changed |= new != self.used[queue]
            self.used[queue] = new
        if changed:
            self._build()

    async def forget(self, client: AsyncClient) -> list[tuple[str, int]]:
        """Remove from the sets the priorities no task here declares and nothing is left at
        (see the module docstring); returns those forgotten."""
        forgotten = []
        for queue, p in self.pairs():
            if p not in self.declared[queue] and await forget_level(client, queue, p):
                self.used[queue].discard(p)
                forgotten.append((queue, p))
        if forgotten:
            self._build()
        return forgotten


async def forget_level(client: AsyncClient, queue: str, priority: int) -> bool:
    """Forget `priority` of `queue` if nothing is left at it (``job_levels_forget.lua``)."""
    level = QueueKeys.of(priority_key(queue, priority))
    held = [getattr(level, f.name) for f in fields(QueueKeys) if f.name not in _LASTING]
    keys = [levels_key(queue), *held, scheduled_key(queue, priority)]
    return bool(await run(client, "job_levels_forget", keys, [priority]))


async def priority_counts(client: AsyncClient, queue: str) -> dict[int, int]:
    """Jobs waiting at each priority of `queue` that has any (for status and the dashboard)."""
    members = await client.smembers(levels_key(queue))
    levels = sorted({0, *(int(m) for m in members if m.isdigit())}, reverse=True)
    pipe = client.pipeline(transaction=False)
    for p in levels:
        pipe.llen(priority_key(queue, p))
    return dict(zip(levels, await pipe.execute(), strict=True))
