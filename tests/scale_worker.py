"""A tiny sample worker for the scaling tests, run as a real process:

``python -m tests.scale_worker --redis URL --set serviceNamespace=NS --set queue=Q``

It pops from `queue`, waits `work` seconds, and pushes the item to `done`; it registers through
the real lifecycle hook and waits as a standby behind `StandbyGate` when no slot is free.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from redline.cli.common import config_options, load_or_exit, run_until_signal
from redline.config import ServiceConfig
from redline.lifecycle import Lifecycle, check_interval
from redline.logs import configure
from redline.runner import Context, run_service
from redline.standby import StandbyGate


class WorkerConfig(ServiceConfig):
    queue: str = "work"
    done: str = "done"
    work: float = 0.0


class Worker:
    name = "scale-worker"

    async def step(self, ctx: Context) -> None:
        config = ctx.config
        assert isinstance(config, WorkerConfig)
        item = await ctx.redis.brpop([config.queue], timeout=config.pop_timeout)
        if item is not None:
            await asyncio.sleep(config.work)
            await ctx.redis.lpush(config.done, item[1])


@click.command()
@config_options
def main(config_path: Path | None, redis_url: str | None, sets: tuple[str, ...]) -> None:
    configure("info", "kv")
    config = load_or_exit(WorkerConfig, config_path, sets, redis=redis_url)
    assert config.service_namespace, "the tests always give serviceNamespace"
    lifecycle = Lifecycle(
        config.service_namespace,
        Worker.name,
        serves=config.queue,
        expire=config.service_expire,
        renew=config.service_renew,
        capacity=config.service_capacity,
    )
    hooks = [lifecycle, StandbyGate(lifecycle)]
    tick = check_interval(config.service_renew, config.pop_timeout)

    async def run(stopping: asyncio.Event) -> None:
        await run_service(Worker(), config, hooks, stopping, tick_interval=tick)

    run_until_signal(run)


if __name__ == "__main__":
    main()
