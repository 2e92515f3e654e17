"""`redline worker module:tasks`: run the jobs of a module's tasks."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import Field

from redline.cli.common import config_options, fail, load_or_exit, run_until_signal, server_for
from redline.config import ServiceConfig
from redline.errors import RedlineError
from redline.jobs.task import Tasks, load_tasks
from redline.jobs.worker import Worker
from redline.runtime import assemble, run_service

__all__ = ["WorkerConfig", "worker", "worker_hooks"]


class WorkerConfig(ServiceConfig):
    """`redline worker` settings."""

    pop_timeout: float = Field(2, alias="popTimeout", gt=0, description="seconds a pop blocks")
    queues: list[str] = Field(default_factory=list, description="queues (default: the tasks')")
    concurrency: int = Field(16, gt=0, description="jobs run at once")
    threads: int | None = Field(
        None, gt=0, description="threads for sync tasks (default: concurrency)"
    )
    lease: float = Field(30, gt=0, description="seconds a job is owned before redelivery")
    grace: float = Field(10, ge=0, description="seconds in-flight jobs get to finish at shutdown")
    cron: bool = Field(True, description="take part in running the tasks' cron schedules")


@click.command()
@click.argument("tasks_spec", metavar="MODULE[:ATTR]")
@click.option("--concurrency", "-c", type=int, help="Jobs run at once (default 16).")
@click.option("--queue", "-q", "queues", multiple=True, help="Queue to serve; repeatable.")
@click.option(
    "--path",
    "paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Directory to import MODULE from (default: the current one); repeatable.",
)
@config_options
def worker(
    tasks_spec: str,
    concurrency: int | None,
    queues: tuple[str, ...],
    paths: tuple[Path, ...],
    config_path: Path | None,
    redis_url: str | None,
    sets: tuple[str, ...],
) -> None:
    """Run the jobs of the @task functions in MODULE (or MODULE:ATTR, a Tasks registry or a
    list of tasks) until SIGTERM/Ctrl-C; in-flight jobs then get `grace` seconds to finish and
    the rest go back to their queue.

    \b
    Example:  redline worker app.tasks --concurrency 32
    """
    sys.path[:0] = [str(p) for p in paths] or [os.getcwd()]
    extra = {"concurrency": concurrency, "queues": list(queues) or None}
    config = load_or_exit(
        WorkerConfig,
        config_path,
        sets,
        redis=redis_url,
        **{k: _json(v) for k, v in extra.items() if v is not None},
    )
    try:
        tasks = load_tasks(tasks_spec)
    except RedlineError as exc:
        fail(str(exc), 2)
        return
    with server_for(config.redis) as url:
        config = config.model_copy(update={"redis": url})
        hooks = worker_hooks(tasks, config)

        async def main(stopping: asyncio.Event) -> None:
            await run_service(hooks[-1], config, hooks, stopping)

        run_until_signal(main)


def worker_hooks(tasks: Tasks, config: WorkerConfig) -> list[Any]:
    """The assembly's hooks (registration under ``serviceNamespace``, default
    ``redline:worker``; metrics against the lease), and the worker last (so that it stops
    first, before the instance unregisters)."""
    queues = config.queues or tasks.queues
    assembly = assemble("worker", config, serves=",".join(queues), timeout=config.lease)
    runner = Worker(
        tasks,
        config.queues,
        config.concurrency,
        config.threads,
        config.lease,
        config.grace,
        config.cron,
        assembly.metrics,
    )
    return assembly.hooks(runner)


def _json(value: object) -> str:
    import json

    return json.dumps(value)
