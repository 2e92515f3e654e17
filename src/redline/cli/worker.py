"""`redline worker module:tasks`: run the jobs of a module's tasks."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import click

from redline.cli.common import (
    config_options,
    fail,
    fast_loop,
    load_or_exit,
    run_until_signal,
    server_for,
)
from redline.cli.sidekiq import sidekiq_worker
from redline.cli.supervise import Supervisor, child_argv, cores
from redline.cli.worker_config import SidekiqWorkerConfig, WorkerConfig
from redline.errors import RedlineError
from redline.jobs.recycle import Recycle
from redline.jobs.task import Tasks, load_tasks
from redline.jobs.worker import Worker
from redline.runtime import assemble, run_service
from redline.scaling.procs import PROCESSES_ENV

__all__ = ["WorkerConfig", "run_worker", "worker", "worker_hooks"]


@click.command()
@click.argument("tasks_spec", metavar="MODULE[:ATTR]")
@click.argument("queue_args", metavar="[QUEUE]...", nargs=-1)
@click.option(
    "--sidekiq",
    is_flag=True,
    help="Run Sidekiq jobs from queue:<QUEUE> (default: default) by their class (docs/sidekiq.md).",
)
@click.option(
    "--concurrency", "-c", type=int, help="Jobs run at once (default 16; 10 with --sidekiq)."
)
@click.option("--queue", "-q", "queues", multiple=True, help="Queue to serve; repeatable.")
@click.option(
    "--path",
    "paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Directory to import MODULE from (default: the current one); repeatable.",
)
@click.option(
    "--processes",
    "-p",
    type=click.IntRange(min=1),
    is_flag=False,
    flag_value=cores(),
    envvar=PROCESSES_ENV,
    help="Worker processes, under a supervisor that replaces any that exits (default: one "
    f"per core, here {cores()}; env {PROCESSES_ENV}). 1: one worker in this process, no "
    "supervisor (what process managers and crash tests that kill its pid want).",
)
@click.option(
    "--max-jobs",
    type=click.IntRange(min=1),
    help="A worker process exits after this many jobs (finishing what it holds); under "
    "--processes it is replaced.",
)
@click.option(
    "--max-memory",
    type=click.FloatRange(min=1),
    metavar="MB",
    help="A worker process exits once its resident memory exceeds MB (finishing what it "
    "holds); under --processes it is replaced.",
)
@config_options
def worker(
    tasks_spec: str,
    queue_args: tuple[str, ...],
    sidekiq: bool,
    concurrency: int | None,
    queues: tuple[str, ...],
    paths: tuple[Path, ...],
    processes: int | None,
    max_jobs: int | None,
    max_memory: float | None,
    config_path: Path | None,
    redis_url: str | None,
    sets: tuple[str, ...],
) -> None:
    """Run the jobs of the @task functions in MODULE (or MODULE:ATTR, a Tasks registry or a
    list of tasks) until SIGTERM/Ctrl-C; in-flight jobs then get `grace` seconds to finish and
    the rest go back to their queue.

    With --sidekiq, run the Sidekiq jobs that Ruby, Go or Node clients enqueue on the QUEUEs
    (queue:<QUEUE>, in priority order), each with the task that claims its class
    (@task(sidekiq_class="HardWorker"), default the task's name), at least once: a SIGKILLed
    worker's jobs are recovered. Its settings (--set): beat, processExpire, unknownClass
    (leave|dead), unknownDelay, maxRecoveries, pollInterval, tag (docs/sidekiq.md).

    \b
    By default a supervisor runs one such worker per core as child processes (sync tasks
    then use every core; --processes N for N), starts a new one when one dies or is
    recycled (--max-jobs, --max-memory), and on SIGTERM stops them all, each finishing what
    it holds. --processes 1 runs one worker in this process, with no supervisor.

    \b
    Example:  redline worker app.tasks --concurrency 32
              redline worker app.tasks --processes 4 --max-jobs 10000
              redline worker app.tasks --processes 1      # under systemd, k8s, up, cscale
              redline worker app.tasks --sidekiq critical default
    """
    sys.path[:0] = [str(p) for p in paths] or [os.getcwd()]
    if queue_args and not sidekiq:
        fail(f"queues as arguments ({' '.join(queue_args)}) go with --sidekiq; else use -q", 2)
    extra = {
        "concurrency": concurrency,
        "queues": list(queues + queue_args) or None,
        "maxJobs": max_jobs,
        "maxMemory": max_memory,
    }
    config = load_or_exit(
        _config_model(sidekiq),
        config_path,
        sets,
        redis=redis_url,
        **{k: _json(v) for k, v in extra.items() if v is not None},
    )
    try:
        tasks = load_tasks(tasks_spec)
    except RedlineError as exc:
        fail(str(exc) + _where_to_look(exc, tasks_spec), 2)
        return
    count = processes or cores()
    with server_for(config.redis) as url:
        if count == 1:
            run_worker(tasks, config.model_copy(update={"redis": url}))
            return
        argv = _child_args(click.get_current_context(), url)
        Supervisor(child_argv(argv), count, config.grace + 15).run()


def _child_args(ctx: click.Context, url: str) -> list[str]:
    """This command's arguments for a child: the same with --processes 1, on the resolved
    server (an embedded one is shared)."""
    root, p = ctx.find_root().params, ctx.params
    args = ["--log-level", root["log_level"], "--log-format", root["log_format"], "worker"]
    args += ["--processes", "1"]
    args += [p["tasks_spec"], *p["queue_args"]] + (["--sidekiq"] if p["sidekiq"] else [])
    for flag, name in (("-c", "concurrency"), ("--max-jobs", "max_jobs")):
        args += [flag, str(p[name])] if p[name] is not None else []
    args += ["--max-memory", repr(p["max_memory"])] if p["max_memory"] is not None else []
    args += [x for q in p["queues"] for x in ("-q", q)]
    args += [x for path in p["paths"] or [Path.cwd()] for x in ("--path", str(path))]
    args += ["--config", str(p["config_path"])] if p["config_path"] else []
    return args + [x for s in p["sets"] for x in ("--set", s)] + ["--redis", url]


def _where_to_look(exc: RedlineError, spec: str) -> str:
    """The hint for a module not found at all (rather than one that failed inside)."""
    missing = exc.__cause__
    top = spec.partition(":")[0].split(".")[0]
    if isinstance(missing, ModuleNotFoundError) and missing.name == top:
        where = os.getcwd()
        return f" (not found from {where}: run from the directory that holds it, or --path DIR)"
    return ""


def run_worker(tasks: Tasks, config: WorkerConfig) -> None:
    """Run `tasks` until SIGTERM/SIGINT (an entrypoint's: it installs the signal handlers);
    also `manage.py redline_worker`'s."""
    hooks = worker_hooks(tasks, config)
    fast_loop()

    async def main(stopping: asyncio.Event) -> None:
        await run_service(hooks[-1], config, hooks, stopping)

    run_until_signal(main)


def _config_model(sidekiq: bool) -> type[WorkerConfig]:
    if not sidekiq:
        return WorkerConfig
    return SidekiqWorkerConfig


def worker_hooks(tasks: Tasks, config: WorkerConfig) -> list[Any]:
    """The assembly's hooks (registration under ``serviceNamespace``, default
    ``redline:worker``; metrics against the lease), and the worker last (so that it stops
    first, before the instance unregisters)."""
    queues = config.queues or tasks.queues
    assembly = assemble("worker", config, serves=",".join(queues), timeout=config.lease)
    runner: Worker
    if isinstance(config, SidekiqWorkerConfig):
        runner = sidekiq_worker(tasks, config, assembly.metrics)
        assembly.lifecycle.serves = ",".join(runner.queues)
    else:
        runner = Worker(
            tasks,
            config.queues,
            config.concurrency,
            config.threads,
            config.lease,
            config.grace,
            config.cron,
            assembly.metrics,
            config.events,
        )
    hooks = assembly.hooks(runner)
    if config.max_jobs or config.max_memory:
        hooks.insert(-1, Recycle(runner, config.max_jobs, config.max_memory))
    return hooks


def _json(value: object) -> str:
    import json

    return json.dumps(value)
