"""`redline mpush`, `redline lpush`, `redline mbalance`: the forwarding services."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from redline.cli.common import (
    EXIT_CONFIG,
    config_options,
    fail,
    load_or_exit,
    run_until_signal,
    server_for,
)
from redline.config import ServiceConfig
from redline.errors import CrossSlotError
from redline.runtime import Hook, Service, run_service
from redline.runtime.metrics import serve_prometheus
from redline.services import lpush, mbalance, mpush
from redline.services.forward import ForwardConfig, Forwarder, check_slots

__all__ = [
    "lpush_command",
    "mbalance_command",
    "metrics_port_option",
    "mpush_command",
    "run",
    "serve_until_signal",
]

F = TypeVar("F", bound=ForwardConfig)
Builder = Callable[[F], tuple[Forwarder, list[Hook]]]


def metrics_port_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--metrics-port PORT``: serve the namespace's metrics in Prometheus text format."""
    return click.option(
        "--metrics-port",
        type=click.IntRange(1, 65535),
        default=None,
        metavar="PORT",
        help="Serve this service's metrics at http://0.0.0.0:PORT/metrics (Prometheus text).",
    )(func)


def serve_until_signal(
    service: Service,
    config: ServiceConfig,
    hooks: list[Hook],
    namespace: str,
    metrics_port: int | None,
) -> None:
    """Serve the namespace's metrics if asked, then run the service until SIGTERM/SIGINT."""
    if metrics_port is not None:
        serve_prometheus(metrics_port, config.service_redis or str(config.redis), namespace)
    run_until_signal(lambda stopping: run_service(service, config, hooks, stopping))


def run(config: F, build: Builder[F], metrics_port: int | None) -> None:
    """Resolve the server, refuse cross-slot keys, and run the service until SIGTERM/SIGINT."""
    with server_for(config.redis) as url:
        config = config.model_copy(update={"redis": url})
        forwarder, hooks = build(config)
        try:
            check_slots(forwarder.name, config, forwarder.route)
        except CrossSlotError as exc:
            fail(str(exc), EXIT_CONFIG)
        serve_until_signal(forwarder, config, hooks, forwarder.metrics.namespace, metrics_port)


@click.command("mpush")
@config_options
@metrics_port_option
@click.option("--demo", is_flag=True, help="Run the seed's demo (pushes one, two, three) and exit.")
def mpush_command(
    config_path: Path | None,
    redis_url: str | None,
    sets: tuple[str, ...],
    metrics_port: int | None,
    demo: bool,
) -> None:
    """Push every message from `in` onto every list in `out`, atomically (fan-out).

    \b
    Config fields: redis, in, pending, out (list), popTimeout, batch, serviceNamespace,
    serviceRedis, serviceExpire, serviceRenew, serviceCapacity, messageExpire,
    messageTimeout, messageCapacity, done.  Example: config/mpush.json.
    """
    if demo:
        from redline.cli.demo import run_mpush_demo

        run_mpush_demo(redis_url)
        return
    config = load_or_exit(mpush.MpushConfig, config_path, sets, redis=redis_url)
    run(config, mpush.build, metrics_port)


@click.command("lpush")
@config_options
@metrics_port_option
def lpush_command(
    config_path: Path | None, redis_url: str | None, sets: tuple[str, ...], metrics_port: int | None
) -> None:
    """Move every message from `in` onto the one list `out` on the same server, atomically.

    \b
    Config fields: as mpush, with `out` a single list name.
    Example:  redline lpush --set in=demo:in --set out=demo:out
    """
    config = load_or_exit(lpush.LpushConfig, config_path, sets, redis=redis_url)
    run(config, lpush.build, metrics_port)


@click.command("mbalance")
@config_options
@metrics_port_option
def mbalance_command(
    config_path: Path | None, redis_url: str | None, sets: tuple[str, ...], metrics_port: int | None
) -> None:
    """Push each message from `in` onto the shortest list in `out` (ties: first listed).

    \b
    Config fields: as mpush, plus maxLength: one number for every output, or
    {"<out>": number}. When every output is at its limit, mbalance waits (back-pressure)
    and counts the waits in <ns>:metrics:backpressure.
    Example:  redline mbalance --set in=jobs --set 'out=["jobs:a", "jobs:b"]' --set maxLength=100
    """
    config = load_or_exit(mbalance.MbalanceConfig, config_path, sets, redis=redis_url)
    run(config, mbalance.build, metrics_port)
