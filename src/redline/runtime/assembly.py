"""The one way a service process is put together: its namespace and its hooks, in order.

Every kind of process — the forwarders (mpush, lpush, mbalance), vpush, the rquery service, the
HTTP services (hrouter, hassets, hrender, handlers), himporter's reply reader, the jobs worker —
is assembled by `assemble` and run by `redline.runtime.runner.run_service`, which ticks its
hooks every `check_interval`. So these are decided here, and only here:

- the namespace of its lifecycle, metrics and tracking keys: ``serviceNamespace``; else, for a
  process that keeps per-instance keys beside the queue it consumes (a pending list, a lease
  holder: they must share the queue's cluster slot), ``{<queue>}:service``; else
  ``redline:<kind>``;
- the hooks, in order: lifecycle, the standby gate (with ``serviceStandby``), message tracking
  (when the config names a ``done`` list), metrics, then the process's own hooks. They start in
  that order and stop in reverse: the process's own stop first (a worker finishes its jobs, an
  HTTP service drains its requests), metrics flush what was counted until then, and the
  instance unregisters last. The gate comes before the process's own hooks, so a standby starts
  none of them (it moves nothing, not even what dead instances left pending) until it is active.
"""

from __future__ import annotations

from dataclasses import dataclass

from redline.config import ServiceConfig
from redline.keys import derived
from redline.runtime.context import Hook
from redline.runtime.lifecycle import Lifecycle, check_interval
from redline.runtime.metrics import Metrics
from redline.runtime.standby import StandbyGate
from redline.runtime.tracking import TrackedConfig, Tracker

__all__ = ["Assembly", "assemble", "namespace_of"]

DEFAULT_TIMEOUT = 10.0  # seconds the metrics histogram is measured against, unless told


@dataclass
class Assembly:
    """The shared hooks of one process; `hooks` puts the process's own in their place."""

    namespace: str
    lifecycle: Lifecycle
    metrics: Metrics
    tracker: Tracker | None = None
    gate: StandbyGate | None = None

    def hooks(self, *own: Hook) -> list[Hook]:
        """Lifecycle, standby gate, tracking, metrics, then `own` (see the module doc)."""
        shared = [self.lifecycle, self.gate, self.tracker, self.metrics]
        return [*(hook for hook in shared if hook is not None), *own]


def _tracker(kind: str, namespace: str, metrics: Metrics, tracked: TrackedConfig) -> Tracker:
    return Tracker(
        namespace,
        kind,
        metrics,
        done=tracked.done,
        expire=tracked.message_expire,
        timeout=tracked.message_timeout,
        capacity=tracked.message_capacity,
    )


def namespace_of(kind: str, config: ServiceConfig, queue: str | None = None) -> str:
    """``serviceNamespace``; else ``{<queue>}:service`` given the `queue` the process keeps
    per-instance keys beside; else ``redline:<kind>``."""
    if config.service_namespace:
        return config.service_namespace
    return derived(queue, "service") if queue is not None else f"redline:{kind}"


def assemble(
    kind: str,
    config: ServiceConfig,
    *,
    queue: str | None = None,
    serves: str = "",
    timeout: float | None = None,
    gated: bool = True,
) -> Assembly:
    """The shared hooks of a process of `kind` (``"mpush"``, ``"hrouter"``, ``"worker"``, …).

    `queue`: the queue it keeps per-instance keys beside (see `namespace_of`). `serves`: what it
    works on, written to its lifecycle hash (``"demo:mpush:in -> demo:mpush:out0"``).
    `timeout`: seconds its metrics histograms are measured against (default: the tracked
    ``messageTimeout``, else 10 s). `gated=False` for a process that does its work outside its
    step loop, which a standby gate could not hold back (himporter's HTTP front): it ignores
    ``serviceStandby``.
    """
    namespace = namespace_of(kind, config, queue)
    lifecycle = Lifecycle(
        namespace,
        kind,
        serves,
        expire=config.service_expire,
        renew=config.service_renew,
        capacity=config.service_capacity,
        revision=config.service_revision,
    )
    tracked = config if isinstance(config, TrackedConfig) else None
    if timeout is None:
        timeout = tracked.message_timeout if tracked else DEFAULT_TIMEOUT
    metrics = Metrics(namespace, timeout_ms=round(timeout * 1000))
    assembly = Assembly(namespace, lifecycle, metrics)
    if tracked and tracked.done:
        assembly.tracker = _tracker(kind, namespace, metrics, tracked)
    if config.service_standby and gated:
        poll = check_interval(config.service_renew, config.pop_timeout)
        assembly.gate = StandbyGate(lifecycle, poll)
    return assembly
