"""Ack with fencing, nack and retries, dead letters, leases and recovery."""

from __future__ import annotations

import asyncio

from redline.connection import AsyncClient
from redline.queue import (
    Delivery,
    LeaseKeeper,
    MessageState,
    QueueInfo,
    QueueKeys,
    ReliableQueue,
)
from tests.queue.support import existing_keys, until


async def test_a_stale_ack_is_refused_and_the_new_delivery_stays(
    queue: ReliableQueue, key: str
) -> None:
    await queue.push(key, b"job")
    [old] = await queue.pop(key)
    assert await queue.recover(key, elapsed=0) == 1
    [new] = await queue.pop(key)
    assert (new.id, new.deliveries) == (old.id, 2)
    assert await queue.ack(old) == []
    assert await queue.extend(old) == []
    assert not await queue.nack(old, delay=0)
    assert (await queue.info(key)).inflight == 1
    assert await queue.ack(new) == [new.id]
    assert await queue.info(key) == QueueInfo(key, 0, 0, 0, 0)


async def test_an_ack_after_recovery_but_before_redelivery_counts(
    queue: ReliableQueue, key: str
) -> None:
    await queue.push(key, b"job")
    [delivery] = await queue.pop(key)
    await queue.recover(key, elapsed=0)
    assert await queue.ack(delivery) == [delivery.id]
    assert await queue.pop(key) == []
    assert await queue.info(key) == QueueInfo(key, 0, 0, 0, 0)


async def test_expired_leases_are_recovered_by_pop(qclient: AsyncClient, key: str) -> None:
    queue = ReliableQueue(qclient, lease=0.2)
    await queue.push(key, b"a", b"b")
    first = await queue.pop(key, count=2)
    await until(lambda: _expired(queue, key, 2))
    again = await queue.pop(key, count=5)
    assert [(d.id, d.deliveries) for d in again] == [(d.id, 2) for d in first]
    assert len(await queue.ack(*again)) == 2


async def _expired(queue: ReliableQueue, key: str, n: int) -> bool:
    return (await queue.info(key)).expired == n


async def test_recover_moves_expired_leases_only(qclient: AsyncClient, key: str) -> None:
    short = ReliableQueue(qclient, lease=0.2)
    await short.push(key, b"short", b"long")
    [gone] = await short.pop(key)
    [kept] = await short.pop(key)
    assert await short.extend(kept, lease=60) == [kept]
    await until(lambda: _expired(short, key, 1))
    assert await short.recover(key) == 1
    assert await short.info(key) == QueueInfo(key, 0, 1, 1, 0)
    [again] = await short.pop(key)
    assert (again.id, again.deliveries) == (gone.id, 2)


async def test_recover_with_elapsed_takes_what_was_delivered_long_enough_ago(
    queue: ReliableQueue, key: str
) -> None:
    await queue.push(key, b"a", b"b", b"c")
    await queue.pop(key, count=3)
    assert await queue.recover(key, elapsed=3600) == 0
    assert await queue.recover(key, count=2, elapsed=0) == 2
    assert (await queue.info(key)).inflight == 1


async def test_max_deliveries_sends_expired_messages_to_the_dead_letters(
    queue: ReliableQueue, key: str
) -> None:
    [mid] = await queue.push(key, b"poison")
    for attempt in range(1, 4):
        [delivery] = await queue.pop(key)
        assert delivery.deliveries == attempt
        await queue.recover(key, elapsed=0)
    assert await queue.pop(key) == []
    [dead] = await queue.dead(key)
    assert (dead.id, dead.payload, dead.state, dead.deliveries) == (
        mid,
        b"poison",
        MessageState.DEAD,
        3,
    )
    assert "max deliveries (3) reached: lease expired" in dead.reason


async def test_nack_with_delay_waits_in_the_delayed_set(queue: ReliableQueue, key: str) -> None:
    await queue.push(key, b"later", b"now")
    [later] = await queue.pop(key)
    assert await queue.nack(later, delay=3600, reason="not yet")
    [now] = await queue.pop(key, count=5)
    assert now.payload == b"now"
    [delayed] = await queue.inspect(key, delayed=True)
    assert (delayed.id, delayed.state) == (later.id, MessageState.DELAYED)
    assert delayed.reason == "not yet"
    assert delayed.remaining is not None and 3000 < delayed.remaining <= 3600
    assert await queue.info(key) == QueueInfo(key, 0, 1, 1, 0)


async def test_a_delayed_message_is_delivered_when_due(queue: ReliableQueue, key: str) -> None:
    await queue.push(key, b"retry me")
    [first] = await queue.pop(key)
    assert await queue.nack(first, delay=0.3)
    # A blocking pop wakes when the delayed message is due, not at the end of its block: an
    # hour's block, and a deadline of 30 s that only a pop woken by the due message meets.
    async with asyncio.timeout(30):
        [again] = await queue.pop(key, block=3600)
    assert (again.id, again.payload, again.deliveries) == (first.id, b"retry me", 2)


async def test_nack_without_delay_backs_off_exponentially(qclient: AsyncClient, key: str) -> None:
    queue = ReliableQueue(qclient, retry_base=100, retry_cap=1000)
    await queue.push(key, b"flaky")
    [first] = await queue.pop(key)
    await queue.nack(first)
    [delayed] = await queue.inspect(key, delayed=True)
    assert delayed.remaining is not None and 40 < delayed.remaining <= 100  # 100 s, half jitter
    await qclient.zadd(QueueKeys.of(key).delayed, {first.id: 0})  # make it due now
    [second] = await queue.pop(key)
    await queue.nack(second)
    [delayed] = await queue.inspect(key, delayed=True)
    assert delayed.remaining is not None and 90 < delayed.remaining <= 200  # doubled


async def test_nack_past_max_deliveries_dead_letters_with_the_reason(
    queue: ReliableQueue, key: str
) -> None:
    await queue.push(key, b"bad")
    for _ in range(3):
        [delivery] = await queue.pop(key)
        await queue.nack(delivery, delay=0, reason="parse error")
    assert await queue.pop(key) == []
    [dead] = await queue.dead(key)
    assert dead.reason == "max deliveries (3) reached: parse error"
    assert dead.elapsed is not None and dead.elapsed >= 0


async def test_dead_letter_requeue_and_delete(queue: ReliableQueue, key: str) -> None:
    await queue.push(key, b"x", b"y")
    x, y = await queue.pop(key, count=2)
    assert await queue.dead_letter(x, reason="bad input")
    assert await queue.dead_letter(y, reason="worse")
    assert not await queue.dead_letter(y)  # already dead: stale
    assert [(m.id, m.reason) for m in await queue.dead(key)] == [
        (x.id, "bad input"),
        (y.id, "worse"),
    ]
    assert await queue.ack(x) == []  # dead is dead
    assert await queue.requeue(key, x.id, "no-such-id") == 1
    [again] = await queue.pop(key)
    assert (again.id, again.payload, again.deliveries) == (x.id, b"x", 1)
    assert await queue.delete(key, y.id) == 1
    assert await queue.dead(key) == []
    assert await queue.ack(again) == [x.id]
    assert await queue.info(key) == QueueInfo(key, 0, 0, 0, 0)
    assert await existing_keys(queue.client, key) == {"seq"}


async def test_purge_drops_waiting_and_delayed_but_not_inflight(
    queue: ReliableQueue, qclient: AsyncClient, key: str
) -> None:
    await queue.push(key, b"held", b"delayed", b"w1")
    await qclient.lpush(key, b"raw")
    held, delayed = await queue.pop(key, count=2)
    await queue.nack(delayed, delay=3600)
    assert await queue.purge(key) == 3
    assert await queue.info(key) == QueueInfo(key, 0, 1, 0, 0)
    assert await queue.ack(held) == [held.id]
    assert await existing_keys(qclient, key) == {"seq"}  # the counter stays: ids never repeat


async def test_keep_leases_extends_while_work_runs_and_reports_lost_ones(
    qclient: AsyncClient, key: str
) -> None:
    # A lease of 2 s renewed every 0.1 s: held past 2.5 leases only if renewed. (With 1 s, a
    # test process starved for 0.9 s — seen in CI-like runs at load 20 — lost it for real.)
    queue = ReliableQueue(qclient, lease=2.0)
    await queue.push(key, b"long work")
    [delivery] = await queue.pop(key)
    async with queue.keep_leases([delivery], every=0.1) as keeper:
        await until(lambda: _held_longer_than(queue, key, 5.0))
        assert (await queue.info(key)).expired == 0
        assert await queue.pop(key) == []
    assert keeper.lost == []
    assert await queue.recover(key, elapsed=0) == 1
    async with queue.keep_leases([delivery], every=0.01) as keeper:
        await until(lambda: _lost(keeper))
    assert keeper.lost == [delivery]


async def _held_longer_than(queue: ReliableQueue, key: str, seconds: float) -> bool:
    [held] = await queue.inspect(key, pending=True)
    return held.elapsed is not None and held.elapsed > seconds


async def _lost(keeper: LeaseKeeper) -> bool:
    return bool(keeper.lost)


async def test_keep_leases_stops_even_when_the_client_loses_the_cancellation(
    qclient: AsyncClient, key: str
) -> None:
    """redis-py's asyncio client can lose a cancellation that lands inside a command (seen
    with 8.2 on Python 3.11: the command returns as if nothing happened). The keeper's loop
    must stop anyway, or leaving the block waits for ever while the lease is kept alive (an
    HTTP request held for ever by a live replica). Many keepers, each stopped mid-extension."""
    queue = ReliableQueue(qclient, lease=5.0)
    await queue.push(key, *[b"x"] * 40)
    batch = await queue.pop(key, count=40)

    async def hold(delivery: Delivery, pause: float) -> None:
        keeper = queue.keep_leases([delivery], every=0.001)
        await keeper.__aenter__()
        await asyncio.sleep(pause)
        await asyncio.wait_for(asyncio.shield(keeper.__aexit__(None, None, None)), 30)

    for round_ in range(10):
        await asyncio.gather(*(hold(d, (i + round_) % 17 / 1000) for i, d in enumerate(batch)))
    assert len(await queue.ack(*batch)) == 40
