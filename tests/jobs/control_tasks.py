"""Tasks the cancellation, pause and events tests run, in-process and in `redline worker`
processes. Each records what happened to it in Redis at `url` (the tests count from there)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from redline.connection import connect_sync
from redline.jobs import Tasks, current_job

tasks = Tasks()


def _redis(url: str) -> Any:
    return connect_sync(url)  # a cluster's URL too


async def _minute(url: str, mark: str) -> None:
    """Wait a minute; say so if cancelled (and stay cancelled)."""
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        _redis(url).rpush(mark, "cancelled")
        raise


@tasks.task(queue="c:jobs", result_ttl=60)
async def hold(url: str, mark: str) -> str:
    """Say it started, then wait a minute; say so if cancelled."""
    _redis(url).rpush(mark, f"started:{current_job().id}")
    await _minute(url, mark)
    return "held"


@tasks.task(queue="c:jobs", result_ttl=60)
async def hold_past_one_cancel(url: str, mark: str) -> str:
    """As `hold`, but the first cancel is swallowed, as code it calls may do (a library that
    catches CancelledError while it cleans up): only a second one ends it."""
    _redis(url).rpush(mark, f"started:{current_job().id}")
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        _redis(url).rpush(mark, "swallowed")
    await _minute(url, mark)
    return "held"


@tasks.task(queue="c:jobs", result_ttl=60)
def hold_sync(url: str, mark: str) -> str:
    """A sync job that looks at the cancel flag (cooperative), for up to a minute."""
    client = _redis(url)
    client.rpush(mark, f"started:{current_job().id}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if current_job().cancelled:
            client.rpush(mark, "saw-cancel")
            return "discarded"
        time.sleep(0.02)
    return "finished"


@tasks.task(queue="c:jobs", result_ttl=60)
def mark(url: str, key: str, n: int) -> int:
    """Record that job `n` started (with when, for the pause test)."""
    _redis(url).rpush(key, n)
    return n


@tasks.task(queue="c:jobs", retries=2, backoff=0.01, result_ttl=60)
async def flaky(url: str, key: str) -> str:
    """Fails its first attempt, reports progress and completes on the second."""
    job = current_job()
    await job.progress(0.25, "begun")
    if _redis(url).incr(key) == 1:
        raise RuntimeError("first attempt fails")
    await job.progress(1.0, "done")
    return f"attempt {job.attempt}"


@tasks.task(queue="c:jobs", max_deliveries=20)
def whoami(url: str, key: str, n: int) -> None:
    """Record that job `n` ran, and in which process."""
    _redis(url).rpush(key, f"{n}:{os.getpid()}")


@tasks.task(queue="c:jobs", max_deliveries=20)
async def hold_here(url: str, key: str) -> None:
    """Record the process it runs in, then wait until cancelled."""
    _redis(url).rpush(key, str(os.getpid()))
    await asyncio.sleep(600)


@tasks.task(queue="c:jobs", result_ttl=60)
async def bad_progress(fraction: float) -> str:
    """Returns the error a progress out of range raises."""
    try:
        await current_job().progress(fraction)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "accepted"
