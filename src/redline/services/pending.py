"""Per-instance pending lists: how a consumer takes from a list without ever losing a message.

A consumer parks what it takes from ``in`` in its own pending list ``{<pending>}:<id>`` (``id``:
its lifecycle instance id) and removes it from there in the same atomic step that finishes it
(the forwarding script of mpush, the reply script of rquery). So a SIGKILL at any moment leaves
every message in ``in``, in a pending list, or finished.

Pending lists are listed in ``{<pending>}:instances`` with the lifecycle hash of their owner.
An instance returns its own pending list to ``in`` when it stops; at start-up and every
``serviceRenew`` seconds it returns the lists of instances whose lifecycle hash is gone (dead
ones), never a live replica's. A dead instance stays listed, its list recovered on each pass,
until it has been found dead for ``serviceExpire + popTimeout`` seconds: an instance whose hash
was deleted works on until its next renewal notices, and a message it parks meanwhile must not
be left in a list nobody lists. An instance that stalled for longer (stopped, paused, cut off)
and was forgotten lists itself again in the round trip of each claim, before its ``BLMOVE``:
nothing is ever parked in a list that is not listed. `PendingClaims` is that runner `Hook`;
services that consume this way subclass it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from redline.config import ServiceConfig
from redline.connection import AsyncClient, Command, longest_block, run_commands, text
from redline.keys import derived
from redline.runtime import Context
from redline.runtime.lifecycle import is_alive
from redline.scripting import scripts

__all__ = [
    "PendingClaims",
    "blocking_move",
    "dead_key",
    "pending_base",
    "pending_key",
    "registry_key",
]

log = logging.getLogger(__name__)


def pending_base(queue: str) -> str:
    """``{<queue>}:pending``: the default base of the pending lists of `queue`'s consumers."""
    return derived(queue, "pending")


def pending_key(pending: str, instance_id: str) -> str:
    """The pending list of one instance, in the slot of `pending`."""
    return derived(pending, instance_id)


def registry_key(pending: str) -> str:
    """Hash of instance id → lifecycle hash, for every instance that has a pending list."""
    return derived(pending, "instances")


def dead_key(pending: str) -> str:
    """Hash of instance id → when it was first found dead (ms), while it is still listed."""
    return derived(pending, "dead")


async def blocking_move(
    ctx: Context,
    source: str,
    destination: str,
    seconds: float,
    ends: tuple[str, str],
    before: Sequence[Command] = (),
) -> bytes | None:
    """``BLMOVE source destination *ends seconds``, cut short when the service is stopping;
    `before`: commands sent ahead of it in the same round trip (their errors are raised).

    On a stop the connection is closed: an element the server moved anyway is in
    `destination`, which is why callers block only into a list they recover (or onto `source`
    itself). Connection errors are raised, for the runner's backoff. The wait is cut to what
    the client's read timeout allows (`longest_block`): an idle service returns empty, it does
    not fail.
    """
    command = ("BLMOVE", source, destination, *ends, min(seconds, longest_block(ctx.redis)))
    pop = asyncio.ensure_future(run_commands(ctx.redis, [*before, command], raise_on_error=True))
    stop = asyncio.ensure_future(ctx.stopping.wait())
    try:
        await asyncio.wait({pop, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        if not pop.done():
            pop.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pop
    if pop.cancelled():
        return None
    moved = pop.result()[-1]
    return moved if isinstance(moved, bytes) else None


class PendingClaims:
    """The `Hook` that owns this instance's pending list and recovers dead instances' lists."""

    def __init__(self, name: str, source: str, base: str, config: ServiceConfig) -> None:
        self.name, self.source, self.base = name, source, base
        self.recover_every = config.service_renew
        # how long a dead instance stays listed (ms): past its last possible renewal and claim
        self.grace_ms = round((config.service_expire + config.pop_timeout) * 1000)
        self.mine = ""
        self._relist: tuple[Command, ...] = ()
        self._recovered_at = 0.0

    async def start(self, ctx: Context) -> None:
        if not ctx.instance_id:
            raise RuntimeError(f"{self.name} needs the Lifecycle hook before it (an instance id)")
        self.mine = pending_key(self.base, ctx.instance_id)
        lifecycle_key = ctx.instance_key
        # Listed, and not found dead (a recoverer that forgot this instance would start its
        # grace over): sent now and ahead of every claim.
        self._relist = (
            ("HSET", registry_key(self.base), ctx.instance_id, lifecycle_key),
            ("HDEL", dead_key(self.base), ctx.instance_id),
        )
        await run_commands(ctx.redis, self._relist, raise_on_error=True)
        await self.recover_dead(ctx)

    async def tick(self, ctx: Context) -> None:
        if time.monotonic() - self._recovered_at >= self.recover_every:
            await self.recover_dead(ctx)

    async def stop(self, ctx: Context) -> None:
        if self.mine:
            returned = await self._return(ctx.redis, ctx.instance_id, self.mine)
            if returned:
                log.info("service=%s returned=%s to in=%s", self.name, returned, self.source)

    async def claim(self, ctx: Context, seconds: float) -> bytes | None:
        """Wait up to `seconds` for one message from ``in``, parked in our pending list, which
        is listed again in the same round trip (the server runs those commands first)."""
        ends = ("RIGHT", "LEFT")
        return await blocking_move(ctx, self.source, self.mine, seconds, ends, self._relist)

    async def recover_dead(self, ctx: Context) -> int:
        """Return to ``in`` what instances whose lifecycle hash expired left pending."""
        total, self._recovered_at = 0, time.monotonic()
        entries = await ctx.redis.hgetall(registry_key(self.base))
        for raw_id, raw_key in entries.items():
            ident, owner = text(raw_id), text(raw_key)
            if ident == ctx.instance_id or (owner and await is_alive(ctx.lifecycle_redis, owner)):
                continue
            pending = pending_key(self.base, ident)
            count = await self._return(ctx.redis, ident, pending, self.grace_ms)
            if count:
                log.info("service=%s recovered=%s from dead instance=%s", self.name, count, ident)
            total += count
        return total

    async def _return(
        self, client: AsyncClient, ident: str, pending: str, grace: int | None = None
    ) -> int:
        """Move `pending` back to ``in``; the registry forgets `ident` at once (its own stop,
        `grace` None) or once it has been found dead for `grace` ms."""
        keys = [registry_key(self.base), pending, self.source, dead_key(self.base)]
        args: list[str | int] = [ident] if grace is None else [ident, grace]
        return int(await scripts.run(client, "forward_recover", keys, args))
