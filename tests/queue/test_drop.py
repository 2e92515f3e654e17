"""The server cuts the connection (CLIENT KILL) while a consumer pops and acks: nothing is lost."""

from __future__ import annotations

import asyncio
import contextlib

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from redline.connection import connect
from redline.queue import Delivery, QueueInfo, ReliableQueue
from tests.queue.support import blocked_clients, until

DROPPED = (RedisConnectionError, RedisTimeoutError)


async def _kill_consumers(killer: redis.asyncio.Redis) -> int:
    return int(await killer.client_kill_filter(_type="normal", skipme=True))


async def test_connection_cut_during_a_blocking_pop(redis_url: str) -> None:
    client, killer = connect(redis_url), connect(redis_url)
    queue = ReliableQueue(client, lease=1.0)
    popping = asyncio.create_task(queue.pop("q", block=30))
    await until(lambda: blocked_clients(killer))
    assert await _kill_consumers(killer) >= 1
    await ReliableQueue(killer).push("q", b"x")
    try:
        got = await popping  # redis-py may reconnect and retry the BLMOVE on its own
    except DROPPED:
        got = []
    while not got:
        got = await queue.pop("q", block=5)
    assert [d.payload for d in got] == [b"x"]
    assert await queue.ack(*got) == [got[0].id]
    assert await queue.info("q") == QueueInfo("q", 0, 0, 0, 0, 0)
    await client.aclose()
    await killer.aclose()


async def _consume(queue: ReliableQueue, seen: set[bytes], n: int) -> None:
    """Pop-and-ack batches through connection cuts; an ack whose reply was lost is sent again
    (refused if it landed), a pop whose reply was lost is redelivered after its lease."""
    batch: list[Delivery] = []
    while len(seen) < n:
        try:
            got = await queue.pop("q", count=10, block=1, ack=batch)
        except DROPPED:
            continue  # `batch` is acked again with the next pop
        batch = got
        seen.update(d.payload for d in got)
    with contextlib.suppress(*DROPPED):
        await queue.ack(*batch)


async def test_connection_cuts_during_pop_and_ack_lose_nothing(redis_url: str) -> None:
    n = 2000
    client, killer = connect(redis_url), connect(redis_url)
    queue = ReliableQueue(client, lease=1.0)
    await ReliableQueue(killer).push("q", *(f"m{i}".encode() for i in range(n)))
    seen: set[bytes] = set()
    consumer = asyncio.create_task(_consume(queue, seen, n))
    kills = 0
    while not consumer.done():
        kills += await _kill_consumers(killer)
        await asyncio.sleep(0.01)  # pace of the cuts, not a synchronisation
    await consumer
    assert kills > 0
    assert seen == {f"m{i}".encode() for i in range(n)}
    info = ReliableQueue(killer)

    async def drained() -> bool:  # acks lost with a cut leave leases that expire and recover
        leftover = await info.pop("q", count=100)
        if leftover:
            await info.ack(*leftover)
        return await info.info("q") == QueueInfo("q", 0, 0, 0, 0, 0)

    await until(drained)
    await client.aclose()
    await killer.aclose()
