"""The `redline` command: one subcommand per service, plus the operator's tools."""

from __future__ import annotations

import importlib
import os

import click
from redis.exceptions import RedisClusterException, RedisError

from redline import __version__
from redline.cli.common import fail, redis_failure
from redline.errors import RedlineError
from redline.logs import configure

__all__ = ["main"]


# Each subcommand and where it is defined ("module:attribute"; an attribute that is a list
# holds several, found by name). Imported when named: `redline queue info` loads the queue's
# modules only, not the web server's, the dashboard's and the jobs' (half a second a run).
COMMANDS = {
    "dev": "redline.cli.dev:dev",
    "ping": "redline.cli.dev:ping",
    "demo": "redline.cli.demo:demo",
    "mpush": "redline.cli.services:mpush_command",
    "lpush": "redline.cli.services:lpush_command",
    "mbalance": "redline.cli.services:mbalance_command",
    "metrics": "redline.cli.metrics:metrics_command",
    "queue": "redline.cli.queue:queue",
    "rquery": "redline.cli.rquery:rquery",
    "rquery-service": "redline.cli.rquery:rquery_service",
    "vpush": "redline.cli.vpush:vpush",
    "scale": "redline.cli.scale:scale",
    "cscale": "redline.cli.scale:cscale",
    "deploy": "redline.cli.deploy:deploy_command",
    "rollback": "redline.cli.deploy:rollback_command",
    "status": "redline.cli.status:status",
    "services": "redline.cli.status:services_command",
    "up": "redline.cli.up:up",
    "himporter": "redline.cli.http:COMMANDS",
    "hrouter": "redline.cli.http:COMMANDS",
    "hassets": "redline.cli.http:COMMANDS",
    "hrender": "redline.cli.http:COMMANDS",
    "handler": "redline.cli.http:COMMANDS",
    "worker": "redline.cli.worker:worker",
    "jobs": "redline.cli.jobs:jobs",
    "sidekiq": "redline.cli.sidekiq:sidekiq",
    "dashboard": "redline.cli.dashboard:dashboard",
}


class _Redline(click.Group):
    """The root group: its subcommands loaded when named (`COMMANDS`); an error a user can
    cause (a server down, a bad URL) that no command caught ends the command with one line and
    exit code 1, never a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = COMMANDS.get(cmd_name)
        if where is None:
            return None
        module, attribute = where.split(":")
        found: click.Command | list[click.Command] = getattr(
            importlib.import_module(module), attribute
        )
        if isinstance(found, click.Command):
            return found
        return next(command for command in found if command.name == cmd_name)

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
