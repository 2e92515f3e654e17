"""Acknowledging a whole batch by its name, and the consumer a pop names ('@', queue_pop)."""

from __future__ import annotations

import msgspec
import pytest

from redline.connection import AsyncClient
from redline.errors import QueueError
from redline.queue import Batch, Delivery, Holder, QueueInfo, QueueKeys, ReliableQueue
from redline.queue.replies import ack_args, in_order
from tests.queue.support import existing_keys
from tests.queue.test_lua import K, call, held


async def pop_named(client: AsyncClient, count: int, consumer: str = "c1") -> tuple[bytes, list]:
    """queue_pop of `count` naming `consumer`: the batch's name and the (id, payload, token)s."""
    reply = await call(client, "queue_pop", count, 60000, 5, "@", consumer)
    assert reply[2] == 0
    return reply[3], reply[4:]


async def gone(client: AsyncClient) -> None:
    """Nothing of the batch layout is left."""
    for key in (K.inflight, K.since, K.batches, K.batched, K.payloads, K.deliveries):
        assert not await client.exists(key), key


async def test_a_pop_names_its_batch_and_records_its_consumer(aredis: AsyncClient) -> None:
    await call(aredis, "queue_push", b"a", b"b", b"c")
    batch, flat = await pop_named(aredis, 3, "host:1:abc")
    assert batch.startswith(b"b")
    assert flat == [b"1", b"a", 1, b"2", b"b", 1, b"3", b"c", 1]
    assert await held(aredis, batch) == [["1", "2", "3"], [1, 1, 1], ["a", "b", "c"], "host:1:abc"]
    assert await pop_named(aredis, 3) == (b"", [])  # nothing delivered, no batch


async def test_a_whole_batch_is_acked_by_one_pair(aredis: AsyncClient) -> None:
    await call(aredis, "queue_push", b"a", b"b", b"c")
    batch, _ = await pop_named(aredis, 3)
    assert await call(aredis, "queue_pop", 0, 0, 5, batch, "3:1:1") == [-1, -1, 1, batch]
    await gone(aredis)


async def test_a_whole_ack_drops_the_reason_a_message_was_given_back_with(
    aredis: AsyncClient,
) -> None:
    """Only a message given back has a reason, and it comes back with a second delivery (a
    whole ack of first deliveries does not look for reasons)."""
    await call(aredis, "queue_push", b"a", b"b")
    await pop_named(aredis, 2)
    assert await call(aredis, "queue_nack", "2", 1, 0, 5, "boom", "retry") == 1
    assert (await call(aredis, "queue_pop", 0, 0, 5, "1", 1))[2:] == [1, b"1"]
    batch, flat = await pop_named(aredis, 2)
    assert flat == [b"2", b"b", 2]
    assert await aredis.hget(K.reasons, "2") == b"boom"
    assert await call(aredis, "queue_pop", 0, 0, 5, batch, "1:2:2") == [-1, -1, 1, batch]
    await gone(aredis)
    assert not await aredis.exists(K.reasons)


async def test_a_changed_batch_is_refused_whole_and_nothing_is_delivered(
    aredis: AsyncClient,
) -> None:
    await call(aredis, "queue_push", b"a", b"b", b"c")
    batch, _ = await pop_named(aredis, 2)
    assert await call(aredis, "queue_extend", 60000, "1", 1) == [1]  # 1 leaves the batch
    reply = await call(aredis, "queue_pop", 2, 60000, 5, "@", "c1", batch, "2:1:1")
    assert reply[2:] == [0, b""]  # refused, and "c" was not delivered
    assert await aredis.llen("q") == 1
    reply = await call(aredis, "queue_pop", 2, 60000, 5, "@", "c1", "1", 1, "2", 1)
    assert reply[2:5] == [2, b"1", b"2"]  # one by one they are accepted
    assert reply[6:] == [b"3", b"c", 1]


async def test_a_stale_or_wrong_whole_ack_is_refused(aredis: AsyncClient) -> None:
    await call(aredis, "queue_push", b"a", b"b")
    old, _ = await pop_named(aredis, 2)
    await aredis.zadd(K.inflight, {old: 0})  # its lease ends
    new, flat = await pop_named(aredis, 2)  # and the next pop redelivers both (in the same
    # ms, `new` may have `old`'s name: the (id, token) of its first message tells them apart)
    assert flat == [b"1", b"a", 2, b"2", b"b", 2]
    for name, spec in [
        (old, "2:1:1"),  # the batch is gone
        (new, "2:1:1"),  # the old token
        (new, "1:1:2"),  # not all of it
        (new, "2:2:2"),  # not its first message
        (new, "two"),  # not a spec
    ]:
        assert (await call(aredis, "queue_pop", 0, 0, 5, name, spec))[2:] == [0], (name, spec)
    assert await call(aredis, "queue_pop", 0, 0, 5, new, "2:1:2") == [-1, -1, 1, new]
    await gone(aredis)


async def test_a_partly_acked_batch_is_refused_whole(aredis: AsyncClient) -> None:
    await call(aredis, "queue_push", b"a", b"b")
    batch, _ = await pop_named(aredis, 2)
    assert (await call(aredis, "queue_pop", 0, 0, 5, "2", 1))[2:] == [1, b"2"]
    assert (await call(aredis, "queue_pop", 0, 0, 5, batch, "2:1:1"))[2:] == [0]
    assert (await call(aredis, "queue_pop", 0, 0, 5, batch, "1:1:1"))[2:] == [1, batch]
    await gone(aredis)


async def test_the_client_acks_whole_batches_and_falls_back_to_pairs(
    queue: ReliableQueue, key: str
) -> None:
    await queue.push(key, *[b"m%d" % i for i in range(7)])
    first = await queue.pop(key, count=3)
    second = await queue.pop(key, count=3)
    assert {d.batch for d in first} == {first[0].batch} and first[0].batch is not None
    assert await queue.extend(second[1])  # second's batch changed: its ack falls back to pairs
    third = await queue.pop(key, count=3, ack=[*first, *second])
    assert [d.payload for d in third] == [b"m6"]
    assert await queue.ack(*third, *third) == [third[0].id]  # a duplicate: pairs
    assert await queue.info(key) == QueueInfo(key, 0, 0, 0, 0)
    assert await existing_keys(queue.client, key) == {"seq"}


async def test_holders_and_release_of_what_a_consumer_held(qclient: AsyncClient, key: str) -> None:
    # Leases of different lengths: holders come oldest lease first, and leases taken within
    # one millisecond would tie (then the order is the members' names').
    mine = ReliableQueue(qclient, consumer="ns:1", max_deliveries=2, lease=10)
    theirs = ReliableQueue(qclient, consumer="ns:2", max_deliveries=2, lease=20)
    other = ReliableQueue(qclient, consumer="ns:3", max_deliveries=2)
    await mine.push(key, *[b"m%d" % i for i in range(5)])
    kept = await mine.pop(key, count=2)
    lost = [*await theirs.pop(key, count=2), *await theirs.pop(key, count=1)]
    # kept[1] has a lease of its own now: its consumer is not known
    assert await mine.extend(kept[1], lease=40)
    assert await mine.holders(key) == [Holder("ns:1", 1, 1), Holder("ns:2", 2, 3), Holder("", 0, 1)]
    viewed = {m.id: m.consumer for m in await mine.inspect(key, pending=True)}
    assert viewed == {kept[0].id: "ns:1", kept[1].id: "", **{d.id: "ns:2" for d in lost}}
    assert await mine.release(key, "ns:2", "ns:9") == 3
    assert await mine.holders(key) == [Holder("ns:1", 1, 1), Holder("", 0, 1)]
    again = await other.pop(key, count=5)  # what ns:2 held comes back, delivered again
    assert [(d.payload, d.deliveries) for d in again] == [(d.payload, 2) for d in lost]
    assert await theirs.ack(*lost) == []  # ns:2's acks are refused now
    assert await mine.release(key, "ns:1") == 1
    [second] = await mine.pop(key, count=5)  # kept[0] again: its second delivery
    assert second.id == kept[0].id and await mine.release(key, "ns:1") == 1
    assert [m.id for m in await mine.dead(key)] == [kept[0].id]  # past max_deliveries
    assert "its consumer is gone" in (await mine.dead(key))[0].reason
    assert await mine.ack(kept[1], second) == [kept[1].id]  # second: dead, refused
    assert await other.ack(*again) == [d.id for d in again]
    assert await mine.info(key) == QueueInfo(key, 0, 0, 0, 1)


async def test_release_needs_consumer_names(queue: ReliableQueue, key: str) -> None:
    with pytest.raises(QueueError, match="non-empty name"):
        await queue.release(key, "")
    assert await queue.release(key) == 0


def test_two_batches_of_one_name_are_not_both_acked_by_name() -> None:
    # A batch closed and a new one opened in the same ms take the same name: one goes by id.
    old, new = Batch("b1", 1, "1:1:1"), Batch("b1", 1, "1:2:1")
    deliveries = [Delivery("q", "1", b"a", 1, old), Delivery("q", "2", b"b", 1, new)]
    assert ack_args(deliveries) == (["b1", "1:1:1", "2", 1], {"b1": ["1"]})
    assert ack_args(deliveries[:1]) == (["b1", "1:1:1"], {"b1": ["1"]})
    assert ack_args([Delivery("q", "3", b"c", 2)]) == (["3", 2], {})


async def test_a_batch_extended_whole_keeps_its_consumer(qclient: AsyncClient, key: str) -> None:
    # Every message a batch holds, extended with its token: the batch's lease is renewed as it
    # is (nothing per message), so its consumer is still known and can be released.
    mine = ReliableQueue(qclient, consumer="ns:1", max_deliveries=2, lease=1)
    await mine.push(key, b"a", b"b", b"c")
    held = await mine.pop(key, count=3)
    await mine.ack(held[0])  # the batch holds b and c now
    inflight = QueueKeys.of(key).inflight
    before = await qclient.zrange(inflight, 0, -1, withscores=True)
    assert await mine.extend(*held[1:], lease=60) == held[1:]
    after = await qclient.zrange(inflight, 0, -1, withscores=True)
    assert [m for m, _ in after] == [m for m, _ in before] and after[0][1] > before[0][1] + 50_000
    assert await mine.holders(key) == [Holder("ns:1", 1, 2)]
    assert await mine.release(key, "ns:1") == 2
    info = await mine.info(key)
    assert (info.inflight, info.delayed) == (0, 2)  # due again at once


async def test_a_batch_leased_by_an_older_version_keeps_its_since_in_the_since_hash(
    aredis: AsyncClient,
) -> None:
    """Before 2026-12-07 noon a batch's record had no `since` (its sixth item): the
    since hash held it. Such a batch is still shown, split and closed with it."""
    await call(aredis, "queue_push", b"a", b"b")
    batch, _ = await pop_named(aredis, 2)
    *record, since = msgspec.msgpack.decode(await aredis.hget(K.batches, batch))
    await aredis.hset(K.batches, batch, msgspec.msgpack.encode(record))
    await aredis.hset(K.since, batch, since - 1000)
    rows = await call(aredis, "queue_view", 0, 10, 1)
    assert rows[1:3] + rows[7:9] == [b"1", b"a", b"2", b"b"]
    assert rows[5] == rows[11] == since - 1000
    assert await call(aredis, "queue_extend", 60000, "1", 1) == [1]  # 1 leaves the batch
    assert int(await aredis.hget(K.since, "1")) == since - 1000
    assert (await call(aredis, "queue_pop", 0, 0, 5, "1", 1, "2", 1))[2:] == [2, b"1", b"2"]
    await gone(aredis)


def test_acked_ids_come_in_the_order_of_the_deliveries_accepted() -> None:
    """A stale delivery beside its message's redelivery in one ack: the id takes the place of
    the delivery that can be accepted (the highest token), as the model says (hypothesis found
    `['1', '2']` for a stale 1, then 2, then 1 redelivered)."""
    stale, other, again = (Delivery("q", i, b"", n) for i, n in (("1", 1), ("2", 1), ("1", 2)))
    assert in_order([stale, other, again], ["1", "2"]) == ["2", "1"]
    assert in_order([other, stale, again], ["2", "1"]) == ["2", "1"]
    assert in_order([again, other], ["2", "1"]) == ["1", "2"]


async def test_a_batch_of_one_is_named_after_its_delivery_and_closed_by_that_name(
    aredis: AsyncClient,
) -> None:
    """'b:<id>:<token>': no other delivery has that name, so the whole ack closes the batch by
    it (its lease's ZREM answers whether it was still open) without reading its record."""
    await call(aredis, "queue_push", b"a", b"b")
    batch, flat = await pop_named(aredis, 1)
    assert (batch, flat) == (b"b:1:1", [b"1", b"a", 1])
    assert await call(aredis, "queue_nack", "1", 1, 0, 5, "boom", "retry") == 1
    again, flat = await pop_named(aredis, 1)  # the redelivery: another name
    assert (again, flat) == (b"b:1:2", [b"1", b"a", 2])
    stale = await call(aredis, "queue_pop", 1, 60000, 5, "b:1:1", "1:1:1")
    assert stale[2:] == [0]  # refused whole: nothing delivered (the caller goes one by one)
    assert await aredis.hexists(K.reasons, "1")
    assert (await call(aredis, "queue_pop", 0, 0, 5, "b:1:2", "1:1:2"))[2:] == [1, b"b:1:2"]
    assert not await aredis.hexists(K.reasons, "1")  # a redelivery's whole ack drops its reason
    assert (await call(aredis, "queue_pop", 0, 0, 5, "b:1:2", "1:1:2"))[2:] == [0]  # once
    batch, _ = await pop_named(aredis, 1)
    assert batch == b"b:2:1"
    assert await call(aredis, "queue_extend", 60000, "2", 1) == [1]  # found by id and token
    assert (await call(aredis, "queue_pop", 0, 0, 5, "2", 1))[2:] == [1, b"2"]
    await gone(aredis)


async def test_a_batch_of_one_leased_by_an_older_version_is_still_acked(
    aredis: AsyncClient,
) -> None:
    """Before 2026-12-07 evening a batch of one was named 'b:<id>': such a batch is still acked
    whole (its record read, as then), found by id to be extended and acked, and recovered."""
    await call(aredis, "queue_push", b"a", b"b", b"c")
    for one in (b"1", b"2", b"3"):
        batch, _ = await pop_named(aredis, 1)
        older = b"b:" + one
        deadline = await aredis.zscore(K.inflight, batch)
        await aredis.zadd(K.inflight, {older: deadline})
        await aredis.hset(K.batches, older, await aredis.hget(K.batches, batch))
        await aredis.zrem(K.inflight, batch)
        await aredis.hdel(K.batches, batch)
    assert (await call(aredis, "queue_pop", 0, 0, 5, "b:1", "1:1:1"))[2:] == [1, b"b:1"]
    assert await call(aredis, "queue_extend", 60000, "2", 1) == [1]
    assert (await call(aredis, "queue_pop", 0, 0, 5, "2", 1))[2:] == [1, b"2"]
    assert await call(aredis, "queue_recover", 10, 0, 5) == [1, 0]  # 3, as any lease
    assert (await call(aredis, "queue_pop", 1, 60000, 5))[3:6] == [b"3", b"c", 2]


async def test_an_id_named_without_its_token_holds_nothing(aredis: AsyncClient) -> None:
    """A call that names an id but no token (ARGV cut short) finds no batch of one for it
    (whose name carries the token) and changes nothing, as a wrong token would."""
    await call(aredis, "queue_push", b"a")
    batch, _ = await pop_named(aredis, 1)
    assert await call(aredis, "queue_extend", 60000, "1") == [0]
    assert await aredis.zscore(K.inflight, batch) is not None  # still held as it was
