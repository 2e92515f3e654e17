"""Consume-and-forward: the one way mpush, lpush and mbalance move messages.

Under load, one script call takes up to ``batch`` messages from ``in`` and pushes them onto the
outputs (a `Route` decides which), atomically. When ``in`` is empty the instance blocks in
``BLMOVE in <pending:id> RIGHT LEFT popTimeout``: a message that arrives is parked in this
instance's own pending list, and the next script call forwards it *and* removes it from pending
in the same atomic step. So a SIGKILL at any moment leaves every message either in ``in``, in a
pending list, or on every output it was meant for — never lost, never twice.

Pending lists are per instance and recovered from dead instances through the lifecycle: see
`redline.services.pending`, which rquery uses too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic import Field

from redline.connection import AsyncClient, is_cluster
from redline.keys import require_same_slot
from redline.runtime import Context, Hook, assemble
from redline.runtime.metrics import Metrics
from redline.runtime.tracking import TrackedConfig, Tracker
from redline.scripting import scripts
from redline.services.pending import PendingClaims, pending_base

__all__ = [
    "Balance",
    "FanOut",
    "ForwardConfig",
    "Forwarder",
    "Route",
    "check_slots",
    "forwarding",
]

log = logging.getLogger(__name__)

MAX_BATCH = 1000  # Lua's unpack() has a stack limit; 1000 is far below it
BACKPRESSURE_MAX_WAIT = 0.5


class ForwardConfig(TrackedConfig):
    """Fields shared by the forwarding services (the seed's names)."""

    in_: str = Field(alias="in", min_length=1, description="input list")
    pending: str | None = Field(
        None, description="base name of the per-instance pending lists (default: {in}:pending)"
    )
    batch: int = Field(100, ge=1, le=MAX_BATCH, description="messages moved per round trip")

    @property
    def pending_base(self) -> str:
        return self.pending or pending_base(self.in_)


class Route(Protocol):
    """Where forwarded messages go: a script and its outputs (see ``lua/forward_*.lua``)."""

    @property
    def script(self) -> str: ...

    @property
    def outputs(self) -> tuple[str, ...]: ...

    def args(self) -> list[scripts.Arg]: ...


@dataclass(frozen=True)
class FanOut:
    """Every message onto every output (mpush; lpush is a fan-out to one output)."""

    outputs: tuple[str, ...]
    script: str = "forward_fanout"

    def args(self) -> list[scripts.Arg]:
        return []


@dataclass(frozen=True)
class Balance:
    """Each message onto the shortest output under its limit (mbalance); 0 means no limit."""

    outputs: tuple[str, ...]
    limits: tuple[int, ...]
    script: str = "forward_balance"

    def args(self) -> list[scripts.Arg]:
        return list(self.limits)


@dataclass(frozen=True)
class Moved:
    """What one script call did."""

    moved: int
    payloads: tuple[bytes, ...] = ()
    full: bool = False


def check_slots(service: str, config: ForwardConfig, route: Route) -> None:
    """On a cluster, refuse a config whose keys cannot be used together by one script."""
    if config.redis is None or not is_cluster(config.redis):
        return
    keys = {"in": config.in_, "pending": config.pending_base}
    keys.update({f"out[{i}]": out for i, out in enumerate(route.outputs)})
    require_same_slot(service, keys)


class Forwarder(PendingClaims):
    """The forwarding `Service`; as a `Hook` it owns and recovers the pending lists."""

    def __init__(
        self,
        name: str,
        config: ForwardConfig,
        route: Route,
        metrics: Metrics,
        tracker: Tracker | None = None,
    ) -> None:
        super().__init__(name, config.in_, config.pending_base, config)
        self.config, self.route = config, route
        self.metrics, self.tracker = metrics, tracker
        self._wait = 0.0

    @property
    def serves(self) -> str:
        return f"{self.source} -> {','.join(self.route.outputs)}"

    async def start(self, ctx: Context) -> None:
        check_slots(self.name, self.config, self.route)
        await super().start(ctx)

    async def step(self, ctx: Context) -> None:
        moved = await self.forward(ctx.redis)
        if moved.moved:
            self.metrics.count("forwarded", moved.moved)
            if self.tracker is not None:
                await self.tracker.track(ctx.lifecycle_redis, moved.payloads)
        if moved.full:
            await self._backpressure(ctx)
            return
        self._end_backpressure()
        if moved.moved < self.config.batch:
            await self._block(ctx)

    async def forward(self, client: AsyncClient) -> Moved:
        """One script call: what is pending, then up to ``batch`` from ``in``, to the outputs."""
        keys = [self.mine, self.source, *self.route.outputs]
        want = int(self.tracker is not None)
        args: list[scripts.Arg] = [self.config.batch, want, *self.route.args()]
        reply: Sequence[object] = await scripts.run(client, self.route.script, keys, args)
        full = bool(reply[0])
        if want:
            payloads = tuple(p for p in reply[1:] if isinstance(p, bytes))
            return Moved(len(payloads), payloads, full)
        return Moved(int(str(reply[1])), (), full)

    async def _block(self, ctx: Context) -> None:
        """Wait up to popTimeout for a message; the next `forward` takes it from pending."""
        await self.claim(ctx, self.config.pop_timeout)

    async def _backpressure(self, ctx: Context) -> None:
        if not self._wait:
            log.warning("service=%s back-pressure: every output is full, waiting", self.name)
        self._wait = min(BACKPRESSURE_MAX_WAIT, max(0.01, self._wait * 2), self.config.pop_timeout)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(ctx.stopping.wait(), self._wait)
        self.metrics.observe("backpressure", self._wait * 1000, histogram=False)

    def _end_backpressure(self) -> None:
        if self._wait:
            log.info("service=%s back-pressure over: an output has room", self.name)
            self._wait = 0.0


def forwarding(name: str, config: ForwardConfig, route: Route) -> tuple[Forwarder, list[Hook]]:
    """A `Forwarder` and its hooks (`redline.runtime.assemble`'s, then the forwarder's own);
    its pending list sits beside ``in``, so its namespace does too."""
    assembly = assemble(name, config, queue=config.in_)
    forwarder = Forwarder(name, config, route, assembly.metrics, assembly.tracker)
    assembly.lifecycle.serves = forwarder.serves
    return forwarder, assembly.hooks(forwarder)
