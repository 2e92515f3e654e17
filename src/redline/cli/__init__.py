"""The `redline` command: one subcommand per service, plus the operator's tools."""

from __future__ import annotations

import os

import click
from redis.exceptions import RedisClusterException, RedisError

from redline import __version__
from redline.cli.common import fail, redis_failure
from redline.cli.dashboard import dashboard
from redline.cli.demo import demo
from redline.cli.deploy import deploy_command, rollback_command
from redline.cli.dev import dev, ping
from redline.cli.http import COMMANDS as HTTP_COMMANDS
from redline.cli.jobs import jobs
from redline.cli.metrics import metrics_command
from redline.cli.queue import queue
from redline.cli.rquery import rquery, rquery_service
from redline.cli.scale import cscale, scale
from redline.cli.services import lpush_command, mbalance_command, mpush_command
from redline.cli.sidekiq import sidekiq
from redline.cli.status import services_command, status
from redline.cli.up import up
from redline.cli.vpush import vpush
from redline.cli.worker import worker
from redline.errors import RedlineError
from redline.logs import configure

__all__ = ["main"]


class _Redline(click.Group):
    """The root group: an error a user can cause (a server down, a bad URL) that no command
    caught ends the command with one line and exit code 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (RedisError, RedisClusterException) as exc:
            fail(redis_failure(exc))
        except RedlineError as exc:
            fail(str(exc))
        return None


@click.group(cls=_Redline, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="redline")
@click.option(
    "--log-level",
    default=lambda: os.environ.get("REDLINE_LOG_LEVEL", "info"),
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    help="Log level (env: REDLINE_LOG_LEVEL).",
    show_default="info",
)
@click.option(
    "--log-format",
    default=lambda: os.environ.get("REDLINE_LOG_FORMAT", "kv"),
    type=click.Choice(["kv", "json"]),
    show_default="kv",
    help="One line per event as key=value or JSON (env: REDLINE_LOG_FORMAT).",
)
def main(log_level: str, log_format: str) -> None:
    """redline: stateless microservices that talk through Redis.

    Every command takes --redis URL (or env REDLINE_REDIS); without it redline uses
    127.0.0.1:6379 (env REDLINE_DEFAULT_PORT changes the port), else the server `redline dev`
    runs, else starts an embedded Valkey server for the duration of the command.

    `redline COMMAND --help` explains each; all of them on one page: docs/cli.md.
    """
    configure(log_level, log_format)


COMMANDS = (
    dev,
    ping,
    demo,
    mpush_command,
    lpush_command,
    mbalance_command,
    metrics_command,
    queue,
    rquery,
    rquery_service,
    vpush,
    scale,
    cscale,
    deploy_command,
    rollback_command,
    status,
    services_command,
    up,
    *HTTP_COMMANDS,
    worker,
    jobs,
    sidekiq,
    dashboard,
)
for command in COMMANDS:
    main.add_command(command)
