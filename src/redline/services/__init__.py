"""Services: one small module per seed service, all on `redline.runtime.runner.run_service`.

Every service gets the same hooks around its loop, built by `standard_hooks`: lifecycle
(registration, renewal, remote shutdown), metrics (flushed every tick), when the config is a
`TrackedConfig` naming a ``done`` list, message tracking with its monitors, and, when
``serviceStandby`` is set (cscale sets it for a service with ``standby: K``), the `StandbyGate`
that keeps the instance idle until it holds an active slot. `StandardHooks.around` puts a
service's own hooks in their place; `serve` runs a service with them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from redline.config import ServiceConfig
from redline.keys import derived
from redline.runtime.lifecycle import Lifecycle, check_interval
from redline.runtime.metrics import Metrics
from redline.runtime.runner import Hook, Service, run_service
from redline.runtime.standby import StandbyGate
from redline.runtime.tracking import TrackedConfig, Tracker

__all__ = ["StandardHooks", "default_namespace", "serve", "standard_hooks"]


class StandardHooks:
    """The lifecycle, metrics and (optional) tracking and standby hooks of one instance."""

    def __init__(self, service: str, config: ServiceConfig, namespace: str, serves: str) -> None:
        self.lifecycle = Lifecycle.of(service, config, namespace, serves)
        tracked = config if isinstance(config, TrackedConfig) else None
        timeout = tracked.message_timeout if tracked else 10.0
        self.metrics = Metrics(namespace, timeout_ms=int(timeout * 1000))
        self.tracker: Tracker | None = None
        if tracked and tracked.done:
            self.tracker = Tracker(
                namespace,
                service,
                self.metrics,
                done=tracked.done,
                expire=tracked.message_expire,
                timeout=tracked.message_timeout,
                capacity=tracked.message_capacity,
            )
        self.gate = StandbyGate(self.lifecycle) if config.service_standby else None

    def around(self, *own: Hook) -> list[Hook]:
        """The hooks in order: lifecycle, standby gate, the service's `own`, tracking, metrics.

        The gate comes before `own`, so a standby starts none of the service's hooks (it moves
        nothing, not even what dead instances left pending) until it becomes active.
        """
        first = [self.lifecycle] if self.gate is None else [self.lifecycle, self.gate]
        last = [self.metrics] if self.tracker is None else [self.tracker, self.metrics]
        return [*first, *own, *last]


def standard_hooks(
    service: str, config: ServiceConfig, namespace: str, serves: str = ""
) -> StandardHooks:
    """Build the standard hooks for `service` in `namespace`."""
    return StandardHooks(service, config, namespace, serves)


def default_namespace(config: ServiceConfig, source: str) -> str:
    """The lifecycle/metrics namespace: ``serviceNamespace``, else ``{<source>}:service``.

    Services that need an instance id (a pending list, a lease holder) always register, so they
    need a namespace even when none is configured; `source` is the list they consume.
    """
    return config.service_namespace or derived(source, "service")


async def serve(
    service: Service,
    config: ServiceConfig,
    hooks: Sequence[Hook],
    stopping: asyncio.Event | None = None,
) -> None:
    """Run `service` with `hooks`, ticking often enough to notice a deleted lifecycle hash."""
    interval = check_interval(config.service_renew, config.pop_timeout)
    await run_service(service, config, hooks, stopping, tick_interval=interval)
