"""A jobs worker run in the test's own event loop, and `until`: what the in-process worker
tests share (test_worker, test_control, test_limits and the tests that import from them)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redline.cli.worker import WorkerConfig
from redline.connection import AsyncClient
from redline.errors import JobError
from redline.jobs import Tasks
from redline.jobs.settling import Settler
from redline.jobs.worker import Worker
from redline.runtime import run_service
from redline.runtime.metrics import Metrics

# The in-process workers' lease: far longer than any stall of a starved test process, so that
# a job runs once and the tests can count runs exactly (with 5 s, a loop starved past it at
# load 20+ saw jobs delivered again: 32 runs of 30 jobs, a cancelled job counted twice). Its
# heartbeat is a third of it (20 s); a test that needs a lapse, or a heartbeat's extension,
# passes a short lease of its own (`lease=`).
LEASE = 60.0


class WorkerRunning:
    """A worker of `tasks` over `queues`, running in this event loop until `stop()` (the
    metrics, when given, are its hook too; its lease `LEASE` unless given)."""

    def __init__(
        self,
        tasks: Tasks,
        url: str,
        queues: Sequence[str],
        *,
        concurrency: int,
        grace: float,
        metrics: Metrics | None = None,
        lease: float = LEASE,
    ) -> None:
        self.worker = Worker(
            tasks,
            queues,
            concurrency=concurrency,
            grace=grace,
            lease=lease,
            cron=False,
            metrics=metrics,
        )
        self.config = WorkerConfig(redis=url, popTimeout=0.2)
        self.stopping = asyncio.Event()
        hooks: list[Any] = [self.worker] if metrics is None else [self.worker, metrics]
        self.task = asyncio.create_task(run_service(self.worker, self.config, hooks, self.stopping))

    async def stop(self) -> None:
        self.stopping.set()
        await asyncio.wait_for(self.task, 30)


async def until(check: Callable[[], Awaitable[Any]], seconds: float = 60) -> Any:
    """Poll `check` until it returns something truthy (a state in Redis: no event to wait on);
    fail the test after `seconds` (generous: a starved machine settles late, never wrongly)."""
    async with asyncio.timeout(seconds):
        while not (value := await check()):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        return value


async def settler_of(running: WorkerRunning) -> Settler | None:
    """The worker's settler, once it has started (for `until`)."""
    with contextlib.suppress(JobError):
        return running.worker.settler
    return None


async def holds(value: bool) -> bool:
    """`value`, as a check for `until` (a state of this process: nothing to read in Redis)."""
    return value


async def gone(client: AsyncClient, key: str) -> bool:
    """Whether `key` no longer exists (for `until`)."""
    return not await client.exists(key)
