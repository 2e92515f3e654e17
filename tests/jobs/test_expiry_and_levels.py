"""An expired job's `expired` event, and priorities forgotten once nothing is left at them."""

from __future__ import annotations

import asyncio
import time

import pytest

from redline.connection import AsyncClient
from redline.jobs import JobState, Task, enqueue, enqueue_in, job_events
from redline.jobs.priority import Levels, forget_level, levels_key, priority_key, scheduled_key
from redline.jobs.usage import limit_use, limits_key, member
from redline.jobs.worker import Worker
from redline.queue import ReliableQueue
from tests.jobs import limit_tasks as lt


async def test_a_job_dropped_for_its_deadline_gets_an_expired_event(
    aredis: AsyncClient, redis_url: str
) -> None:
    late = await enqueue(aredis, lt.fleeting, redis_url, 1)
    assert late is not None
    await asyncio.sleep(0.7)  # past its 0.5 s, with no worker
    worker = Worker(lt.tasks, ["l:misc"], cron=False)
    assert await worker.run_once(aredis) is None  # popped, and dropped unrun
    seen = [e async for e in job_events(aredis, "l:misc") if e.job == late.id]
    assert [e.event for e in seen] == ["enqueued", "expired"]
    assert seen[-1].attempt == 0  # it never started, as its record says
    status = await late.status()
    assert status is not None and status.state is JobState.EXPIRED
    assert not await aredis.sismember("l:ran-once", 1)  # type: ignore[misc]
    info = await ReliableQueue(aredis).info("l:misc")
    assert (info.waiting, info.inflight, info.delayed, info.dead) == (0, 0, 0, 0)


URGENT = Task.ref("app.urgent", queue="lv", priority=5)


async def test_a_priority_is_forgotten_only_once_nothing_is_left_at_it(
    aredis: AsyncClient,
) -> None:
    queue, level = ReliableQueue(aredis), priority_key("lv", 5)
    assert await enqueue(aredis, URGENT) is not None
    assert not await forget_level(aredis, "lv", 5)  # waiting
    [delivery] = await queue.pop(level)
    assert not await forget_level(aredis, "lv", 5)  # in flight
    await queue.nack(delivery, delay=60)
    assert not await forget_level(aredis, "lv", 5)  # delayed (a retry)
    assert await queue.purge(level) == 1
    await queue.push(level, b"not a job")
    [broken] = await queue.pop(level)
    await queue.dead_letter(broken, reason="broken")
    assert not await forget_level(aredis, "lv", 5)  # a dead letter is still there to see
    assert await queue.delete(level, everything=True) == 1
    assert await enqueue_in(aredis, 60, URGENT) is not None
    assert not await forget_level(aredis, "lv", 5)  # scheduled
    assert await aredis.delete(scheduled_key("lv", 5)) == 1
    assert await aredis.smembers(levels_key("lv")) == {b"5"}  # type: ignore[misc]
    assert await forget_level(aredis, "lv", 5)
    assert await aredis.smembers(levels_key("lv")) == set()  # type: ignore[misc]
    assert await enqueue(aredis, URGENT) is not None  # used again: listed again
    assert await aredis.smembers(levels_key("lv")) == {b"5"}  # type: ignore[misc]


async def test_workers_stop_popping_a_forgotten_priority_but_keep_declared_ones(
    aredis: AsyncClient,
) -> None:
    levels = Levels(["lv"], {"lv": [2]})
    assert await enqueue(aredis, URGENT) is not None
    await levels.refresh(aredis)
    assert levels.keys == [priority_key("lv", 5), priority_key("lv", 2), "lv"]
    [delivery] = await ReliableQueue(aredis).pop(priority_key("lv", 5))
    await ReliableQueue(aredis).ack(delivery)
    await aredis.sadd(levels_key("lv"), 2)  # type: ignore[misc]
    assert await levels.forget(aredis) == [("lv", 5)]  # 2 is declared by a task here: kept
    assert levels.keys == [priority_key("lv", 2), "lv"]
    await levels.refresh(aredis)
    assert levels.keys == [priority_key("lv", 2), "lv"]
    assert levels.queue_of(priority_key("lv", 5)) == "lv"  # a late delivery still finds home


@pytest.mark.cluster
async def test_forgetting_and_the_limits_registry_on_a_cluster(
    acluster: AsyncClient, prefix: str
) -> None:
    queue = "{" + prefix + "}:jobs"
    urgent = Task.ref("app.urgent", queue=queue, priority=3)
    assert await enqueue(acluster, urgent) is not None
    [delivery] = await ReliableQueue(acluster).pop(priority_key(queue, 3))
    assert not await forget_level(acluster, queue, 3)  # in flight
    await ReliableQueue(acluster).ack(delivery)
    assert await forget_level(acluster, queue, 3)
    assert await acluster.smembers(levels_key(queue)) == set()  # type: ignore[misc]
    await acluster.zadd(
        limits_key(queue), {member("rate", "t", "acme", 5, 1000): time.time() * 1000}
    )
    [use] = await limit_use(acluster, queue)
    assert (use.kind, use.key, use.used, use.limit, use.per) == ("rate", "acme", 0, 5, "per 1s")
    await acluster.delete(limits_key(queue))
