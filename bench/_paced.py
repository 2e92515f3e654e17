"""Latency at a fixed offered rate (open loop), for `bench http`.

wrk keeps its 50 connections busy: the average latency is then 50 / req/s, so its p99 follows
the server's rate and says little about how long one request takes when the server is not
saturated. Here requests go out on a clock, `rate` a second, whatever the answers do (a new
connection is opened when every open one is waiting), and each latency runs from its request's
write to the end of its answer's body. The first tenth is left out (connections opening). The
client is asyncio on uvloop when installed; it reports how late its own sends were, so a
client that could not keep up is seen rather than blamed on the server.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from collections.abc import Callable
from typing import Any

REQUEST = b"GET /1k.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _Client:
    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[Connection] = []
        self.opened: list[Connection] = []
        self.latencies: list[float] = []
        self.errors = 0

    async def request(self) -> None:
        """One request on an idle connection (or a new one); its latency, or an error."""
        if self.idle:
            conn = self.idle.pop()
        else:
            conn = await asyncio.open_connection("127.0.0.1", self.port)
            self.opened.append(conn)
        reader, writer = conn
        sent = time.perf_counter()  # (uvloop's loop.time() counts whole milliseconds)
        writer.write(REQUEST)
        head = await reader.readuntil(b"\r\n\r\n")
        length = _LENGTH.search(head)
        await reader.readexactly(int(length.group(1)) if length else 0)
        self.latencies.append(time.perf_counter() - sent)
        if not head.startswith(b"HTTP/1.1 200"):
            self.errors += 1
        self.idle.append(conn)

    def close(self) -> None:
        for _, writer in self.opened:
            writer.close()


async def _offer(port: int, rate: float, seconds: float) -> dict[str, float]:
    client = _Client(port)
    start, total, late = time.perf_counter() + 0.05, int(rate * seconds), 0.0
    running: list[asyncio.Task[None]] = []
    for n in range(total):
        due = start + n / rate
        if due > time.perf_counter():
            await asyncio.sleep(due - time.perf_counter())
        late = max(late, time.perf_counter() - due)
        running.append(asyncio.create_task(client.request()))
    done = await asyncio.gather(*running, return_exceptions=True)
    client.close()
    kept = sorted(client.latencies[total // 10 :])
    return {
        "rate": rate,
        "p50": 1000 * statistics.median(kept),
        "p99": 1000 * kept[int(0.99 * (len(kept) - 1))],
        "errors": client.errors + sum(isinstance(d, BaseException) for d in done),
        "late": 1000 * late,
        "connections": len(client.opened),
    }


def offered(port: int, rate: float, seconds: float) -> dict[str, float]:
    """p50 and p99 (ms) of `rate` requests a second for `seconds` on `port`, the errors, the
    client's latest send (ms behind its clock) and the connections it opened."""
    run: Callable[[Any], dict[str, float]] = asyncio.run
    try:
        import uvloop

        run = uvloop.run
    except ImportError:  # the dev extra installs it
        pass
    return run(_offer(port, rate, seconds))
