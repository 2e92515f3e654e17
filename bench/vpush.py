"""vpush throughput between two servers, against the raw ceiling of a pop-then-push loop.

The raw loop (RPOP here, LPUSH there, no guarantees: a crash between the two loses a message)
is the floor of round trips any transfer needs; vpush adds the lease, the claim/finish script and
the remote dedupe record in the same number of round trips per transfer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from rich.console import Console
from rich.table import Table

from redline.connection import AsyncClient, connect
from redline.connection.embedded import EmbeddedServer
from redline.runtime import run_service
from redline.services.vpush import VpushConfig, build

N = 5000


async def _fill(client: AsyncClient) -> None:
    await client.delete("in", "out")
    for start in range(0, N, 1000):
        await client.lpush("in", *[f"m{i}" for i in range(start, min(N, start + 1000))])


async def _raw(here: AsyncClient, there: AsyncClient, _: str, __: str) -> None:
    while (message := await here.rpop("in")) is not None:
        await there.lpush("out", message)


def _vpush(batch: int) -> Callable[[AsyncClient, AsyncClient, str, str], Awaitable[None]]:
    async def move(here: AsyncClient, there: AsyncClient, url: str, remote: str) -> None:
        fields = {"redis": url, "in": "in", "out": "out", "outRedis": remote, "batch": batch}
        config = VpushConfig.model_validate({**fields, "popTimeout": 0.2, "lease": 5})
        service, hooks = build(config)
        stopping = asyncio.Event()
        task = asyncio.create_task(run_service(service, config, hooks, stopping))
        while int(await there.llen("out")) < N:  # noqa: ASYNC110 - Redis state, no event
            await asyncio.sleep(0.01)
        stopping.set()
        await task

    return move


async def _measure(url: str, remote: str) -> list[tuple[str, float]]:
    here, there = connect(url), connect(remote)
    rows = []
    cases = [("raw RPOP + LPUSH (no guarantees)", _raw), ("vpush batch=1", _vpush(1))]
    cases += [("vpush batch=100", _vpush(100))]
    for label, move in cases:
        await _fill(here)
        await there.flushdb()
        began = time.perf_counter()
        await move(here, there, url, remote)
        rows.append((label, N / (time.perf_counter() - began)))
    await here.aclose()
    await there.aclose()
    return rows


def main() -> None:
    with EmbeddedServer(port=None) as local, EmbeddedServer(port=None) as remote:
        rows = asyncio.run(_measure(local.url, remote.url))
    table = Table(title=f"vpush: {N} messages between two local servers")
    table.add_column("mover")
    table.add_column("messages/s", justify="right")
    table.add_column("vs raw", justify="right")
    for label, rate in rows:
        table.add_row(label, f"{rate:,.0f}", f"{rate / rows[0][1]:.2f}x")
    Console().print(table)
