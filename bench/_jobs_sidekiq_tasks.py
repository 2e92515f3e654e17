"""The no-op task `redline worker --sidekiq` runs for Sidekiq's NoopWorker jobs in the bench."""

from __future__ import annotations

from redline.jobs import task


@task(sidekiq_class="NoopWorker")
async def noop() -> None:
    return None
