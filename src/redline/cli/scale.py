"""`redline scale SERVICE N` (desired replicas) and `redline cscale FILE --host NAME` (agent)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from redline.cli.common import (
    EXIT_CONFIG,
    fail,
    not_a_command,
    redis_option,
    run_until_signal,
    server_for,
)
from redline.config import ServiceConfig
from redline.connection import connect
from redline.errors import ConfigError
from redline.runtime import assemble, run_service
from redline.scaling.cscale import ScaleFile, get_desired, load_scale_file, set_desired
from redline.scaling.cscale_agent import Agent

__all__ = ["cscale", "scale"]


@click.command()
@click.argument("service")
@click.argument("replicas", type=click.IntRange(min=0))
@redis_option
def scale(service: str, replicas: int, redis_url: str | None) -> None:
    """Set the desired number of active replicas of SERVICE (its namespace, e.g. demo:worker).

    The cscale agents converge to it: they start instances when short and stop the newest when
    over. The same as `redis-cli hset redline:scale SERVICE N`.
    """

    async def apply(url: str) -> int | None:
        client = connect(url)
        try:
            before = await get_desired(client, service)
            await set_desired(client, service, replicas)
            return before
        finally:
            await client.aclose()

    with server_for(redis_url) as url:
        before = asyncio.run(apply(url))
    was = "unset" if before is None else str(before)
    click.echo(f"{service}: desired replicas {replicas} (was {was})")


@click.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--host", required=True, help="This agent's name; one agent per host.")
@redis_option
@click.option("--interval", default=1.0, show_default=True, help="Seconds between rounds.")
@click.option(
    "--stop-grace", default=30.0, show_default=True, help="Seconds instances get to stop at exit."
)
def cscale(
    file: Path, host: str, redis_url: str | None, interval: float, stop_grace: float
) -> None:
    """Run the cscale agent of this host for the services in FILE (TOML or JSON).

    FILE has one table per service, named by its namespace:

    \b
      [services."demo:worker"]
      service = "lpush"            # or argv = ["python", "-m", "myworker"]
      config = "worker.toml"
      replicas = 2                 # used when `redline scale` has not set it
      standby = 1
      rollout = { bake = 30 }      # how `redline deploy` replaces replicas
    \b
      [services."demo:worker".autoscale]   # optional
      queue = "demo:in"
      perReplica = 100
      min = 1
      max = 8

    Several agents (on several hosts) share the work through Redis. SIGTERM stops this host's
    instances cleanly; the other agents then replace them.
    """
    try:
        plan = load_scale_file(file)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"config error: {problem}", err=True)
        raise SystemExit(EXIT_CONFIG) from None
    if not plan.services:
        fail(f'{file}: no [services."<namespace>"] table: nothing to scale', EXIT_CONFIG)
    unknown = _unknown_services(plan)
    for problem in unknown:
        click.echo(f"config error: {problem}", err=True)
    if unknown:
        raise SystemExit(EXIT_CONFIG)

    async def main(stopping: asyncio.Event) -> None:
        agent = Agent(url, host, plan, interval, stop_grace)
        config = ServiceConfig.model_validate({"redis": url})
        assembly = assemble(agent.name, config, serves=agent.serves)
        await run_service(agent, config, assembly.hooks(agent), stopping)

    with server_for(redis_url) as url:
        run_until_signal(main)


def _unknown_services(plan: ScaleFile) -> list[str]:
    """A `service` that no redline command has (an `argv` runs whatever it names)."""
    named = ((ns, spec.service) for ns, spec in plan.services.items() if spec.service)
    return [p for ns, service in named for p in not_a_command(f'services."{ns}".service', service)]
