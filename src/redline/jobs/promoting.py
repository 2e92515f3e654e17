"""A worker's housekeeping loop, twice a second: scheduled jobs (retries, `enqueue(at=)`,
waits under a limit) that fell due are moved onto their queues, each queue's retention drops
are noted as metrics, and the dashboard's counts are added; priorities no producer used for
a while are forgotten (`jobs.priority`). Out of `jobs.worker`, which starts it at `start`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from redline.errors import TRANSIENT
from redline.jobs.priority import FORGET_EVERY, Levels, priority_key, scheduled_key
from redline.queue import ReliableQueue
from redline.runtime.metrics import Metrics
from redline.scripting.scripts import run

__all__ = ["PROMOTE_EVERY", "Promoter"]

log = logging.getLogger(__name__)

PROMOTE_EVERY = 0.5  # seconds between moves of due scheduled jobs onto their queues


class Promoter:
    """The loop of the module docstring, for the queues of `levels`; `flush_counts` adds the
    counts (the worker's seam: the Sidekiq-format worker keeps its own)."""

    def __init__(
        self,
        queue: ReliableQueue,
        levels: Levels,
        metrics: Metrics | None,
        flush_counts: Callable[[], Awaitable[None]],
    ) -> None:
        self.queue, self.levels, self.metrics = queue, levels, metrics
        self.flush_counts = flush_counts
        self.forgot_at = time.monotonic()  # last look for priorities no longer used

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.once()
            except TRANSIENT as exc:
                log.warning("worker could not move scheduled jobs or count error=%r", str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), PROMOTE_EVERY)

    async def once(self) -> None:
        client = self.queue.client
        await self.levels.refresh(client)
        for name, priority in self.levels.pairs():
            keys = [scheduled_key(name, priority), priority_key(name, priority)]
            await run(client, "job_promote", keys, [repr(time.time()), 1000])
        for name in self.levels.queues:
            await self._note_drops(name)
        await self.flush_counts()
        if time.monotonic() - self.forgot_at >= FORGET_EVERY:  # priorities unused
            self.forgot_at = time.monotonic()
            await self.levels.forget(client)

    async def _note_drops(self, name: str) -> None:
        """The dead letters and failure records queue `name`'s retention dropped so far, as
        the fields of metric ``dropped:<queue>`` (Prometheus: ``redline_metric_value``)."""
        if self.metrics is not None:
            info = await self.queue.info(name)
            self.metrics.set(
                f"dropped:{name}", dead_letters=info.dropped, records=info.records_dropped
            )
