"""Server memory per message: a ReliableQueue against a plain Redis list of the same payloads.

`N` waiting messages (default 1,000,000; ``REDLINE_BENCH_MEMORY_N`` overrides) of 100 bytes each,
measured as the growth of ``INFO memory`` ``used_memory`` on an embedded server:

- a plain list filled with ``LPUSH`` (the floor: what the payloads cost in Redis at all);
- a ReliableQueue after ``push`` (waiting: the list plus the ids kept beside it);
- the same queue after ``pop`` of every message (in flight: payload, lease, delivery count).

The numbers in docs/guarantees.md ("Memory") come from this script.
"""

from __future__ import annotations

import asyncio
import os

from rich.console import Console
from rich.table import Table

from redline.connection import AsyncClient, connect
from redline.connection.embedded import EmbeddedServer
from redline.queue import ReliableQueue

N = int(os.environ.get("REDLINE_BENCH_MEMORY_N", "1000000"))
SIZE = 100
BATCH = 1000


def _payloads(start: int) -> list[bytes]:
    return [f"{i:0{SIZE}d}".encode() for i in range(start, min(N, start + BATCH))]


async def _used(client: AsyncClient) -> int:
    return int((await client.info("memory"))["used_memory"])


async def _plain(client: AsyncClient) -> int:
    before = await _used(client)
    for start in range(0, N, BATCH):
        await client.lpush("plain", *_payloads(start))
    used = await _used(client) - before
    await client.delete("plain")
    # Valkey 8+ frees a deleted key in the background (lazyfree-lazy-user-del): measuring the
    # queue while the list is still being freed would count that as the queue using less.
    while int((await client.info("memory")).get("lazyfree_pending_objects", 0)):  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    return used


async def _queue(client: AsyncClient) -> tuple[int, int]:
    queue = ReliableQueue(client, lease=3600)
    before = await _used(client)
    for start in range(0, N, BATCH):
        await queue.push("q", *_payloads(start))
    waiting = await _used(client) - before
    for _ in range(0, N, BATCH):
        await queue.pop("q", count=BATCH)
    return waiting, await _used(client) - before


async def _measure(url: str) -> list[tuple[str, int]]:
    client = connect(url)
    plain = await _plain(client)
    waiting, inflight = await _queue(client)
    await client.aclose()
    return [
        ("plain list (LPUSH)", plain),
        ("ReliableQueue, waiting", waiting),
        ("ReliableQueue, in flight", inflight),
    ]


def main() -> None:
    with EmbeddedServer(port=None) as server:
        rows = asyncio.run(_measure(server.url))
    table = Table(title=f"memory: {N:,} messages of {SIZE} bytes on one server")
    table.add_column("structure")
    table.add_column("MB", justify="right")
    table.add_column("bytes/message", justify="right")
    table.add_column("vs plain", justify="right")
    for label, used in rows:
        ratio = used / rows[0][1] if rows[0][1] else 0
        table.add_row(label, f"{used / 1e6:,.1f}", f"{used / N:,.0f}", f"{ratio:.2f}x")
    Console().print(table)
