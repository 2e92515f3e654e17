"""enqueue_many: one round trip per 1,000 jobs; unique keys and priorities honoured."""

from __future__ import annotations

from dataclasses import replace
from unittest.mock import ANY

import pytest
import redis

from redline.connection import AsyncClient
from redline.errors import JobError, JobSerializationError
from redline.jobs import (
    JobDocument,
    JobState,
    enqueue,
    enqueue_many,
    enqueue_many_sync,
    job_events,
    job_keys,
)
from redline.jobs.priority import levels_key, priority_key
from tests.jobs import limit_tasks as lt


def _script_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("evalsha", "eval"))


async def test_one_round_trip_per_thousand_jobs(aredis: AsyncClient, sredis: redis.Redis) -> None:
    await enqueue_many(aredis, lt.rated, [(("u", 0), {})])  # the script is loaded
    before = _script_calls(sredis)
    jobs = await enqueue_many(aredis, lt.rated, [(("u", n), {}) for n in range(2500)])
    assert _script_calls(sredis) - before == 3
    assert len(jobs) == 2500 and all(jobs)
    waiting = await aredis.lrange("l:rate", 0, -1)
    assert len(waiting) == 2501
    docs = [JobDocument.decode(p) for p in reversed(waiting)]  # oldest first: FIFO kept
    assert [d.args[1] for d in docs] == [0, *range(2500)]
    assert [d.id for d in docs[1:]] == [j.id for j in jobs if j]


async def test_batches_sent_one_behind_the_other_keep_their_order_after_a_script_flush(
    aredis: AsyncClient,
) -> None:
    await aredis.script_flush()  # the first batch loads it: no later batch is retried
    jobs = await enqueue_many(aredis, lt.rated, [(("u", n), {}) for n in range(4500)])
    waiting = [JobDocument.decode(p) for p in reversed(await aredis.lrange("l:rate", 0, -1))]
    assert [d.args[1] for d in waiting] == list(range(4500))  # FIFO across the 5 batches
    assert [d.id for d in waiting] == [j.id for j in jobs if j]
    events = [e.job async for e in job_events(aredis, "l:rate")]
    assert events == [d.id for d in waiting]  # their enqueued events, in the same order
    assert await aredis.xlen(job_keys("l:rate").events) == 4 * 32 + 16  # by 32, per batch


async def test_unique_keys_and_priorities_are_honoured(aredis: AsyncClient) -> None:
    jobs = await enqueue_many(aredis, lt.bulked, [(("u", n), {}) for n in range(25)])
    assert [j is not None for j in jobs] == [True] * 10 + [False] * 15  # keys n % 10
    assert await aredis.llen(priority_key("l:misc", 3)) == 10
    assert await aredis.llen("l:misc") == 0
    assert await aredis.smembers(levels_key("l:misc")) == {b"3"}
    again = await enqueue_many(aredis, lt.bulked, [(("u", 3), {}), (("u", 10), {})])
    assert again == [None, None]  # keys 3 and 0 are still held by pending jobs
    holder = await aredis.get(job_keys("l:misc").unique("3"))
    assert holder is not None and holder.decode() == jobs[3].id  # type: ignore[union-attr]


def test_the_blocking_form_sends_a_batch_while_the_one_before_runs(
    sredis: redis.Redis,
) -> None:
    enqueue_many_sync(sredis, lt.rated, [(("u", 0), {})])
    before = _script_calls(sredis)
    ids = enqueue_many_sync(sredis, lt.rated, [(("u", n), {}) for n in range(1, 2501)])
    assert _script_calls(sredis) - before == 3 and all(ids)
    waiting = [JobDocument.decode(p) for p in reversed(sredis.lrange("l:rate", 0, -1))]
    assert [d.args[1] for d in waiting] == list(range(2501))  # FIFO across the batches
    assert [d.id for d in waiting[1:]] == ids
    calls = [(("u", n), {}) for n in range(2500)] + [(("u", object()), {})]  # not JSON
    with pytest.raises(JobSerializationError):
        enqueue_many_sync(sredis, lt.rated, calls)  # refused before the first batch is sent
    assert sredis.llen("l:rate") == 2501


def test_the_blocking_twin(sredis: redis.Redis) -> None:
    ids = enqueue_many_sync(sredis, lt.bulked, [(("u", n), {}) for n in (1, 2, 11)])
    assert ids[0] and ids[1] and ids[2] is None
    assert sredis.llen(priority_key("l:misc", 3)) == 2


async def test_bad_input_is_refused_before_anything_is_sent(aredis: AsyncClient) -> None:
    with pytest.raises(JobError, match="not an \\(args, kwargs\\) pair"):
        await enqueue_many(aredis, lt.rated, [(("u", 1), {}), ("u", 2)])  # type: ignore[list-item]
    with pytest.raises(JobError, match="one by one"):
        await enqueue_many(aredis, lt.latest, [(("u", "k", 1), {})])
    assert await aredis.llen("l:rate") == 0


async def test_each_job_enqueued_writes_its_enqueued_event(aredis: AsyncClient) -> None:
    jobs = await enqueue_many(aredis, lt.bulked, [(("u", n), {}) for n in range(12)])
    enqueued = [j for j in jobs if j is not None]
    assert len(enqueued) == 10  # keys n % 10: the last two were held, and get no event
    events = [e async for e in job_events(aredis, "l:misc")]
    assert [(e.job, e.event, e.attempt, e.task) for e in events] == [
        (j.id, "enqueued", 0, lt.bulked.name) for j in enqueued
    ]
    status = await enqueued[0].status()
    assert status is not None and status.state is JobState.WAITING
    assert status.enqueued_at is not None and status.updated_at == status.enqueued_at
    assert (status.attempts, status.last_event, status.started_at) == (0, "enqueued", None)
    single = await enqueue(aredis, lt.rated, "u", 99)
    assert single is not None
    assert await single.status() == replace(status, id=single.id, enqueued_at=ANY, updated_at=ANY)


def test_the_blocking_twin_writes_events_too_and_scheduled_ones_say_so(
    sredis: redis.Redis,
) -> None:
    [first] = enqueue_many_sync(sredis, lt.rated, [(("u", 1), {})], due=4_000_000_000.0)
    entries = sredis.xrange(job_keys("l:rate").events)
    assert [(f[b"job"].decode(), f[b"event"]) for _, f in entries] == [(first, b"enqueued")]
    assert sredis.hget(job_keys("l:rate").status(str(first)), "state") == b"scheduled"
