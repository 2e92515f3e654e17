"""Reliable fetch of Sidekiq jobs: each job is moved into an in-flight list of this process.

Sidekiq's open-source fetch (BRPOP) loses a job whose process dies while running it. Here a
job is moved (LMOVE, or BLMOVE when the queues are empty) from ``queue:<name>`` into
``redline:sidekiq:inflight:<identity>:<name>``, and removed from there when it is settled (done,
retried, dead). Every in-flight list is listed in the registry ``redline:sidekiq:inflight`` (a
sorted set, member ``[identity, queue]`` as JSON, score the time it was last registered); any
live worker moves the jobs of a list whose process has no heartbeat hash any more back to
their queue (`recover`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from redline.connection import AsyncClient
from redline.jobs.sidekiq.job import DEAD, DEAD_MAX_JOBS, DEAD_TIMEOUT, queue_key
from redline.runtime import Context
from redline.scripting.scripts import run
from redline.services.pending import blocking_move

__all__ = ["INFLIGHT", "RECOVERIES", "Fetched", "Fetcher", "inflight_key"]

log = logging.getLogger(__name__)

INFLIGHT = "redline:sidekiq:inflight"  # the registry of in-flight lists
RECOVERIES = "redline:sidekiq:recoveries"  # jid -> times its job was recovered (1 day TTL)


def inflight_key(identity: str, queue: str) -> str:
    return f"{INFLIGHT}:{identity}:{queue}"


def member(identity: str, queue: str) -> str:
    """An in-flight list's entry in the registry."""
    return json.dumps([identity, queue])


@dataclass(frozen=True)
class Fetched:
    """One fetched job: the queue it came from and its bytes as stored."""

    queue: str
    raw: bytes


class Fetcher:
    """The in-flight lists of one process (`identity`) over `queues`, in priority order."""

    def __init__(self, client: AsyncClient, identity: str, queues: Sequence[str]) -> None:
        self.client, self.identity, self.queues = client, identity, list(queues)
        self._keys = [INFLIGHT]
        for name in self.queues:
            self._keys += [queue_key(name), inflight_key(identity, name)]
        self._members = [member(identity, name) for name in self.queues]
        self._turn = 0  # the queue an idle fetch blocks on next

    def inflight(self, queue: str) -> str:
        return inflight_key(self.identity, queue)

    async def fetch(self, ctx: Context, count: int, block: float) -> list[Fetched]:
        """Up to `count` jobs from the queues in order; when all are empty, block on one of
        them (in turns) for up to `block` seconds divided among the queues."""
        now = repr(time.time())
        flat = await run(self.client, "sidekiq_fetch", self._keys, [count, now, *self._members])
        pairs = zip(flat[::2], flat[1::2], strict=True)
        found = [Fetched(self.queues[int(i) - 1], raw) for i, raw in pairs]
        if found or block <= 0:
            return found
        name = self.queues[self._turn % len(self.queues)]
        self._turn += 1
        seconds = max(0.1, block / len(self.queues))
        # Registered in the same round trip, ahead of the move: see sidekiq_recover.lua.
        register = ("ZADD", INFLIGHT, now, member(self.identity, name))
        moved = await blocking_move(
            ctx, queue_key(name), self.inflight(name), seconds, ("RIGHT", "LEFT"), [register]
        )
        return [Fetched(name, moved)] if moved is not None else []

    async def ack(self, jobs: Sequence[Fetched]) -> None:
        """Done: out of the in-flight lists (one round trip for all)."""
        pipe = self.client.pipeline(transaction=False)
        for job in jobs:
            pipe.lrem(self.inflight(job.queue), 1, job.raw)  # type: ignore[arg-type]
        await pipe.execute()

    async def move_to(self, job: Fetched, zset: str, payload: bytes, score: float) -> bool:
        """Out of flight and into `zset` (retry, schedule, dead); False when another process
        had already recovered it."""
        args: list[str | bytes | float] = [job.raw, payload, repr(score)]
        if zset == DEAD:
            args += [repr(score - DEAD_TIMEOUT), DEAD_MAX_JOBS]
        keys = [self.inflight(job.queue), zset]
        return bool(await run(self.client, "sidekiq_settle", keys, args))

    async def requeue(self, job: Fetched) -> bool:
        """Back to its queue, next in line (shutdown); False when it was recovered already."""
        keys = [self.inflight(job.queue), queue_key(job.queue)]
        return bool(await run(self.client, "sidekiq_requeue", keys, [job.raw]))
