"""Sidekiq interop on the command line: `redline worker MODULE --sidekiq [QUEUE…]`'s settings,
and `redline sidekiq push CLASS ARGS…`."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click
from redis.exceptions import RedisError

from redline.cli.common import fail, redis_failure, redis_option, server_for
from redline.cli.worker_config import SidekiqWorkerConfig
from redline.connection import connect_sync, is_cluster
from redline.errors import RedlineError
from redline.jobs.sidekiq import SidekiqSettings, SidekiqWorker, enqueue_sidekiq_sync
from redline.jobs.task import Tasks
from redline.runtime.metrics import Metrics

__all__ = ["SidekiqWorkerConfig", "sidekiq", "sidekiq_worker"]

CLUSTER_REFUSED = (
    "Sidekiq keeps its keys (queue:<name>, schedule, retry, dead, processes) on one server and "
    "does not run on a Redis Cluster: point --redis at a standalone server (or Sentinel)"
)


def sidekiq_worker(tasks: Tasks, config: SidekiqWorkerConfig, metrics: Metrics) -> SidekiqWorker:
    """The worker of `redline worker --sidekiq`; exits with a clear error where it cannot run."""
    if config.redis and is_cluster(config.redis):
        fail(CLUSTER_REFUSED, 2)
    try:
        settings = SidekiqSettings(
            beat=config.beat,
            expire=config.process_expire,
            unknown=config.unknown_class,
            unknown_delay=config.unknown_delay,
            max_recoveries=config.max_recoveries,
            poll=config.poll_interval,
            tag=config.tag,
        )
        return SidekiqWorker(
            tasks,
            config.queues or ["default"],
            config.concurrency,
            config.threads,
            config.grace,
            settings,
            metrics,
        )
    except RedlineError as exc:
        fail(str(exc), 2)
        raise  # unreachable: fail() exits


@click.group()
def sidekiq() -> None:
    """Sidekiq interop: enqueue jobs for Ruby Sidekiq workers (docs/sidekiq.md).

    To run Sidekiq jobs with Python tasks: redline worker MODULE --sidekiq [QUEUE]...
    """


def _arg(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _retry(text: str) -> bool | int:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text.isdigit():
        return int(text)
    raise click.BadParameter(f"{text!r}: true, false or a number of retries", param_hint="--retry")


def _when(at: str | None, delay: float | None) -> float | None:
    if at is not None and delay is not None:
        raise click.UsageError("give --at or --in, not both")
    if delay is not None:
        return dt.datetime.now(dt.UTC).timestamp() + delay
    if at is None:
        return None
    try:
        return float(at)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(at)
    except ValueError:
        raise click.BadParameter(
            f"{at!r}: unix seconds or an ISO 8601 time with its zone", param_hint="--at"
        ) from None
    if when.tzinfo is None:
        raise click.BadParameter(f"{at!r} has no time zone: add one (+00:00)", param_hint="--at")
    return when.timestamp()


@sidekiq.command("push")
@click.argument("class_name", metavar="CLASS")
@click.argument("args", metavar="[ARG]...", nargs=-1)
@click.option("--queue", "-q", default="default", show_default=True, help="Sidekiq queue.")
@click.option("--at", "at", metavar="WHEN", help="Due at WHEN: unix seconds or ISO 8601.")
@click.option("--in", "delay", type=float, metavar="SECONDS", help="Due SECONDS from now.")
@click.option("--retry", "retry", default="true", show_default=True, help="true, false or N.")
@redis_option
def push(
    class_name: str,
    args: tuple[str, ...],
    queue: str,
    at: str | None,
    delay: float | None,
    retry: str,
    redis_url: str | None,
) -> None:
    """Enqueue a job for Sidekiq worker CLASS (Ruby's `perform_async`); prints its jid.

    Each ARG is JSON when it parses as JSON (5, true, [1,2], {"a":1}; '"5"' for the string
    "5"), else a string.

    \b
    Example:  redline sidekiq push HardWorker bob 5
              redline sidekiq push ReportJob 2026-01-02 -q reports --in 3600
    """
    when, retries = _when(at, delay), _retry(retry)
    with server_for(redis_url) as url:
        client = connect_sync(url)
        try:
            jid = enqueue_sidekiq_sync(
                client, class_name, *map(_arg, args), queue=queue, at=when, retry=retries
            )
        except RedisError as exc:
            fail(redis_failure(exc, url))
            return
        except RedlineError as exc:
            fail(str(exc), 2)
            return
        finally:
            client.close()
    click.echo(jid)
