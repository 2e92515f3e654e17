"""Expired leases come back through every pop, whatever waits behind them (issue 28).

Before, a pop recovered expired leases only when it came back short, so a dead consumer's
messages waited for the backlog to run out: under steady load, without bound.
"""

from __future__ import annotations

import time

import pytest

from redline.connection import AsyncClient, connect_sync
from redline.queue import Delivery, ReliableQueue, SyncReliableQueue
from tests.queue.support import until

STEADY_FOR = 60.0  # seconds the steady loop may run before the test gives up (a failure)


async def expired(queue: ReliableQueue, key: str) -> bool:
    return (await queue.info(key)).expired > 0


def test_a_dead_consumers_messages_come_back_while_the_backlog_stays(redis_url: str) -> None:
    """The reproduction: 10 deliveries never acked, then a steady producer and consumer that
    keep the backlog above zero. Once the 10 leases are over, the next pops deliver them
    before any fresh message, and the backlog never runs out meanwhile."""
    queue = SyncReliableQueue(connect_sync(redis_url), lease=1)
    queue.push("q", *[b"m%d" % n for n in range(100)])
    lost = {d.id for d in queue.pop("q", count=10)}  # a consumer that died
    back: set[str] = set()
    batch: list[Delivery] = []
    seen_expired = False
    deadline = time.monotonic() + STEADY_FOR
    while back != lost:
        assert time.monotonic() < deadline, f"redelivered {len(back)} of 10 in {STEADY_FOR}s"
        queue.push("q", b"x", b"y")
        info = queue.info("q")
        assert info.waiting > 0  # the backlog never ran out
        seen_expired = seen_expired or info.expired >= len(lost)
        batch = queue.pop("q", count=2, ack=batch)
        back |= {d.id for d in batch if d.id in lost}
        if seen_expired and back != lost:  # redeliveries first, until all 10 are back
            assert all(d.deliveries > 1 for d in batch), batch
        time.sleep(0.01)
    assert queue.info("q").waiting > 0
    queue.ack(*batch)


@pytest.mark.parametrize("use_functions", [True, False], ids=["fcall", "evalsha"])
async def test_an_expired_lease_goes_ahead_of_a_full_backlog(
    qclient: AsyncClient, key: str, use_functions: bool
) -> None:
    queue = ReliableQueue(qclient, lease=0.2, max_deliveries=2, use_functions=use_functions)
    await queue.push(key, *[b"%d" % n for n in range(50)])
    [first] = await queue.pop(key)
    await until(lambda: expired(queue, key))
    [again] = await queue.pop(key, count=1)
    assert (again.id, again.deliveries) == (first.id, 2)
    assert await queue.ack(first) == []  # fenced: the lease it held was given to `again`
    await until(lambda: expired(queue, key))
    batch = await queue.pop(key, count=10)
    assert first.id not in {d.id for d in batch}  # past max_deliveries: dead, not delivered
    assert [m.id for m in await queue.dead(key)] == [first.id]
    assert (await queue.info(key)).waiting == 49 - 10
