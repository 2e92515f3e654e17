"""Tasks the priority, limit and expiry tests run, in-process and in `redline worker` processes.

Each records what it did in Redis (the URL is its first argument), so a test reads the order
and the overlap of runs across processes.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

from redline.connection import connect_sync
from redline.jobs import Tasks

tasks = Tasks()

RECORDS = ["l:running", "l:seen", "l:done", "l:arrived", "l:started", "l:starts", "l:order"]
RECORDS += ["l:ran", "l:ran-once", "l:flaky"]  # every key the tasks write

CAP = 4  # the cap of `capped`


@functools.cache
def _client(url: str) -> Any:
    return connect_sync(url)  # standalone or cluster


def _mark_running(client: Any, delta: int) -> int:
    """Add `delta` to this process's running count; the total across processes (a snapshot
    read after the change: how many ran at that moment)."""
    client.hincrby("l:running", str(os.getpid()), delta)
    return sum(int(n) for n in client.hvals("l:running"))


@tasks.task(queue="l:cap", concurrency=CAP, max_deliveries=50, result_ttl=60)
def capped(url: str, n: int, seconds: float = 0.05, together: int = 0) -> int:
    """Records how many `capped` jobs run at once (``l:seen``) and that job n ran. With
    `together`, returns only once that many run at once (proof that as many slots are free)."""
    client = _client(url)
    client.rpush("l:seen", _mark_running(client, 1))
    time.sleep(seconds)
    deadline = time.monotonic() + 60
    arrived = int(client.incr("l:arrived")) if together else 0
    while arrived < together:  # a barrier: none leaves before all arrived
        arrived = int(client.get("l:arrived") or 0)
        if time.monotonic() > deadline:
            raise TimeoutError(f"never {together} runs at once")
        time.sleep(0.01)
    client.sadd("l:done", n)
    _mark_running(client, -1)
    return n


@tasks.task(queue="l:hold", concurrency=CAP, max_deliveries=50)
async def held_quick(url: str, n: int) -> None:
    """A no-op under a cap (its worker holds the slots between jobs): records that job n ran
    (``l:ran``)."""
    _client(url).rpush("l:ran", n)


@tasks.task(queue="l:hold", concurrency=CAP, max_deliveries=50)
def held_slow(url: str, n: int, seconds: float = 0.05) -> None:
    """A short job under a cap: records how many run at once (``l:seen``) and that job n ran
    (``l:done``)."""
    client = _client(url)
    client.rpush("l:seen", _mark_running(client, 1))
    time.sleep(seconds)
    client.sadd("l:done", n)
    _mark_running(client, -1)


@tasks.task(queue="l:rate40", rate_limit="40/s", max_deliveries=50)
async def rated_ahead(url: str, n: int) -> None:
    """Records when it started (``l:starts``): a limit whose admissions take starts ahead."""
    _client(url).rpush("l:starts", repr(time.time()))


@tasks.task(queue="l:percap", concurrency=1, concurrency_key=lambda url, key, n: key)
def per_key(url: str, key: str, n: int) -> None:
    client = _client(url)
    client.rpush("l:seen", _mark_running(client, 1))
    client.sadd("l:started", f"{key}:{n}")
    time.sleep(0.2)
    _mark_running(client, -1)


@tasks.task(queue="l:rate", rate_limit="5/s", max_deliveries=50)
def rated(url: str, n: int) -> None:
    """Records when it started (``l:starts``)."""
    _client(url).rpush("l:starts", repr(time.time()))


@tasks.task(queue="l:rkey", rate_limit="3/m", rate_key=lambda url, key, n: key)
def keyed(url: str, key: str, n: int) -> None:
    _client(url).sadd("l:started", f"{key}:{n}")


@tasks.task(queue="l:ahead", rate_limit="100000/s", max_deliveries=50)
def quick(url: str, n: int) -> None:
    """A fast job under a limit (its worker pops ahead while a batch is admitted): records
    that job n ran (``l:ran``, once per run)."""
    _client(url).rpush("l:ran", n)


@tasks.task(queue="l:ahead", rate_limit="100000/s", max_deliveries=50)
async def quick_async(url: str, n: int) -> None:
    """`quick` on the event loop: a batch's runs end together (none awaits), so the worker's
    run slots free a whole batch at a time, as in a drain of no-ops."""
    _client(url).rpush("l:ran", n)


@tasks.task(queue="l:prio")
def prio(url: str, tag: str) -> None:
    """Records the order jobs start in (``l:order``)."""
    _client(url).rpush("l:order", tag)
    time.sleep(0.002)


urgent = tasks.task(name="tests.jobs.limit_tasks.urgent", queue="l:prio", priority=9)(prio.func)


@tasks.task(queue="l:misc", expires=0.5)
def fleeting(url: str, n: int) -> None:
    _client(url).sadd("l:ran-once", n)


# Its first run must start within `expires` of the enqueue: 3 s holds on a loaded machine, 0.3
# did not (a start 0.5 s late expires the job unrun, and the test waited in vain, as it did
# once under load 33). The retry, 3.1 to 6.2 s after the failure (half the backoff is jitter),
# comes after the deadline.
@tasks.task(queue="l:misc", expires=3, retries=1, backoff=6.2)
def flaky(url: str, n: int) -> None:
    """Fails its first run; its retry comes after its start deadline, and still runs."""
    if _client(url).incr("l:flaky") == 1:
        raise ValueError("first run fails")
    _client(url).sadd("l:ran-once", n)


@tasks.task(queue="l:misc", unique=lambda url, key, value: key, replace=True, result_ttl=60)
def latest(url: str, key: str, value: int) -> int:
    _client(url).rpush("l:ran", value)
    return value


@tasks.task(queue="l:misc", unique=lambda url, key, value: key, debounce=0.5, result_ttl=60)
def settled(url: str, key: str, value: int) -> int:
    _client(url).rpush("l:ran", value)
    return value


@tasks.task(queue="l:misc", unique=lambda url, n: str(n % 10), priority=3)
def bulked(url: str, n: int) -> None:
    _client(url).sadd("l:ran-once", n)
