"""Payloads are bytes end to end: empty, large and non-UTF-8 ones come back unchanged."""

from __future__ import annotations

import asyncio
import os

from redline.connection import AsyncClient
from redline.queue import ReliableQueue
from tests.conftest import needs_tool

PAYLOADS = [b"", os.urandom(1 << 20), b"\xff\xfe\x00\x80 not utf-8 \xc3\x28", "caf\u00e9".encode()]


async def test_payloads_round_trip_through_push_pop_and_ack(queue: ReliableQueue, key: str) -> None:
    ids = await queue.push(key, *PAYLOADS)
    assert [m.payload for m in await queue.inspect(key)] == PAYLOADS
    batch = await queue.pop(key, count=10)
    assert [d.payload for d in batch] == PAYLOADS
    assert [d.id for d in batch] == ids
    assert sorted(await queue.ack(*batch)) == sorted(ids)


async def test_payloads_round_trip_through_raw_lpush_retries_and_dead_letters(
    queue: ReliableQueue, qclient: AsyncClient, key: str
) -> None:
    await qclient.lpush(key, *PAYLOADS)
    batch = await queue.pop(key, count=10)
    assert sorted(d.payload for d in batch) == sorted(PAYLOADS)
    for delivery in batch:
        await queue.nack(delivery, delay=0)
    assert [m.payload for m in await queue.inspect(key, delayed=True)] == [d.payload for d in batch]
    again = await queue.pop(key, count=10)
    assert [d.payload for d in again] == [d.payload for d in batch]
    for delivery in again:
        await queue.dead_letter(delivery, reason="r\u00e9ason")
    dead = await queue.dead(key)
    assert [(m.payload, m.reason) for m in dead] == [(d.payload, "r\u00e9ason") for d in batch]


async def test_str_payloads_are_sent_as_utf8(queue: ReliableQueue, key: str) -> None:
    await queue.push(key, "caf\u00e9")
    [delivery] = await queue.pop(key)
    assert delivery.payload == "caf\u00e9".encode()


async def redis_cli(url: str, *args: str) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        "redis-cli", "-u", url, *args, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    return out


@needs_tool("redis-cli", "redis-tools")
async def test_redis_cli_produces_and_consumes(aredis: AsyncClient, redis_url: str) -> None:
    queue = ReliableQueue(aredis)
    await redis_cli(redis_url, "LPUSH", "q", "from-cli")
    [delivery] = await queue.pop("q")
    assert delivery.payload == b"from-cli"
    await queue.push("q", b"to-cli")
    assert await redis_cli(redis_url, "RPOP", "q") == b"to-cli\n"
