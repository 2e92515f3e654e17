"""A tiny sample worker for the scaling tests, run as a real process:

``python -m tests.scale_worker --redis URL --set serviceNamespace=NS --set queue=Q --set out=O``

It pops from `queue`, waits `work` seconds, and pushes the item to `out`. Its hooks are the
ones `redline.runtime.assemble` gives every redline service: it registers
through the lifecycle and, when cscale starts it with ``serviceStandby``, waits as a standby.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from redline.cli.common import config_options, load_or_exit, run_until_signal
from redline.logs import configure
from redline.runtime import Context, assemble, run_service
from redline.runtime.tracking import TrackedConfig


class WorkerConfig(TrackedConfig):
    queue: str = "work"
    out: str = "done"
    work: float = 0.0


class Worker:
    name = "scale-worker"

    async def step(self, ctx: Context) -> None:
        config = ctx.config
        assert isinstance(config, WorkerConfig)
        item = await ctx.redis.brpop([config.queue], timeout=config.pop_timeout)
        if item is not None:
            await asyncio.sleep(config.work)
            await ctx.redis.lpush(config.out, item[1])


@click.command()
@config_options
def main(config_path: Path | None, redis_url: str | None, sets: tuple[str, ...]) -> None:
    configure("info", "kv")
    config = load_or_exit(WorkerConfig, config_path, sets, redis=redis_url)
    assert config.service_namespace, "the tests always give serviceNamespace"
    hooks = assemble(Worker.name, config, serves=config.queue).hooks()
    run_until_signal(lambda stopping: run_service(Worker(), config, hooks, stopping))


if __name__ == "__main__":
    main()
