"""Tasks the worker tests run, in-process and in `redline worker tests.jobs.tasks` processes."""

from __future__ import annotations

import asyncio
import os
import time

import redis

from redline.jobs import Tasks

tasks = Tasks()

if os.environ.get("REDLINE_TEST_KILL_AT_ACK"):  # crash injection: die before acking any job
    import signal

    from redline.queue import ReliableQueue

    async def _die(*_: object, **__: object) -> list[str]:
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")

    ReliableQueue.ack = _die  # type: ignore[method-assign]


@tasks.task(queue="t:jobs", result_ttl=60)
async def add(a: int, b: int) -> int:
    return a + b


@tasks.task(queue="t:jobs", result_ttl=60)
def shout(text: str) -> str:
    return text.upper()


@tasks.task(queue="t:jobs", retries=2, backoff=0.01, result_ttl=60)
def always_fails(why: str) -> None:
    raise ValueError(f"refused: {why}")


@tasks.task(queue="t:many", retries=12, max_deliveries=2, backoff=0.001)
def fails_many_times() -> None:
    raise ValueError("again")


@tasks.task(queue="t:jobs", timeout=0.2, retries=0)
async def too_slow() -> None:
    await asyncio.sleep(30)


@tasks.task(queue="t:jobs", unique=True, result_ttl=60)
async def once(n: int) -> int:
    return n


@tasks.task(queue="t:slow")
async def sleepy(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@tasks.task(queue="t:count", max_deliveries=50)
def count(url: str, n: int) -> None:
    """Record that job n ran (a set: duplicates from redeliveries collapse, runs are counted)."""
    client = redis.Redis.from_url(url)
    client.sadd("t:done", n)
    client.incr("t:runs")
    time.sleep(0.001 * (n % 5))
    client.close()


@tasks.task(queue="t:count", max_deliveries=50)
def held(url: str, n: int) -> None:
    """Like `count`, and the run is marked in ``t:busy`` (by pid) until the task returns: a
    worker killed while its mark is up had run a job it never acked, so the job runs again."""
    client = redis.Redis.from_url(url)
    pid = os.getpid()
    client.pipeline().sadd("t:done", n).incr("t:runs").hincrby("t:busy", str(pid), 1).execute()
    time.sleep(0.05)
    client.hincrby("t:busy", str(pid), -1)
    client.close()


@tasks.task(queue="t:cron", cron="0 0 1 1 *")  # yearly: no run falls due during a test
def tick() -> None:
    url = os.environ["REDLINE_TEST_URL"]
    redis.Redis.from_url(url).rpush("t:ticks", os.getpid())


@tasks.task(queue="t:steady", max_deliveries=50)
def steady(url: str, n: int) -> None:
    """Record which process started job n, then which ran it and how many jobs waited then."""
    client = redis.Redis.from_url(url)
    client.rpush("t:steady:started", f"{os.getpid()}:{n}")
    time.sleep(0.2)
    client.rpush("t:steady:ran", f"{os.getpid()}:{n}:{client.llen('t:steady')}")
    client.close()


@tasks.task(queue="t:poison", retries=0)
async def poison(n: int) -> None:
    raise ValueError(f"poison {n}")
