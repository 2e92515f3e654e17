"""The short forms of a push's and a pop's reply (queue_push_run; queue_pop's '#', 'runs'),
and a batch that keeps how many it holds rather than its ids (_batch.lua), read back by the
scripts that need its ids."""

from __future__ import annotations

import pytest
from redis.exceptions import ResponseError

from redline.connection import AsyncClient
from tests.queue.test_lua import K, batch_of, call, held

SHORT = ("@", "c1", "#", "runs")


async def test_push_run_gives_the_first_id_and_how_many(aredis: AsyncClient) -> None:
    assert await call(aredis, "queue_push", b"a") == [b"1"]
    assert await call(aredis, "queue_push_run", b"b", b"c", b"d") == [2, 3]
    assert await call(aredis, "queue_push_run", b"e") == [5, 1]
    assert await aredis.lrange("q", 0, -1) == [b"e", b"d", b"c", b"b", b"a"]
    # the ids hash as queue_push writes it: one field per push
    assert await aredis.hgetall(K.ids) == {b"taken": b"0", b"1": b"1", b"2": b"2:3", b"5": b"5"}
    reply = await call(aredis, "queue_pop", 5, 60000, 5)
    assert reply[3::3] == [b"1", b"2", b"3", b"4", b"5"]


async def test_a_short_pop_gives_runs_of_ids_one_count_then_payloads(aredis: AsyncClient) -> None:
    await call(aredis, "queue_push_run", b"a", b"b")
    await aredis.lpush("q", b"raw")  # numbered by the pop, after c: 4
    await call(aredis, "queue_push_run", b"c")
    reply = await call(aredis, "queue_pop", 10, 60000, 5, *SHORT)
    batch = reply[3]
    assert reply[:3] == [-1, 60000, 0]
    assert reply[4:] == [b"1:2,4:4,3:3", b"1", b"a", b"b", b"raw", b"c"]
    assert await held(aredis, batch) == [
        ["1", "2", "4", "3"],
        [1] * 4,
        ["a", "b", "raw", "c"],
        "c1",
    ]
    acked = await call(aredis, "queue_pop", 0, 0, 5, batch, "4:1:1", *SHORT)
    assert acked[2:] == [1, batch, b""]  # (and no batch delivered)
    assert await call(aredis, "queue_pop", 10, 60000, 5, *SHORT) == [-1, -1, 0, b""]  # none


async def test_a_short_pop_lists_counts_when_they_differ(aredis: AsyncClient) -> None:
    await call(aredis, "queue_push_run", b"a", b"b", b"c")
    await call(aredis, "queue_pop", 1, 60000, 5)
    assert await call(aredis, "queue_nack", "1", 1, 0, 5, "", "retry") == 1
    reply = await call(aredis, "queue_pop", 3, 60000, 5, *SHORT)
    assert reply[4:] == [b"1:3", b"2,1,1", b"a", b"b", b"c"]
    assert await held(aredis, reply[3]) == [["1", "2", "3"], [2, 1, 1], ["a", "b", "c"], "c1"]


async def test_a_short_pop_of_one_names_its_batch_after_its_delivery(aredis: AsyncClient) -> None:
    await call(aredis, "queue_push_run", b"a")
    reply = await call(aredis, "queue_pop", 1, 60000, 5, *SHORT)
    assert reply[3:] == [b"b:1:1", b"1", b"1", b"a"]  # 'b:<id>:<token>'


async def test_a_pop_refuses_an_unknown_reply_form(aredis: AsyncClient) -> None:
    with pytest.raises(ResponseError, match="'#' takes 'runs'"):
        await call(aredis, "queue_pop", 1, 60000, 5, "#", "long")


@pytest.mark.parametrize("first", [1, 95, 995])
async def test_a_batch_gives_its_ids_across_a_power_of_ten(aredis: AsyncClient, first: int) -> None:
    """The scripts that need a batch's ids make them from its runs (a string.format per ten,
    a concatenation each): across 9 -> 10, 99 -> 100 and 999 -> 1000."""
    await aredis.set(K.seq, first - 1)
    await call(aredis, "queue_push_run", *[b"m%d" % i for i in range(30)])
    await aredis.lpush("q", b"raw")
    await call(aredis, "queue_push_run", b"last")
    ids = [str(i) for i in range(first, first + 32)]
    await call(aredis, "queue_pop", 40, 60000, 5)
    _, *rows = await call(aredis, "queue_view", 0, 40, 1)
    assert [r.decode() for r in rows[0::6]] == sorted(ids)  # (a batch's view: in string order)
    # a partial ack rewrites the batch from its ids, less the acked ones
    reply = await call(aredis, "queue_pop", 0, 60000, 5, ids[1], 1, ids[-1], 1)
    assert reply[2:] == [2, ids[1].encode(), ids[-1].encode()]
    kept = [ids[0], *ids[2:-1]]
    assert (await held(aredis, await batch_of(aredis, ids[0])))[0] == kept
    _, *rows = await call(aredis, "queue_view", 0, 40, 1)
    assert [r.decode() for r in rows[0::6]] == sorted(kept)
