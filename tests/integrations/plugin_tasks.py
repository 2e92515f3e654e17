"""Tasks for the tests of `redline.testing` (found by name by `run_jobs`)."""

from __future__ import annotations

import redis

from redline.connection import connect
from redline.jobs import enqueue, task

RUNS = "plugin:runs"  # a list of what ran, in the test's database (URL passed in each job)


def _note(url: str, what: str) -> None:
    with redis.Redis.from_url(url) as client:
        client.rpush(RUNS, what)


@task(queue="p:jobs", result_ttl=60)
def double(url: str, n: int) -> int:
    _note(url, f"double {n}")
    return 2 * n


@task(queue="p:jobs", retries=3, backoff=30.0)
def flaky(url: str, failures: int) -> str:
    """Fails `failures` times (counted in Redis), then succeeds (run_jobs skips the backoff)."""
    with redis.Redis.from_url(url) as client:
        attempt = int(client.incr("plugin:flaky"))
    _note(url, f"flaky {attempt}")
    if attempt <= failures:
        raise RuntimeError(f"attempt {attempt} fails")
    return f"ok after {attempt}"


@task(queue="p:jobs", retries=1)
def broken(url: str) -> None:
    _note(url, "broken")
    raise ValueError("always")


@task(queue="p:jobs")
async def fan_out(url: str, n: int) -> None:
    """Enqueues `n` more jobs (run_jobs runs them too)."""
    client = connect(url)
    try:
        for i in range(n):
            await enqueue(client, double, url, i)
    finally:
        await client.aclose()
