"""Which popped batches the gate judges: a worker with limited tasks starts the jobs of its
other tasks at once (no decoding, no admission), found by marks in the payloads; a document
that could name a limited task in another spelling (an escape) is judged all the same."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from redline.connection import AsyncClient
from redline.connection.channels import batched
from redline.jobs import enqueue, gate_slots
from redline.jobs.document import job_keys
from redline.jobs.gate_slots import HOLD
from redline.jobs.library import LIBRARY
from redline.jobs.limits import Gate
from redline.jobs.priority import Levels
from redline.queue import ReliableQueue
from tests.jobs import limit_tasks as lt
from tests.jobs.running import until


def _gate(queue: ReliableQueue, *queues: str) -> Gate:
    return Gate(queue, lt.tasks, Levels(list(queues), {q: {0} for q in queues}))


async def test_jobs_of_tasks_without_limits_are_not_judged(
    aredis: AsyncClient, redis_url: str
) -> None:
    queue = ReliableQueue(aredis)
    gate = _gate(queue, "l:prio", "l:cap")
    await enqueue(aredis, lt.prio, redis_url, "plain")
    await enqueue(aredis, lt.capped, redis_url, 1)
    [plain] = await queue.pop("l:prio")
    [capped] = await queue.pop("l:cap")
    assert not gate.judges([plain])  # no limit, no expiry: started as popped
    assert gate.judges([capped]) and gate.judges([plain, capped])
    assert await gate.admit([plain]) == [plain] and gate.held == {}


async def test_a_limited_task_named_with_an_escape_is_still_judged(
    aredis: AsyncClient, redis_url: str
) -> None:
    """Another client may write the task name escaped (JSON allows any letter as \\uXXXX):
    the job is still judged, and takes its slot."""
    queue = ReliableQueue(aredis)
    gate = _gate(queue, "l:cap")
    name = lt.capped.name.replace("c", "\\u0063")
    document = {"v": 1, "id": "x1", "args": [redis_url, 1], "kwargs": {}, "enqueued_at": 0}
    raw = json.dumps(document)[:-1] + f', "queue": "l:cap", "task": "{name}"}}'
    await aredis.lpush("l:cap", raw)
    [escaped] = await queue.pop("l:cap")
    assert lt.capped.name.encode() not in escaped.payload
    assert gate.judges([escaped])
    assert await gate.admit([escaped]) == [escaped]
    assert gate.held == {(escaped.key, escaped.id): gate.held[(escaped.key, escaped.id)]}
    assert await aredis.zcard("{l:cap}:job-concurrency:" + lt.capped.name) == 1


async def test_jobs_judged_ahead_are_admitted_by_that_judgment_and_expire_when_admitted(
    aredis: AsyncClient, redis_url: str
) -> None:
    """`prepare` decodes popped jobs and finds their limits before their admission (the
    worker's jobs popped ahead); `admit` then uses what it found, but asks whether a job has
    expired when it admits it, not when it was judged."""
    queue = ReliableQueue(aredis)
    gate = _gate(queue, "l:cap", "l:misc")
    await enqueue(aredis, lt.capped, redis_url, 1)
    await enqueue(aredis, lt.fleeting.options(expires=0.3), redis_url, 2)
    [capped] = await queue.pop("l:cap")
    [fleeting] = await queue.pop("l:misc")
    gate.prepare([capped, fleeting])
    assert set(gate.judged) == {(capped.key, capped.id), (fleeting.key, fleeting.id)}
    decoded = gate.judged[(capped.key, capped.id)][1]
    await asyncio.sleep(0.5)  # the fleeting job's start deadline passes while it waits
    assert await gate.admit([capped, fleeting]) == [capped]
    assert gate.judged == {} and gate.document(capped) is decoded  # decoded once, ahead
    assert await aredis.zcard("{l:cap}:job-concurrency:" + lt.capped.name) == 1
    info = await queue.info("l:misc")
    assert (info.inflight, info.waiting, info.delayed) == (0, 0, 0)  # expired: acknowledged
    assert await aredis.hget(job_keys("l:misc").stats, "expired") == b"1"  # type: ignore[misc]


async def test_an_admission_does_not_wait_behind_the_clients_other_round_trips(
    aredis: AsyncClient, redis_url: str
) -> None:
    """The gate admits over a channel of its own: a round trip in flight on the client's
    shared channel (the settling's events write, there; a blocking read here) does not hold
    up the admission, which is on the way from free run slots to running jobs."""
    queue = ReliableQueue(aredis)
    gate = _gate(queue, "l:cap")
    await enqueue(aredis, lt.capped, redis_url, 1)
    [capped] = await queue.pop("l:cap")
    blocked = asyncio.create_task(batched(aredis).call(("BLPOP", "l:never", 30)))
    await asyncio.sleep(0.1)  # the blocking read holds the shared channel (from its first step)
    assert await gate.admit([capped]) == [capped]
    assert not blocked.done()  # still waiting for its 30 s
    await aredis.lpush("l:never", b"x")
    assert await blocked == [b"l:never", b"x"]


async def test_an_admission_of_one_queue_is_sent_in_its_tasks_first_step(
    aredis: AsyncClient, redis_url: str
) -> None:
    """The worker starts an admission as a task and yields once before its next pop ahead, so
    that the server answers the admission (on the way to the run) first: the call must be
    made in the task's first step, not in a task of its own (once the jobs' library is
    loaded on the client: its first admission loads it first)."""
    queue = ReliableQueue(aredis)
    gate = _gate(queue, "l:cap")
    await LIBRARY.load(aredis)
    await enqueue(aredis, lt.capped, redis_url, 1)
    [capped] = await queue.pop("l:cap")
    sent: list[object] = []
    call = gate.channel.call

    async def recorded(command: Any) -> Any:
        sent.append(command)
        return await call(command)

    gate.channel.call = recorded  # type: ignore[method-assign]
    admitting = asyncio.create_task(gate.admit([capped]))
    await asyncio.sleep(0)  # the task's first step
    assert len(sent) == 1
    assert await admitting == [capped]


async def test_slots_held_back_go_with_the_next_admission_or_soon_after(
    aredis: AsyncClient, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the worker's jobs are fast (`Returns.hold`), the settling leaves finished jobs'
    slots for the next admission, which gives them back in its call; those no admission
    takes go back on their own within `HOLD`. Otherwise the settling sends them at once.
    (The first slot is held for a minute, not `HOLD`'s 20 ms: the check that it waits and
    the admission that takes it are two round trips, which a loaded machine makes longer
    than 20 ms — the slot had gone on its own, and the check failed once in a loaded pass.)"""
    monkeypatch.setattr(gate_slots, "HOLD", 60.0)
    queue = ReliableQueue(aredis)
    gate = _gate(queue, "l:cap")
    slots = "{l:cap}:job-concurrency:" + lt.capped.name
    for n in range(4):
        await enqueue(aredis, lt.capped, redis_url, n)
    first, second, third = await queue.pop("l:cap", count=3)
    assert await gate.admit([first, second, third]) == [first, second, third]
    gate.returns.hold = lambda: True
    await gate.release([first])
    assert await aredis.zcard(slots) == 3 and gate.returns.queued  # left for the admission
    [fourth] = await queue.pop("l:cap")
    assert await gate.admit([fourth]) == [fourth]
    held = {gate.held[(d.key, d.id)][1].encode() for d in (second, third, fourth)}
    assert set(await aredis.zrange(slots, 0, -1)) == held and not gate.returns.queued
    monkeypatch.setattr(gate_slots, "HOLD", HOLD)
    await gate.release([second])  # no admission comes: it goes back on its own, soon
    await until(lambda: _count_is(aredis, slots, 2))
    gate.returns.hold = lambda: False
    last = gate.held[(fourth.key, fourth.id)][1]
    await gate.release([third])  # at once
    assert await aredis.zrange(slots, 0, -1) == [last.encode()]
    await gate.release([fourth])
    assert await aredis.zcard(slots) == 0 and not gate.returns.queued and not gate.returns._sending


async def _count_is(client: AsyncClient, key: str, n: int) -> bool:
    return bool(await client.zcard(key) == n)
