"""Consume-and-forward: the one way mpush, lpush and mbalance move messages.

Under load, one script call takes up to ``batch`` messages from ``in`` and pushes them onto the
outputs (a `Route` decides which), atomically. When ``in`` is empty the instance blocks in
``BLMOVE in <pending:id> RIGHT LEFT popTimeout``: a message that arrives is parked in this
instance's own pending list, and the next script call forwards it *and* removes it from pending
in the same atomic step. So a SIGKILL at any moment leaves every message either in ``in``, in a
pending list, or on every output it was meant for — never lost, never twice.

Pending lists are per instance (``{<pending>}:<id>``) and listed in ``{<pending>}:instances``
with the lifecycle hash of their owner. An instance returns its own pending list to ``in`` when
it stops; at start-up and at every renewal it returns the lists of instances whose lifecycle hash
has expired (dead ones), never a live replica's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic import Field

from redline import scripts
from redline.connection import AsyncClient, is_cluster
from redline.keys import derived, require_same_slot
from redline.lifecycle import is_alive
from redline.metrics import Metrics
from redline.runner import Context, Hook
from redline.services import standard_hooks
from redline.tracking import TrackedConfig, Tracker

__all__ = [
    "Balance",
    "FanOut",
    "ForwardConfig",
    "Forwarder",
    "Route",
    "check_slots",
    "forwarding",
    "namespace_of",
    "pending_key",
    "registry_key",
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
        return self.pending or derived(self.in_, "pending")


def pending_key(pending: str, instance_id: str) -> str:
    """The pending list of one instance, in the slot of `pending`."""
    return derived(pending, instance_id)


def registry_key(pending: str) -> str:
    """Hash of instance id → lifecycle hash, for every instance that has a pending list."""
    return derived(pending, "instances")


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
class Outcome:
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


class Forwarder:
    """The forwarding `Service`, and the `Hook` that recovers pending lists around it."""

    def __init__(
        self,
        name: str,
        config: ForwardConfig,
        route: Route,
        metrics: Metrics,
        tracker: Tracker | None = None,
    ) -> None:
        self.name, self.config, self.route = name, config, route
        self.metrics, self.tracker = metrics, tracker
        self.source, self.base = config.in_, config.pending_base
        self.mine = ""
        self._lifecycle_key = ""
        self._wait = 0.0
        self._recovered_at = 0.0

    @property
    def serves(self) -> str:
        return f"{self.source} -> {','.join(self.route.outputs)}"

    async def start(self, ctx: Context) -> None:
        check_slots(self.name, self.config, self.route)
        if not ctx.instance_id:
            raise RuntimeError("Forwarder needs the Lifecycle hook before it (an instance id)")
        self.mine = pending_key(self.base, ctx.instance_id)
        self._lifecycle_key = str(ctx.extra.get("lifecycle_key", ""))
        await ctx.redis.hset(registry_key(self.base), ctx.instance_id, self._lifecycle_key)
        await self.recover_dead(ctx)

    async def tick(self, ctx: Context) -> None:
        if time.monotonic() - self._recovered_at >= self.config.service_renew:
            await self.recover_dead(ctx)

    async def stop(self, ctx: Context) -> None:
        if self.mine:
            returned = await self._return(ctx.redis, ctx.instance_id, self.mine)
            if returned:
                log.info("service=%s returned=%s to in=%s", self.name, returned, self.source)

    async def recover_dead(self, ctx: Context) -> int:
        """Return to ``in`` what instances whose lifecycle hash expired left pending."""
        total, self._recovered_at = 0, time.monotonic()
        entries = await ctx.redis.hgetall(registry_key(self.base))
        for raw_id, raw_key in entries.items():
            ident, owner = _text(raw_id), _text(raw_key)
            if ident == ctx.instance_id or (owner and await is_alive(ctx.lifecycle_redis, owner)):
                continue
            count = await self._return(ctx.redis, ident, pending_key(self.base, ident))
            log.info("service=%s recovered=%s from dead instance=%s", self.name, count, ident)
            total += count
        return total

    async def _return(self, client: AsyncClient, ident: str, pending: str) -> int:
        keys = [registry_key(self.base), pending, self.source]
        return int(await scripts.run(client, "forward_recover", keys, [ident]))

    async def step(self, ctx: Context) -> None:
        outcome = await self.forward(ctx.redis)
        if outcome.moved:
            self.metrics.count("forwarded", outcome.moved)
            if self.tracker is not None:
                await self.tracker.track(ctx.lifecycle_redis, outcome.payloads)
        if outcome.full:
            await self._backpressure(ctx)
            return
        self._end_backpressure()
        if outcome.moved < self.config.batch:
            await self._block(ctx)

    async def forward(self, client: AsyncClient) -> Outcome:
        """One script call: what is pending, then up to ``batch`` from ``in``, to the outputs."""
        keys = [self.mine, self.source, *self.route.outputs]
        want = int(self.tracker is not None)
        args: list[scripts.Arg] = [self.config.batch, want, *self.route.args()]
        reply: Sequence[object] = await scripts.run(client, self.route.script, keys, args)
        full = bool(reply[0])
        if want:
            payloads = tuple(p for p in reply[1:] if isinstance(p, bytes))
            return Outcome(len(payloads), payloads, full)
        return Outcome(int(str(reply[1])), (), full)

    async def _block(self, ctx: Context) -> None:
        """Wait up to popTimeout for a message, parked in our pending list; stop cuts it short."""
        timeout = self.config.pop_timeout
        pop = asyncio.ensure_future(
            # Redis takes a fractional timeout; redis-py's annotation says int.
            ctx.redis.blmove(self.source, self.mine, timeout, "RIGHT", "LEFT")  # type: ignore[arg-type]
        )
        stop = asyncio.ensure_future(ctx.stopping.wait())
        try:
            await asyncio.wait({pop, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not pop.done():
                # The connection is closed on cancel: a message the server moved anyway is in
                # our pending list, which stop() returns to `in`.
                pop.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pop
        if not pop.cancelled():
            pop.result()  # surfaces connection errors to the runner's backoff

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


def namespace_of(config: ForwardConfig) -> str:
    """The lifecycle/metrics namespace: ``serviceNamespace``, else ``{<in>}:service``.

    Forwarding needs an instance id (for its pending list), so it always registers.
    """
    return config.service_namespace or derived(config.in_, "service")


def forwarding(name: str, config: ForwardConfig, route: Route) -> tuple[Forwarder, list[Hook]]:
    """A `Forwarder` and its hooks, in order: lifecycle, forwarder, tracking, metrics."""
    std = standard_hooks(name, config, namespace_of(config), "")
    forwarder = Forwarder(name, config, route, std.metrics, std.tracker)
    std.lifecycle.serves = forwarder.serves
    hooks: list[Hook] = [std.lifecycle, forwarder]
    if std.tracker is not None:
        hooks.append(std.tracker)
    hooks.append(std.metrics)
    return forwarder, hooks


def _text(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)
