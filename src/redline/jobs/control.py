"""Pausing queues and cancelling jobs, across every worker on every host.

    await pause_queue(client, "mail")        # workers take no job from it within a second
    await resume_queue(client, "mail")
    await cancel_job(client, "mail", job_id) # or: await job.cancel()

Both are data in Redis beside the queue (`JobKeys.paused`, `JobKeys.cancelled`), read by each
worker's `Control` once every `CONTROL_EVERY` seconds in one pipelined round trip for all its
queues — a constant cost per worker, whatever its job rate, and nothing on the path of a job
when no queue is paused and no job cancelled.

- A paused queue still takes enqueues; its workers finish the jobs they hold and pop no more.
- A cancelled job that waits (or is scheduled, or waits for a retry) is dropped when a worker
  pops it, never run; a running async job is cancelled (`asyncio.Task.cancel`) where it runs;
  a running sync job sees ``current_job().cancelled`` turn true and its result is discarded.
  Its state becomes ``cancelled``: acknowledged, not retried, not dead-lettered. Cancel ids are
  kept `CANCEL_KEEP` seconds (at most `CANCEL_MAX` per queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from redline.connection import AsyncClient, SyncClient
from redline.errors import TRANSIENT
from redline.jobs.document import job_keys
from redline.scripting.scripts import run, run_sync

__all__ = [
    "CONTROL_EVERY",
    "Control",
    "cancel_job",
    "cancel_job_sync",
    "is_paused",
    "pause_queue",
    "pause_queue_sync",
    "resume_queue",
    "resume_queue_sync",
]

log = logging.getLogger(__name__)

CONTROL_EVERY = 0.5  # seconds between a worker's reads of its queues' pause and cancel state
CANCEL_KEEP = 86_400  # seconds a cancel request is kept for jobs still waiting
CANCEL_MAX = 100_000  # cancel requests kept per queue


async def pause_queue(client: AsyncClient, queue: str) -> None:
    """Pause `queue`: its workers take no job from it (within `2 * CONTROL_EVERY` s)."""
    await client.set(job_keys(queue).paused, "1")


async def resume_queue(client: AsyncClient, queue: str) -> None:
    """Resume a paused `queue` (a queue that is not paused is left as it is)."""
    await client.delete(job_keys(queue).paused)


async def is_paused(client: AsyncClient, queue: str) -> bool:
    return bool(await client.exists(job_keys(queue).paused))


def pause_queue_sync(client: SyncClient, queue: str) -> None:
    client.set(job_keys(queue).paused, "1")


def resume_queue_sync(client: SyncClient, queue: str) -> None:
    client.delete(job_keys(queue).paused)


def _cancel_call(queue: str, job_id: str) -> tuple[list[str], list[str | int]]:
    keys = job_keys(queue)
    return [keys.cancelled, keys.status(job_id)], [job_id, CANCEL_MAX, CANCEL_KEEP * 1000]


async def cancel_job(client: AsyncClient, queue: str, job_id: str) -> bool:
    """Ask for job `job_id` of `queue` to be cancelled; False when its status says it had
    already finished (completed, dead, cancelled, expired)."""
    keys, args = _cancel_call(queue, job_id)
    return bool(await run(client, "job_cancel", keys, args))


def cancel_job_sync(client: SyncClient, queue: str, job_id: str) -> bool:
    """Blocking twin of `cancel_job`."""
    keys, args = _cancel_call(queue, job_id)
    return bool(run_sync(client, "job_cancel", keys, args))


class Control:
    """A worker's view of its queues' pause flags and cancel requests, refreshed by `run`."""

    def __init__(self, queues: Sequence[str]) -> None:
        self.queues = list(queues)
        self.paused: set[str] = set()
        self.cancelled: dict[str, float] = {}  # job id -> when asked (ms)
        self._since: dict[str, float] = dict.fromkeys(self.queues, 0.0)

    def active(self, queues: Sequence[str]) -> list[str]:
        """`queues` less the paused ones, in order."""
        return [q for q in queues if q not in self.paused] if self.paused else list(queues)

    def is_cancelled(self, job_id: str) -> bool:
        return job_id in self.cancelled

    async def refresh(self, client: AsyncClient) -> list[str]:
        """Read every queue's state in one round trip; the ids newly asked to be cancelled."""
        pipe = client.pipeline(transaction=False)
        for queue in self.queues:
            keys = job_keys(queue)
            pipe.exists(keys.paused)
            pipe.zrangebyscore(keys.cancelled, self._since[queue], "+inf", withscores=True)
        replies = await pipe.execute()
        fresh: list[str] = []
        for i, queue in enumerate(self.queues):
            paused, asked = replies[2 * i], replies[2 * i + 1]
            (self.paused.add if paused else self.paused.discard)(queue)
            fresh += self._note(queue, asked)
        return fresh

    def _note(self, queue: str, asked: list[tuple[bytes, float]]) -> list[str]:
        fresh = []
        for raw, score in asked:
            job_id = raw.decode()
            if job_id not in self.cancelled:
                fresh.append(job_id)
            self.cancelled[job_id] = score
            self._since[queue] = max(self._since[queue], score)
        if len(self.cancelled) > CANCEL_MAX * len(self.queues):
            oldest = sorted(self.cancelled, key=self.cancelled.__getitem__)
            for job_id in oldest[: len(oldest) // 2]:
                del self.cancelled[job_id]
        return fresh

    async def run(
        self,
        client: AsyncClient,
        stopping: asyncio.Event,
        on_cancel: Callable[[list[str]], Awaitable[None] | None],
    ) -> None:
        """Refresh every `CONTROL_EVERY` seconds until `stopping`; `on_cancel` is called after
        each read with the ids newly asked for (often none)."""
        while not stopping.is_set():
            try:
                fresh = await self.refresh(client)
                await _maybe_await(on_cancel(fresh))
            except TRANSIENT as exc:
                log.warning("worker could not read pause and cancel state error=%r", str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), CONTROL_EVERY)


async def _maybe_await(value: Awaitable[None] | None) -> None:
    if value is not None:
        await value
