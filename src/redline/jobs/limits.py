"""Rate limits, concurrency caps and expiry: which popped jobs may start now.

A worker passes each batch it pops through its `Gate`. Jobs of tasks with no limit and no
expiry go straight through (a worker none of whose tasks has one does not even read them);
the others are decided by one script each (``job_admit``), atomically over keys in the queue's
cluster slot:

- concurrency: a running job holds a slot, a member of ``{q}:job-concurrency:<task>[:<key>]``
  scored by its lease deadline. The worker's heartbeat extends it with the lease; settling the
  job gives it back and wakes the first job waiting for one. A killed worker's slot is
  reclaimed once its deadline passes, like its lease.
- rate: each start is a member of ``{q}:job-rate:<task>[:<key>]`` scored by when it started;
  a job is admitted while fewer than N started in the last period (a sliding window).
- refused jobs go back to their queue's delayed set, due when they may start, with their
  delivery count taken back: the wait is not an attempt, and holds no worker slot.
- expiry: a job not started by its deadline is acknowledged without running, recorded as
  ``expired`` and counted in the queue's ``expired`` counter.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from redline.errors import JobSerializationError
from redline.jobs.document import JobDocument, JobState, job_keys
from redline.jobs.job import JobRecord, describe_args
from redline.jobs.options import MAX_PRIORITY, Rate, parse_rate
from redline.jobs.priority import Levels, priority_key
from redline.jobs.records import note_recent, record_failure
from redline.jobs.task import Task, Tasks
from redline.jobs.usage import KEPT, Registrar, limit_keys, limits_key, member
from redline.queue import Delivery, ReliableQueue
from redline.queue.core import keys_of
from redline.scripting.scripts import run

__all__ = ["Gate", "limit_keys"]  # limit_keys: from jobs.usage, where it is named

log = logging.getLogger(__name__)

EXPIRES_MARK = b'"expires"'  # a document that carries its own deadline


class Verdict(enum.Enum):
    ADMIT = "admit"
    WAIT = "wait"
    EXPIRED = "expired"
    STALE = "stale"


def _limited(task: Task[Any, Any]) -> bool:
    return task.concurrency is not None or task.rate_limit is not None


class Gate:
    """Admits popped jobs under their tasks' limits and expiry (see the module docstring)."""

    def __init__(
        self,
        queue: ReliableQueue,
        tasks: Tasks,
        levels: Levels,
        expired: Callable[[Delivery, JobDocument], None] | None = None,
    ) -> None:
        self.queue, self.levels = queue, levels
        self.expired = expired  # told of each job dropped unrun (the worker writes its event)
        self.guarded = {t.name: t for t in tasks.values() if _limited(t) or t.expires}
        self.held: dict[tuple[str, str], tuple[str, str]] = {}  # delivery -> (slots, waiters)
        self.waited = -1e9  # monotonic time a job was last put back to wait
        self.registrar = Registrar()  # the limits in use, registered for readers

    @property
    def waiting(self) -> bool:
        """Whether jobs were put back lately: a release may wake one any moment, so blocking
        pops should come back soon."""
        return time.monotonic() - self.waited < self.queue.lease

    async def admit(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """The deliveries that may run now; the others wait, expire or were not ours."""
        if not self.guarded and not any(EXPIRES_MARK in d.payload for d in deliveries):
            return list(deliveries)
        verdicts = await asyncio.gather(*(self._admit_one(d) for d in deliveries))
        pairs = list(zip(deliveries, verdicts, strict=True))
        expired = [(d, doc) for d, (v, doc) in pairs if doc and v is Verdict.EXPIRED]
        if expired:
            await self._expire(expired)
        return [d for d, (v, _) in pairs if v is Verdict.ADMIT]

    async def _admit_one(self, d: Delivery) -> tuple[Verdict, JobDocument | None]:
        try:
            doc = JobDocument.decode(d.payload, d.key)
        except JobSerializationError:
            return Verdict.ADMIT, None  # the worker dead-letters it, with the reason
        task = self.guarded.get(doc.task)
        deadline = doc.expires
        if deadline is None and task is not None and task.expires:
            deadline = doc.enqueued_at + task.expires
        # Only before its first start: a retry, or a redelivery after a crash, has started.
        if deadline is not None and d.deliveries == 1 and time.time() > deadline:
            return Verdict.EXPIRED, doc
        if task is None or not _limited(task):
            return Verdict.ADMIT, doc
        return await self._limit(d, doc, task), doc

    async def _limit(self, d: Delivery, doc: JobDocument, task: Task[Any, Any]) -> Verdict:
        queue = self.levels.queue_of(d.key)
        slots_key, rate_key = _key(task.concurrency_key, doc), _key(task.rate_key, doc)
        slots = limit_keys(queue, "concurrency", task.name, slots_key)
        rate = limit_keys(queue, "rate", task.name, rate_key)
        parsed = parse_rate(task.rate_limit) if task.rate_limit else None
        k = keys_of(d.key)
        reply = await run(
            self.queue.client,
            "job_admit",
            [
                *(k.inflight, k.delayed, k.deliveries, k.since, *slots, *rate),
                *(limits_key(queue), k.payloads, k.batches, k.batched),
            ],
            [
                d.id,
                d.deliveries,
                round(self.queue.lease * 1000),
                task.concurrency or 0,
                parsed.count if parsed else 0,
                parsed.period_ms if parsed else 1000,
                self.levels.priority_of(d.key),
                self._register(queue, "concurrency", task, slots_key, task.concurrency, 0),
                self._register(queue, "rate", task, rate_key, *_count_period(parsed)),
                round(KEPT * 1000),
            ],
        )
        if int(reply[0]) == 1:
            if task.concurrency:
                self.held[(d.key, d.id)] = slots
            return Verdict.ADMIT
        if int(reply[0]) == 0:
            self.waited = time.monotonic()
            log.debug("job waits id=%s task=%s for=%s ms=%s", doc.id, doc.task, reply[2], reply[1])
            return Verdict.WAIT
        return Verdict.STALE

    def _register(
        self,
        queue: str,
        kind: str,
        task: Task[Any, Any],
        key: str | None,
        count: int | None,
        period_ms: int,
    ) -> str:
        """The registry member to (re)write with this admission, or "" (`jobs.usage`)."""
        if not count:
            return ""
        return self.registrar.due(queue, member(kind, task.name, key, count, period_ms))

    async def release(self, deliveries: Iterable[Delivery]) -> None:
        """Give back the slots of finished (or returned) jobs, waking a waiting job for each."""
        for d in deliveries:
            held = self.held.pop((d.key, d.id), None)
            if held is None:
                continue
            queue = self.levels.queue_of(d.key)
            levels = [keys_of(priority_key(queue, p)) for p in range(MAX_PRIORITY + 1)]
            keys = [*held, *(k.delayed for k in levels), *(k.deliveries for k in levels)]
            await run(self.queue.client, "job_slot_release", keys, [d.id])

    async def extend(self) -> None:
        """Extend the held slots with the leases (the worker's heartbeat)."""
        by_slots: dict[str, list[str]] = {}
        for (_, job_id), (slots, _) in list(self.held.items()):
            by_slots.setdefault(slots, []).append(job_id)
        lease = round(self.queue.lease * 1000)
        for slots, ids in by_slots.items():
            await run(self.queue.client, "job_slot_extend", [slots], [lease, *ids])

    async def _expire(self, expired: Sequence[tuple[Delivery, JobDocument]]) -> None:
        """Drop jobs past their deadline: unlocked, acknowledged, recorded and counted."""
        for d, doc in expired:
            if doc.unique:
                unique = job_keys(self.levels.queue_of(d.key)).unique(doc.unique)
                await run(self.queue.client, "job_unlock", [unique], [doc.id])
        await self.queue.ack(*(d for d, _ in expired))
        pipe: Any = self.queue.client.pipeline(transaction=False)
        now = time.time()
        for d, doc in expired:
            queue = self.levels.queue_of(d.key)
            record = JobRecord(
                doc.id,
                JobState.EXPIRED,
                doc.task,
                describe_args(doc),
                d.deliveries - 1,
                enqueued_at=doc.enqueued_at,
                finished_at=now,
            )
            await record_failure(self.queue.client, queue, record)  # kept as failures are
            note_recent(pipe, queue, doc.id)
            pipe.hincrby(job_keys(queue).stats, "expired", 1)
            log.info("job expired id=%s task=%s", doc.id, doc.task)
        await pipe.execute()
        for d, doc in expired:
            if self.expired is not None:
                self.expired(d, doc)


def _count_period(parsed: Rate | None) -> tuple[int | None, int]:
    return (parsed.count, parsed.period_ms) if parsed else (None, 0)


def _key(of: Callable[..., Any] | None, doc: JobDocument) -> str | None:
    """A job's limit key; a key function that fails puts the job under the task-wide limit
    (logged), rather than stopping the worker on it."""
    if of is None:
        return None
    try:
        return str(of(*doc.args, **doc.kwargs))
    except Exception:
        log.exception("limit key function failed id=%s task=%s: task-wide limit", doc.id, doc.task)
        return None
