"""Blocking pops: BLMOVE into the claim list when every key is empty, claimed by the next pop."""

from __future__ import annotations

import asyncio

from redline.connection import AsyncClient, connect
from redline.queue import QueueInfo, QueueKeys, ReliableQueue
from tests.queue.support import blocked_clients, until


async def _blocked(client: AsyncClient) -> bool:
    return await blocked_clients(client) >= 1


async def _blocked_at_least(client: AsyncClient, n: int) -> bool:
    return await blocked_clients(client) >= n


async def test_a_blocked_pop_wakes_for_a_raw_lpush(
    queue: ReliableQueue, qclient: AsyncClient, key: str
) -> None:
    popping = asyncio.create_task(queue.pop(key, count=10, block=60))
    await until(lambda: _blocked(qclient))
    await qclient.lpush(key, b"hello")
    [delivery] = await popping
    assert (delivery.payload, delivery.deliveries) == (b"hello", 1)
    assert await queue.info(key) == QueueInfo(key, 0, 1, 0, 0)
    assert await queue.ack(delivery) == [delivery.id]


async def test_a_blocked_pop_delivers_the_id_push_gave(
    queue: ReliableQueue, qclient: AsyncClient, key: str
) -> None:
    popping = asyncio.create_task(queue.pop(key, block=60))
    await until(lambda: _blocked(qclient))
    [mid] = await queue.push(key, b"with id")
    [delivery] = await popping
    assert delivery.id == mid


async def test_a_blocked_pop_on_several_keys_sees_every_key(
    queue: ReliableQueue, qclient: AsyncClient, prefix: str
) -> None:
    high, low = f"{prefix}:high", f"{prefix}:low"
    poller = ReliableQueue(qclient, poll=0.1)
    popping = asyncio.create_task(poller.pop(high, low, block=60))
    await until(lambda: _blocked(qclient))
    await queue.push(low, b"low")
    [delivery] = await popping
    assert (delivery.key, delivery.payload) == (low, b"low")


async def test_a_blocked_pop_wakes_to_redeliver_an_expired_lease(
    qclient: AsyncClient, key: str
) -> None:
    crashed = ReliableQueue(qclient, lease=0.3)
    await crashed.push(key, b"abandoned")
    [lost] = await crashed.pop(key)
    [again] = await ReliableQueue(qclient).pop(key, block=60)
    assert (again.id, again.deliveries) == (lost.id, 2)


async def test_a_blocking_pop_times_out_empty(queue: ReliableQueue, key: str) -> None:
    assert await queue.pop(key, block=0.1) == []
    assert await queue.info(key) == QueueInfo(key, 0, 0, 0, 0)


async def test_blocking_longer_than_the_socket_timeout_is_safe(redis_url: str, key: str) -> None:
    client = connect(redis_url, socket_timeout=1.0)
    try:
        queue = ReliableQueue(client)
        assert await queue.pop(key, block=2.5) == []  # in BLMOVE rounds of 0.25 s
        await queue.push(key, b"late")
        [delivery] = await queue.pop(key, block=2.5)
        assert delivery.payload == b"late"
    finally:
        await client.aclose()


async def test_blocking_longer_than_the_default_socket_timeout_is_safe(
    redis_url: str, key: str
) -> None:
    """A client made with no timeout gets redis-py's default (5 s in redis-py 8), which is not
    among its connection kwargs: the pop must still see it and wait in shorter rounds."""
    client = connect(redis_url)
    try:
        assert await ReliableQueue(client).pop(key, block=6) == []
    finally:
        await client.aclose()


async def test_what_a_dead_consumer_moved_to_the_claim_list_is_delivered(
    queue: ReliableQueue, qclient: AsyncClient, key: str
) -> None:
    # A consumer whose BLMOVE returned but who died before claiming left the message here.
    [mid] = await queue.push(key, b"orphan")
    await qclient.lmove(key, QueueKeys.of(key).claimed, "RIGHT", "LEFT")
    await queue.push(key, b"next")
    assert (await queue.info(key)).waiting == 2
    waiting = await queue.inspect(key)
    assert (waiting[0].id, waiting[0].payload) == (mid, b"orphan")
    batch = await queue.pop(key, count=2)
    assert batch[0].id == mid
    assert [d.payload for d in batch] == [b"orphan", b"next"]


async def test_many_blocked_consumers_share_a_burst(qclient: AsyncClient, key: str) -> None:
    consumers = [ReliableQueue(qclient) for _ in range(4)]
    popping = [asyncio.create_task(c.pop(key, count=3, block=60)) for c in consumers]
    await until(lambda: _blocked_at_least(qclient, 4))  # all four wait in their BLMOVE
    producer = ReliableQueue(qclient)
    ids = await producer.push(key, *[b"m%d" % i for i in range(12)])
    batches = await asyncio.gather(*popping)
    # each woke and took its share (at most 3 each, 12 in all: exactly 3 each), none twice
    assert [len(batch) for batch in batches] == [3, 3, 3, 3]
    got = [d for batch in batches for d in batch]
    assert sorted(d.id for d in got) == sorted(ids)
    assert len(await producer.ack(*got)) == 12
