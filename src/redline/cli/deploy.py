"""`redline deploy SERVICE --set field=value … [--version LABEL]` (a new revision of a service's
spec) and `redline rollback SERVICE [--to N]` (an earlier one, desired again)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from redline.cli.common import EXIT_CONFIG, fail, redis_option, server_for
from redline.connection import AsyncClient, connect
from redline.scaling.cscale import read_specs
from redline.scaling.rollout import (
    deploy,
    desired_revision,
    rollback,
    set_state,
)

__all__ = ["deploy_command", "rollback_command"]

T = TypeVar("T")


def _run(redis_url: str | None, action: Callable[[AsyncClient], Awaitable[T]]) -> T:
    async def main(url: str) -> T:
        client = connect(url)
        try:
            return await action(client)
        finally:
            await client.aclose()

    with server_for(redis_url) as url:
        return asyncio.run(main(url))


@click.command(name="deploy")
@click.argument("service")
@click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE", help="A config override.")
@click.option("--version", "version", metavar="LABEL", help="A label for the new revision.")
@redis_option
def deploy_command(
    service: str, sets: tuple[str, ...], version: str | None, redis_url: str | None
) -> None:
    """Write a new revision of SERVICE's spec (its namespace, e.g. demo:worker): the current
    revision's config overrides with each --set applied, labelled --version (or as before).

    \b
    The cscale agents then replace its replicas one by one: start one of the new revision,
    let it bake (`rollout = {bake = 30}` in the scale file) while its errors and timeouts are
    compared with the old revision's, stop one of the old, repeat. A revision that fails more
    is rolled back by itself. Same keys any client may write: see docs/scaling.md.
    """
    if not sets and version is None:
        fail("nothing to deploy: give --set FIELD=VALUE and/or --version LABEL", EXIT_CONFIG)

    async def write(client: AsyncClient) -> tuple[int, int, bool]:
        base = await desired_revision(client, service)
        known = service in await read_specs(client)
        return base.number, await deploy(client, service, sets, version, base), known

    try:
        was, number, known = _run(redis_url, write)
    except ValueError as exc:
        fail(str(exc), EXIT_CONFIG)
    if number < 0:
        fail(f"{service}: someone deployed meanwhile (was revision {was}): run it again")
    click.echo(f"{service}: revision {number} desired (was {was}); `redline status` shows it")
    if not known:
        click.echo(
            f"warning: no cscale agent runs {service} (a typo? `redline status` lists the "
            "services); the revision waits until an agent's scale file names it",
            err=True,
        )


@click.command(name="rollback")
@click.argument("service")
@click.option("--to", "to", type=click.IntRange(min=0), help="This revision (default: last good).")
@redis_option
def rollback_command(service: str, to: int | None, redis_url: str | None) -> None:
    """Make an earlier revision of SERVICE desired again: by default the last one that
    completed a rollout (or the good one before it, when that one is desired now). Its
    replicas are known good: the agents replace the others without a bake."""

    async def write(client: AsyncClient) -> str:
        before, after = await rollback(client, service, to)
        msg = f"rolled back to {after.describe()} by hand"
        await set_state(
            client, service, before.number, "rolled back", to=str(after.number), msg=msg
        )
        return f"{service}: {after.describe()} desired again (was {before.describe()})"

    try:
        click.echo(_run(redis_url, write))
    except ValueError as exc:
        fail(str(exc), EXIT_CONFIG)
