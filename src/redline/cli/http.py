"""`redline himporter|hrouter|hassets|hrender|handler`: the web services, one process each."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from redline.cli.common import (
    EXIT_CONFIG,
    config_options,
    fail,
    fast_loop,
    load_or_exit,
    run_until_signal,
    server_for,
)
from redline.config import ServiceConfig
from redline.errors import ConfigError, import_failure
from redline.http.handler import HandlerService, HandlerSet, registry
from redline.http.hassets import Assets, AssetsConfig
from redline.http.himporter import ImporterSettings, create_app
from redline.http.hrender import Render, RenderConfig
from redline.http.hrouter import Router, RouterConfig
from redline.http.worker import HttpService, WorkerConfig
from redline.runtime import run_service

__all__ = ["COMMANDS", "HandlerConfig", "load_handlers"]

C = TypeVar("C", bound=ServiceConfig)


class HandlerConfig(WorkerConfig):
    """A handler service: ``in`` and the ``module`` (a .py file or dotted name) to load."""

    module: str


def _import(module: str) -> None:
    if not module.endswith(".py"):
        importlib.import_module(module)
        return
    path = Path(module).resolve()
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None or not path.is_file():
        raise ConfigError([f"module: {module!r} — no such file; give a .py file or module"])
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = loaded
    spec.loader.exec_module(loaded)


def load_handlers(module: str) -> HandlerSet:
    """Import the user's module (file path or dotted name); its ``@handler``s register."""
    before = len(registry)
    try:
        _import(module)
    except ConfigError:
        raise
    except Exception as exc:  # the user's code: any error, said in one line
        raise ConfigError([f"module: {module!r} — {import_failure(module, exc)}"]) from exc
    if len(registry) == before:
        raise ConfigError([f"module: {module!r} — declares no @handler functions"])
    return registry


def _run_worker(service: HttpService, config: ServiceConfig) -> None:
    fast_loop()
    with server_for(config.redis) as url:
        config = config.model_copy(update={"redis": url})
        run_until_signal(lambda stopping: run_service(service, config, service.hooks(), stopping))


def _worker(
    name: str, model: type[C], build: Callable[[Any], HttpService], summary: str
) -> click.Command:
    @click.command(name=name, help=summary)
    @config_options
    def command(config_path: Path | None, redis_url: str | None, sets: tuple[str, ...]) -> None:
        _start(model, build, load_or_exit(model, config_path, sets, redis=redis_url))

    return command


def _start(model: type[C], build: Callable[[Any], HttpService], config: C) -> None:
    try:
        service = build(config)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"config error: {problem}", err=True)
        sys.exit(EXIT_CONFIG)
    except OSError as exc:
        fail(str(exc), EXIT_CONFIG)
        return
    _run_worker(service, config)


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket several himporter processes can share (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: without it a keep-alive response written in two parts
    # (head, body) waits for the client's delayed ACK, 40 ms per request.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


@click.command()
@config_options
@click.option("--port", type=int, help="Port to listen on (config: port; default 8080).")
@click.option("--host", help="Address to listen on (config: host; default 127.0.0.1).")
def himporter(
    config_path: Path | None,
    redis_url: str | None,
    sets: tuple[str, ...],
    port: int | None,
    host: str | None,
) -> None:
    """The HTTP front: each request becomes a message on the routing queue (``out``).

    Replicas may share one port (SO_REUSEPORT); each answers its own clients from its own reply
    list. Limits: maxBody (413), maxHeader (431), timeout (504), maxConcurrency (503).

    Example:  redline himporter --port 8080 --set out=web:http

    Then an hrouter on web:http, and the services it routes to; `redline up FILE` starts the
    whole chain at once (docs/web.md).
    """
    from redline.http.front import Front

    settings = load_or_exit(
        ImporterSettings, config_path, sets, redis=redis_url, port=port, host=host
    )
    with server_for(settings.redis) as url:
        settings = settings.model_copy(update={"redis": url})
        try:
            sock = _listen(settings.host, settings.port)
        except OSError as exc:
            fail(
                f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}; "
                "choose another --port"
            )
        app = create_app(settings)
        importer = app.state.importer

        async def serve(stopping: asyncio.Event) -> None:
            async with importer.lifespan(app):
                await Front(importer).serve(sock, stopping)

        fast_loop()
        click.echo(f"himporter listening on http://{settings.host}:{settings.port}/", err=True)
        run_until_signal(serve)


def _handler(config: HandlerConfig) -> HttpService:
    return HandlerService(config, load_handlers(config.module))


@click.command()
@click.argument("module", required=False)
@config_options
def handler(
    module: str | None, config_path: Path | None, redis_url: str | None, sets: tuple[str, ...]
) -> None:
    """Run the @handler functions of MODULE (a .py file or a dotted module name).

    MODULE may also come from the config's `module`. Requests are popped from `in`:
    `redline handler hello.py --set in=web:hello`. See docs/web.md.
    """
    config = load_or_exit(HandlerConfig, config_path, sets, redis=redis_url, module=module)
    _start(HandlerConfig, _handler, config)


COMMANDS = [
    himporter,
    _worker(
        "hrouter",
        RouterConfig,
        Router,
        "Route each request to a handler queue by the first matching regex in `routes`"
        " (no match: 404). See docs/web.md.\n\n\b\nExample:\n"
        "  redline hrouter --set in=web:http \\\n"
        """    --set 'routes=[{"path": "/(?P<path>.*)", "queue": "web:assets"}]'""",
    ),
    _worker(
        "hassets",
        AssetsConfig,
        Assets,
        "Serve static files from `root`: types, ETag/304, Range, HEAD, gzip; no escapes."
        " See docs/web.md.\n\n\b\nExample:  redline hassets --set in=web:assets --set root=public",
    ),
    _worker(
        "hrender",
        RenderConfig,
        Render,
        "Render Jinja2 `pages` (or JSON) with data from Redis fetched by rquery commands:"
        " `pages` = [{path, template, commands}], `templates` = their directory; a config file"
        " is the easy way (docs/web.md, examples/website/redline.toml).",
    ),
    handler,
]
