"""The background work of every Sidekiq worker: due jobs moved, dead processes' jobs recovered."""

from __future__ import annotations

import json

from redline.connection import AsyncClient
from redline.jobs.sidekiq import poller
from redline.jobs.sidekiq.fetch import INFLIGHT, inflight_key


def job(jid: str, queue: str = "default", **more: object) -> bytes:
    return json.dumps({"class": "A", "args": [], "jid": jid, "queue": queue, **more}).encode()


async def test_due_jobs_go_to_their_queues_with_a_new_enqueued_at(aredis: AsyncClient) -> None:
    await aredis.zadd("schedule", {job("s1", "a", enqueued_at=1): 10, job("later"): 1000})
    await aredis.zadd("retry", {job("r1", "b", retry_count=0): 20, b"not a job": 5})
    for n in range(150):  # more than one batch
        await aredis.zadd("schedule", {job(f"bulk{n}", "c"): 30 + n})
    assert await poller.promote(aredis, now=500) == 152
    [moved] = [json.loads(raw) for raw in await aredis.lrange("queue:a", 0, -1)]
    assert (moved["jid"], moved["enqueued_at"]) == ("s1", 500)
    [retried] = [json.loads(raw) for raw in await aredis.lrange("queue:b", 0, -1)]
    assert (retried["jid"], retried["retry_count"]) == ("r1", 0)
    assert await aredis.llen("queue:c") == 150
    assert await aredis.smembers("queues") == {b"a", b"b", b"c"}
    assert await aredis.zrange("schedule", 0, -1) == [job("later")]
    assert await aredis.zrange("retry", 0, -1) == [b"not a job"]  # left, said in the log
    assert await poller.promote(aredis, now=500) == 0


async def test_only_dead_processes_are_recovered(aredis: AsyncClient) -> None:
    for identity in ("alive", "dead", "me"):
        await aredis.lpush(inflight_key(identity, "q"), job(identity))
        await aredis.zadd(INFLIGHT, {json.dumps([identity, "q"]): 1})
    await aredis.zadd(INFLIGHT, {b"junk": 1})
    await aredis.hset("alive", "beat", 1)
    assert await poller.recover(aredis, "me", grace=10, max_recoveries=5) == (1, 0)
    assert await aredis.lrange("queue:q", 0, -1) == [job("dead")]
    assert await aredis.llen(inflight_key("alive", "q")) == 1
    assert await aredis.llen(inflight_key("me", "q")) == 1  # its own, when not stopping
    assert await poller.recover(aredis, "me", 0, 5, only="me") == (1, 0)  # at its stop
    assert json.dumps(["me", "q"]).encode() not in await aredis.zrange(INFLIGHT, 0, -1)
