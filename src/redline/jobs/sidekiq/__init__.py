"""Sidekiq interoperability: run the jobs Ruby, Go and Node clients enqueue in Sidekiq's format
with redline tasks (``redline worker MODULE --sidekiq``), and enqueue jobs for Ruby workers.

    @task(sidekiq_class="HardWorker")
    def hard_worker(name: str, count: int) -> None: ...

    jid = await enqueue_sidekiq(client, "HardWorker", "bob", 5)

See docs/sidekiq.md for what is compatible and what is not.
"""

from __future__ import annotations

from redline.jobs.sidekiq.client import enqueue_sidekiq, enqueue_sidekiq_sync
from redline.jobs.sidekiq.job import SidekiqJob
from redline.jobs.sidekiq.worker import SidekiqSettings, SidekiqWorker

__all__ = [
    "SidekiqJob",
    "SidekiqSettings",
    "SidekiqWorker",
    "enqueue_sidekiq",
    "enqueue_sidekiq_sync",
]
