from __future__ import annotations

import pytest

from redline.connection import AsyncClient, connect
from redline.errors import QueueError
from redline.queue import Delivery, MessageState, QueueInfo, QueueKeys, ReliableQueue
from tests.queue.support import existing_keys


async def test_push_returns_ids_and_pop_delivers_them_in_order(
    queue: ReliableQueue, key: str
) -> None:
    ids = await queue.push(key, b"a", "b", b"c")
    assert len(set(ids)) == 3
    batch = await queue.pop(key, count=10)
    assert [(d.id, d.payload, d.deliveries) for d in batch] == [
        (ids[0], b"a", 1),
        (ids[1], b"b", 1),
        (ids[2], b"c", 1),
    ]
    assert await queue.info(key) == QueueInfo(key, waiting=0, inflight=3, delayed=0, dead=0)
    assert sorted(await queue.ack(*batch)) == sorted(ids)
    assert await queue.info(key) == QueueInfo(key, 0, 0, 0, 0)
    assert await existing_keys(queue.client, key) == {"seq"}  # nothing left behind


async def test_the_waiting_list_holds_plain_payloads(
    queue: ReliableQueue, qclient: AsyncClient, key: str
) -> None:
    await queue.push(key, b"first", b"second")
    assert await qclient.lrange(key, 0, -1) == [b"second", b"first"]  # LPUSH in, RPOP out


async def test_raw_lpush_is_consumed_like_a_push(
    queue: ReliableQueue, qclient: AsyncClient, key: str
) -> None:
    pushed = await queue.push(key, b"api-1")
    await qclient.lpush(key, b"raw-1", b"raw-2")
    pushed += await queue.push(key, b"api-2")
    batch = await queue.pop(key, count=10)
    assert [d.payload for d in batch] == [b"api-1", b"raw-1", b"raw-2", b"api-2"]
    assert [batch[0].id, batch[3].id] == pushed
    assert len({d.id for d in batch}) == 4
    assert len(await queue.ack(*batch)) == 4


async def test_identical_payloads_keep_distinct_ids_in_push_order(
    queue: ReliableQueue, key: str
) -> None:
    ids = await queue.push(key, b"same", b"same")
    ids += await queue.push(key, b"same")
    assert [m.id for m in await queue.inspect(key)] == ids
    batch = await queue.pop(key, count=2)
    batch += await queue.pop(key, count=2)
    assert [d.id for d in batch] == ids
    keys = QueueKeys.of(key)
    assert not await queue.client.exists(keys.ids)  # the id map is emptied as messages leave


async def test_key_order_is_priority(queue: ReliableQueue, prefix: str) -> None:
    high, low = f"{prefix}:high", f"{prefix}:low"
    await queue.push(low, b"l1", b"l2")
    await queue.push(high, b"h1")
    batch = await queue.pop(high, low, count=2)
    assert [(d.key, d.payload) for d in batch] == [(high, b"h1"), (low, b"l1")]
    batch += await queue.pop(high, low, count=5)
    assert [d.payload for d in batch][2:] == [b"l2"]
    assert len(await queue.ack(*batch)) == 3


async def test_pop_without_messages_returns_at_once(queue: ReliableQueue, key: str) -> None:
    assert await queue.pop(key) == []
    assert await queue.pop(key, count=5, block=0) == []


async def test_batches_larger_than_one_script_call(queue: ReliableQueue, key: str) -> None:
    payloads = [str(i).encode() for i in range(2500)]
    ids = await queue.push(key, *payloads)
    batch = await queue.pop(key, count=2500)
    assert [d.payload for d in batch] == payloads
    assert [d.id for d in batch] == ids
    assert len(await queue.ack(*batch)) == 2500


async def test_inspect_lists_waiting_and_inflight(queue: ReliableQueue, key: str) -> None:
    ids = await queue.push(key, b"a", b"b", b"c")
    assert [m.payload for m in await queue.inspect(key, start=1, count=5)] == [b"b", b"c"]
    [first] = await queue.pop(key)
    [held] = await queue.inspect(key, pending=True)
    assert (held.id, held.payload, held.state, held.deliveries) == (
        ids[0],
        b"a",
        MessageState.INFLIGHT,
        1,
    )
    assert held.elapsed is not None and held.elapsed >= 0
    assert held.remaining is not None and 0 < held.remaining <= 30
    assert first == Delivery(key, ids[0], b"a", 1)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"count": 0}, "count must be an integer >= 1, got 0"),
        ({"block": -1}, "block must be a positive number of seconds, got -1"),
    ],
)
async def test_bad_pop_arguments_are_refused(
    queue: ReliableQueue, key: str, kwargs: dict[str, float], words: str
) -> None:
    with pytest.raises(QueueError, match=words):
        await queue.pop(key, **kwargs)  # type: ignore[arg-type]


async def test_bad_queue_arguments_are_refused(qclient: AsyncClient) -> None:
    with pytest.raises(QueueError, match="lease must be a positive number of seconds, got 0"):
        ReliableQueue(qclient, lease=0)
    with pytest.raises(QueueError, match="max_deliveries must be an integer >= 1, got 0"):
        ReliableQueue(qclient, max_deliveries=0)
    with pytest.raises(QueueError, match="decodes responses"):
        ReliableQueue(connect("redis://127.0.0.1:1/0", decode_responses=True))
    with pytest.raises(QueueError, match="needs at least one queue key"):
        await ReliableQueue(qclient).pop()
    with pytest.raises(QueueError, match="payload must be bytes or str, got int"):
        await ReliableQueue(qclient).push("x", 5)  # type: ignore[arg-type]
