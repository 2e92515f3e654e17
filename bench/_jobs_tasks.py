"""The no-op task of the jobs benchmark (run by `redline worker bench._jobs_tasks`)."""

from __future__ import annotations

from redline.jobs import task


@task(queue="bench:jobs")
async def noop() -> None:
    return None
