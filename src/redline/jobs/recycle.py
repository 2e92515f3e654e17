"""Recycling a worker process: once it took `max_jobs` jobs (it takes no more), or above
`max_memory` MB of resident memory (checked each tick), the worker stops as on SIGTERM (no
more pops; what it holds gets its grace period to finish) and its process exits, for its
supervisor (`redline worker --processes`) to replace. A leaking task's memory, or a
library's, is given back to the system that way."""

from __future__ import annotations

import logging
import os
import resource
import sys

from redline.jobs.worker import Worker
from redline.runtime import Context

__all__ = ["Recycle", "resident_mb"]

log = logging.getLogger(__name__)


def resident_mb() -> float:
    """This process's resident memory now (Linux: /proc; elsewhere its peak so far), in MB."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux, bytes on macOS
        return peak / (2**20 if sys.platform == "darwin" else 2**10)


class Recycle:
    """A hook that stops `worker`'s process once it ran `max_jobs` jobs or uses more than
    `max_memory` MB (checked on each tick)."""

    def __init__(self, worker: Worker, max_jobs: int | None, max_memory: float | None) -> None:
        self.worker, self.max_memory = worker, max_memory
        worker.max_jobs = max_jobs  # the worker stops itself once it took that many

    async def start(self, ctx: Context) -> None:
        return None

    async def tick(self, ctx: Context) -> None:
        why = self.reason()
        if why and not ctx.stopping.is_set():
            log.info("worker recycling: %s", why)
            ctx.stopping.set()

    async def stop(self, ctx: Context) -> None:
        return None

    def reason(self) -> str:
        """Why the process should be recycled now ("" when it should not)."""
        if self.worker.max_jobs is not None and self.worker.taken >= self.worker.max_jobs:
            return f"jobs={self.worker.taken} max_jobs={self.worker.max_jobs}"
        if self.max_memory is not None:
            used = resident_mb()
            if used > self.max_memory:
                return f"memory_mb={used:.0f} max_memory={self.max_memory:g}"
        return ""
