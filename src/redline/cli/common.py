"""What every command shares: server resolution, config loading, signals, exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from redline.config import ServiceConfig, load_config
from redline.connection import mask_url
from redline.connection.embedded import (
    DEFAULT_PORT,
    EmbeddedServer,
    default_state_dir,
    ensure_server,
)
from redline.errors import ConfigError, RedlineError

__all__ = [
    "EXIT_CONFIG",
    "config_options",
    "default_port",
    "fail",
    "load_or_exit",
    "not_a_command",
    "redis_failure",
    "redis_option",
    "run_until_signal",
    "server_for",
    "state_dir",
]

EXIT_CONFIG = 2
C = TypeVar("C", bound=ServiceConfig)


def state_dir() -> Path:
    """Where `redline dev` publishes its server (``REDLINE_STATE_DIR`` overrides)."""
    override = os.environ.get("REDLINE_STATE_DIR")
    return Path(override) if override else default_state_dir()


def default_port() -> int:
    """The port of the default address 127.0.0.1 (``REDLINE_DEFAULT_PORT`` overrides 6379)."""
    text = os.environ.get("REDLINE_DEFAULT_PORT", "")
    if text.isdigit() and 0 < int(text) < 65536:
        return int(text)
    if text:
        fail(f"REDLINE_DEFAULT_PORT={text!r} is not a port: give a number 1-65535, or unset it")
    return DEFAULT_PORT


def fail(message: str, code: int = 1) -> None:
    """Print `message` as an error and exit with `code`."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


# redis-py's Sentinel errors quote each Sentinel's client repr (a screenful): said by address
_CLIENT_REPR = re.compile(r"<redis\..*?> - ")


def redis_failure(exc: Exception, url: str | None = None) -> str:
    """The one line for a server that failed a command: what it said and what to check."""
    at = f" at {mask_url(url)}" if url else ""
    said = _CLIENT_REPR.sub("", str(exc))
    return f"Redis{at} failed: {said} (is the server up? check --redis URL)"


@contextlib.contextmanager
def server_for(url: str | None) -> Iterator[str]:
    """The URL to use; starts (and at exit stops) an embedded server when none is reachable."""
    try:
        resolved, owned = ensure_server(url, state_dir(), default_port())
    except RedlineError as exc:
        fail(str(exc))
        raise  # unreachable: fail() exits
    if owned is not None:
        click.echo(
            f"no Redis at the default address: started an embedded server at {resolved}", err=True
        )
    try:
        yield resolved
    finally:
        if owned is not None:
            owned.stop()


def load_or_exit(model: type[C], path: Path | None, sets: tuple[str, ...], **fixed: Any) -> C:
    """Load and validate a config; on problems print one line each and exit 2."""
    extra = tuple(f"{key}={value}" for key, value in fixed.items() if value is not None)
    try:
        return load_config(model, path, os.environ, sets + extra)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"config error: {problem}", err=True)
        sys.exit(EXIT_CONFIG)


# --redis of the operator's commands (a service's comes with its config: `config_options`)
redis_option = click.option(
    "--redis",
    "redis_url",
    envvar="REDLINE_REDIS",
    metavar="URL",
    help="Redis URL (env: REDLINE_REDIS); default 127.0.0.1:6379, else `redline dev`'s server.",
)


def config_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--config FILE`` (or env ``propsFile``), ``--redis URL`` and repeatable ``--set k=v``."""
    func = click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="FIELD=VALUE",
        help="Override one config field (JSON value or plain string); repeatable.",
    )(func)
    func = click.option(
        "--redis",
        "redis_url",
        metavar="URL",
        help="Redis URL (redis://, rediss://, unix://, redis+cluster://, redis+sentinel://). "
        "Default: the config's, else 127.0.0.1:6379, else `redline dev`'s, else an embedded one.",
    )(func)
    return click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        envvar="propsFile",
        metavar="FILE",
        help="Config file, TOML or JSON (env: propsFile).",
    )(func)


def not_a_command(where: str, name: str) -> list[str]:
    """A problem when `name` is no `redline` subcommand (a child started with it would exit at
    once and be restarted for ever), with the one probably meant; else none."""
    from redline.cli import main  # the whole tree, however this command was invoked

    names = main.list_commands(click.Context(main))
    if name in names:
        return []
    close = difflib.get_close_matches(name, names, n=1)
    meant = f"did you mean {close[0]!r}? " if close else ""
    return [f"{where}: {name!r} is not a redline command ({meant}`redline --help` lists them)"]


def fast_loop() -> None:
    """uvloop when installed (it is, but on Windows): the loop uvicorn picks, and the one the
    HTTP services and the jobs worker run on (its scheduling and sockets cost less CPU)."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run_until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `main(stopping)` in a new event loop; SIGTERM and SIGINT set `stopping`."""

    async def wrapper() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        await main(stopping)

    asyncio.run(wrapper())


def dev_server(port: int | None, data_dir: Path | None) -> EmbeddedServer:
    return EmbeddedServer(port=port, data_dir=data_dir, state_dir=state_dir())
