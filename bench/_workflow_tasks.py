"""The tasks of the workflows benchmark (run by `redline worker bench._workflow_tasks`)."""

from __future__ import annotations

import os
import time
from typing import Any

import redis

from redline.jobs import task


@task(queue="bench:wf")
async def noop(*_: Any) -> None:
    return None


@task(queue="bench:wf")
def callback(results: list[Any]) -> int:
    """Write when it started (and how many results it got) for the benchmark to read."""
    client = redis.Redis.from_url(os.environ["BENCH_URL"])
    client.set("bench:wf:callback", f"{time.time()!r} {len(results)}")
    client.close()
    return len(results)
