"""`current_job()`: the running job, as its task's code sees it.

    @task(queue="reports")
    async def build(report_id: int) -> None:
        job = current_job()
        for i, part in enumerate(parts):
            ...
            await job.progress((i + 1) / len(parts), f"part {i + 1}")

    @task(queue="reports")
    def export(path: str) -> None:          # sync: runs in a thread
        for chunk in chunks:
            if current_job().cancelled:      # cooperative: a sync run cannot be interrupted
                return
            current_job().report(0.5)        # progress from a thread

The worker sets it for each run (a context variable, so a sync task's thread sees it too).
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from redline.errors import JobError

__all__ = ["JobContext", "current_job", "progress"]

_CURRENT: contextvars.ContextVar[JobContext] = contextvars.ContextVar("redline_job")


@dataclass
class JobContext:
    """The job being run: `id`, `attempt` (1 on the first run), `queue`, `task`; whether it
    was asked to be `cancelled`; and `progress` to report how far it got."""

    id: str
    queue: str
    task: str
    attempt: int
    _report: Callable[[float, str], None]
    _loop: asyncio.AbstractEventLoop
    # A plain flag, read from a sync task's thread: nothing waits on it (an Event per run
    # cost a lock and a condition).
    _cancelled: bool = False
    run: asyncio.Task[object] | None = None  # the run, when the task is async
    started: float = field(default_factory=time.time)  # when this run started (unix time)

    @property
    def cancelled(self) -> bool:
        """True once `job.cancel()` reached this worker (about a second at most)."""
        return self._cancelled

    def cancel(self) -> None:
        """Mark the job cancelled, and cancel its run when it is async (worker side)."""
        self._cancelled = True
        if self.run is not None:
            self.run.cancel()

    async def progress(self, fraction: float, message: str = "") -> None:
        """Record progress (0..1) and an optional message: a `progress` event on the queue's
        stream, and the job's status (written with the worker's next batch, within moments)."""
        self.report(fraction, message)

    def report(self, fraction: float, message: str = "") -> None:
        """`progress` without await, callable from a sync task's thread."""
        if not isinstance(fraction, int | float) or not 0 <= fraction <= 1:
            raise JobError(f"progress {fraction!r} must be a number from 0 to 1")
        if _in_loop(self._loop):
            self._report(float(fraction), message)
        else:
            self._loop.call_soon_threadsafe(self._report, float(fraction), message)


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def current_job() -> JobContext:
    """The job this code runs for; JobError outside a job run by a worker."""
    try:
        return _CURRENT.get()
    except LookupError:
        raise JobError(
            "current_job() is only available inside a task run by a worker "
            "(not when the task's function is called directly)"
        ) from None


async def progress(fraction: float, message: str = "") -> None:
    """``await current_job().progress(fraction, message)``."""
    await current_job().progress(fraction, message)


def enter(job: JobContext) -> contextvars.Token[JobContext]:
    """Make `job` the current one (worker side)."""
    return _CURRENT.set(job)


def leave(token: contextvars.Token[JobContext]) -> None:
    _CURRENT.reset(token)
