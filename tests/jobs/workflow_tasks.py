"""Tasks the workflow tests run, in-process and in `redline worker tests.jobs.workflow_tasks`
processes. Side effects go to the server named by each call's `url` argument."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from typing import Any

import redis
import redis.asyncio

from redline.connection import SyncClient, connect_sync
from redline.jobs import Tasks, current_job

tasks = Tasks()

# Crash injection for the worker-process tests: SIGKILL this worker at its first ack ("ack":
# after it settled members, before their jobs are acked) or at its first confirmation of a
# push ("confirm": a callback pushed, not yet marked dispatched, nothing acked).
_KILL_AT = os.environ.get("REDLINE_TEST_WF_KILL_AT", "")


def _die(*_: object, **__: object) -> Any:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


if _KILL_AT == "ack":
    from redline.queue import ReliableQueue

    async def _ack(*_: object, **__: object) -> list[str]:
        return _die()  # type: ignore[no-any-return]

    ReliableQueue.ack = _ack  # type: ignore[method-assign]
if _KILL_AT == "confirm":
    from redline.jobs.workflow import progress

    _run = progress.run

    async def _confirm_kills(client: Any, name: str, keys: Any, args: Any = ()) -> Any:
        if name == "workflow_confirm":
            _die()
        return await _run(client, name, keys, args)

    progress.run = _confirm_kills

Q = "wf:jobs"  # in-process tests
CHORD = "wf:chord"  # the worker-process tests
CALLBACK = "wf:cb"  # their callbacks, run by a worker that is never killed
_clients: dict[str, SyncClient] = {}


def _client(url: str) -> SyncClient:
    """One blocking client per URL and process (standalone or cluster), shared by threads."""
    if url not in _clients:
        _clients[url] = connect_sync(url)
    return _clients[url]


@tasks.task(queue=Q)
async def double(x: int) -> int:
    return 2 * x


@tasks.task(queue=Q)
async def add(x: int, y: int) -> int:
    return x + y


@tasks.task(queue=Q)
def total(xs: list[int]) -> int:
    return sum(xs)


@tasks.task(queue=Q)
async def pair(left: Any, right: Any = None) -> list[Any]:
    return [left, right]


@tasks.task(queue=Q)
async def record(value: Any, url: str, key: str) -> Any:
    """Append `value` to the list `key` (counts runs: not deduplicated) and return it."""
    async with redis.asyncio.Redis.from_url(url) as client:
        await client.rpush(key, json.dumps(value))
    return value


@tasks.task(queue=Q, retries=1, backoff=0)
async def boom(*_: Any) -> None:
    raise ValueError("boom")


@tasks.task(queue=Q)
async def big(size: int) -> str:
    return "x" * size


@tasks.task(queue=Q)
async def hold(url: str, key: str) -> str:
    """Mark `key` started, then wait (cancellable) until the key `key:go` is set."""
    async with redis.asyncio.Redis.from_url(url) as client:  # closed when cancelled too
        await client.set(f"{key}:started", 1)
        while not await client.exists(f"{key}:go"):  # noqa: ASYNC110 - a state in Redis
            await asyncio.sleep(0.02)
    return key


@tasks.task(queue=CHORD, max_deliveries=50)
def square(url: str, n: int) -> int:
    """n*n; the run is marked in ``w:busy`` (by pid) until it returns, so a worker killed
    while its mark is up had run a member it never acknowledged."""
    client, pid = _client(url), str(os.getpid())
    client.incr("w:runs")
    client.hincrby("w:busy", pid, 1)
    time.sleep(0.05)
    client.hincrby("w:busy", pid, -1)
    return n * n


@tasks.task(queue=CHORD, max_deliveries=50)
def summarize(results: list[int], url: str) -> int:
    """Counts its runs twice: every run, and runs that are a first delivery (a second job of
    the callback, pushed twice, would be delivered first a second time). The tests run it on
    `CALLBACK`, served by a worker they never kill: so it runs exactly once if pushed once."""
    client = _client(url)
    client.incr("w:callback:runs")
    if current_job().attempt == 1:
        client.incr("w:callback:first")
    client.set("w:callback:got", json.dumps(results))
    return len(results)


@tasks.task(queue=CHORD, max_deliveries=50)
def step(trail: list[int], url: str, n: int) -> list[int]:
    """A link of a chain: appends `n` to the trail it received; counts first deliveries of
    each link (a link pushed twice would be delivered first twice)."""
    client, pid = _client(url), str(os.getpid())
    client.incr("w:runs")
    if current_job().attempt == 1:  # before the mark: a kill lands only while it is up
        client.hincrby("w:first", str(n), 1)
    client.hincrby("w:busy", pid, 1)
    time.sleep(0.1)
    client.hincrby("w:busy", pid, -1)
    return [*trail, n]
