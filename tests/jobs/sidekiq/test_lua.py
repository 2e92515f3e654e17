"""Each Sidekiq script on its own, against the real server: what it returns and leaves."""

from __future__ import annotations

import json
import time

from redline.connection import AsyncClient
from redline.scripting import scripts

REG = "reg"


async def test_fetch_moves_jobs_in_queue_order_and_registers_the_lists(aredis: AsyncClient) -> None:
    await aredis.lpush("queue:a", b"a1", b"a2")  # a1 is the oldest: taken first
    await aredis.lpush("queue:b", b"b1", b"b2", b"b3")
    keys = [REG, "queue:a", "fly:a", "queue:b", "fly:b", "queue:c", "fly:c"]
    reply = await scripts.run(aredis, "sidekiq_fetch", keys, [3, 100, "ma", "mb", "mc"])
    assert reply == [1, b"a1", 1, b"a2", 2, b"b1"]
    assert await aredis.lrange("fly:a", 0, -1) == [b"a2", b"a1"]  # the oldest at the right
    assert await aredis.lrange("fly:b", 0, -1) == [b"b1"]
    assert await aredis.lrange("queue:b", 0, -1) == [b"b3", b"b2"]
    assert await aredis.zrange(REG, 0, -1, withscores=True) == [(b"ma", 100.0), (b"mb", 100.0)]
    assert await scripts.run(aredis, "sidekiq_fetch", keys[:3], [5, 200, "ma"]) == []


async def test_settle_moves_only_a_job_still_in_flight(aredis: AsyncClient) -> None:
    await aredis.lpush("fly", b"job", b"other")
    assert await scripts.run(aredis, "sidekiq_settle", ["fly", "retry"], [b"job", b"job2", 50])
    assert await aredis.zrange("retry", 0, -1, withscores=True) == [(b"job2", 50.0)]
    assert await aredis.lrange("fly", 0, -1) == [b"other"]
    # recovered by another process meanwhile: nothing is added (it runs again there)
    assert not await scripts.run(aredis, "sidekiq_settle", ["fly", "retry"], [b"job", b"x", 60])
    assert await aredis.zcard("retry") == 1


async def test_settle_into_the_morgue_trims_it_by_age_and_size(aredis: AsyncClient) -> None:
    await aredis.zadd("dead", {b"ancient": 1, b"old": 10, b"recent": 20})
    await aredis.lpush("fly", b"job")
    args = [b"job", b"job+error", 30, 5, 2]  # drop below 5, keep at most 2
    assert await scripts.run(aredis, "sidekiq_settle", ["fly", "dead"], args)
    assert await aredis.zrange("dead", 0, -1) == [b"recent", b"job+error"]


async def test_requeue_puts_a_job_back_next_in_line(aredis: AsyncClient) -> None:
    await aredis.lpush("queue:q", b"later")
    await aredis.lpush("fly", b"job")
    assert await scripts.run(aredis, "sidekiq_requeue", ["fly", "queue:q"], [b"job"])
    assert await aredis.rpop("queue:q") == b"job"  # the end workers take from
    assert not await scripts.run(aredis, "sidekiq_requeue", ["fly", "queue:q"], [b"job"])
    assert await aredis.lrange("queue:q", 0, -1) == [b"later"]


async def test_promote_pushes_only_what_it_removed(aredis: AsyncClient) -> None:
    await aredis.zadd("schedule", {b"j1": 1, b"j2": 2})
    await aredis.zrem("schedule", b"j2")  # a Ruby poller took it first
    keys = ["schedule", "queues", "queue:a", "queue:b"]
    args = [b"j1", b"j1+enqueued_at", "a", b"j2", b"j2+enqueued_at", "b"]
    assert await scripts.run(aredis, "sidekiq_promote", keys, args) == 1
    assert await aredis.lrange("queue:a", 0, -1) == [b"j1+enqueued_at"]
    assert not await aredis.exists("queue:b")
    assert await aredis.smembers("queues") == {b"a"}
    assert await scripts.run(aredis, "sidekiq_promote", keys, args) == 0  # never twice


def job(jid: str) -> bytes:
    return json.dumps({"class": "C", "args": [], "jid": jid}).encode()


async def recover(aredis: AsyncClient, now: float, grace: float = 10, most: int = 2) -> list[int]:
    keys = ["proc", "fly", "queue:q", REG, "dead", "recoveries"]
    return list(await scripts.run(aredis, "sidekiq_recover", keys, ["m", now, grace, most]))


async def test_recover_leaves_a_live_process_alone(aredis: AsyncClient) -> None:
    await aredis.hset("proc", "beat", 1)
    await aredis.lpush("fly", job("a"))
    await aredis.zadd(REG, {"m": 1})
    assert await recover(aredis, time.time()) == [-1, 0]
    assert await aredis.llen("fly") == 1 and await aredis.zcard(REG) == 1


async def test_recover_requeues_a_dead_process_jobs_oldest_next(aredis: AsyncClient) -> None:
    await aredis.lpush("queue:q", job("waiting"))
    await aredis.lpush("fly", job("old"), job("new"))  # fetched in this order
    await aredis.zadd(REG, {"m": 100})
    assert await recover(aredis, 105) == [2, 0]  # within the grace: still listed
    assert [json.loads(await aredis.rpop("queue:q"))["jid"] for _ in range(3)] == [
        "old",
        "new",
        "waiting",
    ]
    assert await aredis.zcard(REG) == 1
    assert await aredis.hgetall("recoveries") == {b"old": b"1", b"new": b"1"}
    assert 0 < await aredis.ttl("recoveries") <= 86400
    assert await recover(aredis, 111) == [0, 0]  # past the grace: forgotten
    assert await aredis.zcard(REG) == 0


async def test_recover_buries_a_job_recovered_too_often(aredis: AsyncClient) -> None:
    await aredis.hset("recoveries", "a", 2)
    await aredis.lpush("fly", job("a"), b"not json")
    assert await recover(aredis, 50, most=2) == [1, 1]
    assert await aredis.zrange("dead", 0, -1, withscores=True) == [(job("a"), 50.0)]
    assert await aredis.lrange("queue:q", 0, -1) == [b"not json"]
    assert not await aredis.hexists("recoveries", "a")
