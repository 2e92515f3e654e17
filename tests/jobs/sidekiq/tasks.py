"""Tasks the Sidekiq interop tests run in `redline worker tests.jobs.sidekiq.tasks --sidekiq`
processes (REDLINE_TEST_URL names the test's database)."""

from __future__ import annotations

import asyncio
import functools
import os
import time

import redis

from redline.jobs import task


@functools.cache
def _client() -> redis.Redis:
    return redis.Redis.from_url(os.environ["REDLINE_TEST_URL"])


@task(sidekiq_class="HardWorker")
def hard_worker(n: int, label: str = "") -> None:
    """Record the run (a set: a job run twice is counted once in t:done, twice in t:runs), and
    which process is running jobs right now (t:running: pid -> jobs in hand)."""
    client, pid = _client(), os.getpid()
    client.incr("t:runs")
    client.hincrby("t:running", str(pid), 1)
    time.sleep(float(client.get("t:pause") or 0))
    client.sadd("t:done", n)
    client.hincrby("t:running", str(pid), -1)


@task(sidekiq_class="FailingWorker", sidekiq_retry_in=lambda count, exc: 3600)
def failing(why: str) -> None:
    raise ValueError(f"refused: {why}")


@task(sidekiq_class="BlockingWorker")
async def blocking(key: str) -> None:
    """Runs until something is pushed onto `key` (a job a test can hold in hand). Its client
    has no read timeout: redis-py's default (5 s) would fail the job (and count a failure and
    a retry) when the test holds it longer, as a loaded machine makes it."""
    url = os.environ["REDLINE_TEST_URL"]
    client = redis.asyncio.Redis.from_url(url, socket_timeout=None)
    try:
        await client.blpop([key], timeout=120)
    finally:
        await client.aclose()


@task(name="AsyncAdder")
async def add(a: int, b: int) -> None:
    await asyncio.sleep(0)
    _client().rpush("t:sums", a + b)
