"""The tasks of the jobs benchmark (run by `redline worker bench._jobs_tasks`): a no-op, and
a latency job that records how long after it was sent it started (bench/peers/_timing.py)."""

from __future__ import annotations

import os
import time

import redis.asyncio

from bench.peers._timing import LATENCY_KEY
from redline.jobs import task

_recorder: redis.asyncio.Redis | None = None


@task(queue="bench:jobs")
async def noop() -> None:
    return None


@task(queue="bench:jobs")
async def latency(sent: float) -> None:
    global _recorder
    started = time.time()
    _recorder = _recorder or redis.asyncio.Redis.from_url(os.environ["BENCH_URL"])
    await _recorder.rpush(LATENCY_KEY, started - sent)
