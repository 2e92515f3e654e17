"""Each queue script on its own, against the real server: what it returns and what it leaves."""

from __future__ import annotations

from typing import Any

import msgspec

from redline.connection import AsyncClient
from redline.queue import QueueKeys
from redline.scripting import scripts

K = QueueKeys.of("q")


async def call(client: AsyncClient, script: str, *args: Any) -> Any:
    return await scripts.run(client, script, K.of_script(script), args)


async def server_ms(client: AsyncClient) -> int:
    seconds, micros = await client.time()
    return seconds * 1000 + micros // 1000


async def batch_of(client: AsyncClient, mid: str) -> bytes:
    """The batch that leases message `mid` with the others one pop delivered (_batch.lua)."""
    batch = (await batched(client)).get(mid.encode())
    assert batch is not None, f"{mid} is not leased with a batch"
    return batch


async def batched(client: AsyncClient) -> dict[bytes, bytes]:
    """id -> batch, for every message a batch holds: the runs of ids the `batched` zset indexes
    (`first:last:batch` scored `first`), and the batches of one (`b:<id>:<token>`, or `b:<id>`
    as leased before 2026-12-07 evening, with no run), each batch's checked against what it
    holds."""
    index: dict[bytes, bytes] = {}
    for member, score in await client.zrange(K.batched, 0, -1, withscores=True):
        first, last, batch = member.split(b":", 2)
        assert int(first) == score
        index.update({str(i).encode(): batch for i in range(int(first), int(last) + 1)})
    for member in await client.zrange(K.inflight, 0, -1):
        if member.startswith(b"b:"):
            alone = member.split(b":")[1]
            assert alone not in index  # no run
            index[alone] = member
    for batch in set(index.values()):
        ids = sorted(k for k, b in index.items() if b == batch)
        assert ids == sorted(i.encode() for i in (await held(client, batch))[0])
    return index


async def held(client: AsyncClient, batch: bytes) -> list[Any]:
    """[ids, delivery counts, payloads] of what `batch` still holds, and its consumer when a pop
    named one (the packed value's fifth item, its runs, is checked by `batched`; the sixth, when
    it was delivered, by `since_of`)."""
    record = msgspec.msgpack.decode(await client.hget(K.batches, batch))
    ids, counts, payloads, consumer = record[:4]
    if isinstance(ids, int):  # how many: the ids are those of its runs, in order (_batch.lua)
        spans = [run.split(":")[:2] for run in record[4]]
        ids = [str(i) for first, last in spans for i in range(int(first), int(last) + 1)]
        assert len(ids) == record[0]
    if payloads is False:  # kept apart, by a batch with runs (_batch.lua)
        payloads = msgspec.msgpack.decode(await client.hget(K.batches, b"p" + batch))
    if isinstance(counts, int):  # all equal
        counts = [counts] * len(ids)
    return [ids, counts, payloads, consumer] if consumer else [ids, counts, payloads]


async def since_of(client: AsyncClient, batch: bytes) -> int:
    """When `batch` was delivered (ms): its record's sixth item, not a field of the since hash."""
    record = msgspec.msgpack.decode(await client.hget(K.batches, batch))
    assert not await client.hexists(K.since, batch)
    return int(record[5])


async def test_push_lpushes_payloads_and_records_their_ids(aredis: AsyncClient) -> None:
    assert await call(aredis, "queue_push", b"a", b"b", b"a") == [b"1", b"2", b"3"]
    assert await aredis.lrange("q", 0, -1) == [b"a", b"b", b"a"]  # oldest at the right
    await aredis.lpush("q", b"raw")
    assert await call(aredis, "queue_push", b"c") == [b"4"]
    ids = await aredis.hgetall(K.ids)  # position -> id:count, one field per push; 4 is raw
    assert ids == {b"taken": b"0", b"1": b"1:3", b"5": b"4"}
    assert next(iter(ids)) == b"taken"  # first, where a pop's look at it is cheapest
    assert await aredis.get(K.seq) == b"4"


async def test_pop_takes_pushed_ids_and_gives_raw_payloads_fresh_ones(aredis: AsyncClient) -> None:
    await call(aredis, "queue_push", b"pushed")
    await aredis.lpush("q", b"raw")
    before = await server_ms(aredis)
    reply = await call(aredis, "queue_pop", 10, 5000, 5)
    assert reply == [-1, 5000, 0, b"1", b"pushed", 1, b"2", b"raw", 1]
    assert not await aredis.exists("q", K.ids)
    batch = await batch_of(aredis, "1")  # one lease for what one pop delivered
    assert await batched(aredis) == {b"1": batch, b"2": batch}
    assert await held(aredis, batch) == [["1", "2"], [1, 1], ["pushed", "raw"]]
    assert not await aredis.exists(K.payloads, K.deliveries)  # no per-message fields
    since = await since_of(aredis, batch)
    assert since >= before
    assert await aredis.zrange(K.inflight, 0, -1, withscores=True) == [(batch, since + 5000)]


async def test_pop_order_is_due_delayed_then_claim_list_then_waiting(aredis: AsyncClient) -> None:
    await aredis.lpush("q", b"waiting")
    await aredis.lpush(K.claimed, b"claimed")
    await aredis.zadd(K.delayed, {"7": 0, "8": 9e12})
    await aredis.hset(K.payloads, mapping={"7": b"due", "8": b"later"})
    await aredis.hset(K.deliveries, mapping={"7": 1, "8": 1})
    reply = await call(aredis, "queue_pop", 2, 1000, 5)
    assert reply[1:] == [1000, 0, b"7", b"due", 2, b"1", b"claimed", 1]
    assert reply[0] > 0  # ms until "8" is due
    assert await aredis.lrange("q", 0, -1) == [b"waiting"]


async def test_ack_checks_the_fencing_token(aredis: AsyncClient) -> None:
    await call(aredis, "queue_push", b"a", b"b")
    await call(aredis, "queue_pop", 2, 1000, 5)
    batch = await batch_of(aredis, "1")
    assert (await call(aredis, "queue_pop", 0, 0, 5, "1", 2, "2", 1, "9", 1))[2:] == [1, b"2"]
    assert await aredis.zrange(K.inflight, 0, -1) == [batch]  # still leasing "1"
    assert await held(aredis, batch) == [["1"], [1], ["a"]]
    assert list(await batched(aredis)) == [b"1"]
    assert (await call(aredis, "queue_pop", 0, 0, 5, "1", 1))[2:] == [1, b"1"]
    assert not await aredis.exists(K.inflight, K.since, K.batches, K.batched)  # closed


async def test_extend_renews_held_leases_only(aredis: AsyncClient) -> None:
    await call(aredis, "queue_push", b"a", b"b")
    await call(aredis, "queue_pop", 2, 1000, 5)
    assert await call(aredis, "queue_extend", 60000, "1", 1, "2", 5) == [1, 0]
    assert await aredis.zscore(K.inflight, "1") >= await server_ms(aredis) + 50000
    assert list(await batched(aredis)) == [b"2"]  # a stale token leaves it in its batch
    assert (
        await aredis.zscore(K.inflight, await batch_of(aredis, "2"))
        < await server_ms(aredis) + 2000
    )


async def test_nack_delays_dead_letters_or_refuses(aredis: AsyncClient) -> None:
    await call(aredis, "queue_push", b"a", b"b", b"c")
    await call(aredis, "queue_pop", 3, 1000, 5)
    assert await call(aredis, "queue_nack", "1", 2, 0, 5, "", "retry") == 0  # stale token
    assert await call(aredis, "queue_nack", "1", 1, 60000, 5, "later", "retry") == 1
    assert await aredis.zscore(K.delayed, "1") >= await server_ms(aredis) + 50000
    assert await aredis.hget(K.reasons, "1") == b"later"
    assert await call(aredis, "queue_nack", "2", 1, 0, 1, "boom", "retry") == 2
    assert await aredis.hget(K.reasons, "2") == b"max deliveries (1) reached: boom"
    assert await call(aredis, "queue_nack", "3", 1, 0, 5, "bad", "dead") == 2
    assert await aredis.zrange(K.dead, 0, -1) == [b"2", b"3"]
    assert await aredis.zcard(K.inflight) == 0
    assert await aredis.hlen(K.since) == 0


async def test_recover_moves_expired_or_old_enough_deliveries(aredis: AsyncClient) -> None:
    await call(aredis, "queue_push", b"a", b"b", b"c")
    await call(aredis, "queue_pop", 1, 60000, 5)
    await call(aredis, "queue_pop", 2, 60000, 5)
    await aredis.zadd(K.inflight, {await batch_of(aredis, "1"): 0})  # lease over
    assert await call(aredis, "queue_recover", 10, -1, 5) == [1, 0]
    assert await aredis.zrange(K.delayed, 0, -1) == [b"1"]
    assert await call(aredis, "queue_extend", 60000, "2", 1) == [1]  # a lease of its own
    await aredis.hset(K.deliveries, "2", 5)
    assert await call(aredis, "queue_recover", 10, 0, 5) == [1, 1]  # delivered >= 0 ms ago
    assert await aredis.zrange(K.dead, 0, -1) == [b"2"]
    assert await aredis.zcard(K.inflight) == 0


async def test_info_counts(aredis: AsyncClient) -> None:
    await call(aredis, "queue_push", b"a", b"b", b"c", b"d")
    await aredis.lpush(K.claimed, b"x")
    await call(aredis, "queue_pop", 1, 60000, 5)  # takes "x" (from the claim list)
    await call(aredis, "queue_pop", 1, 60000, 5)  # and "a"
    await aredis.zadd(K.inflight, {await batch_of(aredis, "1"): 0})
    await aredis.zadd(K.delayed, {"8": 0})
    await aredis.zadd(K.dead, {"9": 0})
    assert await call(aredis, "queue_info") == [3, 2, 1, 1, 1, 0, 0, 10000, 180 * 86400000]


async def test_waiting_pages_in_delivery_order_with_known_ids(aredis: AsyncClient) -> None:
    await aredis.lpush("q", b"claimed")
    await call(aredis, "queue_push", b"same", b"same")
    await aredis.lpush("q", b"same", b"raw")
    await aredis.lmove("q", K.claimed, "RIGHT", "LEFT")  # what a blocking pop's BLMOVE does
    page = await call(aredis, "queue_waiting", 0, 10)
    assert page == [b"", b"claimed", b"1", b"same", b"2", b"same", b"", b"same", b"", b"raw"]
    assert await call(aredis, "queue_waiting", 2, 2) == [b"2", b"same", b"", b"same"]


async def test_view_lists_a_page_of_one_zset(aredis: AsyncClient) -> None:
    await call(aredis, "queue_push", b"a", b"b")
    await call(aredis, "queue_pop", 2, 60000, 5)
    await call(aredis, "queue_nack", "2", 1, 0, 1, "why", "dead")
    now, *inflight = await call(aredis, "queue_view", 0, 10, 1)
    since = await since_of(aredis, await batch_of(aredis, "1"))
    assert inflight == [b"1", b"a", 1, since + 60000, since, b""]
    _, *dead = await call(aredis, "queue_view", 0, 10, 3)
    assert dead[:3] == [b"2", b"b", 1] and dead[4:] == [0, b"why"]
    assert dead[3] <= now
    assert len(await call(aredis, "queue_view", 1, 10, 1)) == 1  # past the end: just the time


async def test_purge_requeue_delete(aredis: AsyncClient) -> None:
    await call(aredis, "queue_push", b"a", b"b", b"c", b"d")
    await call(aredis, "queue_pop", 3, 60000, 5)
    await call(aredis, "queue_nack", "1", 1, 60000, 5, "", "retry")
    await call(aredis, "queue_nack", "2", 1, 0, 5, "x", "dead")
    await call(aredis, "queue_nack", "3", 1, 0, 5, "y", "dead")
    assert await call(aredis, "queue_purge") == 2  # "d" waiting, "1" delayed
    assert not await aredis.exists("q", K.delayed, K.ids)
    assert not await aredis.hexists(K.payloads, "1")
    assert await call(aredis, "queue_requeue", "2", "1") == 1
    assert await aredis.zrange(K.delayed, 0, -1) == [b"2"]
    assert await aredis.hget(K.deliveries, "2") == b"0"
    assert not await aredis.hexists(K.reasons, "2")
    assert await call(aredis, "queue_delete", "3", "2") == 1
    assert not await aredis.exists(K.dead, K.reasons)
    assert await aredis.hkeys(K.payloads) == [b"2"]


async def test_pop_acks_first_then_delivers_in_the_same_call(aredis: AsyncClient) -> None:
    await call(aredis, "queue_push", b"a", b"b")
    await call(aredis, "queue_pop", 1, 60000, 5)  # delivers "1"
    reply = await call(aredis, "queue_pop", 1, 60000, 5, "1", 1)
    assert reply[2:] == [1, b"1", b"2", b"b", 1]
    assert await aredis.zrange(K.inflight, 0, -1) == [await batch_of(aredis, "2")]
    assert list(await batched(aredis)) == [b"2"]
    assert await aredis.hlen(K.batches) == 1


async def test_pop_gives_back_expired_leases_ahead_of_fresh_messages(aredis: AsyncClient) -> None:
    await call(aredis, "queue_push", b"a", b"b", b"c")
    await call(aredis, "queue_pop", 1, 60000, 5)  # delivers "1", never acked
    await aredis.zadd(K.inflight, {await batch_of(aredis, "1"): 0})  # its lease is over
    reply = await call(aredis, "queue_pop", 2, 60000, 5)
    assert reply[2:] == [0, b"1", b"a", 2, b"2", b"b", 1]  # the redelivery first
    assert await aredis.zcard(K.delayed) == 0
    assert await aredis.lrange("q", 0, -1) == [b"c"]


async def test_pop_recovers_no_more_than_a_bound_per_call(aredis: AsyncClient) -> None:
    await call(aredis, "queue_push", *[b"m"] * 150)
    await call(aredis, "queue_pop", 150, 60000, 5)
    batch = await batch_of(aredis, "1")
    await aredis.zadd(K.inflight, {batch: 0})
    reply = await call(aredis, "queue_pop", 1, 60000, 5)
    assert reply[3:5] == [b"1", b"m"]
    assert await aredis.zcard(K.delayed) == 99  # 100 recovered, 1 redelivered at once
    assert len((await held(aredis, batch))[0]) == 50  # the next pops take the rest
    assert (await call(aredis, "queue_info"))[1:5:3] == [51, 50]  # in flight, expired


async def test_pop_dead_letters_an_expired_lease_past_max_deliveries(aredis: AsyncClient) -> None:
    await call(aredis, "queue_push", b"a", b"b")
    await call(aredis, "queue_pop", 2, 60000, 2)
    assert await call(aredis, "queue_extend", 60000, "1", 1) == [1]  # a lease of its own
    await call(aredis, "queue_pop", 0, 0, 2, "2", 1)  # b acked: a is all that is in flight
    await aredis.hset(K.deliveries, "1", 2)
    await aredis.zadd(K.inflight, {"1": 0})
    assert (await call(aredis, "queue_pop", 1, 60000, 2))[2:] == [0]
    assert await aredis.zrange(K.dead, 0, -1) == [b"1"]
    assert await aredis.hget(K.reasons, "1") == b"max deliveries (2) reached: lease expired"
    assert not await aredis.exists(K.inflight, K.since)


async def test_an_ack_of_an_expired_lease_in_the_same_pop_wins(aredis: AsyncClient) -> None:
    await call(aredis, "queue_push", b"a")
    await call(aredis, "queue_pop", 1, 60000, 5)
    await aredis.zadd(K.inflight, {await batch_of(aredis, "1"): 0})
    assert (await call(aredis, "queue_pop", 1, 60000, 5, "1", 1))[2:] == [1, b"1"]
    assert not await aredis.exists(K.inflight, K.delayed, K.payloads, K.batches, K.batched)


async def test_dead_letters_past_the_retention_are_dropped_oldest_first(
    aredis: AsyncClient,
) -> None:
    assert await call(aredis, "queue_retention", 2, 3600000) == [2, 3600000]
    await call(aredis, "queue_push", b"a", b"b", b"c", b"d")
    await call(aredis, "queue_pop", 4, 60000, 5)
    for mid in ("1", "2", "3"):
        assert await call(aredis, "queue_nack", mid, 1, 0, 5, f"bad {mid}", "dead") == 2
    assert await aredis.zrange(K.dead, 0, -1) == [b"2", b"3"]
    assert not await aredis.hexists(K.payloads, "1")
    assert not await aredis.hexists(K.deliveries, "1")
    assert not await aredis.hexists(K.reasons, "1")
    await aredis.zadd(K.dead, {"2": 1})  # dead-lettered long ago: past the age
    await call(aredis, "queue_nack", "4", 1, 0, 5, "bad 4", "dead")
    assert await aredis.zrange(K.dead, 0, -1) == [b"3", b"4"]
    assert await aredis.hkeys(K.payloads) == [b"3", b"4"]
    assert (await call(aredis, "queue_info"))[5:] == [2, 0, 2, 3600000]


async def test_a_redelivery_joins_the_batch_of_the_pop_that_makes_it(aredis: AsyncClient) -> None:
    await call(aredis, "queue_push", b"a", b"b")
    await call(aredis, "queue_pop", 1, 60000, 5)
    assert await call(aredis, "queue_nack", "1", 1, 0, 5, "", "retry") == 1
    assert await aredis.hgetall(K.payloads) == {b"1": b"a"}  # delayed: fields of its own
    assert not await aredis.exists(K.batches, K.batched)  # its batch closed when it left
    reply = await call(aredis, "queue_pop", 2, 60000, 5)
    assert reply[2:] == [0, b"1", b"a", 2, b"2", b"b", 1]
    assert await held(aredis, await batch_of(aredis, "1")) == [["1", "2"], [2, 1], ["a", "b"]]
    assert not await aredis.exists(K.payloads, K.deliveries)


async def test_a_pop_taking_part_of_a_push_keeps_the_rest_of_its_ids(aredis: AsyncClient) -> None:
    await call(aredis, "queue_push", b"a", b"b", b"c", b"d", b"e")
    await aredis.lpush("q", b"raw")
    assert (await call(aredis, "queue_pop", 2, 60000, 5))[3::3] == [b"1", b"2"]
    assert await aredis.hgetall(K.ids) == {b"taken": b"2", b"3": b"3:3"}
    assert await call(aredis, "queue_waiting", 1, 10) == [b"4", b"d", b"5", b"e", b"", b"raw"]
    reply = await call(aredis, "queue_pop", 10, 60000, 5)
    assert reply[3::3] == [b"3", b"4", b"5", b"6"]  # the raw one gets the next id
    assert not await aredis.exists(K.ids)


async def test_an_index_left_by_an_older_version_gives_way(aredis: AsyncClient) -> None:
    # Before 2026-12-07 `batched` was a hash (id -> batch): the next pop replaces it.
    await aredis.hset(K.batched, mapping={"_": "-" * 65, "99": "b1"})
    await call(aredis, "queue_push", b"a", b"b")
    reply = await call(aredis, "queue_pop", 2, 60000, 5, "@", "c1")
    batch = reply[3]
    assert await batched(aredis) == {b"1": batch, b"2": batch}
    assert (await call(aredis, "queue_pop", 0, 60000, 5, "99", "1"))[2:] == [0]  # unknown
    assert (await call(aredis, "queue_pop", 0, 60000, 5, "1", "1"))[2:] == [1, b"1"]


async def test_one_ack_finds_ids_of_several_batches_loose_and_unknown(aredis: AsyncClient) -> None:
    await call(aredis, "queue_push", *[b"m%d" % i for i in range(1, 7)])
    await call(aredis, "queue_pop", 3, 60000, 5)  # 1 2 3
    await call(aredis, "queue_pop", 3, 60000, 5)  # 4 5 6
    assert await call(aredis, "queue_extend", 60000, "5", "1") == [1]  # 5: a lease of its own
    pairs = ["6", "1", "5", "1", "2", "1", "99", "1", "1", "2", "abc", "1", "4", "1"]
    reply = await call(aredis, "queue_pop", 0, 60000, 5, *pairs)
    assert reply[2:] == [4, b"6", b"5", b"2", b"4"]  # in the order asked; 99, abc, stale 1 not
    assert await batched(aredis) == {
        b"1": await batch_of(aredis, "1"),
        b"3": await batch_of(aredis, "3"),
    }
