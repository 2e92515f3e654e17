"""`redline up FILE`: start a whole topology (services, configs, replicas, HTTP port)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import click
import redis.exceptions

from redline.cli.common import EXIT_CONFIG, fail, not_a_command, server_for
from redline.cli.http import HandlerConfig
from redline.config import ServiceConfig, load_config
from redline.connection import SyncClient, connect_sync
from redline.errors import ConfigError
from redline.http.hassets import AssetsConfig
from redline.http.himporter import ImporterSettings
from redline.http.hrender import RenderConfig
from redline.http.hrouter import RouterConfig
from redline.scaling.procs import Children
from redline.scaling.up import (
    ServicePlan,
    Supervisor,
    Topology,
    groups_for,
    load_topology,
    seed_commands,
)
from redline.scaling.upscale import UpScaler, bury

__all__ = ["up"]

log = logging.getLogger(__name__)

KNOWN: dict[str, type[ServiceConfig]] = {
    "himporter": ImporterSettings,
    "hrouter": RouterConfig,
    "hassets": AssetsConfig,
    "hrender": RenderConfig,
    "handler": HandlerConfig,
}


def _validate(plan: ServicePlan) -> list[str]:
    """Problems with a plan's config, when redline knows the kind (else the child reports)."""
    model = KNOWN.get(plan.kind)
    if model is None:
        return not_a_command("kind", plan.kind)
    try:
        load_config(model, None, {}, (), defaults=plan.config)
    except ConfigError as exc:
        return exc.problems
    return []


def _seed(topology: Topology, url: str) -> None:
    if topology.seed is None:
        return
    client = connect_sync(url)
    try:
        for words in seed_commands(topology.seed):
            client.execute_command(*words)  # type: ignore[no-untyped-call]
    except redis.exceptions.RedisError as exc:
        fail(f"seed {str(topology.seed)!r}: {exc}")
    finally:
        client.close()
    click.echo(f"redline up: seeded from {topology.seed.name}")


@click.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--redis", "redis_url", metavar="URL", help="Redis URL (overrides the file's).")
@click.option("--port", type=int, help="HTTP port for every himporter (overrides the file's).")
@click.option("--grace", default=15.0, show_default=True, help="Seconds to wait at stop.")
def up(file: Path, redis_url: str | None, port: int | None, grace: float) -> None:
    """Start every service of the topology FILE (TOML or JSON), each replica its own process.

    Uses the file's `redis` URL, else the default server, else an embedded one. Restarts a
    replica that crashes; Ctrl-C (or SIGTERM) stops them all cleanly. A service with an
    `autoscale = {min, max, perReplica, interval, downAfter}` table is scaled between min and
    max replicas from its queue's backlog; `redline status` shows the decisions. See
    docs/web.md.
    """
    try:
        topology = load_topology(file, _validate, port)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"config error: {problem}", err=True)
        sys.exit(EXIT_CONFIG)
    if topology.port:
        _check_port(topology.port)
    stop = {"now": False}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with server_for(redis_url or topology.redis) as url, tempfile.TemporaryDirectory() as tmp:
        _seed(topology, url)
        children = Children()
        groups = groups_for(topology, url, Path(tmp), children)
        count = sum(group.plan.replicas for group in groups)
        where = f" — http://127.0.0.1:{topology.port}/" if topology.port else ""
        click.echo(f"redline up: {count} processes on {url}{where} (Ctrl-C to stop)")
        _supervise(Supervisor(groups, children, grace), url, lambda: stop["now"])
        click.echo("redline up: stopped")


def _check_port(port: int) -> None:
    """A port in use would have every himporter exit and be restarted for ever: say so now."""
    try:
        socket.create_server(("127.0.0.1", port)).close()
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        fail(f"port {port}: {why}; choose another with --port (or `port` in the file)")


def _supervise(supervisor: Supervisor, url: str, stopping: Callable[[], bool]) -> None:
    """Run the supervisor until `stopping`; the autoscaled groups with an `UpScaler` each."""
    client = connect_sync(url)
    grace, groups = supervisor.grace, supervisor.groups
    scalers = [UpScaler(client, g, grace) for g in groups if g.plan.autoscale is not None]
    supervisor.scalers, supervisor.bury = list(scalers), _burier(client)
    try:
        for scaler in scalers:
            scaler.publish()
        supervisor.run(stopping)
    finally:
        with contextlib.suppress(redis.exceptions.RedisError):
            for scaler in scalers:
                scaler.withdraw()
        client.close()


def _burier(client: SyncClient) -> Callable[[ServicePlan, int], None]:
    def bury_dead(plan: ServicePlan, pid: int) -> None:
        try:
            for key in bury(client, plan.namespace, pid):
                log.info("up replica of %s pid=%d died: unregistered %s", plan.name, pid, key)
        except redis.exceptions.RedisError as exc:
            log.warning("up could not unregister pid=%d of %s: %r", pid, plan.name, exc)

    return bury_dead
