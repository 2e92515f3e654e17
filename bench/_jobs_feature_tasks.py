"""The no-op of the jobs benchmark with one of issue 20's features on (`redline-priority`,
`redline-rate`, `redline-cap`): a priority, a rate limit far above the drain rate, a cap of the
worker's concurrency. A module of their own: a worker that declares a priority blocks on that
priority's list and only polls the others, which would skew the latency rows of plain jobs.
Each row's worker loads its own task alone (`bench._jobs_features.worker_tasks`): a worker that
declares a priority pops that priority's list first, which costs the rate and cap rows a round
trip per batch when their jobs are all on the default priority's.
"""

from __future__ import annotations

from redline.jobs import task


@task(queue="bench:jobs", priority=5)
async def noop_priority() -> None:
    return None


@task(queue="bench:jobs", rate_limit="1000000/s")
async def noop_rated() -> None:
    return None


@task(queue="bench:jobs", concurrency=64)
async def noop_capped() -> None:
    return None
