"""Tasks the busy-list and limits-use tests run in `redline worker` processes: each says
where it runs, then holds its worker slot (and any limit) until the test releases it."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from redline.connection import connect_sync
from redline.jobs import Tasks, current_job

tasks = Tasks()

RELEASE = "b:release"  # set it and every held job finishes
RECORDS = ["b:started", RELEASE]


async def _hold(url: str) -> None:
    client: Any = connect_sync(url)
    client.rpush("b:started", f"{current_job().id}:{os.getpid()}:{current_job().attempt}")
    for _ in range(1200):  # at most a minute
        if client.exists(RELEASE):
            break
        await asyncio.sleep(0.05)
    client.close()


@tasks.task(queue="b:jobs", max_deliveries=20)
async def hold(url: str) -> None:
    """Runs until released."""
    await _hold(url)


@tasks.task(queue="b:limited", concurrency=2, max_deliveries=50)
async def capped(url: str) -> None:
    """At most two at once across workers; runs until released."""
    await _hold(url)


@tasks.task(queue="b:limited", rate_limit="3/m", rate_key=lambda url, customer: customer)
async def paced(url: str, customer: str) -> None:
    """Three starts a minute per customer; returns at once."""
    connect_sync(url).rpush("b:paced", customer)


def started(client: Any) -> list[tuple[str, int, int]]:
    """(job id, pid, attempt) of every run so far."""
    runs = [entry.decode().split(":") for entry in client.lrange("b:started", 0, -1)]
    return [(job, int(pid), int(attempt)) for job, pid, attempt in runs]
