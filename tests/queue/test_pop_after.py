"""`pop_after`: a consumer's step (send the last batch's results, ack, pop) in one round trip."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError, ResponseError

from redline.connection import AsyncClient, connect
from redline.queue import ReliableQueue


async def test_commands_run_then_ack_and_pop(
    queue: ReliableQueue, qclient: AsyncClient, key: str, prefix: str
) -> None:
    out = f"{prefix}:out"
    await queue.push(key, b"a", b"b", b"c")
    first = await queue.pop(key, count=1)
    commands = [("LPUSH", out, b"answer-a"), ("EXPIRE", out, 60)]
    results, batch = await queue.pop_after(commands, key, count=10, ack=first)
    assert results == [1, True]
    assert [d.payload for d in batch] == [b"b", b"c"]
    assert await qclient.lrange(out, 0, -1) == [b"answer-a"]
    info = await queue.info(key)
    assert (info.waiting, info.inflight) == (0, 2)  # a acked by the same call


async def test_a_failed_command_is_returned_and_the_pop_still_happens(
    queue: ReliableQueue, qclient: AsyncClient, key: str, prefix: str
) -> None:
    wrong = f"{prefix}:a-string"
    await qclient.set(wrong, "x")
    await queue.push(key, b"m")
    results, batch = await queue.pop_after([("LPUSH", wrong, b"r")], key, count=5)
    assert len(results) == 1 and isinstance(results[0], ResponseError)
    assert "WRONGTYPE" in str(results[0])
    assert [d.payload for d in batch] == [b"m"]


async def test_without_commands_it_is_a_pop(queue: ReliableQueue, key: str) -> None:
    await queue.push(key, b"m")
    assert [d.payload for d in (await queue.pop_after([], key, count=5))[1]] == [b"m"]
    assert (await queue.pop_after([], key, count=5)) == ([], [])


async def test_send_runs_commands_over_the_pops_connection_without_a_pop(
    queue: ReliableQueue, qclient: AsyncClient, key: str, prefix: str
) -> None:
    out, wrong = f"{prefix}:out", f"{prefix}:a-string"
    await qclient.set(wrong, "x")
    await queue.push(key, b"m")
    [popped] = (await queue.pop_after([("CLIENT", "ID")], key, count=5))[1:]
    assert [d.payload for d in popped] == [b"m"]
    [pop_connection] = (await queue.pop_after([("CLIENT", "ID")], key, count=5))[0]
    results = await queue.send([("LPUSH", out, b"r"), ("LPUSH", wrong, b"r"), ("CLIENT", "ID")])
    assert results[0] == 1 and "WRONGTYPE" in str(results[1])
    assert results[2] == pop_connection  # one connection for the consumer's sends and pops
    info = await queue.info(key)
    assert (info.waiting, info.inflight) == (0, 1)  # nothing popped, nothing acked
    assert await queue.send([]) == []


async def test_commands_go_out_before_the_pop_blocks(
    queue: ReliableQueue, qclient: AsyncClient, key: str, prefix: str
) -> None:
    out = f"{prefix}:out"
    waiting = asyncio.create_task(queue.pop_after([("LPUSH", out, b"r")], key, block=30))
    for _ in range(200):  # the answer is in while the pop still waits for a message
        if await qclient.llen(out):
            break
        await asyncio.sleep(0.05)
    assert await qclient.llen(out) == 1 and not waiting.done()
    await queue.push(key, b"late")
    results, batch = await asyncio.wait_for(waiting, 30)
    assert results == [1] and [d.payload for d in batch] == [b"late"]


async def test_a_server_that_lost_the_library_still_pops(redis_url: str, prefix: str) -> None:
    client = connect(redis_url)
    try:
        queue, key = ReliableQueue(client), f"{prefix}:q"
        await queue.push(key, b"one", b"two")  # loads the library
        await client.function_flush()  # as a restarted server without persistence
        results, batch = await queue.pop_after([("SET", f"{prefix}:k", "v")], key, count=5)
        assert results == [b"OK"] and [d.payload for d in batch] == [b"one", b"two"]
        assert len(await queue.ack(*batch)) == 2
    finally:
        await client.aclose()


async def _blocked_in(client: AsyncClient) -> bool:
    """Whether a connection of this test's database is blocked in a command (our pop)."""
    db = str(client.connection_pool.connection_kwargs.get("db", 0))
    found = await client.client_list()
    return any("b" in c["flags"] and str(c["db"]) == db for c in found)


async def test_a_connection_killed_mid_call_fails_that_step_then_a_new_one_is_taken(
    redis_url: str, prefix: str
) -> None:
    """(A connection killed while idle is replaced before the next call is written, which then
    succeeds: tests/hardening/test_restart_held.py.)"""
    client = connect(redis_url)
    try:
        queue, key = ReliableQueue(client), f"{prefix}:q"
        await queue.push(key, b"one")
        assert [d.payload for d in (await queue.pop_after([], key))[1]] == [b"one"]
        in_hand = asyncio.create_task(queue.pop_after([], key, block=10))
        async with asyncio.timeout(30):  # the blocking pop has reached the server
            while not await _blocked_in(client):  # noqa: ASYNC110 - no event to wait on
                await asyncio.sleep(0.01)
        await client.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        with pytest.raises(ConnectionError):
            await in_hand
        await queue.push(key, b"two")
        assert [d.payload for d in (await queue.pop_after([], key))[1]] == [b"two"]
    finally:
        await client.aclose()
