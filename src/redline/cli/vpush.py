"""`redline vpush`: move messages to a list on another Redis, exactly once, one at a time."""

from __future__ import annotations

from pathlib import Path

import click

from redline.cli.common import config_options, load_or_exit, server_for
from redline.cli.services import metrics_port_option, serve_until_signal
from redline.services.vpush import VpushConfig, build

__all__ = ["vpush"]


@click.command()
@config_options
@metrics_port_option
def vpush(
    config_path: Path | None, redis_url: str | None, sets: tuple[str, ...], metrics_port: int | None
) -> None:
    """Move messages from the `in` queue (on --redis) to the `out` list on `outRedis`.

    \b
    Example:
      redline vpush --redis redis://local:6379/0 \\
        --set in=demo:vpush:in --set out=demo:vpush:out --set outRedis=redis://remote:6379/0

    Every message arrives once, in order. Run any number of replicas: one is active (a lease
    on the input server), the others take over within `lease` seconds if it dies. Delivery is
    retried forever with backoff up to `retryMax` seconds; `batch` moves N messages at a time.
    Each instance registers under serviceNamespace (default {in}:service); deleting its
    <ns>:<id> hash stops it. Metrics: <ns>:metrics:{forwarded,transfers,retries,duplicates,lease}
    (`redline metrics <ns>`, or --metrics-port). See docs/vpush.md.
    """
    config = load_or_exit(VpushConfig, config_path, sets, redis=redis_url)
    with server_for(config.redis) as url:
        config = config.model_copy(update={"redis": url})
        service, hooks = build(config)
        serve_until_signal(service, config, hooks, service.metrics.namespace, metrics_port)
