"""A tiny sample worker for the scaling tests, run as a real process:

``python -m tests.scale_worker --redis URL --set serviceNamespace=NS --set queue=Q --set out=O``

It pops from `queue`, waits `work` seconds, and pushes the item to `out` — or, every
`failEvery`-th item (a faulty revision), to `failed`, counting an error. Its hooks are the
ones `redline.runtime.assemble` gives every redline service: it registers
through the lifecycle and, when cscale starts it with ``serviceStandby``, waits as a standby.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from pydantic import Field

from redline.cli.common import config_options, load_or_exit, run_until_signal
from redline.logs import configure
from redline.runtime import Context, assemble, run_service
from redline.runtime.metrics import Metrics
from redline.runtime.tracking import TrackedConfig


class WorkerConfig(TrackedConfig):
    queue: str = "work"
    out: str = "done"
    work: float = 0.0
    fail_every: int = Field(0, alias="failEvery", ge=0)
    failed: str = "failed"


class Worker:
    name = "scale-worker"

    def __init__(self, metrics: Metrics) -> None:
        self.metrics, self.seen = metrics, 0

    async def step(self, ctx: Context) -> None:
        config = ctx.config
        assert isinstance(config, WorkerConfig)
        item = await ctx.redis.brpop([config.queue], timeout=config.pop_timeout)
        if item is None:
            return
        await asyncio.sleep(config.work)
        self.seen += 1
        self.metrics.count("items")
        if config.fail_every and self.seen % config.fail_every == 0:
            self.metrics.count("errors")
            await ctx.redis.lpush(config.failed, item[1])
        else:
            await ctx.redis.lpush(config.out, item[1])


@click.command()
@config_options
def main(config_path: Path | None, redis_url: str | None, sets: tuple[str, ...]) -> None:
    configure("info", "kv")
    config = load_or_exit(WorkerConfig, config_path, sets, redis=redis_url)
    assert config.service_namespace, "the tests always give serviceNamespace"
    assembly = assemble(Worker.name, config, serves=config.queue)
    worker = Worker(assembly.metrics)
    run_until_signal(lambda stopping: run_service(worker, config, assembly.hooks(), stopping))


if __name__ == "__main__":
    main()
