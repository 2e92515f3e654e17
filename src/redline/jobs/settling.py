"""How a worker settles the jobs that finished: the half of `jobs.worker` after a run.

`Settler.settle` takes the outcomes of every job that finished since the last settling and,
in this order: reports workflow members' outcomes (`jobs.workflow.progress`); releases unique
locks; gives back concurrency slots (`jobs.limits.Gate.release`: those of jobs returned unrun,
and those `Gate.finish` queued as runs ended); acks the jobs that are done
(one call); nacks or dead-letters the rest (concurrently); writes the job records (one
pipeline for kept results); and queues each job's events. The counts the dashboard charts
are kept here and added by `flush_counts` (twice a second, and at stop).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from redline.errors import TRANSIENT
from redline.jobs.document import JobDocument, JobState, job_keys
from redline.jobs.job import JobRecord, describe_args
from redline.jobs.limits import Gate
from redline.jobs.priority import Levels
from redline.jobs.records import keep_result, note_recent, record_failure
from redline.jobs.runs import Runs
from redline.jobs.task import Task
from redline.jobs.workflow.progress import settle_members
from redline.queue import Delivery, ReliableQueue
from redline.scripting.scripts import run

__all__ = ["JobOutcome", "Settler"]

log = logging.getLogger(__name__)


class JobOutcome(msgspec.Struct, frozen=True):
    """How one delivery ended: `ok`; else `dead` (no retry left) or retried; or `returned`
    (shutdown: given back untouched). `value` is the JSON of the result when it is kept. A
    msgspec struct: one is made, and copied with its duration, per job."""

    delivery: Delivery
    doc: JobDocument | None = None
    task: Task[..., Any] | None = None
    ok: bool = False
    value: Any = None
    error: str = ""
    traceback: str = ""
    dead: bool = False
    returned: bool = False
    millis: float = 0.0
    cancelled: bool = False

    @property
    def state(self) -> JobState:
        if self.cancelled:
            return JobState.CANCELLED
        if self.ok:
            return JobState.COMPLETE
        return JobState.DEAD if self.dead else JobState.RETRYING


def _record_of(o: JobOutcome, state: JobState) -> JobRecord | None:
    """What to record of `o`: every failure of a job, and a success when its task keeps
    results (None otherwise, and for payloads that are not jobs)."""
    if o.doc is None or (o.ok and not o.doc.result_ttl):
        return None
    return JobRecord(
        o.doc.id,
        state,
        o.doc.task,
        describe_args(o.doc),
        o.delivery.deliveries,
        o.value if o.ok else None,
        o.error,
        o.traceback,
        o.doc.enqueued_at,
        time.time(),
    )


# The counter of `JobKeys.stats` each end of a run adds to (any other: "retried").
_COUNTED = {JobState.COMPLETE: "complete", JobState.DEAD: "failed", JobState.CANCELLED: "cancelled"}


class Settler:
    """Settles a worker's finished jobs on `queue` (see the module docstring)."""

    def __init__(self, queue: ReliableQueue, gate: Gate, levels: Levels, runs: Runs) -> None:
        self.queue, self.gate, self.levels, self.runs = queue, gate, levels, runs
        self.counts: Counter[tuple[str, str]] = Counter()  # (queue, stats field) -> jobs

    async def settle(self, outcomes: Sequence[JobOutcome]) -> int:
        """Settle `outcomes`; how many of them completed."""
        # Workflow members first: what they make ready is pushed before they are acked, so a
        # kill in between has them rerun, and their dependants pushed once (jobs.workflow).
        await settle_members(self.queue.client, outcomes)
        # Unique locks go first: a worker killed after this and before the ack leaves the job
        # to be redelivered and run again (at least once), never a lock that outlives its job
        # (which would turn every later enqueue with the key, a cron entry's too, into a no-op
        # for unique_ttl).
        await self._unlock(o for o in outcomes if o.ok or o.dead or o.cancelled)
        # A run's slot was queued when it finished (`Gate.finish`, the worker's `_done`); a
        # job returned unrun never ran: its slot is queued here. Then the queued slots go.
        await self.gate.release(o.delivery for o in outcomes if o.returned)
        done = [o for o in outcomes if o.ok or o.cancelled]
        if done:
            await self.queue.ack(*(o.delivery for o in done))
        # Given back concurrently (the client's pool waits for free connections): one at a
        # time, a flood of failing jobs outran the settling until leases expired (issue 28).
        failing = [o for o in outcomes if not (o.ok or o.cancelled)]
        # The failures' events come before they are given back: once nacked, a retry can be
        # popped and started (its `started` added) before this settling ends, and the stream
        # showed attempt 2 start before attempt 1 failed.
        self._events(failing)
        taken = await asyncio.gather(*(self._give_back(o) for o in failing))
        # A failure whose nack was refused as stale (its lease ran out and another delivery
        # holds the job now) is not recorded: the holder records the job's own outcome.
        stale = {id(o) for o, accepted in zip(failing, taken, strict=True) if not accepted}
        await self._record([o for o in outcomes if id(o) not in stale])
        self._events(done)
        return sum(1 for o in done if o.ok)

    def _events(self, outcomes: Iterable[JobOutcome]) -> None:
        """Add the events of the settled runs among `outcomes` (not of jobs returned unrun)."""
        for o in outcomes:
            if o.doc is not None and not o.returned:
                self.runs.settled(o.delivery, o.doc, o.state, o.error)

    async def _give_back(self, outcome: JobOutcome) -> bool:
        """Nack or dead-letter a delivery that did not succeed; False: refused as stale."""
        if outcome.returned:
            return await self.queue.nack(outcome.delivery, delay=0, reason="worker shut down")
        return await self._failed(outcome)

    async def _unlock(self, finished: Iterable[JobOutcome]) -> None:
        """Release the unique locks the `finished` jobs hold (a later job's lock is left)."""
        for outcome in finished:
            if outcome.doc and outcome.doc.unique:
                keys = job_keys(self.levels.queue_of(outcome.delivery.key))
                await run(
                    self.queue.client,
                    "job_unlock",
                    [keys.unique(outcome.doc.unique)],
                    [outcome.doc.id],
                )

    async def _failed(self, outcome: JobOutcome) -> bool:
        delivery, task = outcome.delivery, outcome.task
        job_id = outcome.doc.id if outcome.doc else delivery.id
        if outcome.dead or task is None:
            log.warning(
                "job dead-lettered id=%s task=%s attempts=%d error=%r",
                job_id,
                task.name if task else "-",
                delivery.deliveries,
                outcome.error,
            )
            return await self.queue.dead_letter(delivery, reason=outcome.traceback or outcome.error)
        delay = task.retry_delay(delivery.deliveries)
        log.info(
            "job failed id=%s task=%s attempt=%d retry_in=%.1fs error=%r",
            job_id,
            task.name,
            delivery.deliveries,
            delay,
            outcome.error,
        )
        return await self.queue.nack(delivery, delay=delay, reason=outcome.traceback)

    async def _record(self, outcomes: Sequence[JobOutcome]) -> None:
        """Job records (one pipeline for kept results, concurrent script calls for failures);
        counts are kept for later."""
        pipe = self.queue.client.pipeline(transaction=False)
        failures = []
        for o in outcomes:
            if o.returned:
                continue
            state = o.state
            field = _COUNTED.get(state, "retried")
            home = self.levels.queue_of(o.delivery.key)
            self.counts[(home, field)] += 1
            record = _record_of(o, state)
            if record is None:
                continue
            if o.ok and o.doc and o.doc.result_ttl:
                keep_result(pipe, home, record, o.doc.result_ttl, o.delivery.deliveries > 1)
            else:
                failures.append(record_failure(self.queue.client, home, record))
            note_recent(pipe, home, record.id)
        if len(pipe):
            await pipe.execute()
        await asyncio.gather(*failures)

    async def flush_counts(self) -> None:
        """Add the counts of settled jobs to each queue's counters (twice a second, and at
        stop: a round trip per flush rather than per batch; a crash loses at most that much)."""
        counts, self.counts = self.counts, Counter()
        if not counts:
            return
        pipe = self.queue.client.pipeline(transaction=False)
        for (key, field), n in counts.items():
            pipe.hincrby(job_keys(key).stats, field, n)
        try:
            await pipe.execute()
        except TRANSIENT:
            self.counts.update(counts)
            raise
