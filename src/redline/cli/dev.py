"""`redline dev` and `redline ping`: the embedded server and a check of any server."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from redline.cli.common import default_port, dev_server, fail, state_dir
from redline.connection import connect_sync, mask_url, parse_url
from redline.connection.embedded import DEFAULT_HOST, find_shared, reachable
from redline.errors import RedlineError

__all__ = ["dev", "ping"]


@click.command()
@click.option(
    "--port",
    type=int,
    default=None,
    help="Port to listen on (default: 6379 when free, else any free port).",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Keep data here across restarts (AOF on). Without it nothing is kept.",
)
def dev(port: int | None, data_dir: Path | None) -> None:
    """Run an embedded Valkey server in the foreground until Ctrl-C.

    Other redline commands started without --redis find and use it.
    """
    running = find_shared(state_dir())
    if running:
        fail(
            f"redline dev already runs at {running}: other commands find it, so use it (or stop "
            "it first; REDLINE_STATE_DIR=DIR publishes a second one elsewhere)"
        )
    stop = threading.Event()  # handlers first: a Ctrl-C during start-up must still clean up
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = dev_server(port, data_dir)
    try:
        url = server.start()
    except RedlineError as exc:
        fail(str(exc))
    click.echo(f"redline dev: Valkey listening at {url}  (Ctrl-C to stop)")
    click.echo(f"  try: redline ping   or   redis-cli -p {url.rsplit(':', 1)[1].split('/')[0]}")

    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        click.echo("redline dev: stopped")


def _default_url(port: int) -> str | None:
    if reachable(DEFAULT_HOST, port):
        return f"redis://{DEFAULT_HOST}:{port}/0"
    return find_shared(state_dir())


@click.command()
@click.argument("url", required=False)
@click.option(
    "--redis",
    "redis_url",
    envvar="REDLINE_REDIS",
    metavar="URL",
    help="The server to check (as URL; env: REDLINE_REDIS).",
)
def ping(url: str | None, redis_url: str | None) -> None:
    """Check a server: print its version and mode (standalone or cluster).

    Without URL (or --redis URL): the server at 127.0.0.1:6379 (env REDLINE_DEFAULT_PORT
    changes the port), else the one `redline dev` runs.

    Example:  redline ping redis+cluster://127.0.0.1:7000
    """
    port = default_port()
    url = url or redis_url or _default_url(port)
    if url is None:
        fail(
            f"no server at {DEFAULT_HOST}:{port} and no `redline dev` running: start one with "
            "`redline dev`, or pass a URL"
        )
        return
    try:
        mode = parse_url(url).mode
        client = connect_sync(url, socket_connect_timeout=3)
        info = client.info("server")
        cluster = mode == "cluster" or client.info("cluster").get("cluster_enabled") == 1
    except RedlineError as exc:
        fail(str(exc))
        return
    except Exception as exc:  # any client error means: not reachable as given
        fail(f"cannot reach {mask_url(url)}: {exc}")
        return
    name = info.get("server_name", "redis")
    version = info.get("valkey_version") or info.get("redis_version")
    kind = "cluster" if cluster else mode
    click.echo(f"PONG {mask_url(url)} server={name} version={version} mode={kind}")
