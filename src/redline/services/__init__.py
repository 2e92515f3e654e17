"""Services: one small module per seed service, all on `redline.runner.run_service`.

Every service gets the same hooks around its loop, built by `standard_hooks`: lifecycle
(registration, renewal, remote shutdown), metrics (flushed every tick) and, when the config names
a ``done`` list, message tracking with its monitors. `serve` runs a service with them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from redline.lifecycle import Lifecycle, check_interval
from redline.metrics import Metrics
from redline.runner import Hook, Service, run_service
from redline.tracking import TrackedConfig, Tracker

__all__ = ["StandardHooks", "serve", "standard_hooks"]


class StandardHooks:
    """The lifecycle, metrics and (optional) tracking hooks of one service instance."""

    def __init__(self, service: str, config: TrackedConfig, namespace: str, serves: str) -> None:
        self.lifecycle = Lifecycle(
            namespace,
            service,
            serves,
            expire=config.service_expire,
            renew=config.service_renew,
            capacity=config.service_capacity,
        )
        self.metrics = Metrics(namespace, timeout_ms=int(config.message_timeout * 1000))
        self.tracker: Tracker | None = None
        if config.done:
            self.tracker = Tracker(
                namespace,
                service,
                self.metrics,
                done=config.done,
                expire=config.message_expire,
                timeout=config.message_timeout,
                capacity=config.message_capacity,
            )


def standard_hooks(
    service: str, config: TrackedConfig, namespace: str, serves: str = ""
) -> StandardHooks:
    """Build the standard hooks for `service` in `namespace`."""
    return StandardHooks(service, config, namespace, serves)


async def serve(
    service: Service,
    config: TrackedConfig,
    hooks: Sequence[Hook],
    stopping: asyncio.Event | None = None,
) -> None:
    """Run `service` with `hooks`, ticking often enough to notice a deleted lifecycle hash."""
    interval = check_interval(config.service_renew, config.pop_timeout)
    await run_service(service, config, hooks, stopping, tick_interval=interval)
