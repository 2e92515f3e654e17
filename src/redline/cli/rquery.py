"""`redline rquery FILE|-` (run one query) and `redline rquery-service` (answer a queue)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click

from redline.cli.common import config_options, load_or_exit, server_for
from redline.cli.services import metrics_port_option, serve_until_signal
from redline.connection import connect
from redline.errors import QueryError
from redline.rquery.query import parse_query, run_query
from redline.rquery.service import RQueryConfig, build

__all__ = ["rquery", "rquery_service"]


def _read(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text()
    except OSError as exc:
        raise click.BadParameter(f"cannot read {source!r}: {exc.strerror}") from None


async def _once(url: str, text: str, config: RQueryConfig) -> dict[str, object]:
    client = connect(url)
    try:
        policy = config.policy()
        return await run_query(client, parse_query(text, policy), policy)
    finally:
        await client.aclose()


@click.command()
@click.argument("source", metavar="FILE|-")
@config_options
def rquery(
    source: str, config_path: Path | None, redis_url: str | None, sets: tuple[str, ...]
) -> None:
    """Run one query document (a file, or - for stdin) and print its result as JSON.

    \b
    Example:
      echo '{"parameters": {"articleId": 12345}, "commands": [
             {"command": "hget article:$articleId section", "save": "section"}]}' \\
        | redline rquery -
      {"values": {"section": "news"}}

    Only read-only commands run unless the config's `allow` widens the list; `keyPrefixes`
    limits the keys. On a refused or failing query it prints {"error": {"code", "message"}}
    and exits 1.
    """
    text = _read(source)
    config = load_or_exit(RQueryConfig, config_path, sets, redis=redis_url)
    with server_for(config.redis) as url:
        try:
            result = asyncio.run(_once(url, text, config))
        except QueryError as exc:
            click.echo(json.dumps({"error": exc.document()}))
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
    click.echo(json.dumps(result))


@click.command("rquery-service")
@config_options
@metrics_port_option
def rquery_service(
    config_path: Path | None, redis_url: str | None, sets: tuple[str, ...], metrics_port: int | None
) -> None:
    """Answer query requests from the `in` queue (default rquery:in), each on its reply list.

    \b
      a request:  {"id": "r1", "reply": "app:reply:7", "parameters": {...}, "commands": [...]}
      its reply:  {"id": "r1", "values": {...}}  or  {"id": "r1", "error": {"code", "message"}}

    \b
    Requests without a usable reply list are answered on {in}:errors. Each instance registers
    under serviceNamespace (default {in}:service); a killed instance's requests are answered by
    another once its lifecycle hash expires (serviceExpire). Metrics: <ns>:metrics:answered
    and :refused. See docs/rquery.md.
    """
    config = load_or_exit(RQueryConfig, config_path, sets, redis=redis_url)
    with server_for(config.redis) as url:
        config = config.model_copy(update={"redis": url})
        service, hooks = build(config)
        serve_until_signal(service, config, hooks, service.metrics.namespace, metrics_port)
