"""`redline demo`: the quick start's demo, on an embedded server."""

from __future__ import annotations

import click

from redline.cli.common import fail
from redline.connection import connect_sync
from redline.embedded import EmbeddedServer
from redline.errors import RedlineError

__all__ = ["demo"]


@click.command()
def demo() -> None:
    """Start an embedded server, run the demo on it, and stop it."""
    try:
        with EmbeddedServer(port=None) as server:
            click.echo(f"embedded Valkey at {server.url}")
            client = connect_sync(server.url)
            client.lpush("demo:in", "hello")
            click.echo(f"lpush demo:in hello → rpop demo:in = {client.rpop('demo:in')!r}")
    except RedlineError as exc:
        fail(str(exc))
