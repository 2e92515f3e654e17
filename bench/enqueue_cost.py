"""One job enqueued per call, counted: the server's instructions and the client's Python calls.

What a loaded machine does not change (issue 25's enqueue row is round-trip bound, so what is
left to cut is each side's work per call):

- the server's instructions per ``enqueue_sync`` (the embedded Valkey under valgrind's
  callgrind, as `queue_cost` runs it): a plain job, one with a priority, a unique one; beside
  them Sidekiq's push as its client sends it (``MULTI``, ``SADD queues``, ``LPUSH``, ``EXEC``,
  a 300-byte payload), the comparison of the enqueue row;
- the Python functions called per ``enqueue_sync`` and per ``await enqueue`` of a plain job
  (`sys.setprofile`; the asyncio one counts redline's own functions, and all of them with the
  loop's).

Comparing two trees: run this module with each tree's interpreter (it uses only `enqueue` and
`enqueue_sync`). Needs valgrind for the first table (``apt-get install
valgrind``; skipped, saying so, without it). `BENCH_COST_STEPS` (default 200): calls per row.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from bench._calls import PythonCalls
from bench.queue_cost import counted_server, valgrind_missing
from redline.connection import SyncClient, connect, connect_sync
from redline.connection.embedded import EmbeddedServer
from redline.jobs import Task, enqueue, enqueue_sync

PLAIN = Task.ref("bench.noop", queue="bench")
SIDEKIQ_JOB = b"x" * 300  # about the size of Sidekiq's JSON for a no-op job


def _server_steps(client: SyncClient) -> dict[str, Callable[[], object]]:
    def sidekiq() -> None:
        with client.pipeline(transaction=True) as pipe:
            pipe.sadd("queues", "bench")
            pipe.lpush("queue:bench", SIDEKIQ_JOB)
            pipe.execute()

    unique = PLAIN.options(unique=True)
    count = iter(range(10**9))
    return {
        "enqueue_sync, a plain job": lambda: enqueue_sync(client, PLAIN),
        "the same, priority 5": lambda: enqueue_sync(client, PLAIN.options(priority=5)),
        "the same, unique (a new key each)": lambda: enqueue_sync(client, unique, next(count)),
        "Sidekiq's push (MULTI, SADD, LPUSH, EXEC)": sidekiq,
    }


def _server_table() -> Table | None:
    if valgrind_missing("enqueue_cost"):
        return None
    steps = int(os.environ.get("BENCH_COST_STEPS", "200"))
    table = Table(title="enqueue: server instructions per job (callgrind, embedded Valkey)")
    for column in ("call", "instructions / job"):
        table.add_column(column, justify="left" if column == "call" else "right")
    with counted_server() as server:
        for name, step in _server_steps(server.client).items():
            step()  # its script loaded before counting
            table.add_row(name, f"{server.count(step, steps):,.0f}")
    return table


def _counted(action: Callable[..., object], *args: Any) -> PythonCalls:
    with PythonCalls() as calls:
        action(*args)
    return calls


async def _awaited(url: str) -> PythonCalls:
    client = connect(url)
    await enqueue(client, PLAIN)  # its channel and connection made before counting
    with PythonCalls() as calls:
        await enqueue(client, PLAIN)
    await client.aclose()
    return calls


def _calls_table() -> Table:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    table = Table(title=f"enqueue: Python calls per job (a plain job, Python {version})")
    for column in ("call", "redline's functions", "all"):
        table.add_column(column, justify="left" if column == "call" else "right")
    with EmbeddedServer() as server:
        client = connect_sync(server.url)
        enqueue_sync(client, PLAIN)
        rows = {
            "enqueue_sync": _counted(enqueue_sync, client, PLAIN),
            "await enqueue (asyncio's loop)": asyncio.run(_awaited(server.url)),
        }
        client.close()
    for name, calls in rows.items():
        table.add_row(name, str(calls.redline), str(calls.all))
    return table


def main() -> None:
    console = Console(width=120)
    console.print(_calls_table())
    table = _server_table()
    if table is not None:
        console.print(table)
