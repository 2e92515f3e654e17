"""`redline dashboard`: the web page over queues, jobs, services and metrics."""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from redline.cli.common import config_options, fail, load_or_exit, server_for
from redline.dashboard.settings import DashboardConfig

if TYPE_CHECKING:
    import uvicorn

    from redline.dashboard.live import Live

__all__ = ["dashboard"]

SHUTDOWN_LIMIT = 15.0  # seconds from SIGTERM/SIGINT to exit, whatever holds the stop
GRACEFUL = 5  # seconds an open response (a slow page) gets at the stop before it is cut


@click.command()
@click.option("--host", help="Address to listen on (default 127.0.0.1; others need auth).")
@click.option("--port", type=int, help="Port to listen on (default 8790).")
@click.option(
    "--queue",
    "-q",
    "queues",
    multiple=True,
    help="A queue to show besides those workers serve; repeatable.",
)
@click.option(
    "--token",
    envvar="REDLINE_DASHBOARD_TOKEN",
    help="Require this bearer token (or basic-auth password) (env: REDLINE_DASHBOARD_TOKEN).",
)
@config_options
def dashboard(
    host: str | None,
    port: int | None,
    queues: tuple[str, ...],
    token: str | None,
    config_path: Path | None,
    redis_url: str | None,
    sets: tuple[str, ...],
) -> None:
    """Serve the dashboard: queues (counts and a chart), their messages and dead letters with
    retry and delete buttons, jobs by state, live service instances and metrics histograms.

    Listening off localhost (--host 0.0.0.0) needs --token, or basicUser/basicPassword in the
    config file.

    \b
    Example:  redline dashboard --queue hits   then open http://127.0.0.1:8790/
    """
    given = {"host": host, "port": port, "token": token}
    extra = {k: json.dumps(v) for k, v in given.items() if v is not None}
    if queues:
        extra["queues"] = json.dumps(list(queues))
    config = load_or_exit(DashboardConfig, config_path, sets, redis=redis_url, **extra)
    with server_for(config.redis) as url:
        config = config.model_copy(update={"redis": url})
        sock = _listen(config.host, config.port)
        click.echo(f"redline dashboard at http://{config.host}:{config.port}/", err=True)
        dashboard_server(config).run(sockets=[sock])


def dashboard_server(config: DashboardConfig, graceful: int = GRACEFUL) -> uvicorn.Server:
    """The dashboard's app for `config` in uvicorn's server, bounded as `_bounded_server`
    says; open responses get `graceful` seconds at the stop (pages' live streams end first)."""
    import uvicorn

    from redline.dashboard.app import create_app

    app = create_app(config)
    settings = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_level="warning",
        timeout_graceful_shutdown=graceful,
    )
    return _bounded_server(uvicorn.Server, app.state.live)(settings)


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, or one line saying why there is none (a port in use)."""
    try:
        return socket.create_server((host, port), family=_family(host), reuse_port=False)
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        fail(f"cannot listen on {host}:{port}: {why}; choose another --port")
        raise  # unreachable: fail() exits


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _bounded_server(base: type[uvicorn.Server], live: Live) -> type[uvicorn.Server]:
    """uvicorn's Server, whose stop ends the pages' live streams at once and, on
    SIGTERM/SIGINT, has a hard deadline: past `SHUTDOWN_LIMIT` seconds it prints every
    thread's stack (the evidence of what held it) and ends the process by the same signal,
    as an unhandled one would have."""

    class BoundedServer(base):  # type: ignore[valid-type,misc]
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            # uvicorn waits for open responses before it runs the lifespan's stop, and a
            # page's /live stream ended only there: each stop waited out the graceful
            # timeout. The streams wake at the shutdown's first await, after uvicorn has
            # closed the listening sockets and told every connection to close when done.
            live.stop()
            await super().shutdown(sockets)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if not self.should_exit:
                timer = threading.Timer(SHUTDOWN_LIMIT, _die, (sig,))
                timer.daemon = True
                timer.start()
            super().handle_exit(sig, frame)

    return BoundedServer


def _die(sig: int) -> None:
    print(f"redline dashboard: still stopping after {SHUTDOWN_LIMIT}s; exiting", file=sys.stderr)
    faulthandler.dump_traceback(all_threads=True)
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)
