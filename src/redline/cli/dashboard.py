"""`redline dashboard`: the web page over queues, jobs, services and metrics."""

from __future__ import annotations

import json
from pathlib import Path

import click

from redline.cli.common import config_options, load_or_exit, server_for
from redline.dashboard.settings import DashboardConfig

__all__ = ["dashboard"]


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
    import uvicorn

    from redline.dashboard.app import create_app

    given = {"host": host, "port": port, "token": token}
    extra = {k: json.dumps(v) for k, v in given.items() if v is not None}
    if queues:
        extra["queues"] = json.dumps(list(queues))
    config = load_or_exit(DashboardConfig, config_path, sets, redis=redis_url, **extra)
    with server_for(config.redis) as url:
        config = config.model_copy(update={"redis": url})
        click.echo(f"redline dashboard at http://{config.host}:{config.port}/", err=True)
        uvicorn.run(
            create_app(config),
            host=config.host,
            port=config.port,
            log_level="warning",
            timeout_graceful_shutdown=5,  # a browser tab left open must not hold a stop
        )
