"""Standby instances: registered and renewed, but idle until an active slot is free.

`StandbyGate` is a runner `Hook` placed after the lifecycle hook. When the namespace has a
desired count in ``redline:scale``, the gate's start holds the step loop back until the
instance takes one of that many active slots (``{ns}:cscale:active``); meanwhile it keeps the
lifecycle hash renewed (through the lifecycle hook's own tick, so a deleted hash still stops it)
and marks the hash ``role=standby``. A slot is freed when its holder stops, when the agent that
started it sees it die, or when its hash is gone (any waiting standby frees such slots), so a
standby becomes active within one poll of that (at most a second). A namespace nobody scales
(no desired count) is not gated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from redline.backoff import Backoff
from redline.connection import text
from redline.errors import TRANSIENT, ShutdownRequested
from redline.runtime.context import Context
from redline.runtime.desired import active_key, get_desired
from redline.runtime.lifecycle import Lifecycle, instance_key
from redline.scripting import scripts

__all__ = ["StandbyGate", "set_role"]

log = logging.getLogger(__name__)

ACTIVE = 1  # standby_slot.lua: 1 active, 0 no free slot, -1 gave its slot up


async def set_role(ctx: Context, key: str, role: str) -> None:
    """Write ``role`` into the lifecycle hash `key`, unless it was deleted meanwhile."""
    await scripts.run(ctx.lifecycle_redis, "hash_set_if_exists", [key], ["role", role])


@dataclass
class StandbyGate:
    """Hold the step loop back until this instance holds an active slot (see module doc)."""

    lifecycle: Lifecycle
    poll: float = 1.0  # seconds between looks for a free slot
    managed: bool = False
    role: str = ""

    @property
    def namespace(self) -> str:
        return self.lifecycle.namespace

    async def _slot(self, ctx: Context) -> int:
        client = ctx.lifecycle_redis
        desired = await get_desired(client, self.namespace)
        self.managed = desired is not None
        if desired is None:
            return ACTIVE
        holders = [text(m) for m in await client.zrange(active_key(self.namespace), 0, -1)]
        dead = [h for h in holders if not await client.exists(instance_key(self.namespace, h))]
        lease_ms = int(self.lifecycle.expire * 1000)
        args: list[str | int] = [ctx.instance_id, lease_ms, desired, *dead]
        return int(await scripts.run(client, "standby_slot", [active_key(self.namespace)], args))

    async def _become(self, ctx: Context, role: str) -> None:
        if role != self.role:
            self.role = role
            await set_role(ctx, self.lifecycle.key, role)
            log.info("%s is %s", self.lifecycle.key, role)

    async def start(self, ctx: Context) -> None:
        backoff = Backoff(f"standby {self.namespace}")
        while not ctx.stopping.is_set():
            try:
                if await self._slot(ctx) == ACTIVE:
                    await self._become(ctx, "active")
                    return
                await self._become(ctx, "standby")
                await self.lifecycle.tick(ctx)
            except ShutdownRequested as exc:
                log.info("standby %s stops: %s", self.lifecycle.key, exc)
                ctx.stopping.set()
                return
            except TRANSIENT as exc:
                await backoff.failed(exc)
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(ctx.stopping.wait(), self.poll)

    async def tick(self, ctx: Context) -> None:
        if self.role == "active" and await self._slot(ctx) != ACTIVE:
            raise ShutdownRequested(f"{self.namespace}: more active instances than desired")

    async def stop(self, ctx: Context) -> None:
        if self.managed and ctx.instance_id:
            await ctx.lifecycle_redis.zrem(active_key(self.namespace), ctx.instance_id)
