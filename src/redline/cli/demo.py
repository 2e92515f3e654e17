"""`redline demo` and `redline mpush --demo`: the mpush seed's demo, start to finish.

Runs an mpush instance with the seed's demo config (on 127.0.0.1:6379, else `redline dev`'s
server, else an embedded one), pushes ``one``, ``two``, ``three`` onto ``demo:mpush:in``, shows
them on both outputs, shows the instance's lifecycle keys, stops it as SIGTERM would, and shows
that it cleaned up after itself.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import click

from redline.cli.common import server_for
from redline.config import load_config
from redline.connection import AsyncClient, connect, text
from redline.runtime import run_service
from redline.runtime.lifecycle import ids_key, instance_key
from redline.services import mpush

__all__ = ["DEMO_CONFIG", "demo", "run_mpush_demo"]

# The seed's demo configuration (config/mpush.json holds the same).
DEMO_CONFIG = {
    "redis": "redis://localhost:6379/0",
    "in": "demo:mpush:in",
    "pending": "demo:mpush:pending",
    "popTimeout": 10,
    "out": ["demo:mpush:out0", "demo:mpush:out1"],
    "serviceNamespace": "demo:mpush",
}
MESSAGES = ("one", "two", "three")
WAIT = 15.0  # seconds the demo waits for what it expects


def _show(command: str, reply: object) -> None:
    click.echo(f"$ redis-cli {command}")
    if isinstance(reply, list | tuple):
        lines = [f'{i}) "{text(item)}"' for i, item in enumerate(reply, 1)] or ["(empty list)"]
        click.echo("\n".join(lines))
    elif isinstance(reply, dict):
        for key, value in reply.items():
            click.echo(f"{text(key)}: {text(value)}")
    else:
        click.echo(f"(integer) {reply}" if isinstance(reply, int) else repr(reply))


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + WAIT
    while not await check():
        if time.monotonic() > deadline:
            raise click.ClickException("the demo did not see the expected keys in time")
        await asyncio.sleep(0.05)


async def _demo(config: mpush.MpushConfig) -> None:
    assert config.redis is not None
    client: AsyncClient = connect(config.redis)
    await client.delete(config.in_, *config.out)
    forwarder, hooks = mpush.build(config)
    ns = forwarder.metrics.namespace
    stopping = asyncio.Event()
    task = asyncio.create_task(run_service(forwarder, config, hooks, stopping))

    async def registered() -> bool:
        return bool(forwarder.mine)

    await _until(registered)
    for message in MESSAGES:
        _show(f"lpush {config.in_} {message}", await client.lpush(config.in_, message))
    out0, out1 = config.out

    async def arrived() -> bool:
        return bool(await client.llen(out0) == await client.llen(out1) == len(MESSAGES))

    await _until(arrived)
    for out in config.out:
        _show(f"lrange {out} 0 -1", await client.lrange(out, 0, -1))
    ident = await client.lindex(ids_key(ns), 0)
    key = instance_key(ns, text(ident))
    _show(f"lrange {ids_key(ns)} 0 -1", await client.lrange(ids_key(ns), 0, -1))
    _show(f"hgetall {key}", await client.hgetall(key))
    _show(f"ttl {key}", await client.ttl(key))
    click.echo("# stopping the instance, as SIGTERM would")
    stopping.set()
    await task
    _show(f"exists {key}", await client.exists(key))
    await client.aclose()


def run_mpush_demo(redis_url: str | None = None) -> None:
    """Run the demo against `redis_url` (default: the seed's server, else an embedded one)."""
    with server_for(redis_url) as url:
        fields = {**DEMO_CONFIG, "redis": url}
        click.echo("config " + json.dumps(fields))
        config = load_config(mpush.MpushConfig, defaults=fields)
        asyncio.run(_demo(config))
    click.echo("demo done: each message reached both outputs once; the instance cleaned up.")


@click.command()
@click.option("--redis", "redis_url", metavar="URL", help="Run the demo on this server instead.")
def demo(redis_url: str | None) -> None:
    """Run the mpush demo: one, two, three fanned out to two lists, lifecycle keys shown."""
    run_mpush_demo(redis_url)
