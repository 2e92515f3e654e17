"""Dead letters are kept by count and by age, per queue; the oldest are dropped, and counted."""

from __future__ import annotations

import pytest

from redline.connection import AsyncClient
from redline.errors import QueueError
from redline.queue import DEAD_AGE, DEAD_MAX, QueueKeys, ReliableQueue

FLOOD, CAP = 50_000, 1_000


async def test_a_fresh_queue_keeps_the_default_retention(queue: ReliableQueue, key: str) -> None:
    info = await queue.info(key)
    assert (info.dead_max, info.dead_age, info.dropped, info.records_dropped) == (
        DEAD_MAX,
        DEAD_AGE,
        0,
        0,
    )
    assert (DEAD_MAX, DEAD_AGE) == (10_000, 180 * 86400)  # the numbers in lua/_retention.lua
    assert await queue.set_retention(key, 5, 60) == (5, 60.0)
    info = await queue.info(key)
    assert (info.dead_max, info.dead_age) == (5, 60.0)


@pytest.mark.parametrize(("entries", "age"), [(0, 60), (1.5, 60), (5, 0), (5, -1)])
async def test_a_bad_retention_is_refused(
    queue: ReliableQueue, key: str, entries: int, age: float
) -> None:
    with pytest.raises(QueueError, match=r"entries|age"):
        await queue.set_retention(key, entries, age)


async def test_a_flood_of_poison_keeps_at_most_the_cap(qclient: AsyncClient, key: str) -> None:
    """50,000 messages that kill every consumer they reach (a lease of 1 ms, never acked; one
    delivery allowed), on a queue that keeps 1,000 dead letters: the pops that give the expired
    leases back dead-letter them in batches, and 1,000 stay, with their payloads, counts and
    reasons; the other 49,000 are gone and counted."""
    queue = ReliableQueue(qclient, lease=0.001, max_deliveries=1)
    await queue.set_retention(key, CAP)
    for start in range(0, FLOOD, 5_000):
        await queue.push(key, *[b"poison %d" % n for n in range(start, start + 5_000)])
    while await queue.pop(key, count=1_000) or (await queue.info(key)).inflight:
        pass  # each pop buries what the last one delivered (its leases are over by then)
    info = await queue.info(key)
    assert (info.waiting, info.inflight, info.delayed, info.dead) == (0, 0, 0, CAP)
    assert info.dropped == FLOOD - CAP
    kept = await queue.dead(key, count=CAP)
    assert {m.payload for m in kept} == {b"poison %d" % n for n in range(FLOOD - CAP, FLOOD)}
    assert {m.reason for m in kept} == {"max deliveries (1) reached: lease expired"}
    k = QueueKeys.of(key)
    for table in (k.payloads, k.deliveries, k.reasons):  # nothing of the dropped ones is left
        assert await qclient.hlen(table) == CAP
    assert not await qclient.exists(k.since, k.inflight, k.delayed)


async def test_nacked_and_dead_lettered_messages_are_trimmed_too(
    queue: ReliableQueue, key: str
) -> None:
    await queue.set_retention(key, 3)
    await queue.push(key, *[b"%d" % n for n in range(10)])
    batch = await queue.pop(key, count=10)
    for d in batch[:5]:
        assert await queue.dead_letter(d, reason="bad")
    for d in batch[5:]:
        assert await queue.nack(d, delay=0)  # max_deliveries=3: delayed, not dead
    assert [m.payload for m in await queue.dead(key)] == [b"2", b"3", b"4"]
    assert (await queue.info(key)).dropped == 2
